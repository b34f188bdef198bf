"""``sweeper predict law``: predict the loss at a scale from a FIT.json, with its bootstrap interval.

    sweeper predict law fit.json --n 1e9 --d 2e10
    sweeper predict law fit.json --c 1e23            # chinchilla: the compute-optimal N*, D*, L*
    sweeper predict law fit.json --n 7e9 --c 1e23 --json
    sweeper predict law results/ladder/laws/fit.json --n 5e5 --d 1e7   # a ladder's fit, one law per component
    sweeper predict law results/ladder/laws/fit.json --n 5e5 --d 1e7 \
        --downstream results/ladder/laws/downstream.json                # and its downstream metric (two-step)
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from sweeper.commands.options import accept_negative_numbers

if TYPE_CHECKING:
    from sweeper.laws.twostep import LinkFit

NO_BOOTSTRAP = "(this fit has no bootstrap samples: refit with `sweeper fit law ... --bootstrap B` for intervals)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Predict the loss of a model from a law fitted by `sweeper fit law`, with the law's bootstrap "
        "interval. Give N and D (or one of them with C = 6 N D); with a chinchilla fit, --c alone gives the "
        "compute-optimal allocation N*(C), D*(C), D*/N* and L*(C).")
    parser.add_argument("fit", metavar="FIT.json", help="a fit written by `sweeper fit law -o`, or a ladder's "
                        "laws/fit.json (one law per component when the study names laws.components)")
    parser.add_argument("--n", type=float, metavar="N", help="parameters, e.g. 1e9")
    parser.add_argument("--d", type=float, metavar="D", help="training tokens, e.g. 2e10")
    parser.add_argument("--c", type=float, metavar="C", help="training compute in FLOPs, e.g. 1.2e20")
    parser.add_argument("--downstream", metavar="LINK.json", help="also predict a downstream metric through a "
                        "ladder's link from loss to metric (laws/downstream.json, written with laws.downstream); "
                        "the loss's interval is carried through it")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    accept_negative_numbers(parser)


def run(args: argparse.Namespace) -> int:
    from sweeper.errors import UserError
    from sweeper.laws.components import load_fit

    fit = load_fit(args.fit)
    link = _load_link(args.downstream) if args.downstream else None
    given = {k: v for k, v in (("n", args.n), ("d", args.d), ("c", args.c)) if v is not None}
    if not given:
        raise UserError("predict law: give --n and --d, or --c (and --n or --d)")
    for key, value in given.items():
        if not value > 0:
            raise UserError(f"--{key}: {value}: expected a positive number")
    if link is not None:
        if set(given) == {"c"} and fit.law != "power":
            raise UserError("--downstream: give --n and --d (or one of them with --c): the metric is predicted at "
                            "one model's loss")
        _check_same_loss(fit, link, args.downstream)
        return _print_downstream(fit, link, given, args.json)
    if fit.law == "components":
        return _print_components(fit, given, args.json)
    level = f"{fit.level:.0%}"
    boot = fit.samples is not None and len(fit.samples) > 0
    if fit.law in ("chinchilla", "overtrain") and set(given) == {"c"}:
        opt = fit.compute_optimal(given["c"])
        out = {"law": fit.law, "inputs": given, "compute_optimal": {k: p.to_dict() for k, p in opt.items()}}
        if args.json:
            print(json.dumps(out, indent=2))
            return 0
        labels = {"n": "N*", "d": "D*", "tokens_per_param": "D*/N*", "loss": "L*"}
        print(f"compute-optimal at C = {given['c']:.4g} FLOPs (C = {fit.flops_per_token_param:g} N D):")
        for key, pred in opt.items():
            band = f"  [{float(pred.lo):.5g}, {float(pred.hi):.5g}] ({level} bootstrap interval)" if boot else ""
            print(f"  {labels[key]:6s} {float(pred.value):.5g}{band}")
        if not boot:
            print(NO_BOOTSTRAP)
        return 0
    pred = fit.prediction(**given)
    run_pred = fit.prediction(**given, observed=True)
    out = {"law": fit.law, "inputs": given, "loss": pred.to_dict(),
           "observed": {**run_pred.to_dict(), "residual_sigma": fit.noise}}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    where = ", ".join(f"{k.upper()}={v:.4g}" for k, v in given.items())
    if not boot:
        print(f"L({where}) = {float(pred.value):.5g}\n{NO_BOOTSTRAP}")
        return 0
    kind = "bootstrap interval" + (" widened by its backtest extrapolation error" if fit.misfit else "")
    print(f"L({where}) = {float(pred.value):.5g}  [{float(pred.lo):.5g}, {float(pred.hi):.5g}] "
          f"({level} {kind}, {fit.law} law)")
    if fit.noise:
        print(f"  one run's measured loss: [{float(run_pred.lo):.5g}, {float(run_pred.hi):.5g}] "
              f"(the law's interval with the runs' scatter about it, {fit.noise:.2%})")
    return 0


def _print_components(fit, given: dict[str, float], as_json: bool) -> int:
    """The weighted sum of one law per component, with the joint bootstrap widened by the sum's misfit."""
    from sweeper.errors import UserError

    if set(given) == {"c"}:
        raise UserError("--c: a fit of one law per component has no compute-optimal allocation; give --n and "
                        "--d (or one of them with --c)")
    pred = fit.prediction(**given)
    parts = {name: float(part.predict(**given)) for name, part in fit.fits.items()}
    if as_json:
        print(json.dumps({"law": fit.law, "inputs": given, "loss": pred.to_dict(), "weights": fit.weights,
                          "components": parts}, indent=2))
        return 0
    where = ", ".join(f"{k.upper()}={v:.4g}" for k, v in given.items())
    lo, hi = float(pred.lo), float(pred.hi)
    band = "" if not (math.isfinite(lo) and math.isfinite(hi)) else (
        f"  [{lo:.5g}, {hi:.5g}] ({fit.level:.0%} joint bootstrap interval"
        + (", widened by the sum's backtest extrapolation error)" if fit.misfit else ")"))
    print(f"L({where}) = {float(pred.value):.5g}{band}: {fit.form}")
    for name, value in parts.items():
        print(f"  {name}: {value:.5g} ({fit.fits[name].law} law, weight {fit.weights[name]:g})")
    return 0


