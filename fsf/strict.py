"""The common base of fsf's config models: unknown keys refused, and every number finite and
in range where it is parsed. A base-layer module: it needs only pydantic.

`StrictModel` forbids keys a model does not declare, refuses `inf` and `nan` in every float
field (`.inf` and `.nan` in YAML, `--set x=.inf`), and refuses, in every field including
free-form ones (`deepspeed.extra`, a categorical parameter's `values`), any integer beyond
`MAX_INT` in magnitude and any float that is not finite: a value no count, step, size or
seed means, which would otherwise overflow a 64-bit column or a C library far from where it
was written (an `OverflowError` at the first results write, numpy refusing a seed). Fields
with a narrower meaning say so with their own bounds (`Seed`, `le=`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["MAX_INT", "MAX_SEED", "Seed", "StrictModel", "check_numbers"]

MAX_INT = 2**53
"""The largest integer magnitude a config holds: every integer up to it is exact as a
float64 and fits an int64 column."""

MAX_SEED = 2**32 - 1
"""The largest seed: numpy's and Optuna's samplers take seeds in 0..2**32 - 1."""

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="a seed in 0..2**32 - 1")]
"""A seed field: an integer in 0..`MAX_SEED`."""


def check_numbers(value: Any, depth: int = 0) -> None:
    """Raise ValueError at the first integer beyond `MAX_INT` or non-finite float anywhere in
    `value` (lists, tuples, sets and mappings are walked, keys included)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError("out of range: an integer here is at most 2**53 in magnitude")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number ({value})")
        return
    if depth > 64:
        return  # fsf.yamlfile refuses deeper nesting before a model sees it
    if isinstance(value, dict):
        for k, v in value.items():
            check_numbers(k, depth + 1)
            check_numbers(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            check_numbers(v, depth + 1)


class StrictModel(BaseModel):
    """A config model: unknown keys are problems, floats are finite, integers and numbers
    inside free-form values are within `MAX_INT` (see the module doc)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: free-form fields validated as a model of their own elsewhere (a space's `base` is a run
    #: config), whose problems are then reported under their own paths
    _validated_elsewhere: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        # a nested model checked its own fields
        if not isinstance(value, BaseModel) and info.field_name not in cls._validated_elsewhere:
            check_numbers(value)
        return value
