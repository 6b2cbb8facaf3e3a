"""Token classification: PAN-X / WikiAnn loading by hub name (local folders in the hub's
layout), local files, first-subword labels, and the entity F1 of the task's predictions."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from fsf.errors import ConfigError
from fsf.tasks import DataError, build_task
from fsf.tasks.config import TaskConfig
from fsf.tasks.settings import ModelConfig
from fsf.testing import NER_TAGS, tagging_dataset, tiny_tokenizer


@pytest.fixture(scope="module")
def panx(tmp_path_factory):
    return tagging_dataset(tmp_path_factory.mktemp("panx") / "d", "panx")


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _wordpiece():
    """A tokenizer that splits `abcd` into `ab` `##cd`, `xyz` into `x` `##y` `##z`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "ab", "##cd", "x"])}
    vocab |= {"##y": 7, "##z": 8, "o": 9}
    t = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=t,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
    )


def test_panx_by_hub_name_reads_the_config_per_language(panx):
    task = build_task(TaskConfig(name="panx", dataset=str(panx)), ModelConfig())
    assert task.config_name == "PAN-X.{lang}" and not task.policy_iv_default
    rows = task.load("de", "dev")
    assert len(rows) == 24 and set(rows[0]) == {"tokens", "ner_tags", "langs"}
    assert task.tag_set == list(NER_TAGS)  # from the ClassLabel feature
    with pytest.raises(DataError, match=re.escape("no language 'sw' (config 'PAN-X.sw')")):
        task.load("sw", "test")


def test_wikiann_layout_has_the_language_as_config(tmp_path):
    root = tagging_dataset(tmp_path / "w", "wikiann", langs=("en", "fr"))
    task = build_task(TaskConfig(name="wikiann", dataset=str(root)), ModelConfig())
    assert len(task.load("fr", "test")) == 24
    # the same folder under PAN-X's config names fails, naming the config it looked for
    panx = build_task(TaskConfig(name="panx", dataset=str(root)), ModelConfig())
    with pytest.raises(DataError, match=re.escape("'PAN-X.fr'")):
        panx.load("fr", "test")


@pytest.mark.parametrize("tags_as", ["ids", "names"])
def test_local_files_in_the_same_schema(tmp_path, panx, tok, tags_as):
    files = tagging_dataset(tmp_path / "f", layout="files", tags_as=tags_as)
    local = build_task(
        TaskConfig(name="tagging", dataset=str(files) + "/{lang}/{split}.jsonl"), ModelConfig()
    )
    hub = build_task(TaskConfig(name="panx", dataset=str(panx)), ModelConfig())
    a = local.encode(local.load("fr", "dev"), tok)
    b = hub.encode(hub.load("fr", "dev"), tok)
    assert [f["labels"] for f in a] == [f["labels"] for f in b]  # same data, same labels


def test_labels_go_to_the_first_subword_only():
    task = build_task(TaskConfig(name="tagging", dataset="unused"), ModelConfig(max_length=16))
    ex = {"tokens": ["abcd", "o", "xyz"], "ner_tags": ["B-PER", "O", "B-LOC"]}
    (f,) = task.encode([ex], _wordpiece())
    # [CLS] ab ##cd o x ##y ##z [SEP]
    assert f["input_ids"] == [2, 4, 5, 9, 6, 7, 8, 3]
    assert f["labels"] == [-100, 1, -100, 0, 5, -100, -100, -100]
    assert f["tags"] == [1, 0, 5]


def _fake_model(logits):
    return lambda **_: SimpleNamespace(logits=logits)


def test_predictions_are_read_at_first_subwords_and_scored_per_entity():
    task = build_task(TaskConfig(name="tagging", dataset="unused"), ModelConfig(max_length=16))
    ex = {"tokens": ["abcd", "o", "xyz"], "ner_tags": [1, 0, 5]}
    feats = task.encode([ex, ex], _wordpiece())
    batch = task.collate(feats, pad_id=0)
    logits = torch.zeros(2, 8, len(NER_TAGS))
    # sentence 1: right at first subwords (the other subwords say I-ORG: ignored)
    for pos, tag in ((1, 1), (2, 4), (3, 0), (4, 5), (5, 4), (6, 4)):
        logits[0, pos, tag] = 5.0
    # sentence 2: PER right, LOC typed as ORG
    for pos, tag in ((1, 1), (3, 0), (4, 3)):
        logits[1, pos, tag] = 5.0
    preds = task.predict(_fake_model(logits), batch)
    assert preds == [[1, 0, 5], [1, 0, 3]]
    s = task.score(preds, feats)
    # 4 gold entities, 4 predicted, 3 right
    assert s == {"f1": 0.75, "precision": 0.75, "recall": 0.75}


def test_truncated_words_count_as_missed_entities():
    task = build_task(TaskConfig(name="tagging", dataset="unused"), ModelConfig(max_length=8))
    ex = {"tokens": ["abcd", "o", "o", "o", "o", "o", "xyz"], "ner_tags": [1, 0, 0, 0, 0, 0, 5]}
    (f,) = task.encode([ex], _wordpiece())
    # [CLS] ab ##cd o o o o [SEP]: 5 of the 7 words fit, the LOC entity is cut off
    assert len(f["input_ids"]) == 8
    oracle = [label for label in f["labels"] if label != -100]
    assert oracle == [1, 0, 0, 0, 0]
    s = task.score([oracle], [f])  # the missing words are predicted O
    assert s["precision"] == 1.0 and s["recall"] == 0.5


def test_tag_set_from_config_and_bad_tags(tmp_path, tok):
    files = tagging_dataset(tmp_path / "f", layout="files", tags_as="names")
    cfg = TaskConfig(
        name="tagging",
        dataset=str(files) + "/{lang}/{split}.jsonl",
        label_names=["O", "B-PER", "I-PER"],
    )
    task = build_task(cfg, ModelConfig())
    with pytest.raises(ConfigError, match=r"tag 'B-(ORG|LOC)' is in the data"):
        task.encode(task.load("en", "train"), tok)
    with pytest.raises(ConfigError, match="needs an 'O' tag"):
        build_task(TaskConfig(name="tagging", dataset="x", label_names=["B-PER"]), ModelConfig())


def test_synthetic_ner_declares_its_own_tags(tok):
    from fsf.synthetic.data import NER_TAGS as SYNTH_TAGS

    task = build_task(TaskConfig(name="tagging", dataset="synthetic:ner"), ModelConfig())
    rows = task.load("ja", "test")
    assert task.tag_set == list(SYNTH_TAGS)
    assert all(len(r["tokens"]) == len(r["ner_tags"]) for r in rows)
