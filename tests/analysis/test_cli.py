"""`fsf-sweep gap | cka | probe` and `run --base`: output formats and clean errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from fsf.cli.sweep import main
from fsf.results import ParquetReporter, TrialInfo
from fsf.results.evaluation import StepRecord
from tests.analysis.helpers import config, evaluation


@pytest.fixture()
def run_dir(tmp_path):
    """A run folder with a loss curve and CKA rows (2 languages x 3 layers x 2 steps)."""
    cfg = config("r")
    writer = ParquetReporter(tmp_path / "r" / "results", TrialInfo(cfg))
    recs = [StepRecord(t, 2.0 / t, "P1" if t < 3 else "P2", None) for t in range(1, 5)]
    cka = {0: {"en": [1.0, 1.0, 1.0], "de": [1.0, 1.0, 1.0]}}
    writer.report(evaluation(0, 4, 0.5, 0.4, 0.3, cka=cka))
    cka = {4: {"en": [0.99, 0.8, 0.6], "de": [0.98, 0.85, 0.7]}}
    writer.report(evaluation(4, 4, 0.8, 0.6, 0.5, phase="P2", steps=recs, cka=cka))
    writer.finish()
    return tmp_path / "r"


def test_gap_formats(run_dir, capsys):
    assert main(["gap", str(run_dir), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    # the loss (2/t) still falls fast at step 4 (window 2: 1.5 -> 0.58): no boundary yet,
    # while the run recorded P2 from step 3
    assert (row["switch_detected"], row["switch_recorded"]) == (None, 3)
    assert row["gap_start"] == pytest.approx(15.0) and row["gap_end"] == pytest.approx(25.0)
    assert main(["gap", str(run_dir), "--curves", "--format", "csv", "--split", "test"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["step"] for r in rows] == ["0", "4"]
    assert [(r["phase_recorded"], r["phase_detected"]) for r in rows] == [
        ("P1", "P1"),
        ("P2", "P1"),
    ]
    assert main(["gap", str(run_dir)]) == 0
    assert "switch_detected" in capsys.readouterr().out


def test_cka_formats(run_dir, capsys):
    assert main(["cka", str(run_dir), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["language"]: r["layer 2"] for r in rows} == {"de": 0.7, "en": 0.6}
    assert main(["cka", str(run_dir), "--all-steps", "--format", "csv"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 2 * 3 * 2


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["gap", "{missing}"], "no such folder"),
        (["gap", "{run}", "--format", "xml"], "unknown --format"),
        (["gap", "{run}", "--split", "train"], "unknown --split"),
        (["gap", "{run}", "--window", "0"], "window must be >= 1"),
        (["gap", "{run}", "--task", "ner"], "unknown task"),
        (["cka", "{missing}"], "no such folder"),
        (["probe", "--sweep", "{run}"], "not a sweep folder"),
        (["probe", "--space", "{bad_space}"], "probe.actions"),
        (["probe", "--space", "{missing}"], "cannot read file"),
    ],
)
def test_bad_input_exits_2(run_dir, tmp_path, capsys, argv, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"probe": {"actions": ["melt"]}}))
    subs = {"missing": str(tmp_path / "nope"), "run": str(run_dir), "bad_space": str(bad)}
    assert main([a.format(**subs) for a in argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_probe_needs_a_probe_sweep(tmp_path, capsys):
    sweep = tmp_path / "s"
    (sweep / "results").mkdir(parents=True)
    (sweep / "space.yaml").write_text(yaml.safe_dump({"name": "s"}))
    assert main(["probe", "--sweep", str(sweep)]) == 2
    assert "not a probe sweep" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # neither --space nor --sweep: argparse's usage
        main(["probe"])
    assert exc.value.code == 2


def test_cka_without_rows_says_how_to_get_them(tmp_path, capsys):
    writer = ParquetReporter(tmp_path / "x" / "results", TrialInfo(config("x")))
    writer.report(evaluation(0, 4, 0.5, 0.4, 0.3))
    writer.finish()
    assert main(["cka", str(tmp_path / "x")]) == 1
    assert "analysis.cka.every_steps" in capsys.readouterr().err


def test_run_base_merges_a_policy_config_into_the_space(tmp_path, monkeypatch):
    """`fsf-sweep run --space S --base policy-sets.yaml`: the sets reach every trial."""
    from fsf.sweep.space import load_space_with

    space = tmp_path / "s.yaml"
    space.write_text(
        yaml.safe_dump(
            {"name": "s", "base": {"optim": {"max_steps": 5}, "policy": {"name": "fsf"}}}
        )
    )
    sets = tmp_path / "sets.yaml"
    sets.write_text("# comment\npolicy:\n  sets: {s1: 1-4, s2: '1', v1: 5-6, v2: 5-6}\n")
    spec = load_space_with(str(space), str(sets))
    base = spec.base_config()
    assert base.policy.name == "fsf" and base.optim.max_steps == 5
    assert str(base.policy.sets.s1) == "1-4" and str(base.policy.sets.v2) == "5-6"
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: {sets: {s1: first-ten}}\n")
    from fsf.errors import ConfigError

    with pytest.raises(ConfigError, match=r"base\.policy\.sets\.s1"):
        load_space_with(str(space), str(bad))


def test_run_base_cannot_change_a_resumed_sweep(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("name: s\n")
    (tmp_path / "b.yaml").write_text("policy: {name: fs}\n")
    argv = ["run", "--space", str(tmp_path / "s.yaml"), "--base", str(tmp_path / "b.yaml")]
    assert main([*argv, "--resume"]) == 2
    assert "--base cannot change a resumed sweep" in capsys.readouterr().err
