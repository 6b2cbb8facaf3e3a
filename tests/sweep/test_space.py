"""Search spaces: every shipped YAML validates; malformed ones fail with specific messages."""

from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pytest
import yaml

from fsf.cli.sweep import main
from fsf.sweep.points import define_by_run, grid_points, trial_run_config
from fsf.sweep.space import load_space, validate_space

SWEEPS = sorted((Path(__file__).parents[2] / "sweeps").glob("*.yaml"))

GOOD = {
    "name": "t",
    "base": {
        "model": {"name": "synthetic"},
        "task": {"name": "pawsx", "dataset": "synthetic:pawsx"},
        "target_langs": ["fk", "fr"],
        "optim": {"max_steps": 10},
    },
    "search": {
        "parameters": {
            "policy.name": {"type": "categorical", "values": ["df", "fs", "fsf"]},
            "policy.c1": {
                "type": "float",
                "low": 0.001,
                "high": 0.5,
                "log": True,
                "when": {"policy.name": ["fs", "fsf"]},
            },
            "policy.c2": {"type": "float", "low": 2, "high": 20, "when": {"policy.name": ["fsf"]}},
            "policy.switch": {"type": "categorical", "values": ["loss-trend", "fraction"]},
            "policy.switch_fraction": {
                "type": "float",
                "low": 0.05,
                "high": 0.5,
                "when": {"policy.switch": ["fraction"]},
            },
        },
        "objective": {"metric": "dev_target_mean", "mode": "max"},
    },
}


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_shipped_spaces_validate_and_sample(path, tmp_path, monkeypatch):
    if "fsf-real/" in path.read_text():  # the real benchmark's spaces: a tiny stand-in built
        pytest.importorskip("hassil")
        from fsf.testing import tiny_real_benchmark

        tiny_real_benchmark(tmp_path / "fsf-real")
        monkeypatch.chdir(tmp_path)
    spec = load_space(path)
    study = optuna.create_study(directions=["maximize"] * len(spec.search.objective))
    trial = study.ask()
    define_by_run(spec)(trial)
    config = trial_run_config(spec, trial.params, spec.search.seeds[0], "t0")
    assert config.seed == spec.search.seeds[0]
    if spec.search.searcher == "grid":
        assert grid_points(spec)
    assert main(["validate", "--space", str(path)]) == 0


def test_the_default_space_is_shipped():
    names = {p.name for p in SWEEPS}
    assert {
        "policies.yaml",
        "xnli-xlmr-base.yaml",
        "paper-sensitivity.yaml",
        "multi-objective.yaml",
    } <= names


def test_conditional_parameters_are_sampled_only_under_their_condition():
    spec = validate_space(GOOD)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    space = define_by_run(spec)
    seen = set()
    for _ in range(60):
        trial = study.ask()
        space(trial)
        p = trial.params
        seen.add(p["policy.name"])
        assert ("policy.c1" in p) == (p["policy.name"] in ("fs", "fsf"))
        assert ("policy.c2" in p) == (p["policy.name"] == "fsf")
        assert ("policy.switch_fraction" in p) == (p["policy.switch"] == "fraction")
        study.tell(trial, 0.0)
        trial_run_config(spec, p, 0, "x")  # every sample is a valid run config
    assert seen == {"df", "fs", "fsf"}


def test_grid_honours_conditions():
    data = copy.deepcopy(GOOD)
    data["search"]["searcher"] = "grid"
    data["search"]["parameters"] = {
        "policy.name": {"type": "categorical", "values": ["df", "fsf"]},
        "policy.c1": {
            "type": "float",
            "low": 0.001,
            "high": 0.1,
            "grid": [0.001, 0.01, 0.1],
            "when": {"policy.name": ["fsf"]},
        },
    }
    points = grid_points(validate_space(data))
    assert points == [{"policy.name": "df"}] + [
        {"policy.name": "fsf", "policy.c1": c} for c in (0.001, 0.01, 0.1)
    ]


def _set(path: str, value):
    def edit(data):
        node = data
        keys = path.split("/")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
        return data

    return edit


