"""The results subcommands (every format), the sweep report, and the benchmark's smoke mode."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import warnings
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fsf.cli import results as cli
from fsf.errors import FsfError
from tests.results.helpers import ev2, run, write


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sweep: 3 policies x 2 lrs x 2 seeds, 4 steps, P1 then P2, one failed trial."""
    root = tmp_path_factory.mktemp("sweeps") / "toy"
    runs = []
    quality = {"df": 0.0, "fs": 0.02, "fsf": 0.04}
    for p_i, policy in enumerate(("df", "fs", "fsf")):
        for l_i, lr in enumerate((1e-5, 2e-5)):
            trial = f"t{p_i}{l_i}"
            for seed in (0, 1):
                q = quality[policy] + 0.01 * l_i + 0.005 * seed
                evals = [
                    ev2(
                        step,
                        0.7 + 0.05 * k + q,
                        0.55 + 0.03 * k + q,
                        0.5 + 0.02 * k + q,
                        phase="P1" if k < 1 else "P2",
                    )
                    for k, step in enumerate((0, 50, 100, 150))
                ]
                runs.append(
                    run(
                        trial,
                        evals,
                        seed=seed,
                        policy=policy,
                        lr=lr,
                        params={"policy": policy, "lr": lr},
                    )
                )
    runs.append(run("t99", [], status="failed", reason="CUDA OOM", policy="fsf", lr=1e-4))
    write(root / "results", runs)
    (root / "sweep.json").write_text(
        json.dumps(
            {
                "name": "toy",
                "objective": [
                    {"metric": "dev_target_mean", "mode": "max"},
                    {"metric": "dev_gap", "mode": "min"},
                ],
            }
        )
    )
    (root / "space.yaml").write_text("lr: {loguniform: [1e-5, 1e-4]}\n")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="toy",
        storage=f"sqlite:///{root / 'optuna.db'}",
        directions=["maximize", "minimize"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["dev_target_mean", "dev_gap"])
    for i in range(12):
        t = study.ask()
        lr = t.suggest_float("lr", 1e-5, 1e-4, log=True)
        c1 = t.suggest_float("c1", 0.001, 0.5, log=True)
        pol = t.suggest_categorical("policy", ["df", "fs", "fsf"])
        study.tell(t, [0.6 + 100 * lr + (0.01 if pol == "fsf" else 0), 0.1 + c1 * 0.1 + i * 1e-4])
    return root


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_register_on_own_parser(sweep):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["best", "--sweep", str(sweep), "--lang", "de", "--format", "json"])
    assert args.handler(args) == 0


def test_best_formats(sweep, capsys):
    code, out, _ = _run(
        ["best", "--sweep", str(sweep), "--lang", "de", "--top", "3", "--format", "json"], capsys
    )
    data = json.loads(out)
    assert code == 0 and data["format"] == "fsf.best/2" and len(data["entries"]) == 3
    top = data["entries"][0]
    assert top["trial_id"] == "t21" and top["n_seeds"] == 2 and top["step"] == 150
    assert top["score"] == pytest.approx(0.55 + 0.09 + 0.05 + 0.0025)
    for key in (
        "language",
        "score",
        "metric",
        "selection",
        "trial_id",
        "config",
        "std",
        "n_seeds",
        "step",
        "oracle",
    ):
        assert key in top
    code, out, _ = _run(
        ["best", "--sweep", str(sweep), "--lang", "de", "--top", "2", "--format", "csv"], capsys
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["trial_id"] for r in rows] == ["t21", "t20"]
    assert rows[0]["config.policy"] == "fsf" and json.loads(rows[0]["config.params"])["lr"] == 2e-5
    code, out, _ = _run(["best", "--sweep", str(sweep), "--lang", "de"], capsys)
    assert code == 0 and "t21" in out and "excluded:  1 failed run" in out
    assert "rule objective" in out and "ORACLE" not in out
    code, out, _ = _run(
        ["best", "--sweep", str(sweep), "--lang", "de", "--select", "oracle-test"], capsys
    )
    assert code == 0 and "ORACLE" in out


