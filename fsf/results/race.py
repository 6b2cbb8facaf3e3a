"""Racing among noisy configurations: add seeds in rounds, drop the candidates a paired test
has separated from the best, stop once the best one's difference to the baseline is decided.

The scheme is F-Race's (Birattari et al. 2002; irace, López-Ibáñez et al. 2016) with the
paired t-test of `fsf.results.stats` and Holm's step-down correction over the comparisons of
one round. After each round, on the seeds every live candidate has:

1. the **best** live candidate is the one with the best mean objective (`mode`);
2. each other live candidate is compared with the best, one-sided (is it worse?); Holm's
   correction at `alpha` over those comparisons drops the ones that are;
3. the best candidate's paired difference to the **baseline** (a 95% interval, as every
   difference fsf reports) **decides** the race when it excludes 0 (better / worse) or lies
   inside `[-margin, +margin]` (equivalent within the margin);
4. otherwise the race goes on, unless the next round would pass `max_seeds`; a decision
   before round `min_rounds` does not stop it either.

The baseline is never dropped; a candidate that is the baseline itself races like the others
and, if it ends best, the answer is "the baseline is the best candidate". Every decision reads
the objective (target-language *dev* data by default), never test: the test scores of the
survivors are reported afterwards, not used to stop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fsf.results.stats import PairedDifference, paired_difference

__all__ = ["CANDIDATE_TRIAL", "RaceRound", "RaceRule", "race_lines", "race_round"]

#: A confirmation candidate's key in its sweep.json naming the trial id of its rows (every
#: seed of the candidate writes under it): the name a race's record calls it by
CANDIDATE_TRIAL = "confirm_trial_id"


@dataclass(frozen=True)
class RaceRule:
    """How a race runs: seeds in the first round and in each later one, the most seeds a
    candidate may get, the familywise level of the drops, the equivalence margin (in the
    objective's unit, a fraction: 0.005 is half a point), and the rounds run before a
    decision may stop the race."""

    first_round: int = 3
    per_round: int = 2
    max_seeds: int = 9
    alpha: float = 0.05
    margin: float = 0.005
    min_rounds: int = 1

    def __post_init__(self) -> None:
        if self.first_round < 2:
            raise ValueError("race.first_round must be >= 2 (a paired test needs 2 seeds)")
        if self.per_round < 1 or self.max_seeds < self.first_round:
            raise ValueError("race.per_round must be >= 1 and race.max_seeds >= first_round")
        if not 0 < self.alpha < 1 or not math.isfinite(self.margin) or self.margin < 0:
            raise ValueError("race.alpha must lie in (0, 1) and race.margin be >= 0")
        if self.min_rounds < 1:
            raise ValueError("race.min_rounds must be >= 1")

    def seeds_after(self, rounds: int) -> int:
        """Seeds each live candidate has after `rounds` rounds."""
        return min(self.max_seeds, self.first_round + (rounds - 1) * self.per_round)


@dataclass
class RaceRound:
    """What one round decided: the best live candidate, who was dropped and why, the best's
    difference to the baseline, and why the race stops (None: it goes on)."""

    round: int
    seeds: int
    best: str | None
    alive: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    vs_baseline: PairedDifference | None = None
    stop: str | None = None
    decision: str = "undecided"

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "seeds": self.seeds,
            "best": self.best,
            "alive": list(self.alive),
            "dropped": dict(self.dropped),
            "vs_baseline": None if self.vs_baseline is None else self.vs_baseline.to_dict(),
            "stop": self.stop,
            "decision": self.decision,
        }


def _shared(scores: Mapping[str, Mapping[int, float]], names: Sequence[str]) -> list[int]:
    common = set.intersection(*(set(scores.get(n, {})) for n in names)) if names else set()
    return sorted(s for s in common if all(math.isfinite(scores[n][s]) for n in names))


def _one_sided_worse(best: Sequence[float], other: Sequence[float]) -> float:
    """p-value of 'other is worse than best' (paired, one-sided)."""
    d = paired_difference(best, other)
    if d.p is None or d.mean is None:
        return 1.0
    return d.p / 2 if d.mean > 0 else 1.0 - d.p / 2


def race_round(
    scores: Mapping[str, Mapping[int, float]],
    alive: Sequence[str],
    baseline: str,
    rule: RaceRule,
    *,
    round_no: int,
    mode: str = "max",
) -> RaceRound:
    """Decide one round from `scores` (candidate -> seed -> objective value; the baseline is a
    key too) for the `alive` candidates (the baseline among them or not)."""
    sign = 1.0 if mode == "max" else -1.0
    alive = list(dict.fromkeys(alive))
    seeds = _shared(scores, [*alive, baseline] if baseline not in alive else alive)
    n = len(seeds)

    def mean(name: str) -> float:
        return sign * math.fsum(scores[name][s] for s in seeds) / n if n else -math.inf

    best = max(alive, key=lambda c: (mean(c), -alive.index(c))) if alive else None
    out = RaceRound(round_no, n, best, list(alive))
    if best is None or n < 2:
        out.stop = None if best is not None else "no candidate has results"
        return out
    # drops: each other candidate against the best, one-sided, Holm's step-down
    others = [c for c in alive if c != best]
    b_vals = [sign * scores[best][s] for s in seeds]
    pvals = sorted(
        (_one_sided_worse(b_vals, [sign * scores[c][s] for s in seeds]), c) for c in others
    )
    m = len(pvals)
    for i, (p, c) in enumerate(pvals):
        if p > rule.alpha / (m - i):
            break
        out.dropped[c] = (
            f"worse than {best} over {n} seeds (one-sided paired t-test p = {p:.3g} <= "
            f"{rule.alpha / (m - i):.3g}, Holm at {rule.alpha})"
        )
    out.alive = [c for c in alive if c not in out.dropped]
    # the decision: the best candidate against the baseline
    if best == baseline:
        if len(out.alive) == 1:
            out.stop, out.decision = (
                "the baseline is the best candidate; all others dropped",
                "baseline best",
            )
    else:
        d = paired_difference(
            [scores[best][s] for s in seeds], [scores[baseline][s] for s in seeds], seeds
        )
        out.vs_baseline = d
        if d.ci is not None:
            lo, hi = d.ci
            if lo > 0 or hi < 0:
                out.decision = "better" if (lo > 0) == (sign > 0) else "worse"
                out.stop = (
                    f"decided: {best} is {out.decision} than the baseline on the objective "
                    f"(95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}] points excludes 0)"
                )
            elif -rule.margin <= lo and hi <= rule.margin:
                out.decision = "equivalent"
                out.stop = (
                    f"decided: {best} is equivalent to the baseline on the objective within "
                    f"±{100 * rule.margin:g} points (95% CI [{100 * lo:+.2f}, {100 * hi:+.2f}])"
                )
    if out.stop is not None and round_no < rule.min_rounds:
        out.stop = None  # decided, but the race runs `min_rounds` rounds first
    if out.stop is None and n >= rule.max_seeds:
        out.stop = f"seed budget spent ({rule.max_seeds} seeds per candidate); undecided"
    return out


def race_lines(record: Mapping[str, Any], names: Mapping[str, str] | None = None) -> list[str]:
    """A race's record (`{"rounds": [RaceRound.to_dict() + "seed_list"], "stop"}`, as a
    racing confirmation keeps it in its sweep.json) as lines: each round's seeds and live
    candidates, who it dropped and why, and why the race stopped (or that it goes on).
    `names` labels the candidates (trial id -> label)."""
    names = names or {}

    def name(c: str | None) -> str:
        return f"{c} ({names[c]})" if c is not None and c in names else str(c)

    out = []
    for r in record.get("rounds") or []:
        seeds = r.get("seed_list") or []
        shown = f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seeds {seeds}"
        line = (
            f"round {r['round']}: {r['seeds']} shared seeds ({shown}), "
            f"{len(r.get('alive') or []) + len(r.get('dropped') or {})} live; best {name(r['best'])}"
        )
        vs = r.get("vs_baseline")
        if vs and vs.get("ci_low") is not None:
            line += (
                f", vs baseline on the objective {100 * vs['mean']:+.2f} "
                f"[{100 * vs['ci_low']:+.2f}, {100 * vs['ci_high']:+.2f}] points"
            )
        out.append(line)
        for c, why in (r.get("dropped") or {}).items():
            out.append(f"  dropped {name(c)}: {why}")
    stop = record.get("stop")
    if stop:
        out.append(f"stopped: {stop}")
    elif out:
        out.append("the race goes on (interrupted, or its last round failed): `fsf confirm DIR`")
    return out
