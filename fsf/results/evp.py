"""Expected validation performance (Dodge et al., EMNLP 2019, "Show Your Work"): the best
dev objective a user should expect from `n` trials of a policy's search, for n = 1..N.

A search that tried N configurations of a policy and saw their objective values
v_1 <= ... <= v_N is read as N draws from that policy's distribution of outcomes. The best
of n draws with replacement from the empirical distribution has

    P(max_n <= v_(i)) = (i / N)^n,   so   E[max_n] = sum_i v_(i) * ((i / N)^n - ((i - 1) / N)^n)

and its variance follows from E[max_n^2] the same way. Comparing policies by their curves,
not by their single best trial, keeps a policy that searches five knobs from looking better
(or worse) than one that searches one only because of how many trials each got: at equal n
the curves are comparable, and the spread says how much one search of that size varies. With
`mode == "min"` the curves are of the expected minimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EvpCurve", "expected_best"]


@dataclass(frozen=True)
class EvpCurve:
    """E[best of n trials] and its standard deviation for n = 1..len(values), from the
    objective values of `trials` trials (mode `max` or `min`)."""

    n: list[int]
    mean: list[float]
    std: list[float]
    trials: int
    mode: str

    def at(self, n: int) -> tuple[float, float]:
        """(mean, std) of the best of `n` trials (1 <= n <= trials)."""
        return self.mean[n - 1], self.std[n - 1]


def expected_best(values: Sequence[float], mode: str = "max") -> EvpCurve:
    """The expected best of n trials, n = 1..N, from N observed objective values (non-finite
    values, such as a failed trial's, are left out: they were budget, not outcomes)."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = np.sort(v[np.isfinite(v)])
    if mode == "min":
        v = -v[::-1]
    size = len(v)
    if size == 0:
        return EvpCurve([], [], [], 0, mode)
    ns = np.arange(1, size + 1)
    cdf = np.arange(0, size + 1) / size  # P(draw <= v_(i)), i = 0..N
    weights = cdf[None, 1:] ** ns[:, None] - cdf[None, :-1] ** ns[:, None]  # (n, i)
    mean = weights @ v
    second = weights @ (v**2)
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    if mode == "min":
        mean = -mean
    return EvpCurve(ns.tolist(), mean.tolist(), std.tolist(), size, mode)
