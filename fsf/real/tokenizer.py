"""A Hugging Face fast tokenizer from SentencePiece unigram pieces (XLM-R's layout).

XLM-R's tokenizer is a unigram model over 250,002 pieces: `<s>`, `<pad>`, `</s>`, `<unk>`
first, `<mask>` last, each with its log-probability score; text is normalised with
SentencePiece's `nmt_nfkc` rule (NMT's control-character clean-up, then NFKC, runs of spaces
collapsed), each word gets the metaspace `▁` in front, and a sequence is framed as
`<s> A </s>` (pairs `<s> A </s></s> B </s>`). This builds the same pipeline with the
`tokenizers` library, so `AutoTokenizer` loads it as `XLMRobertaTokenizerFast`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["build_tokenizer", "save_tokenizer"]

_SPECIAL = ("<s>", "<pad>", "</s>", "<unk>")


def build_tokenizer(pieces: Sequence[str], scores: Sequence[float] | np.ndarray, unk_id: int = 3):
    """A `tokenizers.Tokenizer` (unigram over `pieces` in id order, `nmt_nfkc`, metaspace,
    RoBERTa framing). `pieces` must start with XLM-R's four special pieces."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    if tuple(pieces[:4]) != _SPECIAL:
        raise ValueError(f"the first pieces must be {_SPECIAL}, got {tuple(pieces[:4])}")
    if len(pieces) != len(scores):
        raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
    vocab = [(p, float(s)) for p, s in zip(pieces, scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces.index("<s>"), pieces.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    specials = [p for p in (*_SPECIAL, "<mask>") if p in pieces]
    tok.add_special_tokens(specials)
    return tok


def save_tokenizer(tokenizer, out: str | Path, model_max_length: int) -> None:
    """Save as a `transformers` fast tokenizer (`tokenizer.json`, `tokenizer_config.json`,
    `special_tokens_map.json`) that `AutoTokenizer.from_pretrained(out)` loads."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )
    fast.save_pretrained(str(out))
    # the generic fast class, by the name both transformers 4.x and 5.x load from
    # tokenizer.json as it is (5.x's XLMRobertaTokenizer rebuilds its own normaliser)
    config_path = Path(out) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
