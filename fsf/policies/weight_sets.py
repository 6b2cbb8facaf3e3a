"""Map the parameters of a Hugging Face encoder onto FSF's units and weight sets.

A *unit* is the smallest group of weights that a policy gives one learning-rate multiplier:
the embeddings, the task head, or one kind of weights (`attention`, `ffn`, `other`) of one
transformer layer (1-based, layer 1 nearest the embeddings).

- attention = the self-attention block, including its output projection and LayerNorm
- ffn       = the intermediate and output dense layers, including their LayerNorm
- other     = anything else inside the layer (rare; e.g. adapters)

The four weight sets of the paper are layer ranges over those units:
S_I (all kinds of layers `s1`), S_II (`s2_kinds`, default FFN, of layers `s2`),
V_I (all kinds of layers `v1`) and V_II (`v2_kinds`, default attention, of layers `v2`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, field_validator

from fsf.errors import ConfigError, FsfError, Problem
from fsf.strict import StrictModel

__all__ = [
    "KINDS",
    "MAX_LAYERS",
    "SET_NAMES",
    "ArchitecturePatterns",
    "LayerRange",
    "ParameterMap",
    "Unit",
    "UnmappableModelError",
    "WeightSets",
    "WeightSetsConfig",
    "default_ranges",
    "map_parameters",
]

Kind = Literal["attention", "ffn", "other"]
KINDS: tuple[Kind, ...] = ("attention", "ffn", "other")
SET_NAMES = ("S_I", "S_II", "V_I", "V_II")
MAX_LAYERS = 1024
"""The deepest encoder fsf maps (the deepest released encoders have under 100 layers): a
depth beyond it is a mistake or a hostile config, refused before anything is built per layer."""


@dataclass(frozen=True, order=True)
class Unit:
    """The embeddings (`layer=0, kind="embeddings"`), the head (`layer=0, kind="head"`) or
    one kind of weights of a layer (`layer` in 1..L)."""

    layer: int
    kind: str

    @property
    def name(self) -> str:
        return self.kind if self.layer == 0 else f"layer{self.layer}.{self.kind}"

    @classmethod
    def embeddings(cls) -> Unit:
        return cls(0, "embeddings")

    @classmethod
    def head(cls) -> Unit:
        return cls(0, "head")


class ArchitecturePatterns(StrictModel):
    """Regular expressions (Python `re.search`) that place parameter names.

    `layer` must have a named group `index` holding the 0-based layer number; `attention` and
    `ffn` are matched against the rest of the name after the `layer` match. A parameter that
    matches neither `layer`, `embeddings` nor `head` cannot be placed.
    """

    layer: str = r"(?:^|\.)(?:encoder\.layer|encoder\.layers|transformer\.layer)\.(?P<index>\d+)\."
    attention: str = r"^(?:attention|self_attn|attn)\."
    ffn: str = r"^(?:intermediate|output|ffn|mlp|fc1|fc2|final_layer_norm)\."
    embeddings: str = r"(?:^|\.)embeddings\."
    head: str = r"(?:^|\.)(?:classifier|qa_outputs|lm_head|pooler|cls|pre_classifier)\.|^(?:classifier|qa_outputs|lm_head)$"

    @field_validator("layer", "attention", "ffn", "embeddings", "head")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class UnmappableModelError(FsfError):
    """Some parameters of the model could not be placed in a unit."""

    exit_code = 2

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        shown = "\n".join(f"  - {n}" for n in self.names[:50])
        more = f"\n  ... and {len(self.names) - 50} more" if len(self.names) > 50 else ""
        super().__init__(
            f"cannot map {len(self.names)} parameter(s) of this model to a layer, the "
            f"embeddings or the head:\n{shown}{more}\n"
            "fsf knows BERT/mBERT and RoBERTa/XLM-R names; for another architecture set "
            "`model.patterns` (layer, attention, ffn, embeddings, head regexes) in the run config."
        )


@dataclass(frozen=True)
class ParameterMap:
    """Which unit every parameter belongs to, and the depth L of the encoder."""

    units: dict[str, Unit]
    num_layers: int

    def names_in(self, unit: Unit) -> list[str]:
        return [n for n, u in self.units.items() if u == unit]


def map_parameters(
    names: Iterable[str],
    patterns: ArchitecturePatterns | None = None,
    num_layers: int | None = None,
) -> ParameterMap:
    """Place every parameter name in a unit; raise `UnmappableModelError` listing the misfits."""
    pat = patterns or ArchitecturePatterns()
    layer_re, attn_re, ffn_re = (
        re.compile(pat.layer),
        re.compile(pat.attention),
        re.compile(pat.ffn),
    )
    emb_re, head_re = re.compile(pat.embeddings), re.compile(pat.head)
    units: dict[str, Unit] = {}
    bad: list[str] = []
    for name in names:
        m = layer_re.search(name)
        if m:
            rest = name[m.end() :]
            kind: Kind = (
                "attention" if attn_re.search(rest) else "ffn" if ffn_re.search(rest) else "other"
            )
            units[name] = Unit(int(m.group("index")) + 1, kind)
        elif emb_re.search(name):
            units[name] = Unit.embeddings()
        elif head_re.search(name):
            units[name] = Unit.head()
        else:
            bad.append(name)
    if bad:
        raise UnmappableModelError(bad)
    seen = max((u.layer for u in units.values()), default=0)
    depth = num_layers if num_layers is not None else seen
    if seen > depth:
        raise FsfError(f"the model has parameters of layer {seen} but declares {depth} layers")
    if depth < 1:
        raise UnmappableModelError(["<no transformer layer found>", *list(units)[:10]])
    return ParameterMap(units, depth)


class LayerRange(StrictModel):
    """An inclusive, 1-based range of layers; written `"3-10"`, `"5"`, `[3, 10]` or `"none"`."""

    model_config = ConfigDict(frozen=True)

    first: int
    last: int

    @classmethod
    def parse(cls, value: object) -> LayerRange | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
            return None
        if isinstance(value, LayerRange):
            return value
        if isinstance(value, bool):
            raise ValueError("expected a layer range such as '1-10' or [1, 10]")
        if isinstance(value, int):
            return cls(first=value, last=value)
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
            if not m:
                raise ValueError("expected a layer range such as '1-10', '12' or 'none'")
            first = int(m.group(1))
            return cls(first=first, last=int(m.group(2) or first))
        if (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return cls(first=value[0], last=value[1])
        if isinstance(value, dict) and set(value) == {"first", "last"}:
            return cls(first=value["first"], last=value["last"])
        raise ValueError("expected a layer range such as '1-10', [1, 10] or 'none'")

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def layers(self) -> range:
        return range(self.first, self.last + 1)


def _scaled(boundary12: int, num_layers: int) -> int:
    """round(boundary12 * L / 12), halves rounding up, at least 1."""
    return max(1, math.floor(boundary12 * num_layers / 12 + 0.5))


def default_ranges(num_layers: int) -> dict[str, LayerRange | None]:
    """The paper's 12-layer sets scaled to depth L.

    S_I = 1..b1, S_II = FFN of 1..b2, V_I = V_II's layers = b1+1..L with b1 = round(10L/12)
    and b2 = round(4L/12) (at least 1). b1 is capped at L-1 so that V_I is never empty
    when L >= 2; a 1-layer model has no V_I.
    """
    b1 = _scaled(10, num_layers)
    if num_layers >= 2:
        b1 = min(b1, num_layers - 1)
    b2 = min(_scaled(4, num_layers), b1)
    v = LayerRange(first=b1 + 1, last=num_layers) if b1 < num_layers else None
    return {
        "S_I": LayerRange(first=1, last=b1),
        "S_II": LayerRange(first=1, last=b2),
        "V_I": v,
        "V_II": v,
    }


class WeightSetsConfig(StrictModel):
    """The layer ranges of S_I, S_II, V_I, V_II; unset ranges take the depth-scaled defaults."""

    model_config = ConfigDict(frozen=True)

    s1: LayerRange | Literal["default"] | None = "default"
    s2: LayerRange | Literal["default"] | None = "default"
    v1: LayerRange | Literal["default"] | None = "default"
    v2: LayerRange | Literal["default"] | None = "default"
    s2_kinds: tuple[Kind, ...] = ("ffn",)
    v2_kinds: tuple[Kind, ...] = ("attention",)

    @field_validator("s1", "s2", "v1", "v2", mode="before")
    @classmethod
    def _parse_range(cls, value: object) -> object:
        if value == "default":
            return value
        return LayerRange.parse(value)

    def resolve(self, num_layers: int, prefix: str = "policy.sets") -> WeightSets:
        """Fill in defaults for depth L and check every range lies within 1..L."""
        if not 1 <= num_layers <= MAX_LAYERS:
            raise ConfigError(
                [Problem(prefix, f"the model depth must be in 1..{MAX_LAYERS}", num_layers, True)]
            )
        defaults = default_ranges(num_layers)
        chosen = {
            "S_I": self.s1,
            "S_II": self.s2,
            "V_I": self.v1,
            "V_II": self.v2,
        }
        problems = []
        ranges: dict[str, LayerRange | None] = {}
        for (set_name, value), key in zip(chosen.items(), ("s1", "s2", "v1", "v2"), strict=True):
            rng = defaults[set_name] if value == "default" else value
            assert not isinstance(rng, str)
            if rng is not None and not (1 <= rng.first <= rng.last <= num_layers):
                problems.append(
                    Problem(
                        f"{prefix}.{key}",
                        f"layer range must lie within 1..{num_layers} (the model has "
                        f"{num_layers} layers) with first <= last; e.g. '1-{num_layers}'",
                        str(rng),
                        True,
                    )
                )
            ranges[set_name] = rng
        if problems:
            raise ConfigError(problems)
        return WeightSets(num_layers, ranges, self.s2_kinds, self.v2_kinds)


class WeightSets:
    """Resolved weight sets for an L-layer model: which sets each unit belongs to."""

    def __init__(
        self,
        num_layers: int,
        ranges: dict[str, LayerRange | None],
        s2_kinds: Sequence[str] = ("ffn",),
        v2_kinds: Sequence[str] = ("attention",),
    ):
        self.num_layers = num_layers
        self.ranges = dict(ranges)
        self._kinds = {"S_I": KINDS, "S_II": tuple(s2_kinds), "V_I": KINDS, "V_II": tuple(v2_kinds)}

    def units(self) -> list[Unit]:
        """Every unit of the model: embeddings, each (layer, kind) in order, head."""
        layers = [Unit(i, k) for i in range(1, self.num_layers + 1) for k in KINDS]
        return [Unit.embeddings(), *layers, Unit.head()]

    def contains(self, set_name: str, unit: Unit) -> bool:
        rng = self.ranges[set_name]
        return (
            rng is not None
            and unit.layer >= 1
            and rng.first <= unit.layer <= rng.last
            and unit.kind in self._kinds[set_name]
        )

    def membership(self, unit: Unit) -> frozenset[str]:
        return frozenset(s for s in SET_NAMES if self.contains(s, unit))

    def describe(self) -> dict[str, str]:
        """Human-readable definition of each set, e.g. {"S_II": "ffn of layers 1-4"}."""
        out = {}
        for name in SET_NAMES:
            rng = self.ranges[name]
            kinds = self._kinds[name]
            what = "all weights" if tuple(kinds) == KINDS else "/".join(kinds)
            out[name] = "empty" if rng is None else f"{what} of layers {rng}"
        return out
