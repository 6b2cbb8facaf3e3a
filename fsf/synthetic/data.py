"""Task data and pretraining text drawn from a :class:`~fsf.synthetic.world.World`.

Four labelled tasks, each with train/validation/test splits for every language:

* ``topic``: one sentence, 4-way topic classification; fields ``text`` (str), ``label`` (int).
* ``pawsx``: a sentence pair in the exact schema of PAWS-X: ``id`` (int), ``sentence1``,
  ``sentence2`` (str), ``label`` (0/1). Label 1 means both sentences are about the same topic.
  The two sentences never share a content word, so copying tokens across the pair (which
  would transfer to any language without pretraining) does not solve it.
* ``ner``: named-entity-style tagging in the schema of PAN-X / WikiAnn: ``tokens`` (words),
  ``ner_tags`` (IOB2 class ids). Every noun phrase is an entity: ``PER`` for a proper name,
  ``T<k>`` for a phrase whose noun belongs to topic k, ``GEN`` for a generic noun; its span
  is the whole phrase (determiner, adjective, noun, plural marker) in the language's order.
  The type needs the noun's topic (knowledge that transfers through pretraining), the
  boundaries the language's word order.
* ``qa``: extractive QA in the schema of SQuAD / MLQA: ``id``, ``title``, ``context``,
  ``question``, ``answers`` (``text``, ``answer_start``). The context is 2-3 sentences; the
  question is one of its clauses without the object ("Ana sees ." for "Ana sees the red
  house ."), whose verb no other clause of the context has; the answer is the object noun
  phrase. Where the object stands depends on the language (SVO, SOV, VSO).

Validation and test sets are parallel (the same frames realised in every language, like
XNLI / PAWS-X); the ``en`` train split is large, the other languages get a small one.
:func:`write_task` lays a task out the way the Hugging Face hub does, so that
``datasets.load_dataset(folder, name=lang, split=split)`` works offline.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from fsf.synthetic.world import NUM_TOPICS, RESOURCES, SOURCE_LANGUAGE, Frame, World

__all__ = [
    "NER_TAGS",
    "NER_TYPES",
    "SPLITS",
    "TASKS",
    "CorpusSpec",
    "TaskSpec",
    "generate_task",
    "pretraining_corpus",
    "write_corpus",
    "write_task",
]

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskSpec:
    """Sizes and sampling probabilities of one labelled task.

    ``kind``: ``classification`` (``pair`` for two sentences), ``tagging`` or ``qa``;
    ``num_labels`` is the number of classes (tags for ``tagging``; 0 for ``qa``)."""

    name: str
    pair: bool
    num_labels: int
    p_topic: float
    p_other: float
    train_source: int
    train_other: int
    validation: int
    test: int
    kind: str = "classification"


# Entity types of the ``ner`` task: proper names, one per topic, generic nouns.
NER_TYPES: tuple[str, ...] = ("PER", *(f"T{t}" for t in range(NUM_TOPICS)), "GEN")
NER_TAGS: tuple[str, ...] = ("O", *(f"{bi}-{t}" for t in NER_TYPES for bi in "BI"))

TASKS: dict[str, TaskSpec] = {
    "topic": TaskSpec("topic", False, NUM_TOPICS, 0.6, 0.1, 3000, 300, 300, 400),
    "pawsx": TaskSpec("pawsx", True, 2, 0.6, 0.1, 5000, 300, 300, 400),
    "ner": TaskSpec("ner", False, len(NER_TAGS), 0.6, 0.15, 600, 20, 150, 150, "tagging"),
    "qa": TaskSpec("qa", False, 0, 0.6, 0.15, 1200, 20, 150, 150, "qa"),
}
_QA_SENTENCES = (2, 3)  # sentences per context (inclusive)


@dataclass(frozen=True)
class CorpusSpec:
    """The pretraining corpus: comparable monolingual text plus cross-lingual signals.

    ``sentences_per_language`` is a high-resource language's share; the others get their
    :data:`~fsf.synthetic.world.RESOURCES` ``text_share`` of it."""

    sentences_per_language: int = 20_000
    p_topic: float = 0.8
    p_other: float = 0.05
    code_switch_share: float = 0.5  # share of sentences that are code-switched ...
    code_switch_words: float = 0.3  # ... and the share of their words swapped
    tlm_share: float = 0.5  # translation pairs, relative to the monolingual sentences


def _rng(*parts: object) -> random.Random:
    return random.Random("fsf-synthetic:" + ":".join(map(str, parts)))


def _items(world: World, spec: TaskSpec, rng: random.Random, n: int) -> list[tuple]:
    """``n`` language-neutral items: (frame, label), (frame1, frame2, label), (frame,) for
    tagging, or (frames, question index) for QA."""
    if spec.kind == "tagging":
        return [
            (world.sample_frame(rng, i % NUM_TOPICS, spec.p_topic, spec.p_other),) for i in range(n)
        ]
    if spec.kind == "qa":
        return [_qa_item(world, spec, rng) for _ in range(n)]
    out: list[tuple] = []
    for i in range(n):
        if not spec.pair:
            topic = i % NUM_TOPICS  # exactly balanced labels
            out.append((world.sample_frame(rng, topic, spec.p_topic, spec.p_other), topic))
            continue
        label = i % 2
        t1 = rng.randrange(NUM_TOPICS)
        t2 = t1 if label else rng.choice([t for t in range(NUM_TOPICS) if t != t1])
        f1 = world.sample_frame(rng, t1, spec.p_topic, spec.p_other)
        f2 = world.sample_frame(
            rng, t2, spec.p_topic, spec.p_other, exclude=frozenset(f1.content())
        )
        out.append((f1, f2, label))
    rng.shuffle(out)
    return out


def _qa_item(world: World, spec: TaskSpec, rng: random.Random) -> tuple:
    """Single-clause frames with pairwise different verbs, and the index of the asked one."""
    frames: list[Frame] = []
    for _ in range(rng.randint(*_QA_SENTENCES)):
        used = frozenset(f.clauses[0].verb for f in frames)
        topic = rng.randrange(NUM_TOPICS)
        frames.append(
            world.sample_frame(rng, topic, spec.p_topic, spec.p_other, exclude=used, max_clauses=1)
        )
    return tuple(frames), rng.randrange(len(frames))


def _entity_type(world: World, head: str) -> str:
    if head.startswith("name"):
        return "PER"
    topic = world.topic_of(head)
    return "GEN" if topic < 0 else f"T{topic}"


def _tagging_record(world: World, frame: Frame, lang: str) -> dict:
    """Words and IOB2 tag ids: every noun phrase (subject, object, or in a prepositional
    phrase, without the adposition) is an entity typed by its noun."""
    lex = world.lexicon[lang]
    heads = {}
    for i, c in enumerate(frame.clauses):
        heads[f"{i}.subj"], heads[f"{i}.obj"] = c.subj.head, c.obj.head
        if c.pp:
            heads[f"{i}.pp"] = c.pp[1].head
    tokens, tags = [], []
    prev = None
    for concept, role in world.linearize_roles(frame, lang):
        tokens.append(lex[concept])
        if role in heads and concept not in ("P_IN", "P_WITH"):
            bi = "I" if role == prev else "B"
            tags.append(NER_TAGS.index(f"{bi}-{_entity_type(world, heads[role])}"))
            prev = role
        else:
            tags.append(0)
            prev = None
    return {"tokens": tokens, "ner_tags": tags}


def _qa_record(world: World, item: tuple, lang: str, idx: str) -> dict:
    """Context, question (the asked clause without its object) and the object's span."""
    frames, asked = item
    lex = world.lexicon[lang]
    context, question, answer, start = [], [], "", -1
    offset = 0
    for k, frame in enumerate(frames):
        words = world.linearize_roles(frame, lang)
        obj = [lex[c] for c, role in words if role == "0.obj"]
        if k == asked:
            question = [lex[c] for c, role in words if role not in ("0.obj", "0.pp")]
            answer = " ".join(obj)
        sentence = " ".join(lex[c] for c, _ in words)
        if k == asked:
            first = next(i for i, (_, role) in enumerate(words) if role == "0.obj")
            start = offset + len(" ".join(lex[c] for c, _ in words[:first])) + (first > 0)
        context.append(sentence)
        offset += len(sentence) + 1
    text = " ".join(context)
    if text[start : start + len(answer)] != answer:  # pragma: no cover - a generator bug
        raise AssertionError(f"answer {answer!r} is not at {start} in {text!r}")
    return {
        "id": idx,
        "title": "synthetic",
        "context": text,
        "question": " ".join(question),
        "answers": {"text": [answer], "answer_start": [start]},
    }


