"""Entity-level F1 and MLQA's QA metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from fsf.tasks.metrics import (
    entities,
    entity_scores,
    normalize_answer,
    qa_exact_match,
    qa_f1,
    qa_scores,
)

# ---------------------------------------------------------------------------- entities


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
        (["O", "I-ORG", "I-ORG"], [("ORG", 1, 2)]),  # I- after O starts an entity (CoNLL)
        (["B-PER", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 1)]),  # a type change splits
        (["B-PER", "B-PER"], [("PER", 0, 0), ("PER", 1, 1)]),  # B- always starts one
        (["I-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),
        (["S-PER", "B-LOC", "E-LOC", "O"], [("PER", 0, 0), ("LOC", 1, 2)]),  # IOBES
        (["O", "E-LOC"], [("LOC", 1, 1)]),
        (["O", "O"], []),
        (["B-LOC", "I-LOC"], [("LOC", 0, 1)]),  # closed at the end of the sentence
    ],
)
def test_entity_boundaries(tags, expected):
    assert entities(tags) == expected


def test_invalid_tags_are_rejected():
    with pytest.raises(ValueError, match="X-PER"):
        entities(["X-PER"])


def test_partial_matches_and_wrong_types_do_not_count():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],  # PER(0,1) LOC(3,3)
        ["B-ORG", "I-ORG", "I-ORG", "O"],  # ORG(0,2)
        ["O", "O", "B-MISC"],  # MISC(2,2)
        ["O", "O"],  # nothing
    ]
    pred = [
        ["B-PER", "O", "O", "B-LOC", "I-LOC"],  # PER(0,0) LOC(3,4): both boundaries wrong
        ["B-ORG", "I-ORG", "I-ORG", "O"],  # right
        ["O", "O", "B-PER"],  # right span, wrong type
        ["B-LOC", "O"],  # spurious
    ]
    # 4 gold, 5 predicted, 1 right
    s = entity_scores(gold, pred)
    assert s["precision"] == pytest.approx(1 / 5)
    assert s["recall"] == pytest.approx(1 / 4)
    assert s["f1"] == pytest.approx(2 * 0.2 * 0.25 / 0.45)


def test_entities_never_span_two_sentences():
    gold = [["O", "B-PER"], ["I-PER", "O"]]
    assert entity_scores(gold, gold) == {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    merged = [["O", "B-PER"], ["B-PER", "O"]]  # the second sentence's entity starts anew
    assert entity_scores(gold, merged)["f1"] == 1.0


def test_no_entities_scores_zero_as_seqeval():
    assert entity_scores([["B-PER"]], [["O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert entity_scores([["O"]], [["O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    with pytest.raises(ValueError, match="2 gold tags but 1"):
        entity_scores([["O", "O"]], [["O"]])


# ---------------------------------------------------------------------------- QA


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("The Eiffel Tower!", "en", "eiffel tower"),
        ("An apple, a pear", "en", "apple pear"),
        ("«Le» „Haus“ — 2019…", "en", "le haus 2019"),  # Unicode punctuation goes too
        ("El perro de los vecinos", "es", "perro de vecinos"),
        ("Unas casas", "es", "casas"),
        ("Der Hund und das Haus", "de", "hund und haus"),
        ("dieser Hund", "de", "dieser hund"),  # whole words only
        ("cái bàn của tôi", "vi", "bàn tôi"),
        ("الكتاب الجديد", "ar", "كتاب جديد"),
        ("سالم", "ar", "س م"),  # the script removes every ال, inside words too
        ("एक किताब।", "hi", "एक किताब"),  # no articles; the danda is punctuation
        ("北京大学，2019年", "zh", "北 京 大 学 2019 年"),  # one token per character
        ("iPhone 手机", "zh", "iphone 手 机"),
        ("北京", "zh-CN", "北 京"),  # primary subtag
        ("Le chat.", "fr", "le chat"),  # unknown to the script: no articles, whitespace
    ],
)
def test_mlqa_normalisation(text, lang, expected):
    assert normalize_answer(text, lang) == expected


def test_squad_normalisation_is_english_and_ascii():
    assert normalize_answer("Der Hund, the dog", "de", "squad") == "der hund dog"
    assert normalize_answer("«Le» „Haus“", "en", "squad") == "«le» „haus“"
    assert normalize_answer("北京大学", "zh", "squad") == "北京大学"


def test_token_f1_and_exact_match():
    # "big red house" vs "red house": 2 shared, P 2/3, R 1
    assert qa_f1("the big red house", "red house", "en") == pytest.approx(0.8)
    assert qa_exact_match("the big red house", "red house", "en") == 0.0
    assert qa_exact_match("The red house.", "red house", "en") == 1.0
    assert qa_f1("x y y", "y y z", "en") == pytest.approx(2 / 3)  # counts, not sets
    # zh: characters are tokens: 4 predicted, 2 gold, 2 shared
    assert qa_f1("北京大学", "北京", "zh") == pytest.approx(2 / 3)
    assert qa_f1("北京大学", "北京", "en") == 0.0  # one whitespace token each
    assert qa_f1("Hund", "der Hund", "de") == 1.0
    assert qa_f1("Hund", "der Hund", "de", "squad") == pytest.approx(2 / 3)


def test_empty_answers_follow_the_script():
    assert qa_f1("", "house", "en") == 0.0
    assert qa_exact_match("", "house", "en") == 0.0
    # a gold answer that normalises to nothing: EM 1 but F1 0, exactly as mlqa_evaluation_v1
    assert qa_exact_match("", "the", "en") == 1.0
    assert qa_f1("", "the", "en") == 0.0


def test_scores_take_the_best_gold_answer_and_average_examples():
    preds = ["red house", "Hund", "", "x"]
    golds = [["the red house", "house"], ["der Hund"], [], []]
    langs = ["en", "de", "en", "en"]
    # mlqa: 1, 1, 1 (no answer, none predicted), 0 (no answer, one predicted)
    assert qa_scores(preds, golds, langs) == {"f1": 0.75, "exact_match": 0.75}
    squad = qa_scores(preds, golds, langs, "squad")  # "der" is no English article
    assert squad["f1"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)
    assert squad["exact_match"] == 0.5
    nan = qa_scores([], [], [])
    assert nan["f1"] != nan["f1"]  # NaN: nothing to score
