"""Choosing a law by how well it extrapolated, and intervals that include its misfit.

``law="auto"`` fits every candidate form that the data can identify, scores each by leave-largest-out
backtests (fit without the largest levels of model size, or of compute or tokens for a law in one variable,
and predict them), and keeps the form with the smallest mean relative error. The backtests hold out 10% and
25% of the levels (at least one and two): the 1 and 2 largest of a 5-size ladder, 5 and 11 of the Chinchilla
table's 43 sizes, a learning curve's last checkpoints. A fixed one or two levels would, on a table with many,
extrapolate by a hair and measure the points' noise rather than the form's misfit. Backtests are what the
Hitchhiker's Guide (Choshen et al. 2024) recommends for judging a law: the in-sample objective rewards
flexibility, extrapolation is what the law is for.

Fit windows (``windows``, opt-in): the Hitchhiker's Guide finds that laws fitted to models of sizes near
the target predict it best, and tiny models often fall off the trend the larger ones follow (their loss
bends in log-log). With ``windows=WINDOW_SHARES`` each form is also backtested fitted without the smallest
quarter, half or three quarters of the levels (of each backtest's training part), and a window is kept
only if it erred less. The final fit then uses the window's points; its bootstrap still draws from all runs
(`fit_law`'s ``window``), so one law per component stays paired. Off by default: on the published tables
it helped one and cost two (`bench/laws.py`).

A bootstrap interval covers the noise of the points, not a form that bends the wrong way beyond them, so
held-out points fall outside it far more often than its level says (0 of 6 for the Chinchilla table's
largest sizes). Backtests of the choice itself (`chosen_errors`: each backtest's training part chooses its
own form, so the winner's luck in its own backtests does not count) give, per held-out point, a log error
and a distance (the log of how far beyond the fitted range the point lies). `misfit_model` fits their spread
as a floor (the error just beyond the data) and a rate of growth per unit of log extrapolation
(`LawFit.misfit`), which a prediction evaluates at its own distance beyond the data and adds to the
bootstrap's spread in quadrature. A rate alone (root mean square of error over distance) read a near
point's 1% noise at a distance of 0.01 as a growth of 1.0 per unit, and made intervals far too wide, most of
all on tables with many close levels. In a nested backtest (the misfit measured on the training part only)
the interval's coverage of held-out points is what `backtest` reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sweeper.errors import ParameterError, UserError
from sweeper.laws.data import LawData, distinct_levels, drop_smallest, split_largest
from sweeper.laws.power import ND_LAWS, LawFit, check_points, fit_law

AUTO = "auto"
HOLDOUT_SHARES = (0.1, 0.25)
"""The shares of the levels each backtest holds out (the k-th holds out at least k levels)."""
WINDOW_SHARES = (0.0, 0.25, 0.5, 0.75)
"""The fit windows auto tries for each form: drop none, or the smallest quarter, half or three quarters of the
levels (rounded down, keeping at least 3)."""


def candidates(data: LawData, x: str | None = None) -> list[tuple[str, str | None]]:
    """The (law, x) forms the data can identify: the laws in N and D when both are known, and the power law
    in compute (or in ``x``)."""
    out: list[tuple[str, str | None]] = []
    if data.n is not None and data.d is not None:
        out += [(law, None) for law in ND_LAWS]
    px = x or "flops"
    try:
        check_points(data, "power", px)
        out.append(("power", px))
    except UserError:
        pass
    return out


def holdout_variable(data: LawData, forms: Sequence[tuple[str, str | None]]) -> str:
    """What 'largest' means for every candidate alike: model size when known, else compute."""
    if data.n is not None and int(distinct_levels(data.n).max()) + 1 >= 3:
        return "n"
    return "c" if data.c is not None else {"flops": "c", "tokens": "d", "n": "n"}[forms[0][1] or "flops"]


def holdout_counts(data: LawData, holdout_by: str, shares: Sequence[float] = HOLDOUT_SHARES) -> list[int]:
    """How many of the largest levels of ``holdout_by`` each backtest holds out: ``ceil(share * levels)``,
    and at least 1, 2, ... for the first, second, ... share."""
    levels = int(distinct_levels(data.get(holdout_by)).max()) + 1
    return sorted({max(i + 1, math.ceil(share * levels)) for i, share in enumerate(shares)})


def backtest_errors(data: LawData, law: str, x: str | None, holdout_by: str, holdouts: Sequence[int],
                    window: float = 0.0, **fit_kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Log errors of predicting the ``k`` largest levels of ``holdout_by`` from the rest, for each ``k`` that
    leaves enough to fit, and each held-out point's distance beyond the fitted range (log of its
    ``holdout_by`` over the training maximum); empty arrays when no ``k`` does. ``window`` > 0 drops that
    share of the smallest levels of each training part (`drop_smallest`), and scores the window only if every
    ``k`` can be fitted so: a window is compared with the full fit on the same holdouts or not at all."""
    errors, distances = [], []
    for count in holdouts:
        try:
            train, test = split_largest(data, holdout_by, count)
            train = drop_smallest(train, holdout_by, window)
            check_points(train, law, x)
        except UserError:
            if window:
                return np.empty(0), np.empty(0)
            continue
        fit = fit_law(train, law, x, **{**fit_kwargs, "bootstrap": 0})
        errors.append(np.log(fit.predict(n=test.n, d=test.d, c=test.c) / test.loss))
        distances.append(np.log(test.get(holdout_by) / train.get(holdout_by).max()))
    if not errors:
        return np.empty(0), np.empty(0)
    return np.concatenate(errors), np.concatenate(distances)