def _record(world: World, spec: TaskSpec, item: tuple, lang: str, idx: int, split: str) -> dict:
    if spec.kind == "tagging":
        return _tagging_record(world, item[0], lang)
    if spec.kind == "qa":
        return _qa_record(world, item, lang, f"{split}-{idx}")
    if spec.pair:
        f1, f2, label = item
        return {
            "id": idx,
            "sentence1": world.realize(f1, lang),
            "sentence2": world.realize(f2, lang),
            "label": label,
        }
    frame, label = item
    return {"text": world.realize(frame, lang), "label": label}


def generate_task(world: World, task: str) -> dict[str, dict[str, list[dict]]]:
    """All records of ``task``: ``{lang: {split: [record, ...]}}``.

    Validation and test items are drawn once and realised in every language (parallel);
    train items are drawn separately for each language.
    """
    spec = TASKS[task]
    shared = {
        split: _items(world, spec, _rng(task, split, world.seed), n)
        for split, n in (("validation", spec.validation), ("test", spec.test))
    }
    out: dict[str, dict[str, list[dict]]] = {}
    for lang in world.languages:
        n_train = spec.train_source if lang == SOURCE_LANGUAGE else spec.train_other
        train = _items(world, spec, _rng(task, "train", lang, world.seed), n_train)
        out[lang] = {}
        for split, items in (("train", train), *shared.items()):
            out[lang][split] = [
                _record(world, spec, it, lang, i, split) for i, it in enumerate(items, start=1)
            ]
    return out


