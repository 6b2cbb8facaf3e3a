"""Task data: determinism, PAWS-X schema, balance, parallel dev/test, hub layout."""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path

import pytest

from fsf.synthetic.build import sha256
from fsf.synthetic.data import SPLITS, TASKS, generate_task, write_task
from fsf.synthetic.world import GRAMMARS, LANGUAGES, SOURCE_LANGUAGE, World


@pytest.fixture(scope="module")
def pawsx(world: World) -> dict:
    return generate_task(world, "pawsx")


@pytest.fixture(scope="module")
def topic(world: World) -> dict:
    return generate_task(world, "topic")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in folder.rglob("*") if p.is_file()}


def test_same_seed_identical_files_other_seed_different(tmp_path: Path) -> None:
    write_task(World(0), "pawsx", tmp_path / "a")
    write_task(World(0), "pawsx", tmp_path / "b")
    write_task(World(1), "pawsx", tmp_path / "c")
    a, b, c = (_hashes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".jsonl"))


def test_pawsx_schema_and_balance(pawsx: dict) -> None:
    spec = TASKS["pawsx"]
    for lang in LANGUAGES:
        assert set(pawsx[lang]) == set(SPLITS)
        for split, records in pawsx[lang].items():
            for r in records:
                assert list(r) == ["id", "sentence1", "sentence2", "label"]
                assert isinstance(r["id"], int) and isinstance(r["label"], int)
                assert isinstance(r["sentence1"], str) and isinstance(r["sentence2"], str)
                assert r["label"] in (0, 1)
            assert [r["id"] for r in records] == list(range(1, len(records) + 1))
            share = sum(r["label"] for r in records) / len(records)
            assert 0.45 <= share <= 0.55, (lang, split, share)
    assert len(pawsx["en"]["train"]) == spec.train_source
    assert len(pawsx["fr"]["train"]) == spec.train_other


def test_topic_schema_and_balance(topic: dict) -> None:
    for lang in LANGUAGES:
        for records in topic[lang].values():
            assert all(list(r) == ["text", "label"] for r in records)
            counts = collections.Counter(r["label"] for r in records)
            assert sorted(counts) == [0, 1, 2, 3]
            assert max(counts.values()) - min(counts.values()) <= 1


def _names(sentence: str) -> list[str]:
    return sorted(w for w in sentence.split() if w[0].isupper())


@pytest.mark.parametrize("task", ["topic", "pawsx"])  # ner, qa: tests of their own below
def test_dev_and_test_are_parallel(task: str, pawsx: dict, topic: dict) -> None:
    data = {"pawsx": pawsx, "topic": topic}[task]
    key = "sentence1" if task == "pawsx" else "text"
    for split in ("validation", "test"):
        src = data[SOURCE_LANGUAGE][split]
        for lang in LANGUAGES:
            other = data[lang][split]
            assert [r["label"] for r in other] == [r["label"] for r in src]
            # the same frame in every language: the same proper names (shared forms)
            assert [_names(r[key]) for r in other] == [_names(r[key]) for r in src]
    # train splits are separate samples per language
    assert data["en"]["train"][0] != data["fr"]["train"][0]


def test_pair_sentences_share_no_content_word(world: World, pawsx: dict) -> None:
    for lang in ("en", "ja"):
        content = {
            world.lexicon[lang][c] for c, (k, _) in world.concepts.items() if k in ("N", "V", "A")
        }
        for r in pawsx[lang]["test"]:
            shared = set(r["sentence1"].split()) & set(r["sentence2"].split()) & content
            assert not shared


def test_hub_layout_loads_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / "pawsx"
    write_task(World(0), "pawsx", folder)
    ds = datasets.load_dataset(
        str(folder), name="fr", split="validation", cache_dir=str(tmp_path / "cache")
    )
    assert ds.column_names == ["id", "sentence1", "sentence2", "label"]
    assert ds.features["label"].names == ["0", "1"]
    assert ds.features["id"].dtype == "int32"
    first = json.loads((folder / "fr" / "validation.jsonl").open().readline())
    assert ds[0] == first
    assert datasets.get_dataset_config_names(str(folder)) == list(LANGUAGES)


