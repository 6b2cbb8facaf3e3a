"""Real multilingual text: voice-assistant intents from Home Assistant's sentence templates.

`home-assistant-intents` holds human-written templates (`(turn|switch) on [the] {name}`) for
about 42 intents in 65 languages, one label set for all; `hassil` parses them. This module
turns them into a classification benchmark in fsf's local layout
(`<out>/<lang>/{train,validation,test}.jsonl`, rows `{"text", "label", "intent",
"template"}`; `validation` is fsf's dev split):

- the label set is the intents present in every chosen language;
- each template is expanded by random walks through its alternatives, optional words and
  slots (fsf's own fillers for the slots a home defines, `fsf.real._fillers`; the package's
  own lists and number ranges otherwise), seeded per template, so the build is deterministic;
- **splits are made by template**: each intent's templates in a language are shuffled and
  dealt to test, dev and train, so no test sentence is a re-filling of a training template;
  a sentence that two splits produced is kept only in the first of test, dev, train, and
  duplicates within a split are dropped;
- each (language, split, intent) keeps at most a fixed number of sentences, taken round-robin
  across its templates so that no template dominates.

The sentences are formulaic, and the languages are not translations of each other.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsf.errors import FsfError
from fsf.real._fillers import FILLERS

__all__ = [
    "CC100_GIB",
    "DEFAULT_CAPS",
    "LANGUAGES",
    "PACKAGE_CODES",
    "IntentsBuild",
    "build_intents",
    "load_sources",
    "resource_level",
]

#: The benchmark's languages: six scripts (Latin, Cyrillic, Greek, Arabic, Thai, Han),
#: high- to lower-resource in XLM-R's pre-training data (en ... el, bg, th).
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "ru", "pl", "bg", "el", "hu", "ar", "th", "zh")
#: Each language's share of XLM-R's pre-training corpus, CC-100, in GiB (Conneau et al. 2020,
#: Table 6): all 14 are well resourced there (28-301 GiB); the template package covers no
#: truly low-resource language with enough intents. multilingual-e5-small's own training data
#: differ; these are a reference, not its exposure.
CC100_GIB = {
    "en": 300.8, "ru": 278.0, "th": 71.7, "de": 66.6, "hu": 58.4, "bg": 57.5, "fr": 56.8,
    "es": 53.3, "el": 46.9, "zh": 46.9, "pl": 44.6, "it": 30.2, "nl": 29.3, "ar": 28.0,
}  # fmt: skip


def resource_level(lang: str) -> str:
    """`high` (>= 100 GiB of CC-100), `mid` (>= 40) or `low` (< 40): relative to this set."""
    gib = CC100_GIB[lang]
    return "high" if gib >= 100 else "mid" if gib >= 40 else "low"


#: fsf's language code -> the package's.
PACKAGE_CODES = {"zh": "zh-CN"}
#: Sentences kept per (language, split, intent).
DEFAULT_CAPS = {"train": 200, "dev": 6, "test": 12}
#: Most random walks per template (fewer where the cap needs fewer); distinct ones are kept.
DRAWS_PER_TEMPLATE = 48
_SPLIT_ORDER = ("test", "dev", "train")
#: fsf's split -> its file name (the hub's names, which fsf's loader maps by default).
_FILE_NAMES = {
    "train": "train",
    "dev": "validation",
    "test": "test",
}  # who keeps a sentence two splits produced
_MAX_DEPTH = 64  # expansion rules nest a few levels; a cycle would recurse for ever


class IntentsError(FsfError):
    exit_code = 2


@dataclass
class IntentsBuild:
    """What `build_intents` wrote: the label set, rows per (language, split), templates per
    (language, split), and duplicates removed."""

    labels: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    templates: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates_removed: dict[str, int] = field(default_factory=dict)


def load_sources(langs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The package's intents of each language (fsf codes), as `hassil` reads them."""
    import home_assistant_intents

    out = {}
    for lang in langs:
        data = home_assistant_intents.get_intents(PACKAGE_CODES.get(lang, lang))
        if not data:
            raise IntentsError(f"home-assistant-intents has no intents for language {lang!r}")
        out[lang] = data
    return out


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little")