def _suffix(spec: TaskSpec) -> str:
    """The data files' extension: the tagging and QA tasks ship gzip'd JSON lines (a fifth of
    the bytes; `datasets` reads them as they are), the classification tasks plain ones."""
    return ".jsonl" if spec.kind == "classification" else ".jsonl.gz"


def _features(spec: TaskSpec) -> list[dict]:
    """The card's feature list (a fresh one per call: no YAML anchors/aliases)."""
    if spec.kind == "tagging":  # as google/xtreme's PAN-X configs
        tags = {"class_label": {"names": dict(enumerate(NER_TAGS))}}
        return [{"name": "tokens", "list": "string"}, {"name": "ner_tags", "list": tags}]
    if spec.kind == "qa":  # as rajpurkar/squad and facebook/mlqa
        answers = [{"name": "text", "list": "string"}, {"name": "answer_start", "list": "int32"}]
        cols = [(c, "string") for c in ("id", "title", "context", "question")]
        return [*({"name": c, "dtype": d} for c, d in cols), {"name": "answers", "struct": answers}]
    names = ["0", "1"] if spec.pair else [f"topic{i}" for i in range(spec.num_labels)]
    cols = (
        [("id", "int32"), ("sentence1", "string"), ("sentence2", "string")]
        if spec.pair
        else [("text", "string")]
    )
    label = {"class_label": {"names": dict(enumerate(names))}}
    return [*({"name": c, "dtype": d} for c, d in cols), {"name": "label", "dtype": label}]


def _card_metadata(spec: TaskSpec, languages: tuple[str, ...]) -> dict:
    """The README's YAML front matter: one config per language, and the features."""
    features = partial(_features, spec)

    configs: list[dict[str, Any]] = []
    for lang in languages:
        files = [{"split": s, "path": f"{lang}/{s}{_suffix(spec)}"} for s in SPLITS]
        configs.append({"config_name": lang, "data_files": files})
        if lang == SOURCE_LANGUAGE:
            configs[-1]["default"] = True
    info = [{"config_name": lang, "features": features()} for lang in languages]
    return {"configs": configs, "dataset_info": info}


