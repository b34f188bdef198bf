"""Study files: valid ones parse, bad ones give one clear message naming file, field and expectation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sweeper.cli import main
from sweeper.errors import StudyError
from sweeper.spec import load_study, parse_study
from tests.helpers import study_data, write_study


def test_quick_study_parses():
    study = load_study("studies/quick.yaml")
    assert study.name == "quick"
    assert study.search.metrics == ["loss"] and study.scheduler.type == "asha"
    assert study.mixture_key == "mix"


@pytest.mark.parametrize("path", sorted(__import__("glob").glob("studies/*.yaml")))
def test_every_shipped_study_parses(path):
    assert load_study(path).name


def test_the_ladder_validates_on_runs_of_at_least_4x_its_largest_rungs_compute():
    from sweeper.phases import run_size
    from sweeper.space import presets_of

    study = load_study("studies/ladder.yaml")
    base = {**study.params, "seed": 0}
    largest = max(run_size(study, {**base, **p})["flops"] for p in presets_of(study.space)["run"].values())
    ratios = [run_size(study, {**base, **p})["flops"] / largest for p in study.laws.validate_.runs.values()]
    assert len(ratios) >= 1 and min(ratios) >= 4.0


def test_overrides_set_nested_keys_with_yaml_types(tmp_path):
    path = write_study(tmp_path, study_data())
    study = load_study(path, ["budget.trials=8", "search.sampler=tpe", "params.noise=0.5", "search.metric=[loss, cost]",
                              "search.mode=[min, min]"])
    assert study.budget.trials == 8 and study.search.sampler == "tpe"
    assert study.params["noise"] == 0.5
    assert study.search.metrics == ["loss", "cost"]


BAD_CASES = [
    ("yaml syntax", "name: t\nspace: {lr: [1, 2\n", "line", "not valid YAML"),
    ("unknown key", study_data(spaces={}), "spaces", "unknown key"),
    ("wrong type", study_data(budget={"trials": "many"}), "budget.trials", "valid integer"),
    ("empty space", study_data(space={}), "space", "empty"),
    ("unknown sampler", study_data(search={"sampler": "annealing"}), "search.sampler", "tpe"),
    ("unknown algo", study_data(search={"algo": "bayes"}), "search.algo", "optuna"),
    ("workload import", study_data(workload="workloads.nothing_here:train"), "workload", "cannot import"),
    ("workload function", study_data(workload="workloads.synthetic:nope"), "workload", "no such function"),
    ("low above high", study_data(space={"lr": {"type": "float", "low": 1, "high": 0.1}}), "space.lr", "low < high"),
    ("unknown param type", study_data(space={"lr": {"type": "normal"}}), "space.lr", "float, log, int"),
    ("log with zero", study_data(space={"lr": {"type": "log", "low": 0, "high": 1}}), "space.lr", "low > 0"),
    ("mode count", study_data(search={"metric": ["loss", "cost"], "mode": ["min"]}), "search", "one mode per metric"),
    ("bad name", study_data(name="../escape"), "name", "folder name"),
    ("not a mapping", "- a\n- b\n", "", "expected a mapping"),
    ("object tag", "name: !!python/object/apply:os.system ['true']\n", "", "not valid YAML"),
]


@pytest.mark.parametrize("label,content,field,expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_study_names_file_field_and_expectation(tmp_path, capsys, label, content, field, expected):
    path = tmp_path / "bad.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        write_study(tmp_path, content, "bad.yaml")
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert field in info.value.field or field in message
    assert expected in message
    # Through the CLI: exit code 2, one line on stderr, no traceback.
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err and len(err.strip().splitlines()) == 1


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(StudyError, match="no such file"):
        load_study(tmp_path / "absent.yaml")


def test_bad_override_is_a_clear_error(tmp_path):
    path = write_study(tmp_path, study_data())
    with pytest.raises(StudyError, match="--set"):
        load_study(path, ["budget.trials"])
    with pytest.raises(StudyError, match="budget.trials"):
        load_study(path, ["budget.trials=-3"])


def test_sampler_options_are_checked(tmp_path):
    from sweeper.search.build import build_sampler

    study = parse_study(study_data(search={"sampler": "tpe", "options": {"n_startup_trials": 3}}))
    assert build_sampler(study).__class__.__name__ == "TPESampler"
    with pytest.raises(StudyError, match="search.options"):
        build_sampler(parse_study(study_data(search={"sampler": "tpe", "options": {"warp": 1}})))
    with pytest.raises(StudyError, match="single-objective"):
        build_sampler(parse_study(study_data(search={"sampler": "cmaes", "metric": ["loss", "cost"],
                                                     "mode": ["min", "min"]})))


def test_cli_subprocess_exit_code_and_message(tmp_path):
    path = write_study(tmp_path, study_data(search={"sampler": "annealing"}))
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "search.sampler" in proc.stderr and "Traceback" not in proc.stderr