# ---------------------------------------------------------------------------- ner and qa


@pytest.fixture(scope="module")
def ner(world: World) -> dict:
    return generate_task(world, "ner")


@pytest.fixture(scope="module")
def qa(world: World) -> dict:
    return generate_task(world, "qa")


def _concepts(world: World, lang: str) -> dict[str, str]:
    """Surface form -> concept id of one language (forms are unique within a language)."""
    return {form: c for c, form in world.lexicon[lang].items()}


def test_ner_tags_every_noun_phrase_with_its_noun_type(world: World, ner: dict) -> None:
    from fsf.synthetic.data import NER_TAGS
    from fsf.tasks.metrics import entities

    for lang in LANGUAGES:
        concept = _concepts(world, lang)
        for split in SPLITS:
            for r in ner[lang][split]:
                assert list(r) == ["tokens", "ner_tags"]
                assert len(r["tokens"]) == len(r["ner_tags"])
                tags = [NER_TAGS[t] for t in r["ner_tags"]]
                for typ, first, last in entities(tags):
                    assert tags[first].startswith("B-")  # IOB2: every entity opens with B-
                    nouns = [
                        concept[w]
                        for w in r["tokens"][first : last + 1]
                        if world.concepts[concept[w]][0] in ("N", "NAME")
                    ]
                    assert len(nouns) == 1, (lang, r)  # one noun phrase, one noun
                    noun = nouns[0]
                    topic = world.topic_of(noun)
                    expected = (
                        "PER" if noun.startswith("name") else "GEN" if topic < 0 else f"T{topic}"
                    )
                    assert typ == expected
                # every noun is inside an entity
                for w, t in zip(r["tokens"], tags, strict=True):
                    if world.concepts[concept[w]][0] in ("N", "NAME"):
                        assert t != "O"


def test_ner_dev_and_test_are_parallel(ner: dict) -> None:
    from collections import Counter

    from fsf.synthetic.data import NER_TAGS
    from fsf.tasks.metrics import entities

    def shape(r: dict, lengths: bool = True) -> Counter:  # positions differ by language
        spans = entities([NER_TAGS[t] for t in r["ner_tags"]])
        return Counter((typ, last - first if lengths else 0) for typ, first, last in spans)

    for split in ("validation", "test"):
        src = [shape(r) for r in ner[SOURCE_LANGUAGE][split]]
        for lang in LANGUAGES:
            # ur has no articles (GRAMMARS["ur"].no_det): the same entities, shorter spans
            lengths = not GRAMMARS[lang].no_det
            assert [shape(r, lengths) for r in ner[lang][split]] == [
                shape(r, lengths) for r in ner[SOURCE_LANGUAGE][split]
            ]
            assert lengths or [shape(r) for r in ner[lang][split]] != src
    pairs = zip(ner["en"]["train"], ner["fr"]["train"], strict=False)
    assert any(shape(a) != shape(b) for a, b in pairs)  # train: separate samples