def _readme(spec: TaskSpec, languages: tuple[str, ...], seed: int, counts: dict) -> str:
    meta = yaml.safe_dump(_card_metadata(spec, languages), sort_keys=False)
    lines = ["---", meta.rstrip("\n"), "---", ""]
    what = (
        "Sentence pairs in the schema of PAWS-X (`id`, `sentence1`, `sentence2`, `label`); "
        "label 1 = both sentences are about the same topic, 0 = different topics."
        if spec.pair
        else f"Single sentences (`text`) with a {spec.num_labels}-way topic `label`."
    )
    if spec.kind == "tagging":
        what = (
            "Words (`tokens`) with IOB2 entity tags (`ner_tags`), in the schema of PAN-X / "
            "WikiAnn; every noun phrase is an entity: PER (a name), T0-T3 (a noun of that "
            f"topic) or GEN (a generic noun). Tags: {', '.join(NER_TAGS)}."
        )
    elif spec.kind == "qa":
        what = (
            "Extractive QA in the schema of SQuAD / MLQA (`id`, `title`, `context`, `question`, "
            "`answers`): the question is a clause of the context without its object, the "
            "answer that object's noun phrase."
        )
    lines += [
        f"# fsf synthetic `{spec.name}` (seed {seed})",
        "",
        what,
        "Generated by `fsf-synth build`; see docs/synthetic.md. Validation and test are parallel",
        "across languages (row i is the same item in every language).",
        "",
        "| config | train | validation | test |",
        "|---|---|---|---|",
    ]
    for lang in languages:
        c = counts[lang]
        lines.append(f"| {lang} | {c['train']} | {c['validation']} | {c['test']} |")
    return "\n".join(lines) + "\n"


def write_task(world: World, task: str, folder: Path) -> list[Path]:
    """Write ``task`` in the hub layout under ``folder``; return the files written."""
    spec = TASKS[task]
    data = generate_task(world, task)
    written = []
    for lang, splits in data.items():
        (folder / lang).mkdir(parents=True, exist_ok=True)
        for split, records in splits.items():
            path = folder / lang / f"{split}{_suffix(spec)}"
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            if path.suffix == ".gz":  # no timestamp or name in the header: same bytes each time
                with (
                    path.open("wb") as raw,
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
                ):
                    gz.write(lines.encode())
            else:
                with path.open("w", encoding="utf-8", newline="\n") as f:
                    f.write(lines)
            written.append(path)
    counts = {lang: {s: len(r) for s, r in splits.items()} for lang, splits in data.items()}
    readme = folder / "README.md"
    readme.write_text(_readme(spec, world.languages, world.seed, counts), encoding="utf-8")
    return [readme, *written]


def pretraining_corpus(
    world: World, spec: CorpusSpec | None = None
) -> Iterator[tuple[str, str | None]]:
    """The unlabelled pretraining sequences: ``(text, None)`` for a monolingual (possibly
    code-switched) sentence, ``(text_a, text_b)`` for a translation pair (TLM).

    Each language gets its resource level's share of monolingual text; a translation pair's
    two languages are drawn in proportion to their ``pair_weight`` and its sentence uses only
    concepts linked in both (:attr:`World.linked`), so a low-resource language's unlinked
    words are learnt from its monolingual text alone.
    """
    spec = spec or CorpusSpec()
    rng = _rng("corpus", world.seed)
    langs = world.languages
    mono = [
        lang
        for lang in langs
        for _ in range(round(spec.sentences_per_language * RESOURCES[lang].text_share))
    ]
    rng.shuffle(mono)
    pairs = [(a, b) for a in langs for b in langs if a != b]
    weights = [RESOURCES[a].pair_weight * RESOURCES[b].pair_weight for a, b in pairs]
    content = [c for c, (cat, _) in world.concepts.items() if cat in ("N", "V", "A")]
    unlinked = {
        lang: frozenset(c for c in content if c not in world.linked[lang]) for lang in langs
    }

    def frame(exclude: frozenset[str] = frozenset()) -> Frame:
        topic = rng.randrange(NUM_TOPICS)
        return world.sample_frame(rng, topic, spec.p_topic, spec.p_other, exclude=exclude)

    for lang in mono:
        f = frame()
        if rng.random() < spec.code_switch_share:
            yield world.code_switch(f, lang, rng, spec.code_switch_words), None
        else:
            yield world.realize(f, lang), None
    for _ in range(round(spec.tlm_share * len(mono))):
        a, b = rng.choices(pairs, weights)[0]
        f = frame(unlinked[a] | unlinked[b])
        yield world.realize(f, a), world.realize(f, b)


def write_corpus(corpus: list[tuple[str, str | None]], path: Path) -> Path:
    """Write the corpus as gzip'd text, one sequence a line, a pair as ``a<TAB>b``.

    The gzip header carries no timestamp, so the same corpus gives the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
    ):
        for a, b in corpus:
            gz.write((a if b is None else f"{a}\t{b}").encode() + b"\n")
    return path
