"""Parameter types of a study's search space: float, log, int, choice and simplex (mixture weights).

Each type knows how to ask Optuna for a value, what grid values it offers, and how its value is
flattened into Parquet columns (``cfg.<name>``, or ``mix.<domain>`` for a simplex).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FloatParam(_Param):
    """A real number in [low, high], sampled on a log scale when ``log`` is true."""

    type: Literal["float", "log"]
    low: float
    high: float
    log: bool = False
    logit: bool = Field(False, description="a fraction in (0, 1): the cost-aware searcher works in logit space")
    center: float | None = Field(None, description="search centre for the cost-aware searcher")
    points: int = Field(5, ge=1, description="grid points for algo: grid")

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if self.type == "log":
            object.__setattr__(self, "log", True)
        if not self.low < self.high:
            raise ValueError(f"expected low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got low={self.low}")
        if self.logit and (self.log or not 0 < self.low < self.high < 1):
            raise ValueError(f"a logit-scale parameter is a fraction: 0 < low < high < 1, not log; got {self.low}, "
                             f"{self.high}")
        if self.center is not None and not self.low <= self.center <= self.high:
            raise ValueError(f"expected low <= center <= high, got center={self.center}")
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def grid_size(self) -> int:
        return self.points

    def grid(self) -> list[Any]:
        if self.points == 1:
            return [self.center if self.center is not None else (self.low + self.high) / 2]
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            values = [math.exp(lo + (hi - lo) * i / (self.points - 1)) for i in range(self.points)]
            return [min(max(v, self.low), self.high) for v in values]
        return [self.low + (self.high - self.low) * i / (self.points - 1) for i in range(self.points)]


class IntParam(_Param):
    """An integer in [low, high] (both included), on a log scale when ``log`` is true."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)
    center: int | None = None
    points: int | None = Field(None, ge=1, description="grid points for algo: grid (default: every value)")

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if not self.low <= self.high:
            raise ValueError(f"expected low <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("a log-scale int parameter needs step 1")
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid_size(self) -> int:
        """How many grid values, counted without listing them (a range can be huge)."""
        count = (self.high - self.low) // self.step + 1
        return count if self.points is None else min(count, self.points)

    def grid(self) -> list[Any]:
        count = (self.high - self.low) // self.step + 1
        if self.points is None or self.points >= count:
            return list(range(self.low, self.high + 1, self.step))
        picks = FloatParam(type="float", low=self.low, high=self.high + 1e-9, log=self.log,
                           points=self.points).grid()
        # the value on the step lattice nearest to each pick
        return sorted({self.low + self.step * min(max(round((p - self.low) / self.step), 0), count - 1)
                       for p in picks})


class ChoiceParam(_Param):
    """One of a list of values (strings, numbers or booleans).

    With ``presets``, each value names a group of config keys that the trial gets with it, e.g. a model
    size ``s`` standing for ``{d_model: 64, n_layers: 2, tokens: 2e6}`` or a data recipe standing for a
    mixture; the keys override the study's ``params``.
    """

    type: Literal["choice"]
    values: list[str | int | float | bool] = Field(min_length=1)
    presets: dict[str, dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _check(self) -> ChoiceParam:
        if len({repr(v) for v in self.values}) != len(self.values):
            raise ValueError(f"expected distinct values, got {self.values}")
        if self.presets is not None:
            missing = [v for v in self.values if str(v) not in self.presets]
            if missing:
                raise ValueError(f"presets: expected an entry for every value; missing {missing}")
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.CategoricalDistribution(self.values)

    def grid_size(self) -> int:
        return len(self.values)

    def grid(self) -> list[Any]:
        return list(self.values)


class SimplexParam(_Param):
    """Mixture weights over named domains, non-negative and summing to one (``mix.<domain>`` columns).

    Optuna samples one unit-interval coordinate per domain; -log(u), normalised, is a uniform draw on
    the simplex (Dirichlet(1)), so every Optuna sampler can search mixtures.
    """

    type: Literal["simplex"]
    domains: list[str] = Field(min_length=2)
    prior: dict[str, float] | None = Field(None, description="centre of Dirichlet sampling (default: token shares)")

    @model_validator(mode="after")
    def _check(self) -> SimplexParam:
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"expected distinct domain names, got {self.domains}")
        if any(not d or not d.replace("_", "").replace("-", "").isalnum() for d in self.domains):
            raise ValueError(f"domain names must be letters, digits, '_' or '-', got {self.domains}")
        if self.prior is not None:
            if set(self.prior) != set(self.domains):
                raise ValueError(f"prior must give a weight for each of {self.domains}, got {sorted(self.prior)}")
            if any(w < 0 for w in self.prior.values()) or sum(self.prior.values()) <= 0:
                raise ValueError("prior weights must be non-negative with a positive sum")
        return self

    def coordinate_names(self, name: str) -> list[str]:
        return [f"{name}.{domain}" for domain in self.domains]

    def weights_from_unit(self, units: list[float]) -> dict[str, float]:
        """Map unit-interval coordinates to a point on the simplex (Dirichlet(1) when units are uniform)."""
        raw = [-math.log(max(1.0 - u, 1e-12)) for u in units]
        total = sum(raw) or 1.0
        return {d: r / total for d, r in zip(self.domains, raw, strict=True)}


Param = Annotated[FloatParam | IntParam | ChoiceParam | SimplexParam, Field(discriminator="type")]


def ask(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """Sample a config for ``space`` from an Optuna trial (define-by-run)."""
    config: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, SimplexParam):
            units = [trial.suggest_float(coord, 0.0, 1.0) for coord in param.coordinate_names(name)]
            config[name] = param.weights_from_unit(units)
        elif isinstance(param, ChoiceParam):
            config[name] = trial.suggest_categorical(name, param.values)
        elif isinstance(param, IntParam):
            config[name] = trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
        else:
            config[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
    return config


MAX_GRID_CONFIGS = 100_000


def grid_size(space: dict[str, Param]) -> int:
    """How many configs a grid over ``space`` has (the product of each parameter's grid size)."""
    return math.prod(p.grid_size() for p in space.values() if not isinstance(p, SimplexParam))


def grid(space: dict[str, Param]) -> dict[str, list[Any]]:
    """The grid values of each parameter (a simplex parameter has no grid)."""
    out = {}
    for name, param in space.items():
        if isinstance(param, SimplexParam):
            raise ValueError(f"space.{name}: a simplex parameter cannot be searched by grid")
        out[name] = param.grid()
    return out


def flatten(config: dict[str, Any], mixture_key: str | None = "mix") -> dict[str, Any]:
    """Flatten a trial config into Parquet columns: the mixture (``config[mixture_key]``, weights per
    domain) becomes ``mix.<domain>``, nested dicts ``cfg.<a>.<b>``, lists their repr, the rest ``cfg.<name>``."""
    out: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            out[prefix] = repr(list(value))
        else:
            out[prefix] = value

    for key, value in config.items():
        if key == mixture_key and isinstance(value, dict):
            for domain, weight in value.items():
                out[f"mix.{domain}"] = float(weight)
        else:
            put(f"cfg.{key}", value)
    return out


def presets_of(space: dict[str, Param]) -> dict[str, dict[str, dict[str, Any]]]:
    """The presets of every choice parameter that has them: {param: {value: {key: value}}}."""
    return {name: dict(p.presets) for name, p in space.items() if isinstance(p, ChoiceParam) and p.presets}


def expand_presets(config: dict[str, Any], presets: dict[str, dict[str, dict[str, Any]]],
                   keep_names: bool = True) -> dict[str, Any]:
    """The config with each chosen preset's keys merged in. The choice itself stays when ``keep_names``
    (for the results) and goes otherwise (the workload gets only the keys it stands for)."""
    out = dict(config)
    for name, table in presets.items():
        if name in config:
            if not keep_names:
                out.pop(name)
            out.update(table[str(config[name])])
    return out
