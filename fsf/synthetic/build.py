"""Build the benchmark's artefacts: task data, pretraining corpus, tokenizer, checkpoint.

Layout of a build folder (the shipped one is ``fsf/synthetic/assets``)::

    manifest.json                  seed, generator version, sha256 of every file, probes
    data/<task>/README.md          hub-style card: one config per language (topic, pawsx, ner, qa)
    data/<task>/<lang>/{train,validation,test}.jsonl
    corpus/pretrain.txt.gz         the unlabelled pretraining text (pairs as a<TAB>b)
    model/                         save_pretrained of the tokenizer and XLMRobertaForMaskedLM

Everything is a deterministic function of the seed and the code; the data part takes a few
seconds, the checkpoint a few minutes on 2 CPU cores (bit-identical weights need the same
torch version and thread count).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from fsf.errors import FsfError, UsageError
from fsf.synthetic.data import (
    NER_TAGS,
    SPLITS,
    TASKS,
    TaskSpec,
    pretraining_corpus,
    write_corpus,
    write_task,
)
from fsf.synthetic.world import LANGUAGES, SOURCE_LANGUAGE, World
from fsf.text import printable, read_limited

__all__ = [
    "DEFAULT_TASK",
    "GENERATOR_VERSION",
    "MAX_LENGTH",
    "build",
    "build_data",
    "check_out",
    "sha256",
]

GENERATOR_VERSION = (
    "3"  # 3: seven languages with resource levels, 12 layers, topic p_topic 0.6 (v2 world)
)
DEFAULT_TASK = "topic"
MAX_LENGTH = 64


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashes(root: Path, paths: list[Path]) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(paths)}


def build_data(out: Path, seed: int = 0) -> tuple[dict[str, str], list[tuple[str, str | None]]]:
    """Write the task data and the corpus under ``out``; return their hashes and the corpus."""
    world = World(seed)
    written: list[Path] = []
    for task in TASKS:
        folder = out / "data" / task
        if folder.exists():
            shutil.rmtree(folder)
        written += write_task(world, task, folder)
    corpus = list(pretraining_corpus(world))
    written.append(write_corpus(corpus, out / "corpus" / "pretrain.txt.gz"))
    return _hashes(out, written), corpus


def _fields(spec: TaskSpec) -> list[str]:
    if spec.kind == "tagging":
        return ["tokens", "ner_tags"]
    if spec.kind == "qa":
        return ["id", "title", "context", "question", "answers"]
    return ["id", "sentence1", "sentence2", "label"] if spec.pair else ["text", "label"]


def _task_manifest() -> dict:
    return {
        name: {
            "path": f"data/{name}",
            "kind": spec.kind,
            "pair": spec.pair,
            "num_labels": spec.num_labels,
            **({"tags": list(NER_TAGS)} if spec.kind == "tagging" else {}),
            "fields": _fields(spec),
            "sizes": {
                "train": {
                    lang: spec.train_source if lang == SOURCE_LANGUAGE else spec.train_other
                    for lang in LANGUAGES
                },
                "validation": spec.validation,
                "test": spec.test,
            },
        }
        for name, spec in TASKS.items()
    }


#: What a build folder holds; a folder with anything else is not one.
_BUILD_ENTRIES = frozenset({"manifest.json", "data", "corpus", "model"})
#: The largest manifest.json read (the shipped one is ~20 kB).
_MANIFEST_BYTES = 2**20


def check_out(out: Path) -> None:
    """Refuse an `out` that is not new, empty, or an earlier build (which a build replaces
    part by part: `data/<task>`, `model/`): a folder holding anything else, or a
    `manifest.json` that is not a build's, is someone else's. Raises `UsageError` before
    anything is written."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out must be a directory, but {str(out)!r} is a file")
    entries = {p.name for p in out.iterdir()}
    foreign = sorted(entries - _BUILD_ENTRIES)
    if foreign:
        shown = ", ".join(printable(n) for n in foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UsageError(
            f"--out {str(out)!r} holds files a build does not write ({shown}): give a new or "
            "empty folder, or an earlier build's (a build replaces its data/ and model/)"
        )
    manifest = out / "manifest.json"
    if "manifest.json" in entries:
        try:
            old = json.loads(read_limited(manifest, _MANIFEST_BYTES, str(manifest)))
        except (OSError, ValueError, FsfError):
            old = None
        if not (
            isinstance(old, dict)
            and isinstance(old.get("files"), dict)
            and "generator_version" in old
            and "seed" in old
        ):
            raise UsageError(
                f"--out {str(out)!r}: its manifest.json is not an fsf-synth build's; refusing "
                "to write over that folder (give a new or empty one)"
            )


def build(
    out: Path,
    seed: int = 0,
    steps: int | None = None,
    data_only: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Regenerate everything under ``out`` and write ``out/manifest.json``; return the manifest.

    ``steps`` overrides the planned pretraining steps; ``data_only`` skips the tokenizer and
    the checkpoint: an existing ``out/model`` is left alone, and stays in the manifest when
    it was built from the same seed and corpus. Raises :class:`~fsf.synthetic.pretrain.AlignmentError` when the pretrained
    model fails the alignment check; nothing is written to ``out/model`` then.
    """
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    files, corpus = build_data(out, seed)
    manifest: dict = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "languages": list(LANGUAGES),
        "source_language": SOURCE_LANGUAGE,
        "splits": list(SPLITS),
        "default_task": DEFAULT_TASK,
        "max_length": MAX_LENGTH,
        "tasks": _task_manifest(),
        "files": files,
        "model": None,
    }
    if not data_only:
        manifest["model"] = _build_model(out, seed, steps, corpus, progress)
        manifest["files"] |= _hashes(out, [p for p in (out / "model").iterdir() if p.is_file()])
    else:
        manifest |= _kept_model(out, seed, manifest["files"])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _kept_model(out: Path, seed: int, files: dict[str, str]) -> dict:
    """The model entry of an existing manifest, if its checkpoint is still there unchanged.

    The checkpoint depends on the world and the corpus, not on the task data, so a
    ``--data-only`` rebuild with the same seed keeps it.
    """
    path = out / "manifest.json"
    if not path.is_file():
        return {}
    old = json.loads(path.read_text(encoding="utf-8"))
    if old.get("model") is None or old.get("seed") != seed:
        return {}
    model_files = {k: v for k, v in old["files"].items() if k.startswith("model/")}
    corpus = "corpus/pretrain.txt.gz"
    unchanged = old["files"].get(corpus) == files[corpus] and all(
        (out / k).is_file() and sha256(out / k) == v for k, v in model_files.items()
    )
    return {"model": old["model"], "files": files | model_files} if unchanged else {}


def _build_model(
    out: Path,
    seed: int,
    steps: int | None,
    corpus: list[tuple[str, str | None]],
    progress: Callable[[int, int, dict], None] | None,
) -> dict:
    # torch and transformers are imported here so that the data part stays light
    from fsf.synthetic.pretrain import PretrainConfig, pretrain
    from fsf.synthetic.tokenizer import build_tokenizer

    world = World(seed)
    texts = [t for pair in corpus for t in pair if t]
    tokenizer = build_tokenizer([*texts, " ".join(world.vocabulary())], MAX_LENGTH)
    cfg = PretrainConfig(max_length=MAX_LENGTH, seed=seed)
    if steps is not None:
        cfg = replace(cfg, steps=steps, warmup_steps=min(cfg.warmup_steps, max(1, steps // 10)))
    result = pretrain(corpus, tokenizer, world, cfg, progress)
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    result.model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    summary = result.summary()
    (model_dir / "pretrain_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    return {
        "path": "model",
        "architecture": "XLMRobertaForMaskedLM",
        "pretrain_config": asdict(cfg),
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "final_mlm_loss": round(result.final_loss, 4),
        "topic_probe_raw": result.probe,
        "topic_probe_centred": result.probe_centred,
        "topic_probe_linked": result.probe_linked,
        "topic_probe_unlinked": result.probe_unlinked,
    }