def test_best_per_language_formats(sweep, capsys):
    code, out, _ = _run(
        ["best", "--sweep", str(sweep), "--per-language", "--format", "json"], capsys
    )
    data = json.loads(out)
    assert code == 0 and [e["language"] for e in data["languages"]] == ["de", "sw"]
    assert data["target_mean"]["trial_id"] == "t21"
    code, out, _ = _run(
        ["best", "--sweep", str(sweep), "--per-language", "--format", "csv"], capsys
    )
    assert [r["language"] for r in csv.DictReader(io.StringIO(out))] == ["de", "sw", "target-mean"]
    code, out, _ = _run(["best", "--sweep", str(sweep), "--per-language"], capsys)
    assert code == 0 and "target-mean" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["best", "--sweep", "{missing}", "--lang", "de"], "no such folder"),
        (["best", "--sweep", "{sweep}", "--lang", "xx"], "available: de, en, sw"),
        (["best", "--sweep", "{sweep}", "--lang", "de", "--format", "xml"], "table, json, csv"),
        (["best", "--sweep", "{sweep}", "--lang", "de", "--select", "x"], "source-dev"),
        (["best", "--sweep", "{sweep}"], "exactly one of --lang"),
        (["export", "{sweep}", "--to", "{tmp}/x.xlsx"], ".parquet or .csv"),
    ],
)
def test_usage_errors_exit_2(sweep, tmp_path, capsys, argv, needle):
    argv = [a.format(sweep=sweep, missing=tmp_path / "none", tmp=tmp_path) for a in argv]
    code, _, err = _run(argv, capsys)
    assert code == 2 and needle in err


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["best", "{missing}", "--format", "xml", "--select", "x", "--stage", "y"],
            [
                "table, json, csv",
                "source-dev",
                "auto, search, confirm",
                "exactly one of --lang",
                "no such folder",
            ],
        ),
        (
            ["show", "{missing}", "--format", "csv", "--stage", "y"],
            ["table, json", "auto, search, confirm", "no such folder"],
        ),
    ],
)
def test_every_usage_problem_is_reported_at_once(tmp_path, capsys, argv, needles):
    code, out, err = _run([a.format(missing=tmp_path / "none") for a in argv], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"has {len(needles)} problems" in err
    for needle in needles:
        assert needle in err


def test_usage_errors_are_fsf_errors(sweep):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["best", "--sweep", str(sweep), "--lang", "xx"])
    with pytest.raises(FsfError) as err:
        args.handler(args)
    assert err.value.exit_code == 2


def test_show(sweep, capsys):
    code, out, _ = _run(["show", str(sweep)], capsys)
    assert code == 0 and "policies compared" in out and "fsf" in out
    code, out, _ = _run(["show", str(sweep), "--format", "json"], capsys)
    s = json.loads(out)
    assert s["trials"]["by_status"] == {"completed": 6, "failed": 1}
    assert [o["metric"] for o in s["objectives"]] == ["dev_target_mean", "dev_gap"]
    assert s["policies"][0]["policy"] == "fsf"


