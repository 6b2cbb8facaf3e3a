"""Loading XNLI- and PAWS-X-shaped data: the hub path (pointed at a local hub-layout folder)
and local files, through the same loader real data takes."""

from __future__ import annotations

import pytest

from fsf.tasks import DataError, build_task, load_split
from fsf.tasks.config import TaskConfig
from fsf.tasks.settings import ModelConfig
from fsf.testing import pair_dataset, tiny_tokenizer


def test_hub_layout_folder_loads_like_a_hub_dataset(assets):
    rows = load_split(str(assets["pawsx"]), "fr", "validation")
    assert len(rows) == 24
    assert set(rows[0]) == {"id", "sentence1", "sentence2", "label"}
    xnli = load_split(str(assets["xnli"]), "de", "test")
    assert set(xnli[0]) == {"premise", "hypothesis", "label"}
    assert {r["label"] for r in xnli} <= {0, 1, 2}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "tsv"])
def test_file_templates(tmp_path, fmt):
    root = pair_dataset(tmp_path / "d", "pawsx", layout="files", file_format=fmt)
    rows = load_split(str(root) + "/{lang}/{split}." + fmt, "de", "train")
    assert len(rows) == 64 and int(rows[0]["label"]) in (0, 1)


def test_tasks_encode_pairs_with_the_right_schema(assets, tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    for name, data in (("pawsx", assets["pawsx"]), ("xnli", assets["xnli"])):
        task = build_task(TaskConfig(name=name, dataset=str(data)), ModelConfig(max_length=64))
        examples = task.load("en", "dev")
        features = task.encode(examples, tok)
        assert len(features) == len(examples)
        sep = tok.sep_token_id
        assert features[0]["input_ids"].count(sep) == 3  # <s> A </s></s> B </s>
        batch = task.collate(features[:4], tok.pad_token_id)
        assert batch["input_ids"].shape[0] == 4
        assert task.score([f["label"] for f in features], features)["accuracy"] == 1.0


def test_missing_language_and_split_are_clear(assets):
    with pytest.raises(DataError, match="no language 'sw'"):
        load_split(str(assets["pawsx"]), "sw", "test")
    with pytest.raises(DataError, match="split"):
        load_split(str(assets["pawsx"]), "en", "dev-matched")
    with pytest.raises(DataError, match="does not exist"):
        load_split("/nowhere/{lang}/{split}.jsonl", "en", "train")


def test_wrong_text_fields_name_the_columns(assets, tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    task = build_task(
        TaskConfig(
            name="classification",
            dataset=str(assets["pawsx"]),
            text_fields=["premise"],
            num_labels=2,
        ),
        ModelConfig(),
    )
    from fsf.errors import ConfigError

    with pytest.raises(ConfigError, match="sentence1"):
        task.encode(task.load("en", "dev"), tok)


def test_same_folder_name_different_data_is_not_served_from_a_stale_cache(tmp_path):
    # datasets keys the cache of a README-configured folder by its name: fsf must not
    a = pair_dataset(tmp_path / "a" / "pawsx", sizes=(5, 2, 2))
    b = pair_dataset(tmp_path / "b" / "pawsx", sizes=(7, 2, 2), seed=3)
    assert len(load_split(str(a), "en", "train")) == 5
    assert len(load_split(str(b), "en", "train")) == 7
    import shutil

    shutil.rmtree(a)
    a = pair_dataset(tmp_path / "a" / "pawsx", sizes=(9, 2, 2))
    from fsf.tasks.data import _load

    _load.cache_clear()  # a new process would not have the in-memory cache
    assert len(load_split(str(a), "en", "train")) == 9
