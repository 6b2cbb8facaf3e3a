"""Task data and pretraining text drawn from a :class:`~fsf.synthetic.world.World`.

Two labelled tasks, each with train/validation/test splits for every language:

* ``topic``: one sentence, 4-way topic classification; fields ``text`` (str), ``label`` (int).
* ``pawsx``: a sentence pair in the exact schema of PAWS-X: ``id`` (int), ``sentence1``,
  ``sentence2`` (str), ``label`` (0/1). Label 1 means both sentences are about the same topic.
  The two sentences never share a content word, so copying tokens across the pair (which
  would transfer to any language without pretraining) does not solve it.

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
from pathlib import Path

import yaml

from fsf.synthetic.world import NUM_TOPICS, SOURCE_LANGUAGE, Frame, World

__all__ = [
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
    """Sizes and sampling probabilities of one labelled task."""

    name: str
    pair: bool
    num_labels: int
    p_topic: float
    p_other: float
    train_source: int
    train_other: int
    validation: int
    test: int


TASKS: dict[str, TaskSpec] = {
    "topic": TaskSpec("topic", False, NUM_TOPICS, 0.45, 0.15, 3000, 300, 300, 400),
    "pawsx": TaskSpec("pawsx", True, 2, 0.6, 0.1, 5000, 300, 300, 400),
}


@dataclass(frozen=True)
class CorpusSpec:
    """The pretraining corpus: comparable monolingual text plus cross-lingual signals."""

    sentences_per_language: int = 20_000
    p_topic: float = 0.8
    p_other: float = 0.05
    code_switch_share: float = 0.5  # share of sentences that are code-switched ...
    code_switch_words: float = 0.3  # ... and the share of their words swapped
    tlm_share: float = 0.5  # translation pairs, relative to the monolingual sentences


def _rng(*parts: object) -> random.Random:
    return random.Random("fsf-synthetic:" + ":".join(map(str, parts)))


def _items(world: World, spec: TaskSpec, rng: random.Random, n: int) -> list[tuple]:
    """``n`` language-neutral items: (frame, label) or (frame1, frame2, label)."""
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


def _record(world: World, spec: TaskSpec, item: tuple, lang: str, idx: int) -> dict:
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
                _record(world, spec, it, lang, i) for i, it in enumerate(items, start=1)
            ]
    return out


def _card_metadata(spec: TaskSpec, languages: tuple[str, ...]) -> dict:
    """The README's YAML front matter: one config per language, and the features."""
    names = ["0", "1"] if spec.pair else [f"topic{i}" for i in range(spec.num_labels)]
    cols = (
        [("id", "int32"), ("sentence1", "string"), ("sentence2", "string")]
        if spec.pair
        else [("text", "string")]
    )

    def features() -> list[dict]:  # a fresh list per config: no YAML anchors/aliases
        label = {"class_label": {"names": dict(enumerate(names))}}
        return [*({"name": c, "dtype": d} for c, d in cols), {"name": "label", "dtype": label}]

    configs = []
    for lang in languages:
        files = [{"split": s, "path": f"{lang}/{s}.jsonl"} for s in SPLITS]
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
            path = folder / lang / f"{split}.jsonl"
            with path.open("w", encoding="utf-8", newline="\n") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            written.append(path)
    counts = {lang: {s: len(r) for s, r in splits.items()} for lang, splits in data.items()}
    readme = folder / "README.md"
    readme.write_text(_readme(spec, world.languages, world.seed, counts), encoding="utf-8")
    return [readme, *written]


def pretraining_corpus(
    world: World, spec: CorpusSpec | None = None
) -> Iterator[tuple[str, str | None]]:
    """The unlabelled pretraining sequences: ``(text, None)`` for a monolingual (possibly
    code-switched) sentence, ``(text_a, text_b)`` for a translation pair (TLM)."""
    spec = spec or CorpusSpec()
    rng = _rng("corpus", world.seed)
    langs = world.languages

    def frame() -> Frame:
        return world.sample_frame(rng, rng.randrange(NUM_TOPICS), spec.p_topic, spec.p_other)

    n_mono = spec.sentences_per_language * len(langs)
    n_tlm = round(spec.tlm_share * n_mono)
    for i in range(n_mono + n_tlm):
        f = frame()
        if i < n_mono:
            lang = langs[i % len(langs)]
            if rng.random() < spec.code_switch_share:
                yield world.code_switch(f, lang, rng, spec.code_switch_words), None
            else:
                yield world.realize(f, lang), None
        else:
            a, b = rng.sample(langs, 2)
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