def test_export_both_formats(sweep, tmp_path, capsys):
    n = None
    for name in ("all.parquet", "all.csv"):
        code, out, _ = _run(["export", str(sweep), "--to", str(tmp_path / name)], capsys)
        assert code == 0 and "wrote" in out
    n = pq.read_metadata(tmp_path / "all.parquet").num_rows
    with open(tmp_path / "all.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n == 6 * 2 * 4 * 2 * 3 + 1
    assert "params_json" in rows[0] and "trial_id" in rows[0]


@pytest.mark.parametrize(
    "command",
    [["best", "--sweep", "{}", "--lang", "de"], ["show", "{}"], ["export", "{}", "--to", "x.csv"]],
)
def test_skipped_fragments_are_named_and_the_exit_code_says_so(
    sweep, tmp_path, capsys, monkeypatch, command
):
    """A partial answer is printed, but never passes for a whole one: exit 3."""
    import shutil

    from fsf.cli.results_common import SKIPPED_EXIT

    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    bad = copy / "results" / "trial=t00" / "seed-0.parquet"
    bad.write_bytes(bad.read_bytes()[:100])
    code, out, err = _run([c.format(copy) for c in command], capsys)
    assert code == SKIPPED_EXIT == 3, err
    assert "warning: 1 fragment(s) skipped" in err and "exit code 3" in err
    assert "trial=t00/seed-0.parquet" in err
    assert out.strip()  # the answer from the readable fragments is still there


def test_report(sweep, tmp_path, capsys):
    out_dir = tmp_path / "rep"
    code, out, _ = _run(["report", str(sweep), "--out", str(out_dir)], capsys)
    assert code == 0, out
    names = (
        "gap.png",
        "languages.png",
        "delta.png",
        "pareto.png",
        "importance.png",
        "curves.png",
        "evp.png",
    )
    for name in names:
        data = (out_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    md = (out_dir / "report.md").read_text()
    assert "![Gap over training (search stage)](gap.png)" in md and "Policies compared" in md
    assert "Gap curves and the P1/P2 boundary" in md  # no loss curve: recorded phase only
    assert "no per-step training loss" in md
    html = (out_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7
    assert "![Expected best objective vs trials, per policy" in md
    assert "rule objective" in md and "winner's curse" in md
    # 12 trials: the importances carry a warning, in the report and on the figure's title
    assert "**Warning:** from only 12 trained trials" in md


def test_report_without_study_says_why(sweep, tmp_path, capsys):
    import shutil

    copy = tmp_path / "nostudy"
    shutil.copytree(sweep, copy)
    (copy / "optuna.db").unlink()
    code, out, _ = _run(["report", str(copy)], capsys)
    assert code == 0 and "no optuna.db" in out
    assert "no optuna.db" in (copy / "report" / "report.md").read_text()


def test_compact_cli(sweep, tmp_path, capsys):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(sweep, copy)
    _, before, _ = _run(
        ["best", "--sweep", str(copy), "--per-language", "--format", "json"], capsys
    )
    code, out, _ = _run(["compact", str(copy)], capsys)
    assert code == 0 and "compacted 13 fragment(s)" in out
    _, after, _ = _run(["best", "--sweep", str(copy), "--per-language", "--format", "json"], capsys)
    assert json.loads(after) == json.loads(before)


def test_bench_smoke(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_query.py"
    spec = importlib.util.spec_from_file_location("bench_query", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke", "--disk"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "yes" in out and not math.isnan(1.0)


def test_print_best_per_language(sweep, tmp_path, capsys):
    from fsf.cli.results_tables import print_best_per_language

    print_best_per_language(sweep)
    assert "target-mean" in capsys.readouterr().out
    (tmp_path / "empty" / "results").mkdir(parents=True)
    print_best_per_language(tmp_path / "empty")
    assert "note: no per-language table" in capsys.readouterr().out


def test_mounted_in_fsf_sweep(sweep, capsys):
    from fsf.cli.sweep import main as sweep_main

    assert sweep_main(["best", "--sweep", str(sweep), "--lang", "de", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"][0]["trial_id"] == "t21"
    assert sweep_main(["best", "--sweep", str(sweep), "--lang", "zz"]) == 2


def test_importances_leave_out_answered_repeats(tmp_path):
    """A repeat answered from the study is not a trial: it is not counted, and a conditional
    parameter with a real effect gets a non-zero importance."""
    import optuna

    from fsf.analysis._report_plots import importance_plot, trained_trials
    from fsf.results import Results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(
        study_name="imp",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for _ in range(30):
        t = study.ask()
        policy = t.suggest_categorical("policy.name", ["df", "fsf"])
        value = 0.5
        if policy == "fsf":
            value += 0.3 * t.suggest_float("policy.c1", 0.0, 1.0)  # drives the objective
        study.tell(t, value)
    done = study.trials[0]
    for _ in range(20):  # answered repeats of the first trial
        t = study.ask({"policy.name": optuna.distributions.CategoricalDistribution(["df", "fsf"])})
        t.set_user_attr("fsf_repeat_of", done.number)
        study.tell(t, done.value)
    assert len(trained_trials(study)) == 30
    (tmp_path / "results").mkdir()
    res = Results(table=None, root=tmp_path / "results", sweep_dir=tmp_path, sweep={"name": "imp"})
    assert importance_plot(res, tmp_path / "importance.png") is None
    trained = optuna.create_study(direction="maximize")
    trained.add_trials(trained_trials(study))
    assert optuna.importance.get_param_importances(trained)["policy.c1"] > 0


def test_excluded_line_names_only_what_was_left_out():
    from fsf.cli.results_tables import _excluded_line

    none = {"failed_runs": 0, "failed_trials": 0, "duplicate_runs": 0, "runs_without_score": 0}
    assert _excluded_line(none) == "no run (none failed, repeated a seed or lacks a score)"
    some = {**none, "duplicate_runs": 2, "runs_without_score": 1}
    line = _excluded_line(some)
    assert "failed" not in line and line.startswith("2 repeated") and line.endswith("score here")
    assert _excluded_line(some, "why").endswith("score here (why)")


def test_many_slow_fragments_get_a_note_to_compact(sweep, tmp_path, capsys, monkeypatch):
    import shutil

    from fsf.cli import results_common as cli_common
    from fsf.results import compact

    folder = tmp_path / "toy"
    shutil.copytree(sweep, folder)
    monkeypatch.setattr(cli_common, "COMPACT_HINT_FRAGMENTS", 3)
    monkeypatch.setattr(cli_common, "_SLOW_READ_S", -1.0)  # every read counts as slow
    code, out, err = _run(["best", "--sweep", str(folder), "--lang", "de"], capsys)
    assert code == 0 and "note: read" in err and f"fsf-sweep compact {folder}" in err
    assert "note:" not in out  # (stdout stays the answer only)
    compact(folder)
    code, _, err = _run(["best", "--sweep", str(folder), "--lang", "de"], capsys)
    assert code == 0 and "note: read" not in err
