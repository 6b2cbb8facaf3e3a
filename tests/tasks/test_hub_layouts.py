"""Every hub task by its hub name: the real hub-name code path (task defaults -> hub id ->
`datasets.load_dataset`), pointed by `FSF_HUB_MIRROR` at local copies laid out exactly like
the hub repositories (README `dataset_info` + `configs` globs, Parquet file names, config
names, splits, features; fsf.testing.hub_mirror)."""

from __future__ import annotations

import pytest

from fsf.config import validate_run_config
from fsf.tasks import DataError, build_task
from fsf.tasks.config import TaskConfig
from fsf.tasks.data import HUB_MIRROR_ENV
from fsf.tasks.settings import ModelConfig
from fsf.testing import NER_TAGS, XNLI_LABELS, hub_mirror


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return hub_mirror(tmp_path_factory.mktemp("hub"))


@pytest.fixture(autouse=True)
def _use_mirror(mirror, monkeypatch):
    monkeypatch.setenv(HUB_MIRROR_ENV, str(mirror))


def _task(name: str, **task):
    """The task as a user gets it by name alone: hub dataset, configs and splits by default."""
    config = validate_run_config({"task": {"name": name, **task}, "target_langs": ["de", "fr"]})
    return build_task(config.task, ModelConfig()), config


def test_xnli_by_hub_name():
    task, _ = _task("xnli")
    assert task.dataset == "facebook/xnli" and task.config_name == "{lang}"
    rows = task.load("de", "dev")
    assert len(rows) == 12 and set(rows[0]) == {"premise", "hypothesis", "label"}
    assert len(task.load("en", "train")) == 32 and len(task.load("fr", "test")) == 12
    assert task.names == list(XNLI_LABELS)  # read off the hub's ClassLabel feature


def test_pawsx_by_hub_name():
    task, _ = _task("pawsx")
    assert task.dataset == "google-research-datasets/paws-x"
    rows = task.load("fr", "test")
    assert len(rows) == 12 and set(rows[0]) == {"id", "sentence1", "sentence2", "label"}
    assert task.names == ["0", "1"]


@pytest.mark.parametrize(
    ("name", "repo"), [("panx", "google/xtreme"), ("wikiann", "unimelb-nlp/wikiann")]
)
def test_ner_by_hub_name(name, repo):
    task, _ = _task(name)
    assert task.dataset == repo
    assert task.config_name == ("PAN-X.{lang}" if name == "panx" else "{lang}")
    rows = task.load("de", "test")
    assert len(rows) == 12 and {"tokens", "ner_tags", "langs"} <= set(rows[0])
    assert task.tag_set == list(NER_TAGS)  # read off the hub's ClassLabel feature
    assert len(task.load("en", "train")) == 32


def test_mlqa_by_hub_name_reads_google_xtreme_and_trains_on_squad():
    task, config = _task("mlqa")
    assert (task.dataset, task.config_name) == ("google/xtreme", "MLQA.{lang}.{lang}")
    assert config.eval.splits == ["dev", "test"]
    dev, test = task.load("de", "dev"), task.load("de", "test")
    assert len(dev) == len(test) == 12
    # MLQA.de.de, not a cross-lingual config (MLQA.de.en, ...)
    assert {r["id"].rsplit("-", 1)[0] for r in dev} == {"validation-de-de"}
    assert {r["id"].rsplit("-", 1)[0] for r in test} == {"test-de-de"}
    train = task.load("en", "train")  # rajpurkar/squad, its one config plain_text
    assert len(train) == 32 and train[0]["id"].startswith("squad-train")
    assert set(dev[0]["answers"]) == {"text", "answer_start"}


def test_xquad_by_hub_name_evaluates_its_validation_split_as_test():
    task, config = _task("xquad")
    assert (task.dataset, task.config_name) == ("google/xquad", "xquad.{lang}")
    assert config.task.splits == {"train": "train", "test": "validation"}
    assert config.eval.splits == ["test"]  # no dev split: nothing to select on
    test = task.load("fr", "test")
    assert len(test) == 12 and test[0]["id"].startswith("x-fr")
    assert len(task.load("en", "train")) == 32
    with pytest.raises(DataError, match="no 'dev' split"):
        task.load("fr", "dev")
    # an explicit mapping still wins
    explicit = validate_run_config(
        {
            "task": {"name": "xquad", "splits": {"test": "validation", "dev": "validation"}},
            "eval": {"splits": ["dev", "test"]},
        }
    )
    assert explicit.task.splits["dev"] == "validation" and explicit.eval.splits == ["dev", "test"]


def test_a_mirror_without_the_repository_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(HUB_MIRROR_ENV, str(tmp_path))
    task = build_task(TaskConfig(name="xnli"), ModelConfig())
    with pytest.raises(DataError, match=r"holds no copy of the hub dataset 'facebook/xnli'"):
        task.load("en", "test")


def test_without_a_mirror_the_hub_name_goes_to_the_hub(monkeypatch):
    monkeypatch.delenv(HUB_MIRROR_ENV)
    task = build_task(TaskConfig(name="xnli"), ModelConfig())
    with pytest.raises(DataError, match=r"facebook/xnli.*offline"):  # tests run offline
        task.load("en", "test")


def test_a_script_only_repository_is_explained(tmp_path, monkeypatch):
    repo = tmp_path / "facebook" / "mlqa"
    repo.mkdir(parents=True)
    (repo / "mlqa.py").write_text("import datasets\n")
    monkeypatch.setenv(HUB_MIRROR_ENV, str(tmp_path))
    task = build_task(TaskConfig(name="mlqa", dataset="facebook/mlqa"), ModelConfig())
    with pytest.raises(DataError, match=r"loading script.*google/xtreme"):
        task.load("de", "test")
