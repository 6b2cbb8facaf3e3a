"""Tiny models and hub-shaped datasets (the assets half of `fsf.testing`)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

__all__ = [
    "NER_TAGS",
    "XNLI_LABELS",
    "pair_dataset",
    "qa_dataset",
    "tagging_dataset",
    "tiny_model",
    "tiny_tokenizer",
]

_WORDS = [f"w{i}" for i in range(40)]
_LANGS = ("en", "de", "fr")


def _sentence(rng: random.Random, lang: str, topic: int) -> str:
    words = [f"t{topic}_{rng.randrange(4)}" for _ in range(3)]
    words += [rng.choice(_WORDS) for _ in range(rng.randrange(2, 5))]
    rng.shuffle(words)
    return " ".join(f"{w}_{lang}" if lang != "en" and rng.random() < 0.3 else w for w in words)


def tiny_tokenizer(path: str | Path, style: Literal["xlmr", "bert"] = "xlmr"):
    """A word-level fast tokenizer over the words `pair_dataset` uses."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if style == "xlmr":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        cls, sep, pad, unk, mask = "<s>", "</s>", "<pad>", "<unk>", "<mask>"
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        cls, sep, pad, unk, mask = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"
    vocab_words = list(specials) + _WORDS + [f"t{t}_{i}" for t in range(3) for i in range(4)]
    vocab_words += [f"{w}_{lang}" for w in vocab_words[len(specials) :] for lang in _LANGS[1:]]
    vocab = {w: i for i, w in enumerate(vocab_words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if style == "xlmr":
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            pair=f"{cls} $A {sep} {sep} $B {sep}",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=cls,
        eos_token=sep,
        cls_token=cls,
        sep_token=sep,
        pad_token=pad,
        unk_token=unk,
        mask_token=mask,
    )
    fast.save_pretrained(str(path))
    return fast


def tiny_model(
    path: str | Path,
    arch: Literal["xlmr", "bert"] = "xlmr",
    layers: int = 2,
    hidden: int = 16,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised encoder + tokenizer to `path`; return `path`."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

    path = Path(path)
    tok = tiny_tokenizer(path, "xlmr" if arch == "xlmr" else "bert")
    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    if arch == "xlmr":
        cfg = XLMRobertaConfig(
            **common,
            max_position_embeddings=66,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
        )
        model = XLMRobertaForMaskedLM(cfg)
    else:
        cfg = BertConfig(**common, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
        model = BertForMaskedLM(cfg)
    model.save_pretrained(str(path))
    return path


def pair_dataset(
    path: str | Path,
    schema: Literal["pawsx", "xnli"] = "pawsx",
    layout: Literal["hub", "files"] = "hub",
    langs: tuple[str, ...] = _LANGS,
    sizes: tuple[int, int, int] = (64, 24, 24),
    seed: int = 0,
    file_format: Literal["jsonl", "parquet", "tsv"] = "jsonl",
) -> Path:
    """Write a sentence-pair dataset in the PAWS-X or XNLI schema; return its root.

    layout `hub`: `<lang>/<split>.jsonl` plus a README.md declaring one config per language
    (load with `load_dataset(root, name=lang, split=...)`, as from the hub);
    layout `files`: `<lang>/<split>.<format>` (load with the `{lang}/{split}` template).
    Label: 1 (PAWS-X) / 0 entailment (XNLI) when both sentences share a topic.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    root = Path(path)
    rng = random.Random(seed)
    split_names = ("train", "validation", "test")
    configs = []
    for lang in langs:
        (root / lang).mkdir(parents=True, exist_ok=True)
        for split, n in zip(split_names, sizes, strict=True):
            rows = _pair_rows(rng, lang, n, schema)
            target = root / lang / f"{split}.{file_format}"
            if file_format == "jsonl":
                target.write_text("".join(json.dumps(r) + "\n" for r in rows))
            elif file_format == "parquet":
                pq.write_table(pa.Table.from_pylist(rows), target)
            else:
                pacsv.write_csv(
                    pa.Table.from_pylist(rows),
                    target,
                    pacsv.WriteOptions(delimiter="\t", quoting_style="none"),
                )
        configs.append(
            f"- config_name: {lang}\n  data_files:\n"
            + "".join(f"  - split: {s}\n    path: {lang}/{s}.{file_format}\n" for s in split_names)
        )
    if layout == "hub":
        (root / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n")
    return root


_SPLITS = ("train", "validation", "test")
_NER_TYPES = ("PER", "ORG", "LOC")  # topic words t0_* are PER, t1_* ORG, t2_* LOC
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # WikiAnn's order


def _word(rng: random.Random, lang: str, word: str) -> str:
    return f"{word}_{lang}" if lang != "en" and rng.random() < 0.3 else word


def _hub_card(root: Path, configs: dict[str, dict[str, str]], default: str | None = None) -> None:
    """README.md declaring `configs` ({config: {split: path}}) as the hub's YAML does."""
    lines = ["---", "configs:"]
    for name, files in configs.items():
        lines.append(f"- config_name: {name}")
        if name == default:
            lines.append("  default: true")
        lines.append("  data_files:")
        lines += [f"  - split: {split}\n    path: {path}" for split, path in files.items()]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))


def _write_parquet(rows: list[dict], features, path: Path) -> None:
    import datasets

    datasets.disable_progress_bars()
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))


