"""The searcher a study asks for: its `sweeper.search.base.Proposer`, handed to Ray Tune by the
one adapter, `sweeper.search.tune.TuneSearcher`."""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path

import optuna

from sweeper import space as space_mod
from sweeper.errors import StudyError, UserError
from sweeper.option_types import check_option_types
from sweeper.plan import FINAL_KEY, RunPlan, mixture_prior
from sweeper.search.base import Proposer
from sweeper.search.tune import STATE_FILE, TuneSearcher
from sweeper.spec import Study

SINGLE_OBJECTIVE_SAMPLERS = {"cmaes"}


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler for ask/tell use: Optuna's own stops ``study.optimize`` once the grid is
    covered, which raises outside ``optimize``; here the engine counts trials itself (the grid size)."""

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001 - Optuna's signature
        return None


def build_sampler(study: Study, path: str = "<study>") -> optuna.samplers.BaseSampler:
    """The Optuna sampler a study asks for, seeded by the study's seed."""
    search = study.search
    if search.algo == "grid":
        return GridSampler(space_mod.grid(study.space), seed=study.seed)
    name = "random" if search.algo == "random" else search.sampler
    if name in SINGLE_OBJECTIVE_SAMPLERS and len(search.metrics) > 1:
        raise StudyError(path, "search.sampler",
                         f"{name!r} is single-objective; use tpe, gp or nsga2 for {search.metrics}")
    factories = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "random": optuna.samplers.RandomSampler,
        "qmc": optuna.samplers.QMCSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    factory = factories[name]
    options = {"seed": study.seed, **search.options}
    if name == "tpe" and study.budget.concurrent > 1:
        options.setdefault("constant_liar", True)
    accepted = inspect.signature(factory).parameters
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise StudyError(path, "search.options",
                         f"{name} sampler has no option(s) {unknown}; it takes {sorted(accepted)}")
    wrong = check_option_types(factory, options)
    if wrong:
        raise StudyError(path, "search.options", f"{name} sampler: {'; '.join(wrong)}")
    try:
        return factory(**options)
    except (TypeError, ValueError, ImportError) as exc:
        raise StudyError(path, "search.options", f"{name} sampler: {exc}") from None


def default_trials(study: Study) -> int:
    """Trials to run when the budget names none: the grid size for grid search, else 20."""
    if study.budget.trials is not None:
        return study.budget.trials
    if study.search.algo == "grid":
        return math.prod(len(v) for v in space_mod.grid(study.space).values())
    return 20


def build_searcher(study: Study, results_dir: str | Path, path: str = "<study>", max_trials: int | None = None,
                   resume: bool = False, study_name: str | None = None, plan: RunPlan | None = None) -> TuneSearcher:
    """The Ray Tune searcher for a study: its proposer behind the one adapter. ``max_trials`` is what this run
    may still ask for; the state is kept in the results folder (``searcher-state.json``, and Optuna's journal
    for Optuna's samplers), and with ``resume`` picked up from there."""
    plan = plan or RunPlan.from_study(study)
    remaining = default_trials(study) if max_trials is None else max_trials
    searcher = TuneSearcher(build_proposer(study, plan, results_dir, path, study_name), max_trials=remaining,
                            state_path=Path(results_dir) / STATE_FILE, metric=plan.primary.key,
                            mode=plan.primary.mode)
    if resume:
        searcher.resume()
    return searcher


def build_proposer(study: Study, plan: RunPlan, results_dir: str | Path, path: str = "<study>",
                   study_name: str | None = None) -> Proposer:
    """The search strategy a study asks for (``search.algo``)."""
    if study.search.algo == "cost_aware":
        return _cost_aware(study, plan, path)
    if study.search.algo == "dirichlet":
        from sweeper.maths.simplex import make_options
        from sweeper.search.dirichlet import DirichletProposer

        return DirichletProposer(mixture_prior(study), study.mixture_key, seed=study.seed, metric=plan.primary.key,
                                 options=make_options(study.search.options, f"{path}: search.options"))
    from sweeper.search.optuna_searcher import OptunaProposer

    return OptunaProposer(space=study.space, sampler_factory=functools.partial(build_sampler, study, path),
                          plan=plan, results_dir=results_dir, study_name=study_name or study.name)


def _cost_aware(study: Study, plan: RunPlan, path: str) -> Proposer:
    """CARBS-style search: the space's float/int parameters in log, logit or linear coordinates."""
    from sweeper.search.cost_aware import CostAwareProposer, CostAwareSearch, Dimension
    from sweeper.space import FloatParam

    dimensions = []
    for name, p in study.space.items():
        scale = "log" if p.log else ("logit" if isinstance(p, FloatParam) and p.logit else "linear")
        dimensions.append(Dimension(name=name, low=float(p.low), high=float(p.high), scale=scale,
                                    integer=not isinstance(p, FloatParam), center=p.center))
    wrong = check_option_types(CostAwareSearch, study.search.options)
    if wrong:
        raise StudyError(path, "search.options", f"cost_aware: {'; '.join(wrong)}")
    options = dict(study.search.options)
    key = options.get("rerun_key")
    if isinstance(key, str) and "rerun_base" not in options:  # re-runs continue from the study's own seed
        base = study.params.get(key, study.seed if key == "seed" else 0)
        options["rerun_base"] = base if isinstance(base, int) and not isinstance(base, bool) else 0
    try:
        return CostAwareProposer(dimensions, metric=plan.primary.key, cost=study.search.cost,
                                 mode=plan.primary.mode, complete_key=FINAL_KEY, seed=study.seed, **options)
    except TypeError as exc:
        raise StudyError(path, "search.options", f"cost_aware: {exc}") from None
    except UserError as exc:  # a bad option value (radius, rerun_key, ...): name the study file too
        raise StudyError(path, "search.options", f"cost_aware: {exc}") from None
