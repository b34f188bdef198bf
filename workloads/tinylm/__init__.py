"""Proxy language models: small GPTs trained on a mixture of real text domains (the ``tinylm`` workload).

``train(config, report)`` follows the workload contract. ``prepare(config)`` checks a config and builds its
data cache before any trial starts; ``describe(config)`` gives parameter counts, FLOPs and how many times
the run reads its data (``epochs``) without training;
``available_domains()`` and ``token_shares(domains)`` describe the data. README.md in this folder lists
the config keys and the built-in domains.
"""

from .config import KEYS, TinyLMConfig
from .data import available_domains
from .train import describe, prepare, token_shares, train

__all__ = ["KEYS", "TinyLMConfig", "available_domains", "describe", "prepare", "token_shares", "train"]
