"""Gap curves: scores per step, the P1/P2 boundary detected from a recorded loss curve, and
queries that ignore the analysis rows."""

from __future__ import annotations

import pytest

from fsf.analysis import gap_curves
from fsf.results import best, best_per_language, summary
from fsf.results._errors import ResultsUsageError
from fsf.results.evaluation import StepRecord
from tests.analysis.helpers import config, evaluation, table

# Falls fast, then flat. Window 2, threshold 0.1, by hand (a = previous window's mean,
# b = last window's mean; P1 while a - b > 0.1, and before 2w = 4 losses):
# t=4: 1.8-1.0=0.8 P1; t=5: 1.4-0.75=0.65 P1; t=6: 1.0-0.695=0.305 P1; t=7: 0.75-0.69 P2.
LOSSES = [2.0, 1.6, 1.2, 0.8, 0.7, 0.69, 0.69, 0.69]
BOUNDARY = 7


def _run(trial: str, seed: int = 0, recorded_switch: int | None = None, **over):
    """8 steps, evaluations at 0, 4, 8; the recorded phase switches at `recorded_switch`
    (None: never, as a policy that switches by a fixed fraction late could)."""

    def phase(t: int) -> str:
        return "P2" if recorded_switch is not None and t >= recorded_switch else "P1"

    recs = [StepRecord(t, x, phase(t), None) for t, x in enumerate(LOSSES, start=1)]
    evals = [
        evaluation(0, 8, 0.60, 0.58, 0.56, phase="P1"),
        evaluation(4, 8, 0.80, 0.70, 0.66, phase=phase(4), steps=recs[:4]),
        evaluation(8, 8, 0.84, 0.66, 0.60, phase=phase(8), steps=recs[4:]),
    ]
    return config(trial, seed, **over), evals


def test_boundary_is_detected_from_the_loss_curve_by_the_papers_rule():
    gc = gap_curves(table([_run("a", recorded_switch=None)]))
    (r,) = gc.runs
    assert r.loss_steps.tolist() == list(range(1, 9))
    assert r.detected_phase == ["P1"] * (BOUNDARY - 1) + ["P2"] * (9 - BOUNDARY)
    assert r.detected_switch == BOUNDARY
    assert r.recorded_switch is None  # what the run recorded is kept, not overwritten
    assert r.detected_at_evaluations() == ["P1", "P1", "P2"]
    # a stricter threshold flags the flattening earlier: t=6 has a - b = 0.305 < 0.5
    assert gap_curves(table([_run("a")]), threshold=0.5).runs[0].detected_switch == 6


def test_curves_and_growth_by_hand():
    gc = gap_curves(table([_run("a", recorded_switch=BOUNDARY)]))
    r = gc.runs[0]
    assert r.steps.tolist() == [0, 4, 8]
    assert r.source["test"].tolist() == pytest.approx([0.60, 0.80, 0.84])
    assert r.target_mean["dev"].tolist() == pytest.approx([0.57, 0.68, 0.63])
    assert r.gap("dev").tolist() == pytest.approx([0.03, 0.12, 0.21])
    assert r.recorded_switch == BOUNDARY == r.detected_switch
    g = r.growth("dev")  # gap x100: 3, 12, 21; last evaluation at or before step 7: step 4
    assert g["gap_start"] == pytest.approx(3) and g["gap_end"] == pytest.approx(21)
    assert g["gap_switch"] == pytest.approx(12)
    assert g["growth_p1"] == pytest.approx(9 / 4 * 100)
    assert g["growth_p2"] == pytest.approx(9 / 4 * 100)
    rows = gc.table().to_pylist()
    assert len(rows) == 6 and {x["split"] for x in rows} == {"dev", "test"}
    assert [x["phase_detected"] for x in rows if x["split"] == "dev"] == ["P1", "P1", "P2"]
    (s,) = gc.summary()
    assert (s["switch_detected"], s["switch_recorded"], s["window"]) == (7, 7, 2)


def test_runs_without_a_loss_curve_get_a_note_not_a_guess():
    cfg, evals = _run("a")
    for ev in evals:
        ev.train_steps = []
    gc = gap_curves(table([(cfg, evals)]))
    assert gc.runs[0].detected_switch is None and gc.runs[0].note
    assert gc.notes and "no per-step training loss" in gc.notes[0]
    with pytest.raises(ResultsUsageError, match="window"):
        gap_curves(table([(cfg, evals)]), window=0)


def test_queries_ignore_analysis_rows():
    runs = [_run("a"), _run("b", seed=1)]
    runs[0][1][1].cka = {4: {"en": [1.0, 0.9], "de": [1.0, 0.8]}}
    with_rows = table(runs)
    plain = table([(cfg, [_strip(ev) for ev in evals]) for cfg, evals in runs])
    assert with_rows.num_rows > plain.num_rows
    a, b = best_per_language(with_rows).to_dict(), best_per_language(plain).to_dict()
    assert a["languages"] == b["languages"] and a["target_mean"] == b["target_mean"]
    assert best(with_rows, "de").entries == best(plain, "de").entries
    sa, sb = summary(with_rows), summary(plain)
    assert sa["policies"] == sb["policies"] and sa["objectives"] == sb["objectives"]
    with pytest.raises(ResultsUsageError, match="unknown metric 'loss'"):
        best(with_rows, "de", metric="loss")


def _strip(ev):
    import dataclasses

    return dataclasses.replace(ev, train_steps=[], cka={})