def _load_link(path: str) -> LinkFit:
    """The link of a ladder's laws/downstream.json, with the name of its metric."""
    from sweeper.errors import UserError
    from sweeper.laws.twostep import LinkFit

    link = LinkFit.load(path)
    if link.metric is None:
        raise UserError(f"{path}: metric: expected the downstream metric's name")
    return link


def _check_same_loss(fit: Any, link: LinkFit, path: str) -> None:
    """A link fitted on one loss cannot take another loss's prediction (known when both files name it)."""
    from sweeper.errors import UserError

    data = getattr(fit, "data", None) or {}
    fitted = (data.get("columns") or {}).get("loss") if isinstance(data, dict) else None
    if link.loss and fitted and link.loss != fitted:
        raise UserError(f"--downstream {path}: the link was fitted on {link.loss}, the law on {fitted}")


def _print_downstream(fit: Any, link: LinkFit, given: dict[str, float], as_json: bool) -> int:
    """The loss, then the downstream metric at that loss, each with its interval."""
    metric = link.metric
    loss = fit.prediction(**given)
    value = link.chain(loss)
    if as_json:
        print(json.dumps({"law": fit.law, "inputs": given, "loss": loss.to_dict(),
                          "downstream": {"metric": metric, "form": link.form, **value.to_dict()}}, indent=2))
        return 0
    where = ", ".join(f"{k.upper()}={v:.4g}" for k, v in given.items())

    def band(pred: Any) -> str:
        lo, hi = float(pred.lo), float(pred.hi)
        return f"  [{lo:.5g}, {hi:.5g}]" if math.isfinite(lo) and math.isfinite(hi) else ""

    print(f"L({where}) = {float(loss.value):.5g}{band(loss)} ({fit.level:.0%} interval, {fit.law} law)")
    low, high = link.loss_range
    beyond = "" if low <= float(loss.value) <= high else (
        f"; the link was fitted on losses in [{low:.4g}, {high:.4g}], so it extrapolates")
    spread = "backtested spread" if link.spread is not None else "scatter"
    print(f"{metric} = {float(value.value):.5g}{band(value)} ({link.level:.0%} interval: the loss's carried "
          f"through the {link.form} link, with the link's bootstrap and the runs' {spread} about it{beyond})")
    return 0