class _Expander:
    """Random walks through a hassil expression tree (the same cases as `hassil.sample`)."""

    def __init__(self, lang: str, slot_lists: Mapping[str, Any], rules: Mapping[str, Any]):
        from hassil import expression as ex
        from hassil.intents import RangeSlotList, TextSlotList
        from hassil.util import normalize_whitespace

        self.lang, self.slot_lists, self.rules = lang, slot_lists, rules
        self._ex, self._text, self._range = ex, TextSlotList, RangeSlotList
        self._normalize = normalize_whitespace
        self._numbers: dict[str, list] = {}

    def draw(self, expr: Any, rng: random.Random, depth: int = 0) -> str:
        ex = self._ex
        if depth > _MAX_DEPTH:
            raise IntentsError(f"{self.lang}: templates nest deeper than {_MAX_DEPTH} levels")
        if isinstance(expr, ex.TextChunk):
            return expr.original_text
        if isinstance(expr, ex.Alternative):
            return self.draw(rng.choice(expr.items), rng, depth + 1)
        if isinstance(expr, ex.Permutation):
            items = list(expr.items)
            rng.shuffle(items)
            return self._normalize("".join(self.draw(i, rng, depth + 1) for i in items)).strip()
        if isinstance(expr, ex.Sequence):
            return self._normalize("".join(self.draw(i, rng, depth + 1) for i in expr.items))
        if isinstance(expr, ex.RuleReference):
            rule = self.rules.get(expr.rule_name)
            if rule is None:
                raise IntentsError(f"{self.lang}: missing expansion rule <{expr.rule_name}>")
            return self.draw(rule.expression, rng, depth + 1)
        if isinstance(expr, ex.ListReference):
            return self._slot(expr.list_name, rng, depth)
        raise IntentsError(f"{self.lang}: unexpected template part {type(expr).__name__}")

    def _slot(self, name: str, rng: random.Random, depth: int) -> str:
        slot = self.slot_lists.get(name)
        if isinstance(slot, self._text) and slot.values:
            return self.draw(rng.choice(slot.values).text_in, rng, depth + 1)
        if isinstance(slot, self._range):
            if name not in self._numbers:
                self._numbers[name] = list(slot.get_numbers())
            number = rng.choice(self._numbers[name])
            if slot.digits:
                return str(number)
            from hassil.numbers import get_rbnf_engine

            words = get_rbnf_engine(slot.words_language or self.lang).format_number(number)
            return sorted(set(words.text_by_ruleset.values()))[0]
        raise IntentsError(f"{self.lang}: slot {{{name}}} has no values and no filler")


def _templates(lang: str, source: Mapping[str, Any], fillers: Mapping[str, Sequence[str]]):
    """intent -> list of (template text, expander, parsed sentence) in the package's order."""
    from hassil import Intents
    from hassil.intents import TextSlotList

    intents = Intents.from_dict(dict(source))
    filled = {name: TextSlotList.from_strings(list(values)) for name, values in fillers.items()}
    out: dict[str, list[tuple[str, _Expander, Any]]] = {}
    for name, intent in intents.intents.items():
        seen: set[str] = set()
        for data in intent.data:
            rules = {**intents.expansion_rules, **data.expansion_rules}
            slots = {**intents.slot_lists, **data.slot_lists, **filled}
            expander = _Expander(lang, slots, rules)
            for sentence in data.sentences:
                text = sentence.text or ""
                if text in seen:
                    continue
                seen.add(text)
                out.setdefault(name, []).append((text, expander, sentence))
    return out


def _deal(templates: list, rng: random.Random) -> dict[str, list]:
    """Shuffle one intent's templates and deal them to test, dev and train (about 20 / 20 /
    60 %; with fewer than 3 templates: test first, then dev, no train)."""
    order = list(templates)
    rng.shuffle(order)
    n = len(order)
    n_test = max(1, round(0.2 * n))
    n_dev = max(1, round(0.2 * n)) if n >= 3 else n - n_test
    return {
        "test": order[:n_test],
        "dev": order[n_test : n_test + n_dev],
        "train": order[n_test + n_dev :],
    }


