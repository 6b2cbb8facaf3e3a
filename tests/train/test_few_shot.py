"""Few-shot: M examples per target language move from its dev split into training, for every
task type; for QA the unit is a question with all its windows, never a single window."""

from __future__ import annotations

from collections import Counter

import pytest

from fsf.config import validate_run_config
from fsf.tasks import build_task
from fsf.testing import pair_dataset, qa_dataset, tagging_dataset, tiny_tokenizer
from fsf.train._data import load_data as _load_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewshot")
    return {
        "tok": tiny_tokenizer(root / "tok"),
        "pawsx": pair_dataset(root / "pawsx"),
        "panx": tagging_dataset(root / "panx"),
        "mlqa": qa_dataset(root / "mlqa", sizes=(0, 16, 16)),
        "squad": qa_dataset(root / "squad", "squad", sizes=(24, 4, 0)),
    }


def _config(task: dict, m: int, seed: int = 0, splits=("dev", "test")):
    return validate_run_config(
        {
            "task": task,
            "target_langs": ["de", "fr"],
            "few_shot": {"m": m, "seed": seed},
            "eval": {"splits": list(splits)},
        }
    )


def _qa_task(data):
    return {"name": "mlqa", "dataset": str(data["mlqa"]), "train_dataset": str(data["squad"])}


def test_qa_few_shot_moves_whole_questions_out_of_dev(data):
    cfg = _config(_qa_task(data), m=3)
    task = build_task(cfg.task, cfg.model)
    train, evals = _load_data(task, cfg, data["tok"])
    zero_train, zero_evals = _load_data(task, _config(_qa_task(data), m=0), data["tok"])
    dev_ids = {lang: {f["id"] for f in es.features} for lang, es in evals["dev"].items()}
    all_ids = {lang: {f["id"] for f in es.features} for lang, es in zero_evals["dev"].items()}
    shots = {f["id"] for f in train} - {f["id"] for f in zero_train}
    assert len(shots) == 2 * 3  # 3 questions per target language
    for lang in ("de", "fr"):
        picked = {i for i in shots if i.startswith(f"validation-{lang}-")}
        assert len(picked) == 3 and picked <= all_ids[lang]
        assert not picked & dev_ids[lang]  # never evaluated
        assert dev_ids[lang] == all_ids[lang] - picked
        # every window of a picked question is in training
        windows = [f for f in zero_evals["dev"][lang].features if f["id"] in picked]
        assert len([f for f in train if f["id"] in picked]) == len(windows)
    assert dev_ids["en"] == all_ids["en"]  # the source keeps its dev split
    for lang in ("en", "de", "fr"):  # test splits are untouched
        assert len(evals["test"][lang].features) == len(zero_evals["test"][lang].features)


@pytest.mark.parametrize("kind", ["panx", "pawsx"])
def test_few_shot_examples_never_appear_in_evaluation(data, kind):
    task_cfg = {"name": kind, "dataset": str(data[kind])}
    cfg = _config(task_cfg, m=5, seed=7)
    task = build_task(cfg.task, cfg.model)
    train, evals = _load_data(task, cfg, data["tok"])
    zero_train, zero_evals = _load_data(task, _config(task_cfg, m=0), data["tok"])
    assert len(train) == len(zero_train) + 2 * 5
    shots = [tuple(f["input_ids"]) for f in train[len(zero_train) :]]
    for i, lang in enumerate(("de", "fr")):  # the worker adds de's shots, then fr's
        mine = Counter(shots[5 * i : 5 * (i + 1)])
        dev = Counter(tuple(f["input_ids"]) for f in evals["dev"][lang].features)
        before = Counter(tuple(f["input_ids"]) for f in zero_evals["dev"][lang].features)
        assert mine <= before  # taken from this language's dev split ...
        assert dev == before - mine  # ... and removed from it


def test_few_shot_sampling_is_seeded_and_needs_a_dev_split(data):
    task_cfg = {"name": "panx", "dataset": str(data["panx"])}

    def shots(seed, splits=("dev", "test")):
        cfg = _config(task_cfg, m=4, seed=seed, splits=splits)
        train, evals = _load_data(build_task(cfg.task, cfg.model), cfg, data["tok"])
        return [f["input_ids"] for f in train[-8:]], evals

    a, _ = shots(0)
    b, _ = shots(0)
    c, evals = shots(1, splits=("test",))  # dev is read for the shots, not evaluated
    assert a == b and a != c
    assert set(evals) == {"test"}
    from fsf.errors import FsfError

    cfg = _config(task_cfg, m=24)  # a dev split of 24 cannot give 24 shots and keep any
    with pytest.raises(FsfError, match=r"few_shot\.m=24"):
        _load_data(build_task(cfg.task, cfg.model), cfg, data["tok"])


def test_few_shot_is_sweepable_from_a_space():
    from fsf.sweep.points import grid_points, trial_run_config
    from fsf.sweep.space import validate_space

    spec = validate_space(
        {
            "name": "fs",
            "base": {"task": {"name": "tagging", "dataset": "synthetic:ner"}},
            "search": {
                "parameters": {
                    "few_shot.m": {"type": "categorical", "values": [0, 5, 10]},
                    "few_shot.seed": {"type": "categorical", "values": [0, 1]},
                },
                "searcher": "grid",
            },
        }
    )
    points = grid_points(spec)
    assert len(points) == 6
    cfg = trial_run_config(spec, points[-1], 0, "t")
    assert (cfg.few_shot.m, cfg.few_shot.seed) == (10, 1)
