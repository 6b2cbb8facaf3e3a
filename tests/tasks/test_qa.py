"""Extractive QA: MLQA / XQuAD / SQuAD by hub name (local folders in the hub's layout), the
original SQuAD JSON files, windows over long contexts, and answer extraction per example."""

from __future__ import annotations

import itertools
import re

import pytest

from fsf.errors import ConfigError
from fsf.tasks import DataError, build_task
from fsf.tasks.config import TaskConfig
from fsf.tasks.qa import extract_answer
from fsf.tasks.settings import ModelConfig, QAConfig
from fsf.testing import qa_dataset, tiny_tokenizer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    return {
        "mlqa": qa_dataset(root / "mlqa", "mlqa"),
        "xquad": qa_dataset(root / "xquad", "xquad", langs=("en", "de")),
        "squad": qa_dataset(root / "squad", "squad", sizes=(32, 8, 0)),
        "files": qa_dataset(root / "files", "mlqa", layout="files"),
        "squad_files": qa_dataset(root / "squad_files", "squad", layout="files", sizes=(32, 8, 0)),
    }


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _mlqa(data, **task):
    cfg = {"name": "mlqa", "dataset": str(data["mlqa"]), "train_dataset": str(data["squad"])}
    return build_task(TaskConfig(**(cfg | task)), ModelConfig(max_length=64))


def test_mlqa_by_hub_name_trains_on_squad(data):
    task = _mlqa(data)
    assert task.config_name == "MLQA.{lang}.{lang}"
    train = task.load("en", "train")  # SQuAD's default config (plain_text)
    assert len(train) == 32 and train[0]["id"].startswith("train-en")
    dev, test = task.load("de", "dev"), task.load("de", "test")  # config MLQA.de.de
    assert len(dev) == len(test) == 16 and dev[0]["id"].startswith("validation-de")
    assert {"context", "question", "answers"} <= set(dev[0])
    with pytest.raises(DataError, match=re.escape("no language 'sw' (config 'MLQA.sw.sw')")):
        task.load("sw", "test")


def test_xquad_by_hub_name(data):
    cfg = TaskConfig(
        name="xquad",
        dataset=str(data["xquad"]),
        train_dataset=str(data["squad"]),
        splits={"test": "validation"},
    )
    task = build_task(cfg, ModelConfig())
    assert task.norm == "squad" and task.config_name == "xquad.{lang}"
    assert len(task.load("de", "test")) == 16
    assert len(task.load("en", "train")) == 32


def test_original_squad_json_files_load_like_the_hub(data):
    files = build_task(
        TaskConfig(
            name="mlqa",
            dataset=str(data["files"]) + "/{split}/{split}-context-{lang}-question-{lang}.json",
            splits={"dev": "dev", "test": "test"},
            train_dataset=str(data["squad_files"] / "train-v1.1.json"),
        ),
        ModelConfig(),
    )
    hub = _mlqa(data)
    for split in ("dev", "test"):
        a, b = files.load("fr", split), hub.load("fr", split)
        assert [(r["id"], r["context"], r["answers"]) for r in a] == [
            (r["id"], r["context"], r["answers"]) for r in b
        ]
    assert [r["question"] for r in files.load("en", "train")] == [
        r["question"] for r in hub.load("en", "train")
    ]


def test_long_contexts_become_overlapping_windows_that_keep_the_answer(data, tok):
    task = _mlqa(data, qa=QAConfig(doc_stride=16))
    examples = task.load("en", "dev")
    features = task.encode(examples, tok)
    per_example = {}
    for f in features:
        per_example.setdefault(f["example"], []).append(f)
        assert len(f["input_ids"]) <= 64
    assert len(per_example) == len(examples)
    assert any(len(w) > 1 for w in per_example.values())  # some contexts need 2+ windows
    for i, windows in per_example.items():
        ex = examples[i]
        answer = ex["answers"]["text"][0]
        labelled = [w for w in windows if w["start_positions"] > 0]
        assert labelled, f"the answer of example {i} is in no window"
        for w in labelled:  # the labelled tokens are exactly the answer's characters
            s, e = w["offsets"][w["start_positions"]], w["offsets"][w["end_positions"]]
            assert ex["context"][s[0] : e[1]] == answer
        for a, b in itertools.pairwise(windows):  # consecutive windows overlap
            ctx_a = [o for o in a["offsets"] if o is not None]
            ctx_b = [o for o in b["offsets"] if o is not None]
            assert ctx_a[-16:] == ctx_b[:16]