def tagging_dataset(
    path: str | Path,
    hub: Literal["panx", "wikiann"] = "panx",
    layout: Literal["hub", "files"] = "hub",
    langs: tuple[str, ...] = _LANGS,
    sizes: tuple[int, int, int] = (64, 24, 24),
    seed: int = 0,
    tags_as: Literal["ids", "names"] = "ids",
) -> Path:
    """Write a named-entity dataset in the PAN-X / WikiAnn schema; return its root.

    Rows: `tokens` (words), `ner_tags` (WikiAnn's 7 tags), `langs` (one per word, as on the
    hub). A topic word `t0_*` / `t1_*` / `t2_*` is a PER / ORG / LOC entity word; entities
    are 1-3 words long, so B- and I- tags both occur.

    layout `hub`: the hub's layout with Parquet files and the `ner_tags` ClassLabel feature:
    configs `PAN-X.<lang>` (as `google/xtreme`) or `<lang>` (as `unimelb-nlp/wikiann`),
    `<config>/<split>-00000-of-00001.parquet`; layout `files`: `<lang>/<split>.jsonl` with the
    tags as class ids or (`tags_as="names"`) as strings.
    """
    import datasets

    root = Path(path)
    rng = random.Random(seed)
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=list(NER_TAGS))),
            "langs": datasets.List(datasets.Value("string")),
        }
    )
    configs: dict[str, dict[str, str]] = {}
    for lang in langs:
        config = f"PAN-X.{lang}" if hub == "panx" else lang
        for split, n in zip(_SPLITS, sizes, strict=True):
            rows = _ner_rows(rng, lang, n)
            if layout == "hub":
                rel = f"{config}/{split}-00000-of-00001.parquet"
                _write_parquet(rows, features, root / rel)
                configs.setdefault(config, {})[split] = rel
            else:
                if tags_as == "names":
                    rows = [{**r, "ner_tags": [NER_TAGS[t] for t in r["ner_tags"]]} for r in rows]
                target = root / lang / f"{split}.jsonl"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if layout == "hub":
        _hub_card(root, configs)
    return root


def _qa_example(rng: random.Random, lang: str, length: int, idx: str) -> dict:
    """A context of `length` words; the question is a topic word that occurs once in it, the
    answer the 1-2 words right after it."""
    words = [_word(rng, lang, rng.choice(_WORDS)) for _ in range(length)]
    key = f"t{rng.randrange(3)}_{rng.randrange(4)}"
    at = rng.randrange(0, length - 2)
    words[at] = _word(rng, lang, key)
    answer_words = words[at + 1 : at + 1 + rng.randrange(1, 3)]
    context = " ".join(words)
    start = len(" ".join(words[: at + 1])) + 1
    answer = " ".join(answer_words)
    assert context[start : start + len(answer)] == answer
    return {
        "id": idx,
        "title": "t",
        "context": context,
        "question": words[at],
        "answers": {"text": [answer], "answer_start": [start]},
    }


