"""RegMix mixture sampling: Dirichlet draws centred on a prior, at concentrations spread over several scales.

After Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model Pre-training" (the
sampler of their ``mixture_config/synthesize_mixture.py``, re-written). Each draw picks a strength ``s``
uniformly among ``n_scales`` values spaced log-evenly in ``[min_strength, max_strength]`` and draws the
mixture from ``Dirichlet(s * prior)``. Every draw has mean ``prior``; a small ``s`` puts nearly all weight
on one or two domains (sparse mixtures), a large ``s`` stays close to the prior, so the proxies cover
both the corners of the simplex and the neighbourhood of the obvious mixture.

The paper's further knobs are kept as options, off by default so that the draws stay centred on the prior:
``temperature`` (the prior is raised to this power and renormalised; the paper uses 0.5 to flatten skewed
token shares), ``max_usage`` (reject a draw that would give a domain more than ``max_usage`` times its
share of the available tokens, i.e. repeat it for more epochs than that; the paper uses 15), and
``minimum`` (weights below it become zero and the rest is renormalised, before the ``max_usage`` check;
the paper uses 2e-4).

`sample_mixtures` is a pure function of its arguments and seed (no Ray, no Optuna: the laws use it too);
`sweeper.search.dirichlet.DirichletProposer` suggests from it (Ray Tune drives it through `sweeper.search.tune`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweeper.errors import UserError
from sweeper.option_types import check_option_types

MAX_REJECTION_ROUNDS = 1000


@dataclass(frozen=True)
class DirichletOptions:
    """How mixtures are drawn around the prior (see the module docstring). Strengths are total
    concentrations: ``Dirichlet(s * prior)`` with ``prior`` summing to one."""

    min_strength: float = 0.1
    max_strength: float = 100.0
    n_scales: int = 15
    temperature: float = 1.0
    max_usage: float | None = None
    minimum: float = 0.0

    def __post_init__(self) -> None:
        if not (0 < self.min_strength <= self.max_strength) or not math.isfinite(self.max_strength):
            raise UserError(f"dirichlet: min_strength, max_strength: expected 0 < min <= max < inf, "
                            f"got {self.min_strength}, {self.max_strength}")
        if self.n_scales < 1:
            raise UserError(f"dirichlet: n_scales: expected a positive integer, got {self.n_scales}")
        if not (0 < self.temperature <= 1e3):
            raise UserError(f"dirichlet: temperature: expected a positive number, got {self.temperature}")
        if self.max_usage is not None and not self.max_usage > 0:
            raise UserError(f"dirichlet: max_usage: expected a positive number or null, got {self.max_usage}")
        if not (0 <= self.minimum < 1):
            raise UserError(f"dirichlet: minimum: expected a weight in [0, 1), got {self.minimum}")


def make_options(values: Mapping[str, Any] | None = None, where: str = "search.options") -> DirichletOptions:
    """`DirichletOptions` from a mapping such as a study's ``search.options``; unknown keys are a UserError."""
    values = dict(values or {})
    known = set(DirichletOptions.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{where}: {', '.join(unknown)}: unknown dirichlet option "
                        f"(expected {', '.join(sorted(known))})")
    wrong = check_option_types(DirichletOptions, values)
    if wrong:
        raise UserError(f"{where}: dirichlet: {'; '.join(wrong)}")
    return DirichletOptions(**values)


def strength_scales(min_strength: float = 0.1, max_strength: float = 100.0, n_scales: int = 15) -> np.ndarray:
    """The Dirichlet strengths draws choose among: ``n_scales`` values spaced log-evenly."""
    return np.geomspace(min_strength, max_strength, n_scales)


def normalize_prior(prior: Mapping[str, float] | Sequence[float] | np.ndarray,
                    domains: Sequence[str] | None = None) -> np.ndarray:
    """A prior as a probability vector (in ``domains`` order when ``prior`` is a mapping).

    Shares may be given in any unit (token counts, percentages); they are divided by their sum.
    """
    if isinstance(prior, Mapping):
        names = list(domains) if domains is not None else list(prior)
        unknown = sorted(set(prior) - set(names))
        if unknown:
            raise UserError(f"prior: {', '.join(unknown)}: not a domain of the mixture (domains: {', '.join(names)})")
        values = np.array([float(prior.get(d, 0.0)) for d in names])
    else:
        values = np.asarray(prior, dtype=float).ravel()
        if domains is not None and len(domains) != values.size:
            raise UserError(f"prior: expected {len(domains)} weights, got {values.size}")
    if values.size < 2:
        raise UserError(f"prior: expected weights for at least two domains, got {values.size}")
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise UserError(f"prior: expected non-negative finite weights with a positive sum, got {values.tolist()}")
    return values / values.sum()


