"""Signal and noise of proxy measurements: how much of the spread across configs is real.

A proxy's measured target is ``y[m, s] = mu_m + c_s + e[m, s]``: the config's true value ``mu_m``, a
shift ``c_s`` shared by every run of seed ``s`` (the same initialisation and, with common random numbers,
the same data order), and the rest, ``e``. Proxies of one study share one seed, so ``c_s`` moves them all
alike and cannot change their ranking; what can is ``e``. With a few configs replicated over a few
seeds, ``e``'s standard deviation is the residual of the two-way table (configs x seeds), and the seed
standard deviation (within a config, across seeds) is ``c_s`` and ``e`` together.

The spread across configs is measured robustly (1.4826 x the median absolute deviation, the sd for normal
data): a few configs far worse than the rest (a proxy trained almost only on arithmetic) would otherwise
inflate the spread, and with it the SNR, while saying nothing about how well the sensible configs are told
apart. The plain sd is kept beside it (``spread_sd_plain``).

The signal-to-noise ratio compares the spread of the measured target across configs with that noise;
``1 - 1/SNR^2`` is the share of the measured spread that is real (the reliability), and its square root
bounds the rank correlation any regression can reach against the truth.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LOW_SNR = 2.0  # below it, at most ~87% of the correlation with the truth is reachable


@dataclass(frozen=True)
class NoiseEstimate:
    """Seed noise against the spread across configs, from replicated configs."""

    seed_sd: float  # within a config, across seeds (pooled)
    paired_sd: float | None  # the part of it that differs between configs run with one seed
    spread_sd: float  # across configs, one measurement each (robust: 1.4826 x MAD)
    configs: int  # replicated configs used for the noise
    seeds: int  # seeds per replicated config (the smallest count)
    spread_sd_plain: float | None = None  # the plain sd across configs, outliers and all

    @property
    def noise_sd(self) -> float:
        """The noise that can reorder proxies sharing a seed: the paired sd when measured, else the seed sd."""
        return self.paired_sd if self.paired_sd is not None else self.seed_sd

    @property
    def snr(self) -> float:
        return self.spread_sd / self.noise_sd if self.noise_sd > 0 else math.inf

    @property
    def reliability(self) -> float:
        """Share of the measured spread that is signal (0 when the noise explains it all)."""
        return max(0.0, 1.0 - 1.0 / self.snr**2) if math.isfinite(self.snr) else 1.0

    @property
    def max_correlation(self) -> float:
        """The highest correlation with the truth a perfect regression could show on these measurements."""
        return math.sqrt(self.reliability)

    @property
    def too_noisy(self) -> bool:
        return self.snr < LOW_SNR

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(noise_sd=self.noise_sd, snr=self.snr, reliability=self.reliability,
                   max_correlation=self.max_correlation, too_noisy=self.too_noisy)
        return out

    def describe(self) -> str:
        """One line for people."""
        kind = "between proxies of one seed" if self.paired_sd is not None else "across seeds"
        text = (f"SNR {self.snr:.2f}: spread across mixtures sd {self.spread_sd:.4f} (robust), noise {kind} sd "
                f"{self.noise_sd:.4f} (seed sd {self.seed_sd:.4f}; {self.configs} mixtures x {self.seeds} seeds)")
        if self.too_noisy:
            text += (f"; too noisy to trust the regression: at most {self.max_correlation:.2f} correlation "
                     "with the truth is reachable (train longer or larger proxies)")
        return text


def estimate_noise(table: np.ndarray, spread_values: np.ndarray) -> NoiseEstimate | None:
    """Noise from ``table`` (replicated configs x seeds, NaN where a run is missing) against the (robust) sd
    of ``spread_values`` (one measurement per config, e.g. every proxy of the sweep). None when fewer than
    one config has two seeds."""
    table = np.asarray(table, dtype=float)
    rows = [r[np.isfinite(r)] for r in table]
    rows = [r for r in rows if r.size >= 2]
    spread = np.asarray(spread_values, dtype=float)
    spread = spread[np.isfinite(spread)]
    if not rows or spread.size < 2:
        return None
    dof = sum(r.size - 1 for r in rows)
    seed_sd = math.sqrt(sum(float(((r - r.mean()) ** 2).sum()) for r in rows) / dof)
    return NoiseEstimate(seed_sd=seed_sd, paired_sd=_two_way_residual_sd(table), spread_sd=robust_sd(spread),
                         configs=len(rows), seeds=min(r.size for r in rows), spread_sd_plain=float(spread.std(ddof=1)))


def robust_sd(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the sd for normal data, unmoved by a few outliers."""
    values = np.asarray(values, dtype=float)
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _two_way_residual_sd(table: np.ndarray) -> float | None:
    """Residual sd of ``y = config + seed + e`` on the complete part of the table (seeds every
    replicated config ran); None with fewer than two configs or two seeds."""
    complete = table[:, np.all(np.isfinite(table), axis=0)]
    complete = complete[np.all(np.isfinite(complete), axis=1)]
    m, s = complete.shape if complete.ndim == 2 else (0, 0)
    if m < 2 or s < 2:
        return None
    resid = complete - complete.mean(axis=1, keepdims=True) - complete.mean(axis=0, keepdims=True) + complete.mean()
    return math.sqrt(float((resid**2).sum()) / ((m - 1) * (s - 1)))


@dataclass(frozen=True)
class PairedComparison:
    """A candidate against a reference over the seeds both ran."""

    mean: float
    sem: float  # standard error of the candidate's mean
    seeds: int
    diff: float | None  # candidate - reference, mean over shared seeds
    diff_se: float | None
    significant: bool  # |diff| > 2 standard errors (paired by seed)


def compare_paired(values: dict[int, float], reference: dict[int, float]) -> PairedComparison:
    """Mean and standard error of ``values`` (seed -> measurement) and its difference to ``reference``,
    paired by seed."""
    own = np.array(list(values.values()), dtype=float)
    sem = float(own.std(ddof=1) / math.sqrt(own.size)) if own.size >= 2 else math.nan
    shared = sorted(set(values) & set(reference))
    diff = diff_se = None
    significant = False
    if shared:
        d = np.array([values[s] - reference[s] for s in shared])
        diff = float(d.mean())
        if d.size >= 2:
            diff_se = float(d.std(ddof=1) / math.sqrt(d.size))
            significant = abs(diff) > 2 * diff_se if diff_se > 0 else diff != 0
    return PairedComparison(mean=float(own.mean()), sem=sem, seeds=int(own.size), diff=diff, diff_se=diff_se,
                            significant=significant)
