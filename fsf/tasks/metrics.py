"""The metrics of the tagging and QA tasks, as their benchmarks' official scripts compute them.

* Entity-level precision / recall / F1 of tag sequences, the CoNLL way: entities (chunks) are
  read off IOB / IOB2 / IOBES tags with conlleval's rules (as `seqeval`'s default mode does:
  an `I-X` after `O` or after another type starts an entity), and an entity counts as right
  only when its type and both boundaries match. Micro-averaged over all sentences.
* Extractive QA F1 and exact match with the answer normalisation of the official MLQA
  evaluation script, `mlqa_evaluation_v1.py` (facebookresearch/MLQA): lower-case, remove
  every Unicode punctuation character (categories P*) and ASCII punctuation, remove the
  language's articles (en, es, vi, de, ar; none for hi, zh), then split on whitespace (or,
  for zh, into single CJK characters and runs of other characters). Scores are the maximum
  over the gold answers, as fractions in [0, 1] (the script prints percentages). The SQuAD
  v1.1 normalisation (`evaluate-v1.1.py`: ASCII punctuation, English articles, whitespace)
  is there too, for XQuAD.

Choices where the scripts have none (docs/tasks.md): a language the MLQA script does not know
(it raises) is normalised like `hi` (no articles, whitespace tokens); language codes are
matched on their primary subtag (`zh-CN` -> `zh`); an example without gold answers scores 1
when the prediction is empty and 0 otherwise (SQuAD v2's rule).
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Literal

__all__ = [
    "entities",
    "entity_scores",
    "normalize_answer",
    "qa_exact_match",
    "qa_f1",
    "qa_scores",
]

# ------------------------------------------------------------------------- tagging


def _split_tag(tag: str) -> tuple[str, str]:
    """`B-PER` -> ("B", "PER"); `O` -> ("O", "_"); a bare `B` -> ("B", "_")."""
    if tag in ("O", "B", "I", "E", "S"):
        return tag, "_"
    if len(tag) < 2 or tag[1] != "-" or tag[0] not in "BIES":
        raise ValueError(f"invalid tag {tag!r}: expected O or B-/I-/E-/S-<type>")
    return tag[0], tag[2:] or "_"


def _ends(prev: str, tag: str, prev_type: str, type_: str) -> bool:
    """An entity ended between the previous word and this one (conlleval's endOfChunk)."""
    return (
        prev in ("E", "S")
        or (prev in ("B", "I") and tag in ("B", "S", "O"))
        or (prev != "O" and prev_type != type_)
    )


def _starts(prev: str, tag: str, prev_type: str, type_: str) -> bool:
    """An entity starts at this word (conlleval's startOfChunk)."""
    return (
        tag in ("B", "S")
        or (prev in ("E", "S", "O") and tag in ("E", "I"))
        or (tag != "O" and prev_type != type_)
    )


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence's tags: (type, first word, last word), in order.

    >>> entities(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
    [('PER', 0, 1), ('LOC', 3, 3), ('LOC', 4, 4), ('ORG', 5, 5)]
    """
    out = []
    prev, prev_type, begin = "O", "_", 0
    for i, raw in enumerate([*tags, "O"]):
        tag, type_ = _split_tag(raw)
        if _ends(prev, tag, prev_type, type_):
            out.append((prev_type, begin, i - 1))
        if _starts(prev, tag, prev_type, type_):
            begin = i
        prev, prev_type = tag, type_
    return out


def entity_scores(
    gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]]
) -> dict[str, float]:
    """Micro precision, recall and F1 over sentences (0 where undefined, as seqeval)."""
    n_gold = n_pred = n_right = 0
    for g, p in zip(gold, predicted, strict=True):
        if len(g) != len(p):
            raise ValueError(f"a sentence has {len(g)} gold tags but {len(p)} predicted")
        eg, ep = set(entities(g)), set(entities(p))
        n_gold += len(eg)
        n_pred += len(ep)
        n_right += len(eg & ep)
    precision = n_right / n_pred if n_pred else 0.0
    recall = n_right / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


# ------------------------------------------------------------------------- QA
# As mlqa_evaluation_v1.py (https://github.com/facebookresearch/MLQA/blob/main/mlqa_evaluation_v1.py):
# PUNCT, WHITESPACE_LANGS, MIXED_SEGMENTATION_LANGS, mixed_segmentation, normalize_answer
# (lower -> remove punctuation -> remove articles -> re-tokenise), f1_score, exact_match_score.


@cache
def _punct() -> frozenset[str]:
    """Every Unicode punctuation character, plus ASCII punctuation (the script's PUNCT)."""
    return frozenset(
        chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")
    ) | frozenset(string.punctuation)


_SQUAD_PUNCT = frozenset(string.punctuation)
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # the script's pattern: its first alternative can never match (`^` after characters),
    # so every "ال" is replaced, inside words too
    "ar": re.compile(r"\sال^|ال"),
}
_MIXED_SEGMENTATION = ("zh",)

Normalization = Literal["mlqa", "squad"]


def _base_language(lang: str) -> str:
    return re.split(r"[-_]", lang, maxsplit=1)[0].lower()


def _mixed_segmentation(text: str) -> list[str]:
    """Each CJK character (and punctuation mark) is a token; other runs split on spaces."""
    punct = _punct()
    out: list[str] = []
    run = ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            out += run.split()
            run = ""
            out.append(ch)
        else:
            run += ch
    return out + run.split()


def normalize_answer(text: str, lang: str, normalization: Normalization = "mlqa") -> str:
    """The answer as the metric compares it: tokens joined by single spaces."""
    text = text.lower()
    if normalization == "squad":
        text = "".join(ch for ch in text if ch not in _SQUAD_PUNCT)
        return " ".join(_ARTICLES["en"].sub(" ", text).split())
    lang = _base_language(lang)
    punct = _punct()
    text = "".join(ch for ch in text if ch not in punct)
    if lang in _ARTICLES:
        text = _ARTICLES[lang].sub(" ", text)
    tokens = _mixed_segmentation(text) if lang in _MIXED_SEGMENTATION else text.split()
    return " ".join(t for t in tokens if t.strip())


def qa_f1(prediction: str, gold: str, lang: str, normalization: Normalization = "mlqa") -> float:
    """Token-overlap F1 of one prediction against one gold answer (0 when nothing overlaps,
    also when both are empty after normalisation, as in the script)."""
    pred = normalize_answer(prediction, lang, normalization).split()
    ref = normalize_answer(gold, lang, normalization).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_exact_match(
    prediction: str, gold: str, lang: str, normalization: Normalization = "mlqa"
) -> float:
    """1.0 when the normalised strings are equal."""
    return float(
        normalize_answer(prediction, lang, normalization)
        == normalize_answer(gold, lang, normalization)
    )


def qa_scores(
    predictions: Sequence[str],
    golds: Sequence[Sequence[str]],
    langs: Sequence[str],
    normalization: Normalization = "mlqa",
) -> dict[str, float]:
    """Mean F1 and exact match over examples, each the maximum over its gold answers."""
    if not predictions:
        return {"f1": float("nan"), "exact_match": float("nan")}
    f1 = em = 0.0
    for pred, answers, lang in zip(predictions, golds, langs, strict=True):
        if not answers:  # no gold answer: right only when nothing is predicted
            f1 += float(pred == "")
            em += float(pred == "")
            continue
        f1 += max(qa_f1(pred, a, lang, normalization) for a in answers)
        em += max(qa_exact_match(pred, a, lang, normalization) for a in answers)
    return {"f1": f1 / len(predictions), "exact_match": em / len(predictions)}