def test_qa_answers_are_the_object_of_the_one_matching_sentence(world: World, qa: dict) -> None:
    for lang in LANGUAGES:
        concept = _concepts(world, lang)
        for split in SPLITS:
            for r in qa[lang][split]:
                assert list(r) == ["id", "title", "context", "question", "answers"]
                (text,), (start,) = r["answers"]["text"], r["answers"]["answer_start"]
                assert r["context"][start : start + len(text)] == text
                sentences = [s.split() for s in r["context"].split(" . ")]
                asked = set(r["question"].split()) - {"."}
                matching = [s for s in sentences if asked <= set(s)]
                assert len(matching) == 1, (lang, r)
                assert set(text.split()) <= set(matching[0])
                verbs = [concept[w] for w in asked if world.concepts[concept[w]][0] == "V"]
                assert len(verbs) == 1  # the question keeps the verb, drops the object
    for split in ("validation", "test"):  # parallel: same items, same answer lengths
        src = qa[SOURCE_LANGUAGE][split]
        for lang in LANGUAGES:
            other = qa[lang][split]
            assert [r["id"] for r in other] == [r["id"] for r in src]
            if GRAMMARS[lang].no_det:  # no articles: never longer than the source's answer
                assert all(
                    len(a["answers"]["text"][0].split()) <= len(b["answers"]["text"][0].split())
                    for a, b in zip(other, src, strict=True)
                )
                continue
            assert [len(r["answers"]["text"][0].split()) for r in other] == [
                len(r["answers"]["text"][0].split()) for r in src
            ]


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_tagging_and_qa_load_offline_in_the_hub_layout(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = tmp_path / task
    write_task(World(0), task, folder)
    ds = datasets.load_dataset(
        str(folder), name="cy", split="test", cache_dir=str(tmp_path / "cache")
    )
    assert ds.num_rows == TASKS[task].test
    if task == "ner":
        from fsf.synthetic.data import NER_TAGS

        assert ds.features["ner_tags"].feature.names == list(NER_TAGS)
    else:
        assert set(ds.features["answers"]) == {"text", "answer_start"}


def test_corpus_follows_the_resource_levels(world: World) -> None:
    """Low-resource languages get less text, appear in fewer translation pairs, and only
    their linked words take part in the cross-lingual signals."""
    from collections import Counter

    from fsf.synthetic.data import CorpusSpec, pretraining_corpus
    from fsf.synthetic.world import RESOURCES

    form = {(lang, w): c for lang, lex in world.lexicon.items() for c, w in lex.items()}
    owner = {}  # word -> languages it belongs to
    for (lang, w), _ in form.items():
        owner.setdefault(w, set()).add(lang)

    def language(text: str) -> str:  # the language most of the sentence's words belong to
        votes = Counter(lang for w in text.split() for lang in owner[w])
        return votes.most_common(1)[0][0]

    corpus = list(pretraining_corpus(world, CorpusSpec(sentences_per_language=400)))
    mono = Counter(language(a) for a, b in corpus if b is None)
    assert mono["en"] > mono["ja"] > mono["sw"] and mono["ur"] < mono["cy"]
    pairs = Counter(language(x) for a, b in corpus if b is not None for x in (a, b))
    assert pairs["fr"] > pairs["cy"] > pairs["ur"] > 0
    content = {c for c, (k, _) in world.concepts.items() if k in ("N", "V", "A")}
    for a, b in (p for p in corpus if p[1] is not None):
        for text in (a, b):
            lang = language(text)
            used = {form[(lang, w)] for w in text.split() if (lang, w) in form} & content
            assert used <= world.linked[lang], (lang, used - world.linked[lang])
    # code-switching swaps only words linked in both languages
    rng = random.Random(0)
    for _ in range(50):
        frame = world.sample_frame(rng, rng.randrange(4), 0.8, 0.05)
        for lang in ("sw", "en"):
            words = world.code_switch(frame, lang, rng, p_word=1.0).split()
            for concept, w in zip(world.linearize(frame, lang), words, strict=True):
                if w != world.lexicon[lang][concept]:
                    assert world.is_linked(concept, lang)
                    assert any(world.lexicon[o][concept] == w and world.is_linked(concept, o)
                               for o in world.languages)  # fmt: skip
            unlinked = [c for c in world.linearize(frame, lang) if not world.is_linked(c, lang)]
            assert lang == "sw" or not unlinked  # en links every concept
    assert RESOURCES["en"].linked_share == 1.0 and RESOURCES["ur"].level == "low"
