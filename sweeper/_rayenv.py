"""Ray Tune defaults for short trials and a quiet console, set before Ray Tune is imported.

``setdefault`` only: a user's own environment wins.
"""

import os

_DEFAULTS = {
    # sweeper writes its own Parquet rows; Tune's per-trial JSON/CSV/TensorBoard loggers only cost time.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Workloads report some metrics only at evaluation steps (e.g. validation losses).
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # No console tables from Tune; the Rich live view (or plain lines) replaces them.
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_MAX_PENDING_TRIALS_PG": "4",
    "RAY_DEDUP_LOGS": "0",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_V2_ENABLED": "0",
}

for _key, _value in _DEFAULTS.items():
    os.environ.setdefault(_key, _value)
