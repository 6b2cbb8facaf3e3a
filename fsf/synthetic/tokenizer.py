"""A word-level tokenizer for the synthetic languages, trained with the ``tokenizers`` library.

The synthetic words are atomic (no morphology), so a word-level model is exact: every
surface form of every language gets one id. Special tokens and the pair template follow
XLM-R (``<s> A </s>`` and ``<s> A </s></s> B </s>``; ``<s>``=0, ``<pad>``=1, ``</s>``=2,
``<unk>``=3, ``<mask>`` = 4), so code written for ``xlm-roberta-base`` works unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "build_tokenizer"]

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def build_tokenizer(texts: Iterable[str], model_max_length: int) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on ``texts`` and wrap it for ``transformers``.

    Every word seen in ``texts`` is kept (``min_frequency`` 1); the vocabulary is ordered by
    frequency, ties broken alphabetically by the trainer, so it is deterministic.
    """
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    if [ids[t] for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens got unexpected ids: {ids}")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
        padding_side="right",
    )
