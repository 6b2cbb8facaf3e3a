"""Tiny models and datasets in the hub's formats, for tests and smoke benchmarks.

`tiny_model(dir, arch)` writes a randomly initialised XLM-R or BERT (any depth) plus a word-level
tokenizer with `save_pretrained`; `pair_dataset(dir, schema)` writes a PAWS-X- or XNLI-shaped
dataset in the hub layout (one config per language) or as per-language files. The labels are
learnable from the words, so a few steps of training beat chance.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

__all__ = ["pair_dataset", "tiny_model", "tiny_tokenizer"]

_WORDS = [f"w{i}" for i in range(40)]
_LANGS = ("en", "de", "fr")


def _sentence(rng: random.Random, lang: str, topic: int) -> str:
    words = [f"t{topic}_{rng.randrange(4)}" for _ in range(3)]
    words += [rng.choice(_WORDS) for _ in range(rng.randrange(2, 5))]
    rng.shuffle(words)
    return " ".join(f"{w}_{lang}" if lang != "en" and rng.random() < 0.3 else w for w in words)


def tiny_tokenizer(path: str | Path, style: Literal["xlmr", "bert"] = "xlmr"):  # type: ignore[no-untyped-def]
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
            rows = []
            for i in range(n):
                t1 = rng.randrange(3)
                same = rng.random() < 0.5
                t2 = t1 if same else (t1 + rng.randrange(1, 3)) % 3
                s1, s2 = _sentence(rng, lang, t1), _sentence(rng, lang, t2)
                if schema == "pawsx":
                    rows.append({"id": i, "sentence1": s1, "sentence2": s2, "label": int(same)})
                else:
                    label = 0 if same else rng.choice((1, 2))
                    rows.append({"premise": s1, "hypothesis": s2, "label": label})
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