def misfit_model(errors: np.ndarray, distances: np.ndarray) -> tuple[float, float]:
    """The backtest error as a function of extrapolation: ``(floor, rate)`` of the Gaussian maximum likelihood
    of log error ~ N(0, floor^2 + (rate * distance)^2). ``floor`` is what a held-out point errs by just beyond
    the fitted range (its noise and the form's local bias), ``rate`` how the error grows per unit of log
    extrapolation. One rate alone would have to explain a near point's noise as growth (error over a tiny
    distance), and the far points' intervals would be as wide as the near points' noise divided by their
    distance. With one distance only (one held-out level), the two cannot be told apart and all of the error
    is taken as growth, ``(0, RMS of error over distance)``. Non-finite errors are left out."""
    from scipy.optimize import minimize

    errors, distances = np.asarray(errors, dtype=float), np.asarray(distances, dtype=float)
    finite = np.isfinite(errors) & np.isfinite(distances)
    errors, distances = errors[finite], np.maximum(distances[finite], 1e-3)
    if np.unique(distances.round(9)).size < 2:
        # One distance cannot tell a floor from a growth: assume it all grows (the cautious reading).
        return 0.0, float(np.sqrt(np.mean((errors / distances) ** 2))) if errors.size else 0.0
    e2, d2 = errors ** 2, distances ** 2
    scale = float(np.sqrt(np.mean(e2))) or 1e-12

    def nll(theta: np.ndarray) -> float:
        var = np.exp(2 * theta[0]) + np.exp(2 * theta[1]) * d2
        return float(np.sum(np.log(var) + e2 / var))

    near, far = float(distances.min()), float(distances.max())
    bounds = [(math.log(scale * 1e-4), math.log(scale * 10)),
              (math.log(scale * 1e-4 / far), math.log(scale * 10 / near))]
    starts = [np.array([math.log(scale * a), math.log(scale * b / far)]) for a in (0.1, 0.7) for b in (0.1, 1.0)]
    best = min((minimize(nll, start, method="L-BFGS-B", bounds=bounds) for start in starts), key=lambda r: r.fun)
    floor, rate = np.exp(best.x)
    return float(floor), float(rate)


def backtest_score(errors: np.ndarray, distances: np.ndarray) -> dict[str, Any]:
    """Backtest log errors scored: points, mean |relative error|, mean relative error and the misfit
    (`misfit_model`: its floor, and its rate per unit of log extrapolation; None for all but ``points`` when
    there are none)."""
    if not errors.size:
        return {"points": 0, "mean_abs_rel_error": None, "mean_rel_error": None,
                "misfit_floor": None, "misfit_per_log_extrapolation": None}
    floor, rate = misfit_model(errors, distances)
    return {"points": int(errors.size), "mean_abs_rel_error": float(np.mean(np.abs(np.expm1(errors)))),
            "mean_rel_error": float(np.mean(np.expm1(errors))),
            "misfit_floor": floor, "misfit_per_log_extrapolation": rate}


def misfit_of(score: dict[str, Any], by: str, fitted_max: float) -> dict[str, Any] | None:
    """The misfit block (`LawFit.misfit`) of a backtest score; None when nothing was backtested."""
    if score["misfit_per_log_extrapolation"] is None:
        return None
    return {"floor": score["misfit_floor"], "rate": score["misfit_per_log_extrapolation"], "by": by,
            "fitted_max": fitted_max}


