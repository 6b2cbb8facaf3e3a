"""The intents builder on a small template fixture: one label set for all languages, splits
by template with no sentence shared between splits or labels, caps, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("hassil")

from fsf.real.intents import build_intents
from fsf.testing import TINY_SOURCES

SOURCES = TINY_SOURCES
FILLERS = {
    "en": {"name": ["lamp", "fan", "heater"], "area": ["kitchen", "hall"]},
    "de": {"name": ["Lampe", "Lüfter"], "area": ["Flur", "Bad"]},
}
CAPS = {"train": 30, "dev": 6, "test": 6}


def _read(root: Path) -> dict[tuple[str, str], list[dict]]:
    out = {}
    for lang in SOURCES:
        for split in ("train", "validation", "test"):
            path = root / lang / f"{split}.jsonl"
            out[lang, split] = [json.loads(line) for line in path.read_text().splitlines()]
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("intents")
    result = build_intents(root, SOURCES, seed=3, caps=CAPS, fillers=FILLERS)
    return root, result, _read(root)


def test_one_label_set_shared_by_every_language(built):
    _, result, rows = built
    assert result.labels == ["SetLevel", "TurnOff", "TurnOn"]  # OnlyHere is English only
    for (_lang, _split), split_rows in rows.items():
        for r in split_rows:
            assert result.labels[r["label"]] == r["intent"]


def test_no_template_and_no_sentence_crosses_splits(built):
    _, _, rows = built
    for lang in SOURCES:
        templates = {
            s: {r["template"] for r in rows[lang, s]} for s in ("train", "validation", "test")
        }
        texts = {s: {r["text"] for r in rows[lang, s]} for s in ("train", "validation", "test")}
        for a, b in [("train", "test"), ("train", "validation"), ("validation", "test")]:
            assert not templates[a] & templates[b], (lang, a, b)
            assert not texts[a] & texts[b], (lang, a, b)
        assert texts["test"] and texts["train"]


def test_no_duplicates_and_no_sentence_under_two_labels(built):
    _, _, rows = built
    for lang in SOURCES:
        everything = [r for s in ("train", "validation", "test") for r in rows[lang, s]]
        texts = [r["text"] for r in everything]
        assert len(texts) == len(set(texts))


def test_slots_are_filled_from_the_fillers_and_ranges(built):
    _, _, rows = built
    text = " ".join(r["text"] for r in rows["en", "train"] + rows["en", "test"])
    assert "{" not in text and "<" not in text and "[" not in text
    assert any(name in text for name in FILLERS["en"]["name"])
    levels = [r["text"].split()[-1] for r in rows["en", "train"] if r["text"].startswith("set ")]
    assert levels and all(level.isdigit() and 1 <= int(level) <= 9 for level in levels)


def test_caps_per_intent_and_split(built):
    _, result, rows = built
    for lang in SOURCES:
        for split, cap in (("train", 30), ("validation", 6), ("test", 6)):
            per_intent = {}
            for r in rows[lang, split]:
                per_intent[r["intent"]] = per_intent.get(r["intent"], 0) + 1
            assert max(per_intent.values()) <= cap
        assert result.counts[lang] == {
            "train": len(rows[lang, "train"]),
            "dev": len(rows[lang, "validation"]),
            "test": len(rows[lang, "test"]),
        }


def test_round_robin_spreads_a_split_over_its_templates(built):
    _, _, rows = built
    train = [r for r in rows["en", "train"] if r["intent"] == "TurnOn"]
    k = len({r["template"] for r in train})
    assert k >= 3
    assert len({r["template"] for r in train[:k]}) == k  # one of each before any repeats


def test_deterministic_and_seeded(tmp_path: Path, built):
    root, _, _ = built
    build_intents(tmp_path / "again", SOURCES, seed=3, caps=CAPS, fillers=FILLERS)
    for path in root.rglob("*.jsonl"):
        assert (tmp_path / "again" / path.relative_to(root)).read_bytes() == path.read_bytes()
    build_intents(tmp_path / "other", SOURCES, seed=4, caps=CAPS, fillers=FILLERS)
    changed = [
        p
        for p in root.rglob("*.jsonl")
        if (tmp_path / "other" / p.relative_to(root)).read_bytes() != p.read_bytes()
    ]
    assert changed


def test_a_language_without_fillers_is_refused(tmp_path: Path):
    from fsf.errors import FsfError

    with pytest.raises(FsfError, match="no slot fillers for language"):
        build_intents(tmp_path, SOURCES, fillers={"en": FILLERS["en"]})


def test_an_undefined_slot_is_named(tmp_path: Path):
    from fsf.errors import FsfError

    with pytest.raises(FsfError, match=r"slot \{area\} has no values"):
        build_intents(
            tmp_path, SOURCES, fillers={"en": {"name": ["x"]}, "de": FILLERS["de"]}, caps=CAPS
        )
