"""Paired statistics of a configuration against a baseline, seed by seed.

Two configurations trained on the same seeds share their data order and initialisation of
the task head, so the difference per seed is the honest unit of comparison (a paired design).
For n shared seeds with differences d_1..d_n:

- `mean`: the mean difference; `std`: its sample standard deviation (ddof 1);
- `ci`: the 95% Student-t interval mean +- t_{0.975, n-1} * std / sqrt(n);
- `p`: the two-sided paired t-test's p-value (`scipy.stats.ttest_rel`);
- `verdict`: `better` / `worse` when the interval excludes 0, else `within noise`; with fewer
  than 2 shared seeds there is no interval: `untested`.

The p-values are per comparison, uncorrected for the number of languages or configurations
compared; with 3-5 seeds the interval is wide, which is the honest answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LEVEL", "PairedDifference", "paired_difference"]

#: Confidence level of every interval.
LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """The difference (candidate - baseline) over the seeds both have."""

    n: int
    mean: float | None
    std: float | None
    ci: tuple[float, float] | None
    p: float | None
    seeds: tuple[int, ...] = ()

    @property
    def verdict(self) -> str:
        if self.ci is None:
            return "untested"
        lo, hi = self.ci
        if lo > 0:
            return "better"
        if hi < 0:
            return "worse"
        return "within noise"

    @property
    def significant(self) -> bool:
        return self.verdict in ("better", "worse")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "seeds": list(self.seeds),
            "mean": self.mean,
            "std": self.std,
            "ci_low": None if self.ci is None else self.ci[0],
            "ci_high": None if self.ci is None else self.ci[1],
            "level": LEVEL,
            "p": self.p,
            "verdict": self.verdict,
        }


def paired_difference(
    candidate: Sequence[float], baseline: Sequence[float], seeds: Sequence[int] = ()
) -> PairedDifference:
    """Paired difference of two equally long sequences (one value per shared seed)."""
    if len(candidate) != len(baseline):
        raise ValueError("paired samples must have the same length")
    d = [float(a) - float(b) for a, b in zip(candidate, baseline, strict=True)]
    n = len(d)
    if n == 0:
        return PairedDifference(0, None, None, None, None, tuple(seeds))
    mean = math.fsum(d) / n
    if n == 1:
        return PairedDifference(1, mean, None, None, None, tuple(seeds))
    # Student's t from scipy.special (what scipy.stats.t calls; importing scipy.stats would
    # add ~0.4 s to every query command)
    from scipy.special import stdtr, stdtrit

    std = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    if std == 0.0:  # identical differences: the interval is the point, t is undefined
        p = 1.0 if mean == 0.0 else 0.0
        return PairedDifference(n, mean, 0.0, (mean, mean), p, tuple(seeds))
    half = float(stdtrit(n - 1, 0.5 + LEVEL / 2)) * std / math.sqrt(n)
    t = mean / (std / math.sqrt(n))
    p = float(2.0 * stdtr(n - 1, -abs(t)))
    return PairedDifference(n, mean, std, (mean - half, mean + half), p, tuple(seeds))