_DELETE = object()
P = "search/parameters"
MALFORMED = [
    ("unknown top key", _set("serch", {}), "serch: unknown key"),
    ("unknown search key", _set("search/trials", 3), "search.trials: unknown key"),
    ("unknown param key", _set(f"{P}/policy.c1/lo", 1), "lo: unknown key"),
    ("wrong type", _set("search/num_trials", "many"), "search.num_trials"),
    ("zero trials", _set("search/num_trials", 0), "search.num_trials"),
    (
        "bad param type",
        _set(f"{P}/policy.r", {"type": "integer", "low": 1, "high": 4}),
        "policy.r.type",
    ),
    ("empty range", _set(f"{P}/policy.c2", {"type": "float", "low": 20, "high": 2}), "empty range"),
    (
        "log range with 0",
        _set(f"{P}/policy.c2", {"type": "float", "low": 0, "high": 2, "log": True}),
        "log-scale",
    ),
    (
        "missing bounds",
        _set(f"{P}/policy.c2", {"type": "float", "low": 2}),
        "needs `low` and `high`",
    ),
    (
        "empty categorical",
        _set(f"{P}/policy.name", {"type": "categorical", "values": []}),
        "non-empty",
    ),
    (
        "categorical with range",
        _set(f"{P}/policy.name", {"type": "categorical", "values": ["df"], "low": 1}),
        "not a range",
    ),
    (
        "float with values",
        _set(f"{P}/policy.c2", {"type": "float", "low": 2, "high": 3, "values": [2]}),
        "not values",
    ),
    (
        "non-integer int",
        _set(f"{P}/policy.window", {"type": "int", "low": 1.5, "high": 4}),
        "integer",
    ),
    (
        "condition on unknown param",
        _set(f"{P}/policy.c1/when", {"policy.nam": ["fs"]}),
        "unknown parameter",
    ),
    (
        "condition on unknown value",
        _set(f"{P}/policy.c1/when", {"policy.name": ["slowfast"]}),
        "not among",
    ),
    (
        "condition on a later param",
        _set(f"{P}/policy.c1/when", {"policy.switch": ["fraction"]}),
        "written before",
    ),
    (
        "objective nobody reports",
        _set("search/objective", {"metric": "dev_f1_mean"}),
        "no trial reports",
    ),
    (
        "objective bad mode",
        _set("search/objective", {"metric": "dev_gap", "mode": "lowest"}),
        "mode",
    ),
    ("unknown searcher", _set("search/searcher", "bayes"), "search.searcher"),
    ("nsga2 single objective", _set("search/searcher", "nsga2"), "nsga2"),
    (
        "asha multi objective",
        lambda d: _set("search/scheduler", {"type": "asha"})(
            _set("search/objective", [{"metric": "dev_source"}, {"metric": "dev_target_mean"}])(d)
        ),
        "asha",
    ),
    ("grid without grid values", _set("search/searcher", "grid"), "grid"),
    (
        "bad scheduler key",
        _set("search/scheduler", {"type": "asha", "grace": 3}),
        "grace: unknown key",
    ),
    ("duplicate seeds", _set("search/seeds", [1, 1]), "distinct"),
    ("no seeds", _set("search/seeds", []), "search.seeds"),
    ("bad base key", _set("base/optim/learning_rate", 1), "base.optim.learning_rate"),
    ("bad base value", _set("base/policy", {"name": "fsf", "c1": 2}), "base.policy.c1"),
    (
        "value invalid for the run",
        _set(f"{P}/policy.name", {"type": "categorical", "values": ["df", "slowfast"]}),
        "slowfast",
    ),
    ("bad sweep name", _set("name", "my sweep/1"), "name"),
    (
        "workers do not divide batch",
        _set("search/resources", {"workers": 3}),
        "multiple of workers",
    ),
    ("bad storage key", _set("storage/uri", "s3://x"), "storage.uri"),
    (
        "objective on test data",
        _set("search/objective", {"metric": "test_target_mean"}),
        "selection on test; use dev_target_mean",
    ),
    ("unknown checkpoint rule", _set("search/checkpoint", "test"), "search.checkpoint"),
    ("confirm seeds not fresh", _set("confirm", {"seeds": [0, 5]}), "fresh seeds"),
    ("confirm one seed", _set("confirm", {"seeds": [5]}), "confirm.seeds"),
    ("confirm duplicate seeds", _set("confirm", {"seeds": [5, 5]}), "distinct"),
    (
        "confirm bad baseline",
        _set("confirm", {"baseline": {"policy.name": "slowfast"}}),
        "confirm.baseline",
    ),
    ("confirm unknown key", _set("confirm", {"top": 3}), "confirm.top: unknown key"),
]


