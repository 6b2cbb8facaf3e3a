"""A tiny stand-in of the real benchmark: a small E5S1 file with weights Q4_0 stores exactly,
and intent templates in hassil's format for two languages, three shared intents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fsf.real.e5s1 import BLOCK, E5S1Header, expected_tensors, write_e5s1

__all__ = [
    "TINY_E5S1",
    "TINY_PIECES",
    "TINY_SOURCES",
    "e5s1_tensors",
    "tiny_e5s1",
    "tiny_real_benchmark",
]

TINY_E5S1 = E5S1Header(
    hidden=64,
    layers=2,
    heads=4,
    ffn=128,
    vocab=40,
    positions=24,
    types=2,
    eps=float(np.float32(1e-12)),
)
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "▁b", "a", "b", "▁", "<mask>"]


def _representable(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Weights that Q4_0 stores exactly: (q - 8) * d with an fp16 scale d per block of 32,
    each block holding the level -8 (the scale Q4_0 derives from the block's peak)."""
    rows, cols = shape
    q = rng.integers(0, 16, size=(rows * cols // BLOCK, BLOCK))
    q[:, 0] = 0
    d = rng.uniform(0.001, 0.1, size=(len(q), 1)).astype(np.float16).astype(np.float32)
    return ((q - 8) * d).astype(np.float32).reshape(rows, cols)


def e5s1_tensors(seed: int = 0, header: E5S1Header = TINY_E5S1) -> dict[str, np.ndarray]:
    """Every tensor of an E5S1 model of `header`'s sizes, quantised ones exactly storable."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (quantised, shape) in expected_tensors(header).items():
        if quantised:
            out[name] = _representable(rng, shape)
        else:
            out[name] = rng.normal(size=shape).astype(np.float32)
    return out


def tiny_e5s1(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny E5S1 model (TINY_E5S1's sizes, TINY_PIECES) to `path`."""
    scores = np.linspace(0, -5, len(TINY_PIECES)).astype(np.float32)
    return write_e5s1(path, TINY_E5S1, TINY_PIECES, scores, e5s1_tensors(seed))


def _lang(code: str, intents: dict[str, list[str]], extra: bool = False) -> dict[str, Any]:
    out = {name: {"data": [{"sentences": t}]} for name, t in intents.items()}
    if extra:
        out["OnlyHere"] = {"data": [{"sentences": ["only here {name}", "just here"]}]}
    return {
        "language": code,
        "intents": out,
        "lists": {"level": {"range": {"from": 1, "to": 9}}},
        "expansion_rules": {"the": "[the|my]"},
    }


#: Templates in home-assistant-intents' format (what `hassil.Intents.from_dict` reads): en and
#: de share TurnOn, TurnOff and SetLevel; `OnlyHere` is English only.
TINY_SOURCES: dict[str, dict[str, Any]] = {
    "en": _lang(
        "en",
        {
            "TurnOn": [
                "(turn|switch) on <the> {name}",
                "activate <the> {name} [in <the> {area}]",
                "power up {name} [now]",
                "enable <the> {name} [please]",
                "{name} on [please|now]",
                "start <the> {name} in {area}",
            ],
            "TurnOff": [
                "(turn|switch) off <the> {name}",
                "deactivate <the> {name} [in <the> {area}]",
                "power down {name} [now]",
                "disable <the> {name} [please]",
                "{name} off [please|now]",
            ],
            "SetLevel": [
                "set <the> {name} to {level}",
                "{name} level {level} [please]",
                "change {name} to level {level}",
                "put <the> {area} (lights|lamps) at {level}",
            ],
        },
        extra=True,
    ),
    "de": _lang(
        "de",
        {
            "TurnOn": [
                "schalte [die|den] {name} ein",
                "mach [die|den] {name} an [bitte]",
                "{name} an [bitte]",
                "aktiviere {name} [im {area}]",
            ],
            "TurnOff": [
                "schalte [die|den] {name} aus",
                "mach [die|den] {name} aus [bitte]",
                "{name} aus [bitte]",
                "deaktiviere {name} [im {area}]",
            ],
            "SetLevel": [
                "stelle {name} auf {level}",
                "{name} auf stufe {level} [bitte]",
                "setze {name} auf {level}",
            ],
        },
    ),
}


def tiny_real_benchmark(out: str | Path, seed: int = 0) -> Path:
    """`fsf data build real`'s folder for all of the benchmark's languages, from the tiny
    model and templates (every language but English reuses the German templates, with its
    own slot fillers). Needs hassil."""
    from fsf.real.build import build_real
    from fsf.real.intents import LANGUAGES

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = tiny_e5s1(out.parent / f".{out.name}-tiny.bin", seed)
    sources = {lang: TINY_SOURCES.get(lang, TINY_SOURCES["de"]) for lang in LANGUAGES}
    build_real(out, model_file=model, sources=sources, seed=seed)
    model.unlink()
    return out
