"""CKA rows read back as layers x steps per run and language, and averaged over runs."""

from __future__ import annotations

import numpy as np
import pytest

from fsf.analysis import cka_curves
from tests.analysis.helpers import config, evaluation, table


def _run(trial: str, policy: str, seed: int, late: float):
    evals = [
        evaluation(0, 4, 0.5, 0.4, 0.3, cka={0: {"en": [1.0, 1.0], "de": [1.0, 1.0]}}),
        evaluation(
            4,
            4,
            0.8,
            0.6,
            0.5,
            cka={2: {"en": [1.0, 0.9]}, 4: {"en": [1.0, late], "de": [0.99, late]}},
        ),
    ]
    return config(trial, seed, policy={"name": policy}), evals


def test_rows_become_matrices_per_run():
    curves = cka_curves(table([_run("a", "df", 0, 0.6), _run("b", "fsf", 0, 0.8)]))
    assert [(r.trial_id, r.policy) for r in curves.runs] == [("a", "df"), ("b", "fsf")]
    a = curves.runs[0]
    assert a.steps.tolist() == [0, 2, 4] and a.layers.tolist() == [0, 1]
    assert a.values["en"].tolist() == [[1.0, 1.0, 1.0], [1.0, 0.9, 0.6]]
    assert np.isnan(a.values["de"][1, 1])  # de was not measured at step 2
    assert curves.languages == ["de", "en"]
    assert curves.table().num_rows == 2 * (6 + 4)


def test_mean_over_seeds_on_common_steps():
    curves = cka_curves(table([_run("a", "df", 0, 0.6), _run("a", "df", 1, 0.8)]))
    steps, layers, data = curves.mean([("a", 0), ("a", 1)])
    assert steps.tolist() == [0, 2, 4] and layers.tolist() == [0, 1]
    assert data["en"][1, 2] == pytest.approx(0.7)
    assert cka_curves(table([_run("a", "df", 0, 0.6)]), task="pawsx").runs == []