def _window(context: str, offsets: list, example: int = 0) -> dict:
    return {"offsets": offsets, "context": context, "example": example}


def test_answer_extraction_over_windows():
    ctx = "aa bb cc dd ee"
    # window 1 sees "aa bb cc", window 2 "cc dd ee"; position 0 is <s>, 1 the question
    w1 = _window(ctx, [None, None, (0, 2), (3, 5), (6, 8)])
    w2 = _window(ctx, [None, None, (6, 8), (9, 11), (12, 14)])
    p1 = ([(3, 2.0), (0, 9.0)], [(4, 2.0), (1, 9.0)])  # <s> / question: never an answer
    p2 = ([(3, 3.0)], [(4, 2.5), (2, 9.0)])  # end before start: skipped
    assert extract_answer([(p1, w1), (p2, w2)], max_answer_length=30) == "dd ee"  # 5.5 > 4
    assert extract_answer([(p1, w1)], max_answer_length=30) == "bb cc"
    assert extract_answer([(p1, w1)], max_answer_length=1) == ""  # too long: nothing valid
    p3 = ([(6, 9.0)], [(6, 9.0)])  # beyond the window (padding)
    assert extract_answer([(p3, w1)], max_answer_length=30) == ""


def test_score_counts_examples_not_windows(data, tok):
    task = _mlqa(data, qa=QAConfig(doc_stride=16))
    examples = task.load("de", "dev")
    features = task.encode(examples, tok)
    assert len(features) > len(examples)

    def oracle(f):  # right in the window that holds the answer, <s> elsewhere
        return ([(f["start_positions"], 1.0)], [(f["end_positions"], 1.0)])

    assert task.score([oracle(f) for f in features], features) == {
        "f1": 1.0,
        "exact_match": 1.0,
    }
    # wrong (a 1-word span at the window's first context token) for the first example only
    first = [i for i, f in enumerate(features) if f["example"] == 0]
    preds = [oracle(f) for f in features]
    for i in first:
        j = next(k for k, o in enumerate(features[i]["offsets"]) if o is not None)
        preds[i] = ([(j, 50.0)], [(j, 50.0)])
    s = task.score(preds, features)
    gold = examples[0]["answers"]["text"][0]
    ctx0 = features[first[0]]
    j = next(k for k, o in enumerate(ctx0["offsets"]) if o is not None)
    predicted = ctx0["context"][slice(*ctx0["offsets"][j])]
    f1_first = 0.0 if predicted not in gold.split() else 2 / (1 + len(gold.split()))
    assert s["exact_match"] == pytest.approx(15 / 16)
    assert s["f1"] == pytest.approx((15 + f1_first) / 16)


def test_the_metric_normalises_by_the_example_language(data, tok):
    task = _mlqa(data)
    ex = {
        "id": "1",
        "context": "w1 w2 w3",
        "question": "t0_0",
        "answers": {"text": ["der w2"], "answer_start": [0]},
    }
    for lang, expected in (("de", 1.0), ("en", 2 / 3)):  # "der" is a German article
        f = task.encode([{**ex, "_fsf_lang": lang}], tok)
        pos = next(i for i, o in enumerate(f[0]["offsets"]) if o == (3, 5))  # "w2"
        assert task.score([([(pos, 1.0)], [(pos, 1.0)])], f)["f1"] == pytest.approx(expected)


def test_windows_must_leave_room_for_the_context():
    with pytest.raises(ConfigError, match="max_query_length"):
        build_task(
            TaskConfig(name="qa", dataset="x", qa=QAConfig(doc_stride=40, max_query_length=30)),
            ModelConfig(max_length=64),
        )