def select_law(data: LawData, x: str | None = None, *, forms: Sequence[tuple[str, str | None]] | None = None,
               holdouts: Sequence[int] | None = None, windows: Sequence[float] = (0.0,), misfit: bool = True,
               **fit_kwargs: Any) -> LawFit:
    """Fit every candidate form in every fit window, keep the pair whose leave-largest-out backtests erred
    least (mean relative error), refit it on all the data (inside its window) with its misfit (`chosen_errors`:
    the whole choice backtested, not the winner's own backtests); ``info["auto"]`` holds every pair's score
    and the choice's. ``holdouts``: how many largest levels each backtest holds out (default
    `holdout_counts`); ``windows``: the shares of the smallest levels to try dropping (default none;
    `WINDOW_SHARES` tries quarters); ``misfit=False``: no misfit (a fit that will only predict a value)."""
    windows = list(dict.fromkeys(float(w) for w in windows))
    if not windows or any(not 0 <= w < 1 for w in windows):
        raise ParameterError("windows", f"{windows}: expected shares of the levels to drop, each in [0, 1)")
    forms = list(forms) if forms is not None else candidates(data, x)
    if not forms:
        raise UserError(f"{data.source}: no law can be fitted: need N and D, or 3 distinct values of one variable")
    holdout_by = holdout_variable(data, forms)
    holdouts = list(holdouts) if holdouts is not None else holdout_counts(data, holdout_by)
    chosen, scores = choose(data, forms, holdout_by, holdouts, windows, **fit_kwargs)
    kept = drop_smallest(data, holdout_by, chosen["window"])
    window = ({"by": holdout_by, "from": float(kept.get(holdout_by).min()), "share": chosen["window"],
               "points_dropped": len(data) - len(kept)} if len(kept) < len(data) else None)
    fit = fit_law(data, chosen["law"], chosen["x"], window=window, **fit_kwargs)
    choice = {**backtest_score(*(chosen_errors(data, forms, holdout_by, holdouts, windows, **fit_kwargs)
                                 if misfit else (np.empty(0), np.empty(0)))), "nested": True}
    if misfit and not choice["points"] and chosen["mean_abs_rel_error"] is not None:
        choice = {**chosen, "nested": False}  # no training part could be backtested: the winner's own backtests
    fit.misfit = misfit_of(choice, holdout_by, float(data.get(holdout_by).max()))
    fit.info["auto"] = {"chosen": _name(chosen["law"], chosen["x"], chosen["window"]), "holdout_by": holdout_by,
                        "holdouts": list(holdouts),
                        "scores": {k: {kk: vv for kk, vv in v.items() if kk not in ("law", "x")}
                                   for k, v in scores.items()},
                        "choice": {k: v for k, v in choice.items() if k not in ("law", "x", "window")}}
    return fit


def choose(data: LawData, forms: Sequence[tuple[str, str | None]], holdout_by: str, holdouts: Sequence[int],
           windows: Sequence[float], **fit_kwargs: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Backtest every (form, window) pair and pick the one that erred least: (its score, every pair's score).
    With too few levels to backtest anything, the first form the data identify, unscored."""
    import warnings

    scores: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound warnings of the small backtest fits are not the user's fit
        for law, fx in forms:
            for window in windows:
                errors, distances = backtest_errors(data, law, fx, holdout_by, holdouts, window, **fit_kwargs)
                if window and not errors.size:
                    continue  # too few levels to fit this window inside every backtest
                score = backtest_score(errors, distances)
                scores[_name(law, fx, window)] = {"law": law, "x": fx, "window": window,
                                                  **{k: v for k, v in score.items() if k != "mean_rel_error"}}
    if not scores:
        raise UserError(f"{data.source}: no fit window {list(windows)} leaves enough {holdout_by} levels to "
                        "backtest any law")
    scored = [s for s in scores.values() if s["mean_abs_rel_error"] is not None]
    chosen = min(scored, key=lambda s: s["mean_abs_rel_error"]) if scored else next(iter(scores.values()))
    return chosen, scores


def chosen_errors(data: LawData, forms: Sequence[tuple[str, str | None]], holdout_by: str, holdouts: Sequence[int],
                  windows: Sequence[float], **fit_kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Log errors and distances (as `backtest_errors`) of the choice itself: for each holdout, the pair chosen
    by backtests inside the training part alone predicts the held-out levels. The winner's own backtests
    are the ones it won on, so they understate its error (most where many pairs compete, as with windows)."""
    import warnings

    errors, distances = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for count in holdouts:
            try:
                train, _ = split_largest(data, holdout_by, count)
                inner, _ = choose(train, forms, holdout_by, holdout_counts(train, holdout_by), windows,
                                  **fit_kwargs)
            except UserError:
                continue
            if inner["mean_abs_rel_error"] is None:
                continue  # the training part is too small to choose by backtest
            e, d = backtest_errors(data, inner["law"], inner["x"], holdout_by, [count], inner["window"],
                                   **fit_kwargs)
            errors.append(e)
            distances.append(d)
    if not errors:
        return np.empty(0), np.empty(0)
    return np.concatenate(errors), np.concatenate(distances)


def window_note(window: dict[str, Any]) -> str:
    """What a fit window (``LawFit.info["window"]``) left out, in words: "2 points below n 2.162e+04"."""
    return f"{window['points_dropped']} points below {window['by']} {window['from']:.4g}"


def _name(law: str, x: str | None, window: float = 0.0) -> str:
    name = f"power({x})" if law == "power" else law
    return f"{name} w/o smallest {window:.0%}" if window else name