@pytest.mark.parametrize(("label", "edit", "needle"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_spaces(tmp_path, capsys, label, edit, needle):
    data = edit(copy.deepcopy(GOOD))
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["validate", "--space", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert "Traceback" not in err
    # running it fails the same way and writes nothing
    runs = tmp_path / "runs"
    assert main(["--space", str(path), "--storage-path", str(runs), "--no-progress"]) == 2
    assert not runs.exists()


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    data = copy.deepcopy(GOOD)
    data["search"]["num_trials"] = 0
    data["search"]["searcher"] = "bayes"
    data["extra"] = 1
    data["base"]["optim"]["lr"] = -1
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["validate", "--space", str(path)]) == 2
    err = capsys.readouterr().err
    for needle in ("search.num_trials", "search.searcher", "extra", "base.optim.lr", "4 problems"):
        assert needle in err


def test_unreadable_and_non_yaml_files(tmp_path, capsys):
    assert main(["validate", "--space", str(tmp_path / "missing.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed")
    assert main(["validate", "--space", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "not valid YAML" in err


def test_resume_refuses_settings_it_cannot_change(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["--space", "sweeps/policies.yaml", "--storage-path", str(runs), "--resume"]
    assert main([*args, "--num-trials", "40", "--max-concurrent", "3"]) == 2
    err = capsys.readouterr().err
    assert "--num-trials cannot change a resumed sweep" in err
    assert "--max-concurrent" in err
    assert not runs.exists()


def test_the_objective_is_read_at_the_checkpoint():
    """What a trial reports to Tune: the objective at its best-source-dev evaluation so far,
    averaged with the finished seeds' (what `fsf-sweep best` ranks by)."""
    from fsf.sweep.trial import _ObjectiveTracker
    from tests.results.helpers import evaluation

    def ev(step, en, de):
        return evaluation(step, {"en": en, "de": de}, {"en": en, "de": de})

    t = _ObjectiveTracker(["dev_target_mean"], 1, [{"dev_target_mean": 0.5}])
    out = t.scalars(ev(10, 0.6, 0.7))
    assert out["dev_target_mean"] == pytest.approx((0.5 + 0.7) / 2)
    out = t.scalars(ev(20, 0.9, 0.3))  # a better source dev score: the new checkpoint
    assert out["dev_target_mean_seed"] == 0.3 and out["dev_target_mean_last"] == 0.3
    assert out["checkpoint_step"] == 20
    out = t.scalars(ev(30, 0.9, 0.8))  # a tie on source dev keeps the earlier checkpoint
    assert out["dev_target_mean_seed"] == 0.3 and out["dev_target_mean_last"] == 0.8
    assert out["dev_target_mean"] == pytest.approx(0.4)
    other = _ObjectiveTracker(["dev_target_mean"], 0, [], checkpoint="target-dev")
    other.scalars(ev(10, 0.6, 0.7))
    assert other.scalars(ev(20, 0.9, 0.3))["dev_target_mean"] == 0.7


def test_tune_never_sees_test_scores():
    """Trials report dev (and the loss) to Tune, never a test-split scalar, so nothing that
    reads Tune's results (ASHA, Optuna, `ResultGrid.get_best_result`, Tune's logs) can choose
    on test data; the objective checker lists only what is reported."""
    from fsf.config import validate_run_config
    from fsf.sweep.points import reported_metrics
    from fsf.sweep.trial import _ObjectiveTracker
    from tests.results.helpers import evaluation

    ev = evaluation(10, {"en": 0.6, "de": 0.7}, {"en": 0.5, "de": 0.4})
    assert "test_target_mean" in ev.scalars()  # the evaluation has them (the tables keep them)
    out = _ObjectiveTracker(["dev_target_mean"], 0, []).scalars(ev)
    assert out["dev_source"] == 0.6 and out["dev_target_mean"] == 0.7
    assert not [k for k in out if k.startswith("test")]
    base = load_space("sweeps/policies.yaml").base_config()
    assert "test" in base.eval.splits
    names = reported_metrics(validate_run_config(base.model_dump(mode="json")))
    assert "dev_target_mean" in names and not [n for n in names if n.startswith("test")]


def test_relative_local_paths_are_made_absolute_where_the_sweep_starts(tmp_path, monkeypatch):
    """Ray Tune runs each trial in its own folder: a relative model folder or data template
    must be resolved against the folder the sweep starts in (hub names are left alone)."""
    from fsf.sweep.space import absolute_local_paths

    (tmp_path / "models" / "enc").mkdir(parents=True)
    (tmp_path / "data" / "en").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    base = {
        "model": {"name": "models/enc", "tokenizer": "FacebookAI/xlm-roberta-base"},
        "task": {"dataset": "data/{lang}/{split}.jsonl", "train_dataset": "rajpurkar/squad"},
    }
    out = absolute_local_paths(base)
    assert out["model"] == {
        "name": str(tmp_path / "models" / "enc"),
        "tokenizer": "FacebookAI/xlm-roberta-base",
    }
    assert out["task"] == {
        "dataset": str(tmp_path / "data" / "{lang}" / "{split}.jsonl"),
        "train_dataset": "rajpurkar/squad",
    }
    assert base["model"]["name"] == "models/enc"  # the input is not changed
    assert absolute_local_paths({"model": {"name": "synthetic"}}) == {
        "model": {"name": "synthetic"}
    }
