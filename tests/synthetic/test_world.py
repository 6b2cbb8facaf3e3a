"""The world generator: inventory, lexicons, grammars, determinism."""

from __future__ import annotations

import random

from fsf.synthetic.world import GRAMMARS, LANGUAGES, Clause, Frame, NounPhrase, World


def test_inventory_follows_the_study(world: World) -> None:
    assert len(world.concepts) == 77
    content = [c for c, (k, _) in world.concepts.items() if k in ("N", "V", "A")]
    assert len(content) == 60
    assert len(world.cognates) == 15


def test_lexicons_share_only_the_intended_anchors(world: World) -> None:
    en, ja = world.lexicon["en"], world.lexicon["ja"]
    shared_en_ja = {c for c in world.concepts if en[c] == ja[c]}
    assert shared_en_ja == {c for c in world.concepts if c.startswith("name")} | {"PUNCT"}
    for lang in ("fk", "fr", "cy"):
        lex = world.lexicon[lang]
        assert {c for c in world.cognates if lex[c] == en[c]} == set(world.cognates)
        others = set(world.concepts) - set(world.cognates)
        shared = {c for c in others if lex[c] == en[c]}
        assert shared == {c for c in others if c.startswith("name")} | {"PUNCT"}
    # one form never means two concepts within a language
    for lang in LANGUAGES:
        assert len(set(world.lexicon[lang].values())) == len(world.concepts)


def test_same_seed_same_world_other_seed_other_world() -> None:
    assert World(3).lexicon == World(3).lexicon
    assert World(3).lexicon != World(4).lexicon
    a = [World(3).sample_frame(random.Random(1), 0, 0.5, 0.1) for _ in range(2)]
    assert a[0] == a[1]


def test_word_orders() -> None:
    w = World(0)
    frame = Frame(
        0,
        (
            Clause(
                subj=NounPhrase("t0_N0", det="DEF", adj="t0_A0"),
                verb="t0_V0",
                obj=NounPhrase("name1"),
                pp=("P_IN", NounPhrase("t0_N1", det="INDEF")),
                neg=True,
                past=True,
            ),
        ),
    )
    assert w.linearize(frame, "en") == [
        "DEF", "t0_A0", "t0_N0", "NEG", "t0_V0", "PAST", "name1", "P_IN", "INDEF", "t0_N1", "PUNCT",
    ]  # fmt: skip
    assert w.linearize(frame, "fk") == w.linearize(frame, "en")
    assert w.linearize(frame, "fr")[:3] == ["DEF", "t0_N0", "t0_A0"]
    ja = w.linearize(frame, "ja")
    assert ja[:3] == ["t0_N1", "INDEF", "P_IN"]  # PP first, postposition, det after noun
    assert ja[-4:] == ["t0_V0", "PAST", "NEG", "PUNCT"]  # verb final
    cy = w.linearize(frame, "cy")
    assert cy[:3] == ["NEG", "PAST", "t0_V0"]  # verb first
    assert GRAMMARS["cy"].order == "VSO"


def test_excluded_concepts_are_never_used(world: World) -> None:
    rng = random.Random(0)
    exclude = frozenset(world.words("N", 1) + world.words("V", 1))
    for _ in range(200):
        assert not world.sample_frame(rng, 1, 0.9, 0.05, exclude=exclude).content() & exclude
