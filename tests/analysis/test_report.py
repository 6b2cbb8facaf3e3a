"""The sweep report leads with the answer in one unit with its intervals, keeps its plots
legible and labelled by stage, shades P1 up to the switch, and warns about importances from
few trials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fsf.analysis import report as report_module
from fsf.analysis import write_report
from fsf.analysis._report_plots import delta_heatmap, p1_shading, text_colour
from fsf.analysis.gap import detect_phases
from fsf.results.evaluation import StepRecord
from tests.analysis.helpers import config, evaluation, table
from tests.results.helpers import ev2, run, write

SWITCH = 52  # the first step in P2; evaluations every 50 steps


def _switching_run(trial: str, seed: int = 0, *, loss_rows: bool = True):
    """200 steps, evaluations at 0, 50, 100, 150, 200; P1 until step 51, P2 from 52."""

    def phase(t: int) -> str:
        return "P1" if t < SWITCH else "P2"

    # a loss that falls fast until step 50, then stays: by the loss-trend rule (window 2,
    # threshold 0.1) the first P2 step is 52, and the run records it so (as fs's would)
    losses = [6.0 - 0.1 * min(t, 50) for t in range(1, 201)]
    assert detect_phases(losses, 2, 0.1)[0] == [phase(t) for t in range(1, 201)]
    recs = [StepRecord(t, x, phase(t), None) for t, x in enumerate(losses, start=1)]
    evals = []
    for k, step in enumerate((0, 50, 100, 150, 200)):
        steps = recs[max(step - 50, 0) : step] if loss_rows else None
        evals.append(
            evaluation(step, 200, 0.6 + 0.05 * k, 0.5 + 0.03 * k, 0.45 + 0.02 * k,
                       phase=phase(step), steps=steps)
        )  # fmt: skip
    return config(trial, seed, policy={"name": "fs", "window": 2, "threshold": 0.1}), evals


def _curves_drawn(monkeypatch, results, tmp_path: Path) -> dict:
    drawn: dict = {}
    draw = report_module.gap_plot

    def capture(curves, path, **kw):
        drawn.update(curves=curves, **kw)
        draw(curves, path, **kw)

    monkeypatch.setattr(report_module, "gap_plot", capture)
    write_report(results, tmp_path / "report")
    return drawn


def test_p1_is_shaded_up_to_the_switch_not_to_the_next_evaluation(monkeypatch, tmp_path):
    """The shading came from the phase recorded at each evaluation, each evaluation owning
    the steps up to the next one: with a switch at step 52 and evaluations every 50 steps it
    ran to step 100, 48 steps past the switch. From the per-step phases it ends at 52, where
    the boundary detected from the loss is drawn."""
    drawn = _curves_drawn(monkeypatch, table([_switching_run("a"), _switching_run("a", 1)]),
                          tmp_path)  # fmt: skip
    (curve,) = drawn["curves"].values()
    assert drawn["boundaries"] == {"fs": SWITCH}
    spans, unsure = p1_shading(curve)
    assert spans == [(0.0, float(SWITCH))] and unsure == []


def test_without_per_step_phases_the_switch_is_shown_as_unknown_between_evaluations(
    monkeypatch, tmp_path
):
    drawn = _curves_drawn(monkeypatch, table([_switching_run("a", loss_rows=False)]), tmp_path)
    (curve,) = drawn["curves"].values()
    spans, unsure = p1_shading(curve)
    assert spans == [(0.0, 50.0)] and unsure == [(50.0, 100.0)]


def test_a_search_that_evaluated_dev_alone_still_draws_its_curves(monkeypatch, tmp_path):
    """`eval.splits: [dev]` (or a search's `splits: [dev]`) leaves no test score to rank the
    configurations by, and the report's answer says there is none; the gap curves are still
    drawn, each policy by its best configuration under the same rule on dev."""
    import pyarrow.compute as pc

    full = table([_switching_run("a"), _switching_run("a", 1)])
    dev_only = full.filter(pc.not_equal(full["split"], "test"))
    drawn = _curves_drawn(monkeypatch, dev_only, tmp_path)
    assert list(drawn["curves"]) == ["fs"] and drawn["boundaries"] == {"fs": SWITCH}
    assert (tmp_path / "report" / "gap.png").is_file()


def test_cell_text_is_black_on_light_and_white_on_dark_cells(tmp_path):
    import matplotlib

    viridis = matplotlib.colormaps["viridis"]
    assert text_colour(viridis(0.0)) == "white" and text_colour(viridis(1.0)) == "black"
    delta = np.array([[-0.30, -0.01, 0.02], [0.30, np.nan, 0.001]])
    verdict = np.array([["worse", "worse", "within noise"], ["better", "", "untested"]], object)
    low = np.array([[-0.35, -0.015, -0.01], [0.25, np.nan, np.nan]])
    high = np.array([[-0.25, -0.005, 0.05], [0.35, np.nan, np.nan]])
    drawn = delta_heatmap(
        ["en", "de"], ["fs", "ff", "fsf"], delta, verdict, tmp_path / "d.png",
        task="xnli", metric="accuracy", baseline="df", low=low, high=high,
    )  # fmt: skip
    cells = {(i, j): (text, colour) for i, j, text, colour in drawn}
    assert cells[0, 0] == ("-30.0\n[-35.0, -25.0]", "white")  # dark red
    assert cells[1, 0] == ("+30.0\n[+25.0, +35.0]", "white")  # dark blue
    assert cells[0, 1] == ("-1.0\n[-1.5, -0.5]", "black")  # pale red
    assert cells[0, 2] == ("~+2.0\n[-1.0, +5.0]", "black")  # grey: within noise
    assert cells[1, 2] == ("?+0.1", "black")  # one shared seed: no interval
    assert (1, 1) not in cells
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture()
def confirmed(tmp_path: Path) -> Path:
    """A search, and its confirmation where FSF (lr 2e-5) beats DF on three fresh seeds."""
    root = tmp_path / "sw"
    fsf = {"policy.name": "fsf", "optim.lr": 2e-5}
    df = {"policy.name": "df", "optim.lr": 1e-5}
    write(root / "results", [
        run("s1", [ev2(10, 0.8, 0.7, 0.6)], params=fsf, lr=2e-5),
        run("s2", [ev2(10, 0.8, 0.6, 0.5)], params=df, policy="df"),
    ])  # fmt: skip
    (root / "sweep.json").write_text(json.dumps({"name": "sw"}))
    runs = []
    for seed, (a, b) in zip((100, 101, 102), ((0.71, 0.62), (0.73, 0.61), (0.72, 0.64)),
                            strict=True):  # fmt: skip
        runs.append(run("c1", [ev2(10, 0.8, a, a - 0.1)], seed=seed, params=fsf, lr=2e-5))
        runs.append(run("c2", [ev2(10, 0.8, b, b - 0.1)], seed=seed, params=df, policy="df"))
    write(root / "confirm" / "results", runs)
    candidates = [
        {"params": fsf, "trial_id": "s1", "rank": 1, "role": "candidate"},
        {"params": df, "trial_id": "s2", "rank": 2, "role": "baseline"},
    ]
    meta = {"name": "sw", "stage": "confirm", "seeds": [100, 101, 102], "candidates": candidates}
    (root / "confirm" / "sweep.json").write_text(json.dumps(meta))
    return root


def test_the_report_leads_with_the_answer_in_points_with_intervals(confirmed, tmp_path):
    rep = write_report(confirmed, tmp_path / "r")
    md = rep.markdown.read_text()
    headings = re.findall(r"^## (.*)$", md, re.M)
    assert headings[0] == "The answer (confirmation on fresh seeds, task xnli)"
    answer = md.split("## The answer", 1)[1].split("\n## ", 1)[0]
    assert "policy **fsf** with optim.lr=2e-05 (trial c1; the search's #1, trial s1)" in answer
    assert "3 seed(s) [100, 101, 102]" in answer
    # target mean: FSF 67.00 (de 72, sw 62) vs DF 57.33; per seed +9, +12, +8 points
    row = next(line for line in answer.splitlines() if line.startswith("| target-mean |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].startswith("67.00 ± ") and cells[2] == "57.33"
    assert re.fullmatch(r"\+9\.67 \[\+4\.\d\d, \+14\.\d\d\]", cells[3]), cells[3]
    assert cells[5] == "better" and cells[6] == "3"
    assert "| de | 72.00 ± " in answer and "| sw | 62.00 ± " in answer
    assert "| en (source) |" in answer
    # one unit everywhere: the per-language and the policies' tables in points too
    assert "| de | 72.00 | 1.00 | 3 | +9.67 [" in md
    assert "| xnli | fsf | 1 | 3 | 67.00 | 80.00 | 13.00 | 3 | +9.67 [" in md
    # plots grouped and titled by stage
    assert "## Plots: confirmation on fresh seeds" in md and "## Plots: search stage" in md
    assert "### Difference to the baseline per language (confirmation, fresh seeds 100, 101, " in md
    assert "### Scores per language (search stage)" in md
    assert md.index("## Plots: confirmation") < md.index("## Plots: search stage")


def test_a_missing_baseline_is_a_warning_in_the_answer(confirmed, tmp_path):
    for path in (confirmed / "confirm" / "results").glob("trial=c2/*.parquet"):
        path.unlink()
    md = write_report(confirmed, tmp_path / "r").markdown.read_text()
    answer = md.split("## The answer", 1)[1].split("\n## ", 1)[0]
    assert "| target-mean | " in answer and "| MISSING |" in answer
    assert "**Warning:** no comparison with the baseline for target-mean, de, sw, en" in answer
