"""Search strategies: each builds a Ray Tune ``Searcher`` from a study."""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path

import optuna
from ray.tune.search import Searcher

from sweeper import space as space_mod
from sweeper.errors import StudyError
from sweeper.option_types import check_option_types
from sweeper.plan import FINAL_KEY, RunPlan
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


STATE_FILE = "searcher-state.json"


def mixture_prior(study: Study) -> dict[str, float]:
    """The centre of Dirichlet sampling: the simplex parameter's ``prior``, else the workload's
    ``token_shares(domains)`` (each domain's share of the available tokens) when it has one, else uniform."""
    name = study.mixture_key
    param = study.space[name]
    if param.prior is not None:
        return dict(param.prior)
    shares = getattr(study.workload_module(), "token_shares", None)
    if callable(shares):
        return {d: float(w) for d, w in shares(list(param.domains)).items()}
    return {d: 1.0 / len(param.domains) for d in param.domains}


def build_searcher(study: Study, results_dir: str | Path, path: str = "<study>", max_trials: int | None = None,
                   resume: bool = False, study_name: str | None = None, plan: RunPlan | None = None) -> Searcher:
    """The Ray Tune Searcher for a study; ``max_trials`` is what this run may still ask for, and with
    ``resume`` the searcher picks its state up from the results folder. Searchers keep their state in
    the results folder: Optuna's journal, or ``searcher-state.json`` written by ``sync()``."""
    from sweeper.search.optuna_searcher import OptunaSearcher

    plan = plan or RunPlan.from_study(study)
    remaining = default_trials(study) if max_trials is None else max_trials
    if study.search.algo == "cost_aware":
        return _cost_aware(study, plan, results_dir, path, remaining, resume)
    if study.search.algo == "dirichlet":
        from sweeper.maths.simplex import make_options
        from sweeper.search.dirichlet import DirichletSearcher

        searcher = DirichletSearcher(mixture_prior(study), study.mixture_key, max_trials=remaining, seed=study.seed,
                                     options=make_options(study.search.options, f"{path}: search.options"))
        state = Path(results_dir) / STATE_FILE
        if resume and state.exists():
            searcher.restore(str(state))
            searcher.requeue_unfinished()
            searcher.max_trials = searcher.n_suggested + remaining
        searcher.sync = lambda: searcher.save(str(state))
        return searcher

    searcher = OptunaSearcher(
        space=study.space,
        sampler_factory=functools.partial(build_sampler, study, path),
        plan=plan,
        results_dir=results_dir,
        study_name=study_name or study.name,
        max_trials=remaining,
    )
    if resume:
        searcher.requeue_unfinished()
    return searcher


def _cost_aware(study: Study, plan: RunPlan, results_dir: str | Path, path: str, remaining: int,
                resume: bool) -> Searcher:
    """CARBS-style search: the space's float/int parameters in log, logit or linear coordinates."""
    from sweeper.search.cost_aware import CostAwareSearch, CostAwareSearcher, Dimension
    from sweeper.space import FloatParam

    dimensions = []
    for name, p in study.space.items():
        scale = "log" if p.log else ("logit" if isinstance(p, FloatParam) and p.logit else "linear")
        dimensions.append(Dimension(name=name, low=float(p.low), high=float(p.high), scale=scale,
                                    integer=not isinstance(p, FloatParam), center=p.center))
    state = Path(results_dir) / STATE_FILE
    wrong = check_option_types(CostAwareSearch, study.search.options)
    if wrong:
        raise StudyError(path, "search.options", f"cost_aware: {'; '.join(wrong)}")
    try:
        searcher = CostAwareSearcher(
            dimensions, metric=plan.primary.key, cost=study.search.cost,
            mode=plan.primary.mode, max_trials=remaining, complete_key=FINAL_KEY, seed=study.seed,
            state_path=state, resume=resume, **study.search.options)
    except TypeError as exc:
        raise StudyError(path, "search.options", f"cost_aware: {exc}") from None
    return searcher