def qa_dataset(
    path: str | Path,
    hub: Literal["mlqa", "xquad", "squad"] = "mlqa",
    layout: Literal["hub", "files"] = "hub",
    langs: tuple[str, ...] = _LANGS,
    sizes: tuple[int, int, int] = (64, 16, 16),
    seed: int = 0,
    max_words: int = 90,
) -> Path:
    """Write an extractive-QA dataset in the SQuAD schema; return its root.

    Rows: `id`, `title`, `context`, `question`, `answers` (`text`, `answer_start`). Contexts
    have 8 to `max_words` words, so with a 64-token model some need several windows.

    layout `hub`, as on the hub (Parquet, `<config>/<split>-00000-of-00001.parquet`):
    `mlqa` -> configs `MLQA.<lang>.<lang>` with `validation` and `test` (as `google/xtreme`);
    `xquad` -> configs `xquad.<lang>` with `validation` only (as `google/xquad`); `squad` ->
    one default config `plain_text` with `train` and `validation` of the first language (as
    `rajpurkar/squad`). `sizes` are (train, validation, test); splits the hub lacks are
    skipped. layout `files`: the original SQuAD / MLQA JSON format, as in MLQA_V1.zip:
    `<split>/<split>-context-<lang>-question-<lang>.json` for `dev` and `test` (`mlqa`), or
    `train-v1.1.json` / `dev-v1.1.json` (`squad`).
    """
    import datasets

    root = Path(path)
    rng = random.Random(seed)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "title": datasets.Value("string"),
            "context": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answers": {
                "text": datasets.List(datasets.Value("string")),
                "answer_start": datasets.List(datasets.Value("int32")),
            },
        }
    )
    splits = {
        "mlqa": ("validation", "test"),
        "xquad": ("validation",),
        "squad": ("train", "validation"),
    }[hub]
    n = dict(zip(_SPLITS, sizes, strict=True))
    configs: dict[str, dict[str, str]] = {}
    for lang in langs[:1] if hub == "squad" else langs:
        config = {"mlqa": f"MLQA.{lang}.{lang}", "xquad": f"xquad.{lang}", "squad": "plain_text"}[
            hub
        ]
        for split in splits:
            rows = [
                _qa_example(rng, lang, rng.randrange(8, max_words + 1), f"{split}-{lang}-{i}")
                for i in range(n[split])
            ]
            if layout == "hub":
                rel = f"{config}/{split}-00000-of-00001.parquet"
                _write_parquet(rows, features, root / rel)
                configs.setdefault(config, {})[split] = rel
                continue
            name = {"train": "train", "validation": "dev", "test": "test"}[split]
            target = (
                root / f"{name}-v1.1.json"
                if hub == "squad"
                else root / name / f"{name}-context-{lang}-question-{lang}.json"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps({"version": "1.0", "data": _squad_articles(rows)}))
    if layout == "hub":
        _hub_card(root, configs, default="plain_text" if hub == "squad" else None)
    return root


def _squad_articles(rows: list[dict]) -> list[dict]:
    """Rows -> SQuAD's nested `data` (one article, one paragraph per row)."""
    return [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": r["context"],
                    "qas": [
                        {
                            "id": r["id"],
                            "question": r["question"],
                            "answers": [
                                {"text": t, "answer_start": s}
                                for t, s in zip(
                                    r["answers"]["text"], r["answers"]["answer_start"], strict=True
                                )
                            ],
                        }
                    ],
                }
                for r in rows
            ],
        }
    ]


XNLI_LABELS = ("entailment", "neutral", "contradiction")  # facebook/xnli's ClassLabel


def _pair_rows(rng: random.Random, lang: str, n: int, schema: str) -> list[dict]:
    rows = []
    for i in range(n):
        t1 = rng.randrange(3)
        same = rng.random() < 0.5
        t2 = t1 if same else (t1 + rng.randrange(1, 3)) % 3
        s1, s2 = _sentence(rng, lang, t1), _sentence(rng, lang, t2)
        if schema == "pawsx":
            rows.append({"id": i, "sentence1": s1, "sentence2": s2, "label": int(same)})
        else:
            rows.append(
                {"premise": s1, "hypothesis": s2, "label": 0 if same else rng.choice((1, 2))}
            )
    return rows


def _ner_rows(rng: random.Random, lang: str, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        tokens: list[str] = []
        tags: list[str] = []
        length = rng.randrange(5, 12)
        while len(tokens) < length:
            if rng.random() < 0.35:
                kind = rng.randrange(3)
                for j in range(rng.randrange(1, 4)):
                    tokens.append(_word(rng, lang, f"t{kind}_{rng.randrange(4)}"))
                    tags.append(f"{'B' if j == 0 else 'I'}-{_NER_TYPES[kind]}")
            else:
                tokens.append(_word(rng, lang, rng.choice(_WORDS)))
                tags.append("O")
        ids = [NER_TAGS.index(t) for t in tags]
        rows.append({"tokens": tokens, "ner_tags": ids, "langs": [lang] * len(tokens)})
    return rows