def sample_mixtures(prior: Mapping[str, float] | Sequence[float] | np.ndarray, n: int, *,
                    seed: int | Sequence[int] | np.random.Generator | None = 0,
                    options: DirichletOptions | None = None, return_strength: bool = False,
                    **option_values: Any) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``n`` mixtures drawn around ``prior`` as an ``(n, domains)`` array whose rows sum to one.

    Options are a `DirichletOptions` or its fields as keywords (``min_strength=0.1, max_usage=15, ...``).
    ``seed`` is anything ``numpy.random.default_rng`` accepts. With ``return_strength`` the strength each
    draw used comes back as well. Domains with a zero prior always get weight zero.
    """
    if options is None:
        options = make_options(option_values, "dirichlet")
    elif option_values:
        raise TypeError("pass either options or option keywords, not both")
    if n < 0:
        raise UserError(f"dirichlet: n: expected a non-negative number of mixtures, got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    base = normalize_prior(prior)
    centre = base ** options.temperature
    centre /= centre.sum()
    scales = strength_scales(options.min_strength, options.max_strength, options.n_scales)

    upper = None
    if options.max_usage is not None:
        upper = np.minimum(base * options.max_usage, 1.0)
        if upper.sum() < 1.0:
            raise UserError(f"dirichlet: max_usage: {options.max_usage} epochs of each domain's share add up "
                            f"to {upper.sum():.3g} of the tokens, less than a whole mixture; raise it")

    weights = np.empty((0, base.size))
    strengths = np.empty(0)
    for _ in range(MAX_REJECTION_ROUNDS):
        missing = n - len(weights)
        if missing <= 0:
            break
        batch = missing if upper is None else max(2 * missing, 64)
        s = rng.choice(scales, size=batch)
        w = _dirichlet_rows(rng, s[:, None] * centre[None, :])
        if options.minimum > 0:
            w = _drop_below(w, options.minimum, centre)
        if upper is not None:
            keep = (w <= upper + 1e-12).all(axis=1)
            w, s = w[keep], s[keep]
        weights = np.concatenate([weights, w[:missing]])
        strengths = np.concatenate([strengths, s[:missing]])
    if len(weights) < n:
        raise UserError(f"dirichlet: max_usage: {options.max_usage} rejects nearly every draw; raise it")

    return (weights, strengths) if return_strength else weights


def _drop_below(w: np.ndarray, minimum: float, centre: np.ndarray) -> np.ndarray:
    """Weights below ``minimum`` set to zero, rows renormalised (a row left empty, possible only when
    ``minimum`` > 1/domains, goes wholly to the domain with the largest prior share)."""
    w = np.where(w < minimum, 0.0, w)
    empty = w.sum(axis=1) == 0
    w[empty, int(np.argmax(centre))] = 1.0
    return w / w.sum(axis=1, keepdims=True)


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """One Dirichlet draw per row of ``alpha`` (zeros allowed), stable for tiny concentrations.

    Gamma(a) has the law of Gamma(a + 1) * U**(1/a), so log-gammas are formed without underflow and
    normalised with a log-sum-exp; plain gamma draws with a << 1 round to 0 and give 0/0 rows.
    """
    positive = alpha > 0
    safe = np.where(positive, alpha, 1.0)
    log_gamma = np.log(rng.standard_gamma(safe + 1.0)) + np.log1p(-rng.uniform(size=alpha.shape)) / safe
    log_gamma = np.where(positive, log_gamma, -np.inf)
    log_gamma -= log_gamma.max(axis=1, keepdims=True)
    w = np.exp(log_gamma)
    return w / w.sum(axis=1, keepdims=True)


def as_mixture(point: Mapping[str, Any], domains: Sequence[str], where: str = "mixture") -> dict[str, float]:
    """A user-given mixture as weights over ``domains`` summing to one (missing domains weigh zero)."""
    unknown = sorted(set(point) - set(domains))
    if unknown:
        raise UserError(f"{where}: {', '.join(map(str, unknown))}: not a domain (domains: {', '.join(domains)})")
    try:
        values = np.array([float(point.get(d, 0.0)) for d in domains])
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected a number for each domain, got {dict(point)}") from None
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise UserError(f"{where}: expected non-negative weights with a positive sum, got {dict(point)}")
    values /= values.sum()
    return {d: float(v) for d, v in zip(domains, values, strict=True)}