def _round_robin(per_template: list[tuple[tuple, list[str]]], cap: int) -> list[tuple[str, str]]:
    """Up to `cap` (template text, sentence) pairs, one from each template in turn."""
    out: list[tuple[str, str]] = []
    queues = [(t[0], list(q)) for t, q in per_template if q]
    while queues and len(out) < cap:
        for entry in list(queues):
            if len(out) >= cap:
                break
            out.append((entry[0], entry[1].pop(0)))
            if not entry[1]:
                queues.remove(entry)
    return out


def build_intents(
    out: str | Path,
    sources: Mapping[str, Mapping[str, Any]],
    *,
    seed: int = 0,
    caps: Mapping[str, int] | None = None,
    fillers: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    draws: int = DRAWS_PER_TEMPLATE,
) -> IntentsBuild:
    """Write `<out>/<lang>/<split>.jsonl` for every language of `sources` (the package's
    intents per fsf language code, `load_sources`) and return what was written."""
    caps = dict(DEFAULT_CAPS if caps is None else caps)
    fillers = FILLERS if fillers is None else fillers
    langs = list(sources)
    missing = [lang for lang in langs if lang not in fillers]
    if missing:
        raise IntentsError(f"no slot fillers for language(s) {', '.join(missing)}")
    parsed = {lang: _templates(lang, sources[lang], fillers[lang]) for lang in langs}
    labels = sorted(set.intersection(*(set(p) for p in parsed.values())))
    if len(labels) < 2:
        raise IntentsError(
            f"the languages {', '.join(langs)} share {len(labels)} intent(s); need >= 2"
        )
    result = IntentsBuild(labels=labels)
    out = Path(out)
    for lang in langs:
        # intent -> split -> [(template, its distinct sentences)]
        drawn: dict[str, dict[str, list[tuple[tuple, list[str]]]]] = {}
        for intent in labels:
            dealt = _deal(parsed[lang][intent], random.Random(_seed(seed, lang, intent, "deal")))
            drawn[intent] = {}
            for split in _SPLIT_ORDER:
                # enough walks for the cap, twice over, spread across the split's templates
                n = min(draws, max(4, -(-2 * caps[split] // max(1, len(dealt[split])))))
                drawn[intent][split] = [
                    (t, _draws(t, random.Random(_seed(seed, lang, intent, t[0])), n))
                    for t in dealt[split]
                ]
        # a sentence two intents produced is ambiguous: dropped everywhere
        owners: dict[str, set[str]] = {}
        for intent, splits in drawn.items():
            for per_template in splits.values():
                for _, sentences in per_template:
                    for s in sentences:
                        owners.setdefault(s, set()).add(intent)
        ambiguous = {s for s, o in owners.items() if len(o) > 1}
        rows: dict[str, list[dict]] = {s: [] for s in _SPLIT_ORDER}
        removed = 0
        for label, intent in enumerate(labels):
            taken: set[str] = set(ambiguous)
            for split in _SPLIT_ORDER:  # test first: it keeps a sentence two splits made
                per_template = []
                for template, sentences in drawn[intent][split]:
                    fresh = [s for s in sentences if s not in taken]
                    removed += len(sentences) - len(fresh)
                    per_template.append((template, fresh))
                for _, fresh in per_template:
                    taken.update(fresh)
                kept = _round_robin(per_template, caps[split])
                rows[split] += [
                    {"text": s, "label": label, "intent": intent, "template": template}
                    for template, s in kept
                ]
        for split, split_rows in rows.items():
            path = out / lang / f"{_FILE_NAMES[split]}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows))
        result.counts[lang] = {s: len(rows[s]) for s in ("train", "dev", "test")}
        result.templates[lang] = {
            s: sum(len(drawn[i][s]) for i in labels) for s in ("train", "dev", "test")
        }
        result.duplicates_removed[lang] = removed
    return result


def _draws(template: tuple, rng: random.Random, draws: int) -> list[str]:
    """Up to `draws` distinct expansions of one template, in the order drawn."""
    _, expander, sentence = template
    out: dict[str, None] = {}
    for _ in range(draws):
        s = expander.draw(sentence.expression, rng).strip()
        if s:
            out.setdefault(s)
    return list(out)
