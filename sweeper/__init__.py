"""sweeper: run sweeps of small proxy models with Ray Tune, keep every report in Parquet, extrapolate."""

from sweeper import _rayenv  # noqa: F401  (Ray Tune environment defaults, before any Ray import)

__version__ = "0.1.0"
