"""Study files: YAML -> a validated ``Study``. Every error names the file, the field and what was expected."""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sweeper.errors import StudyError
from sweeper.space import (
    MAX_GRID_CONFIGS,
    ChoiceParam,
    FloatParam,
    IntParam,
    Param,
    SimplexParam,
    grid_size,
    presets_of,
)

OPTUNA_SAMPLERS = ("tpe", "gp", "cmaes", "random", "qmc", "nsga2")
SEARCH_ALGOS = ("optuna", "grid", "random", "dirichlet", "cost_aware")
BUILTIN_METRICS = ("cost", "flops", "wall_s", "tokens")


def result_key(metric: str) -> str:
    """The column (and Tune result key) of a metric: built-in columns as they are, workload metrics as
    ``m.<name>``."""
    return metric if metric in BUILTIN_METRICS else f"m.{metric}"


def is_finite_number(value: Any) -> bool:
    """Whether a reported result value can serve as an objective: a real, finite number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SearchSpec(_Strict):
    """How configs are proposed, and which metric(s) they are judged by."""

    algo: str = "optuna"
    sampler: str = "tpe"
    metric: str | list[str] = "loss"
    mode: Literal["min", "max"] | list[Literal["min", "max"]] = "min"
    cost: Literal["cost", "flops", "wall_s"] = Field(
        "cost", description="cost_aware: the cost axis (cost = the budget's unit, or flops, or wall_s)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the sampler")

    @field_validator("algo")
    @classmethod
    def _algo(cls, v: str) -> str:
        if v not in SEARCH_ALGOS:
            raise ValueError(f"expected one of {', '.join(SEARCH_ALGOS)}, got {v!r}")
        return v

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: str) -> str:
        if v not in OPTUNA_SAMPLERS:
            raise ValueError(f"expected one of {', '.join(OPTUNA_SAMPLERS)}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _metrics(self) -> SearchSpec:
        metrics, modes = self.metrics, self.modes
        if len(metrics) == 0 or any(not m for m in metrics):
            raise ValueError("expected at least one non-empty metric name")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"expected distinct metric names, got {metrics}")
        if len(modes) != len(metrics):
            raise ValueError(f"expected one mode per metric ({len(metrics)}), got {len(modes)}")
        return self

    @property
    def metrics(self) -> list[str]:
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    @property
    def modes(self) -> list[str]:
        if isinstance(self.mode, str):
            return [self.mode] * len(self.metrics)
        return list(self.mode)


class SchedulerSpec(_Strict):
    """Early stopping: ``fifo`` (none), ``asha`` or ``hyperband``, in units of ``time_attr``."""

    type: Literal["fifo", "asha", "hyperband"] = "fifo"
    grace: int = Field(1, ge=1)
    reduction: float = Field(3, gt=1)
    max_t: int = Field(100, ge=1)
    brackets: int = Field(1, ge=1)
    time_attr: Literal["step", "tokens", "flops", "wall_s", "training_iteration"] = "step"


class BudgetSpec(_Strict):
    """How much to spend: trial count, concurrency, and optional cost and wall-clock caps."""

    trials: int | None = Field(None, ge=1, le=10_000_000)
    concurrent: int = Field(1, ge=1, le=100_000)
    max_cost: float | None = Field(None, gt=0)
    max_wall_s: float | None = Field(None, gt=0)
    trial_timeout_s: float | None = Field(None, gt=0, description="a trial running longer is stopped as an error")
    cost: Literal["flops", "wall_s"] = "flops"


class ResourcesSpec(_Strict):
    """Resources per trial (fractions allowed; at least one of them positive)."""

    cpu: float = Field(1.0, ge=0, le=1e6)
    gpu: float = Field(0.0, ge=0, le=1e6)

    @model_validator(mode="after")
    def _some(self) -> ResourcesSpec:
        if self.cpu == 0 and self.gpu == 0:
            raise ValueError("expected cpu > 0 or gpu > 0: a trial must ask for some CPU or GPU")
        return self


def seed_list(v: Any) -> Any:
    """Seeds given as a count n (seeds 0..n-1) or as a list; a bool or a count below 1 is refused."""
    if isinstance(v, bool):
        raise ValueError(f"expected a positive count or a list of seeds, got {v!r}")
    if isinstance(v, int):
        if v < 1:
            raise ValueError(f"expected a positive count of seeds, got {v}")
        return list(range(v))
    return v


class ValidateSpec(_Strict):
    """RegMix step 5: train larger models on the predicted best mixture and on baselines."""

    params: dict[str, Any] = Field(default_factory=dict, description="overrides of params for the larger scale")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1,
                             description="seeds of every candidate: a list, or a count n for seeds 0..n-1")
    baselines: list[Literal["uniform", "prior", "best_proxy"]] = Field(
        default_factory=lambda: ["uniform", "prior", "best_proxy"])
    mixtures: dict[str, dict[str, float]] = Field(default_factory=dict, description="named mixtures to compare too")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        return seed_list(v)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"expected distinct non-negative seeds, got {v}")
        return v


class ReplicatesSpec(_Strict):
    """Proxy mixtures trained again with other seeds, to measure the noise against the mixture signal."""

    mixtures: int = Field(4, ge=2, le=10_000, description="proxy mixtures to replicate")
    seeds: int = Field(3, ge=2, le=1000, description="seeds per replicated mixture, its proxy's own included")


class RegMixSpec(_Strict):
    """RegMix steps 3-5 after the proxies ran: fit a regression, search the simplex, validate at scale."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    target: str | None = Field(None, description="metric to predict (default: the study's search metric)")
    samples: int = Field(100_000, ge=100)
    top_k: int = Field(128, ge=1)
    models: list[str] = Field(default_factory=lambda: ["lightgbm", "linear", "logquad", "ensemble"], min_length=1)
    transform: Literal["auto", "none", "rank", "log", "inverse"] = Field(
        "auto", description="what the regression learns: the target (none), its ranks, log or -1/y; auto (the "
                            "default) keeps the best by cross-validation")
    replicates: ReplicatesSpec | None = None
    validate_: ValidateSpec | None = Field(None, alias="validate")


class LawsValidateSpec(_Strict):
    """A ladder's validation: larger runs the law predicts before they train."""

    runs: dict[str, dict[str, Any]] = Field(min_length=1, description="name -> params overrides of each larger run")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        return seed_list(v)


class DownstreamSpec(_Strict):
    """A ladder's downstream metric, predicted in two steps: the law's loss, then a link fitted from the loss
    to the metric on the ladder's checkpoints."""

    metric: str = Field(min_length=1, description="the downstream metric, e.g. error.valid.target")
    form: Literal["auto", "exponential", "sigmoid"] = Field(
        "auto", description="the link from loss to metric: exponential (Gadre et al. 2024, for a top-1 error), "
                            "sigmoid (the OLMo 2 ladder, for an accuracy), or auto (the default): whichever "
                            "predicted the largest sizes' final points better from the smaller ones")
    min_fraction: float = Field(0.1, ge=0, le=1, description="checkpoints before this share of their run's tokens "
                                                             "are left out of the link's fit (transients); 1: "
                                                             "the runs' final points only, as Gadre et al. fit")


class LawsSpec(_Strict):
    """A model ladder's end: fit a scaling law to the sweep, predict larger runs, then train and compare them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    law: Literal["auto", "chinchilla", "overtrain", "power"] = "auto"
    loss: str | None = Field(None, description="metric to fit (default: the study's search metric)")
    n: str = Field("n_params", description="column of the parameter count N: a metric or a cfg.* column")
    level: float = Field(0.9, gt=0, lt=1, description="interval level of the predictions")
    bootstrap: int = Field(200, ge=0)
    windows: bool = Field(False, description="auto also backtests fitting without the smallest 25%, 50% or 75% "
                          "of the sizes, and keeps a window that extrapolated better")
    components: dict[str, float] | None = Field(
        None, description="metric -> weight: the loss is this weighted sum; fit a law to each, predict the sum")
    downstream: DownstreamSpec | None = Field(
        None, description="also predict a downstream metric from the predicted loss (two-step), and check it")
    validate_: LawsValidateSpec | None = Field(None, alias="validate")

    @field_validator("components", mode="before")
    @classmethod
    def _components(cls, v: Any) -> Any:
        if v is None or not isinstance(v, dict):
            return v  # None, or the type error pydantic reports
        if len(v) < 2:
            raise ValueError("expected at least 2 component losses (metric: weight), or no components")
        if any(not isinstance(name, str) or not name.strip() for name in v):
            raise ValueError("expected metric names as keys (e.g. loss.valid.code)")
        bad = [str(name) for name, w in v.items() if isinstance(w, bool) or not isinstance(w, (int, float))
               or not (math.isfinite(w) and w > 0)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: expected a positive number as the weight")
        return v

    @model_validator(mode="after")
    def _windows_with_auto(self) -> LawsSpec:
        if self.windows and self.law != "auto":
            raise ValueError(f"windows: only with law auto (fit windows are chosen by backtest), not {self.law}")
        return self


class DecideSpec(_Strict):
    """DataDecide settings read by ``sweeper decide``: which size is the target, which metrics to judge."""

    target_size: str | int | float | None = None
    metrics: list[str] = Field(default_factory=lambda: ["loss.valid.target"], min_length=1)
    higher_is_better: bool | list[str] = False
    tokens_per_param: float | None = Field(None, gt=0)


class Study(_Strict):
    """A validated study file."""

    name: str
    workload: str
    description: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Param] = Field(default_factory=dict)
    search: SearchSpec = Field(default_factory=SearchSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    max_failures: int = Field(0, ge=0, description="retries of a trial that raised")
    seed: int = 0
    regmix: RegMixSpec | None = None
    decide: DecideSpec | None = None
    laws: LawsSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError(f"expected letters, digits, '_', '.' or '-' (a folder name), got {v!r}")
        return v

    @field_validator("workload")
    @classmethod
    def _workload(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"expected 'package.module:function', got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        both = set(self.params) & set(self.space)
        if both:
            raise ValueError(f"keys in both params and space: {sorted(both)}")
        if "seed" in self.space and not isinstance(self.space["seed"], (ChoiceParam, IntParam)):
            raise ValueError("space.seed: a seed to search must be a choice or an int parameter")
        for name, presets in presets_of(self.space).items():
            keys = set().union(*(set(group) for group in presets.values()))
            clash = keys & (set(self.space) | {"seed"})
            if clash:
                raise ValueError(f"space.{name}.presets set keys that are searched or reserved: {sorted(clash)}")
        simplexes = [k for k, p in self.space.items() if isinstance(p, SimplexParam)]
        if len(simplexes) > 1:
            raise ValueError(f"at most one simplex (mixture) parameter, got {simplexes}")
        if self.search.algo == "grid" and simplexes:
            raise ValueError("search.algo grid cannot search a simplex parameter")
        if self.search.algo == "cost_aware":
            if len(self.search.metrics) != 1:
                raise ValueError("search.algo cost_aware trades one metric against cost: give one search.metric")
            unsupported = [k for k, p in self.space.items() if not isinstance(p, (FloatParam, IntParam))]
            if unsupported:
                raise ValueError(f"search.algo cost_aware searches float and int parameters; not {unsupported}")
        if self.search.algo == "dirichlet" and (len(simplexes) != 1 or len(self.space) != 1):
            raise ValueError("search.algo dirichlet samples mixtures: the space must be exactly one simplex parameter")
        if self.regmix is not None and not simplexes:
            raise ValueError("regmix: needs a simplex parameter in the space (the mixture weights)")
        return self

    @property
    def mixture_key(self) -> str:
        """The config key holding mixture weights (``mix.<domain>`` columns): the simplex parameter's
        name, else ``mix`` (a fixed ``mix`` param, or one set by a choice's presets)."""
        for name, param in self.space.items():
            if isinstance(param, SimplexParam):
                return name
        return "mix"

    def workload_module(self) -> Any:
        """Import the workload's module (it may also define ``prepare``, ``describe``, ``token_shares``)."""
        return importlib.import_module(self.workload.split(":")[0])

    def load_workload(self) -> Callable[..., Any]:
        """Import the workload function; raises ``ImportError``/``AttributeError`` when it is absent."""
        return getattr(self.workload_module(), self.workload.split(":")[1])


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], path: str) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides (values parsed as YAML) to raw study data."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise StudyError(path, "--set", f"expected KEY=VALUE (e.g. budget.trials=8), got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise StudyError(path, f"--set {key}", f"value is not valid YAML: {exc}") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise StudyError(path, f"--set {key}", f"{part!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML safe loading that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key must be a plain value, got {type(key).__name__}",
                    key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a study file with YAML safe loading (tags that build objects are refused)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise StudyError(str(path), "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(str(path), "", f"cannot read the file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StudyError(str(path), where, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise StudyError(str(path), "", "YAML nesting is too deep") from None
    if isinstance(data, dict) and any(not isinstance(k, str) for k in data):
        bad = next(k for k in data if not isinstance(k, str))
        raise StudyError(str(path), repr(bad), "expected study keys to be names (strings)")
    if not isinstance(data, dict):
        raise StudyError(str(path), "", f"expected a mapping of study keys, got {type(data).__name__}")
    return data


def parse_study(data: dict[str, Any], path: str = "<study>") -> Study:
    """Validate raw study data; errors name the field and the expected value."""
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise StudyError(path, _field_name(first["loc"]), _describe(first)) from None
    except RecursionError:
        raise StudyError(path, "", "the study is nested too deeply") from None
    _check_space(study, path)
    _check_workload(study, path)
    return study


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read, override and validate a study file."""
    data = apply_overrides(read_yaml(path), overrides, str(path))
    return parse_study(data, str(path))


def _check_space(study: Study, path: str) -> None:
    if not study.space:
        raise StudyError(path, "space", "expected at least one parameter to search (the space is empty)")
    if study.search.algo == "grid":
        size = grid_size(study.space)
        if size > MAX_GRID_CONFIGS:
            shape = " x ".join(f"{name} {p.grid_size()}" for name, p in study.space.items())
            raise StudyError(path, "space", f"search.algo grid: {size:,} configs ({shape}), more than "
                             f"{MAX_GRID_CONFIGS:,}; use fewer points, or search with optuna or random")
    for metric in study.search.metrics:
        if metric in BUILTIN_METRICS and len(study.search.metrics) == 1:
            raise StudyError(path, "search.metric", f"{metric!r} alone is a cost, not a metric to optimise")


def _check_workload(study: Study, path: str) -> None:
    try:
        fn = study.load_workload()
    except ImportError as exc:
        raise StudyError(path, "workload", f"cannot import {study.workload!r}: {exc}") from None
    except AttributeError:
        raise StudyError(path, "workload", f"{study.workload!r}: the module has no such function") from None
    if not callable(fn):
        raise StudyError(path, "workload", f"{study.workload!r} is not a function")


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p in {"float", "log", "int", "choice", "simplex"})]
    return ".".join(parts) or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    kind, msg, given = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check its spelling)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", given)
        return f"expected type one of float, log, int, choice, simplex, got {tag!r}"
    if kind == "union_tag_not_found":
        return "expected a 'type' key (float, log, int, choice or simplex)"
    msg = msg.removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "finite_number":
        return f"{msg}, got {given!r}"
    return msg
