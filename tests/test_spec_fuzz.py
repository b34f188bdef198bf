"""Malformed and hostile study files (property-based): every one is either a valid study or one clear
StudyError (exit code 2 through the CLI), never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeper.cli import main
from sweeper.errors import StudyError
from sweeper.spec import load_study
from tests.helpers import study_data

KEYS = ["name", "workload", "params", "space", "search", "scheduler", "budget", "resources", "seed",
        "max_failures", "regmix", "type", "low", "high", "log", "values", "domains", "metric", "mode",
        "algo", "sampler", "trials", "concurrent", "max_cost", "grace", "max_t", "", "lr", "mix"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(KEYS),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_random_documents_give_a_study_or_a_clear_error(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_study(path)
    except StudyError as exc:
        assert str(exc).startswith(f"{path}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["name", "workload", "params", "space", "search", "scheduler", "budget", "resources",
                            "seed", "max_failures", "regmix"]), value=values)
def test_a_valid_study_with_one_key_replaced(tmp_path, key, value):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump({**study_data(), key: value}))
    try:
        load_study(path)
    except StudyError as exc:
        assert str(exc).startswith(f"{path}")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_study(path)
    except StudyError as exc:
        assert str(exc).startswith(f"{path}")


HOSTILE = {
    "object tag": "name: !!python/object/apply:os.system ['echo pwned']\n",
    "python name tag": "name: !!python/name:os.system\n",
    "custom tag": "name: !evil x\n",
    "deep nesting": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep mappings": "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)),
    "duplicate keys": "name: a\nworkload: workloads.synthetic:train\nname: b\n",
    "huge number": yaml.safe_dump({**study_data(), "budget": {"trials": 10**40}}),
    "infinite bound": yaml.safe_dump({**study_data(), "space": {"lr": {"type": "float", "low": 0.1,
                                                                        "high": float("inf")}}}),
    "empty name": yaml.safe_dump({**study_data(), "name": ""}),
    "duplicate domains": yaml.safe_dump({**study_data(), "space": {"mix": {"type": "simplex",
                                                                            "domains": ["a", "a"]}}}),
    "duplicate choices": yaml.safe_dump({**study_data(), "space": {"x": {"type": "choice", "values": [1, 1]}}}),
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "binary": "\x00\x01\x02",
}


def test_hostile_files_are_refused_cleanly(tmp_path, capsys):
    for label, text in HOSTILE.items():
        path = tmp_path / f"{label.replace(' ', '_')}.yaml"
        path.write_text(text)
        assert main(["run", str(path)]) == 2, label
        err = capsys.readouterr().err
        assert err.startswith(f"sweeper: error: {path}") and "Traceback" not in err, (label, err)
        assert len(err.strip().splitlines()) == 1, (label, err)


# -- the families of issue 16: sampler option types, resources, grids -------------------------------------
option_values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars,
                                                                                  max_size=2))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sampler=st.sampled_from(["tpe", "gp", "cmaes", "random", "qmc", "nsga2"]), data=st.data())
def test_sampler_options_give_a_working_searcher_or_a_clear_error(tmp_path_factory, sampler, data):
    import inspect

    import optuna

    from sweeper.search.build import build_searcher

    factory = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler,
               "cmaes": optuna.samplers.CmaEsSampler, "random": optuna.samplers.RandomSampler,
               "qmc": optuna.samplers.QMCSampler, "nsga2": optuna.samplers.NSGAIISampler}[sampler]
    names = sorted(set(inspect.signature(factory).parameters) - {"seed"})
    options = data.draw(st.dictionaries(st.sampled_from(names), option_values, max_size=2)) if names else {}
    try:
        study = load_study_data({**study_data(), "search": {"sampler": sampler, "metric": "loss", "options": options}})
        searcher = build_searcher(study, tmp_path_factory.mktemp("s"), path="fuzz.yaml")
    except StudyError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    for i in range(3):  # accepted options must also sample
        assert searcher.suggest(f"t{i}") is not None


def load_study_data(data):
    from sweeper.spec import parse_study

    return parse_study(data, "fuzz.yaml")


@settings(max_examples=150, deadline=None)
@given(cpu=scalars, gpu=scalars)
def test_resources_are_a_positive_request_or_a_clear_error(cpu, gpu):
    try:
        study = load_study_data({**study_data(), "resources": {"cpu": cpu, "gpu": gpu}})
    except StudyError as exc:
        assert str(exc).startswith("fuzz.yaml: resources")
        return
    assert study.resources.cpu > 0 or study.resources.gpu > 0


grid_params = st.one_of(
    st.builds(lambda lo, span, pts: {"type": "float", "low": lo, "high": lo + span, "points": pts},
              st.floats(-1e6, 1e6), st.floats(1e-3, 1e6), st.integers(1, 10**7)),
    st.builds(lambda lo, span, step, pts: {"type": "int", "low": lo, "high": lo + span, "step": step,
                                           **({"points": pts} if pts else {})},
              st.integers(-10**12, 10**12), st.integers(0, 10**15), st.integers(1, 1000),
              st.one_of(st.none(), st.integers(1, 10**6))),
    st.builds(lambda n: {"type": "choice", "values": list(range(n))}, st.integers(1, 50)),
)


@settings(max_examples=150, deadline=None)
@given(space=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), grid_params, min_size=1, max_size=4))
def test_grids_are_counted_before_they_are_listed(space):
    from sweeper.space import MAX_GRID_CONFIGS, grid, grid_size

    try:
        study = load_study_data({**study_data(), "space": space, "search": {"algo": "grid", "metric": "loss"}})
    except StudyError as exc:
        assert str(exc).startswith("fuzz.yaml: space")
        return
    assert grid_size(study.space) <= MAX_GRID_CONFIGS
    for name, values in grid(study.space).items():
        assert 1 <= len(values) <= study.space[name].grid_size()
