"""The confirmation stage: the search's best configurations, and the baseline, trained again
at full budget on fresh seeds, so that the sweep's answer is not inflated by the search.

A search picks the configuration whose dev score was highest over many noisy trials; that
score, and the test score of the same runs, are biased upwards (the winner's curse). The
confirmation stage takes the `top_k` configurations under the sweep's own objective
(`fsf.results.top_configurations`, the rule Optuna optimised), adds the best configuration
matching `baseline` (plain DF unless set; the space's base config with the baseline's keys
when the search never ran one), and trains them on fresh seeds, none of which the search
used, with no early stopping. Every run (one configuration on one seed) is a Tune trial of
its own, at the sweep's concurrency; all the seeds of a configuration write under one trial
id (`confirm_trial_id` of its candidate). Two schemes:

- fixed (`confirm.seeds`): every configuration on every seed, one batch of runs;
- a race (`confirm.race`): rounds of fresh seeds, one batch per round, after which
  `fsf.results.race.race_round` drops the candidates a paired test separates from the best
  and stops the race once the best's difference to the baseline is decided (on the
  objective, never test data); each round's record goes to sweep.json when it is decided.

A sweep call runs its confirmation in the search's own `Tuner.fit`, right after the search
(`fsf.sweep.stages`: the runs start in the search's warm trial processes); `fsf-sweep
confirm DIR`, or a resume whose search had ended, fits the confirmation alone
(`run_confirm`).

Queries on the sweep then answer from these runs alone (`fsf-sweep best DIR`, `show`,
`report`), with paired statistics against the baseline on the shared fresh seeds.

Layout: `<sweep>/confirm/` is a sweep folder of its own: `sweep.json` (stage `confirm`, the
scheme and seeds, the candidates with where they came from and their trial ids, a race's
rounds; written before any training, so a resumed confirmation never re-selects),
`space.yaml`, `results/`, `tune/` (Tune's logs of a confirmation fitted alone; those of one
fitted after its search are in `<sweep>/tune/` with the search's; an interrupted
confirmation is resumed from `sweep.json` and its results with `fsf-sweep confirm DIR` or
`fsf-sweep resume DIR`: each run with a completed fragment is kept,
`fsf.sweep.resume.resume_confirm`) and `runs/<trial>/seed-<s>/` with each confirmed run's
XTREME prediction files and saved checkpoint (`confirm.predictions`, `confirm.checkpoints`;
by default only the winning configuration's checkpoints are kept once the confirmation has
finished).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsf.errors import FsfError
from fsf.provenance import stack_versions
from fsf.results import read_results, run_objectives, top_configurations
from fsf.results.fragments import finalise_statuses
from fsf.results.race import RaceRule, race_round
from fsf.results.reader import CONFIRM_DIR
from fsf.results.storage import Location
from fsf.sweep.address import check_address
from fsf.sweep.folder import _write_text
from fsf.sweep.resume import CONFIRM_TRIAL, assign_trial_ids, resume_confirm
from fsf.sweep.spec import ConfirmSpec, RaceSpec, SweepSpec, confirm_seeds
from fsf.sweep.trial import CANDIDATE, TRIAL_KEY

__all__ = [
    "ConfirmOutcome",
    "Confirmation",
    "candidates_for",
    "confirm_spec",
    "prune_checkpoints",
    "race_rule",
    "run_confirm",
]


@dataclass
class ConfirmOutcome:
    """Where the confirmation's results are, what it confirmed and how its runs (one Tune
    trial each: a candidate on one seed) ended; `race`: a race's record (its rounds, who
    each dropped and why, why it stopped), `names` the candidates' labels by trial id."""

    confirm_dir: Location
    results_dir: Location
    candidates: list[dict[str, Any]]
    num_trials: int  # runs (candidate x seed) asked for, trained now or read back as done
    statuses: dict[str, int]
    errors: dict[str, str] = field(default_factory=dict)
    already_done: bool = False
    resumed: str | None = None  # what a resume found (`ConfirmResume.note`)
    retried: dict[str, list[str]] = field(default_factory=dict)  # trial -> why it failed
    race: dict[str, Any] | None = None
    names: dict[str, str] = field(default_factory=dict)


def confirm_spec(
    spec: SweepSpec,
    *,
    top_k: int | None = None,
    seeds: list[int] | None = None,
    baseline: dict[str, Any] | None = None,
) -> ConfirmSpec:
    """The space's `confirm` section (defaults when it has none), with any overrides; `seeds`
    asks for the fixed scheme on those seeds (instead of the space's race)."""
    base = spec.confirm or ConfirmSpec()
    update: dict[str, Any] = {}
    if top_k is not None:
        update["top_k"] = top_k
    if seeds is not None:
        update["seeds"], update["race"] = seeds, None
    if baseline is not None:
        update["baseline"] = baseline
    data = {**base.model_dump(), **update}
    from fsf.sweep.space import validate_space

    checked = validate_space(
        {**spec.model_dump(mode="json"), "confirm": data}, "the confirmation settings"
    )
    assert checked.confirm is not None
    return checked.confirm


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def candidates_for(sweep_dir: Location, confirm: ConfirmSpec) -> list[dict[str, Any]]:
    """The configurations to confirm: the search's `top_k` under its objective, then the
    baseline (its best searched configuration, else the base config with its keys)."""
    res = read_results(sweep_dir)
    top, base = top_configurations(res, confirm.top_k, baseline=confirm.baseline)
    if not top:
        raise FsfError(
            f"{sweep_dir}: no configuration of the search has an objective value to rank; "
            "nothing to confirm (did every trial fail?)"
        )
    out = [{**c, "role": "candidate", "from_search": True} for c in top]
    keys = {_key(c["params"]) for c in out}
    if base is None:
        out.append(
            {
                "rank": None,
                "params": dict(confirm.baseline),
                "policy": confirm.baseline.get("policy.name"),
                "role": "baseline",
                "from_search": False,
                "note": "the search ran no configuration matching the baseline: the space's "
                "base config with the baseline's keys",
            }
        )
    elif _key(base["params"]) in keys:
        for c in out:
            if _key(c["params"]) == _key(base["params"]):
                c["role"] = "candidate+baseline"
    else:
        out.append({**base, "role": "baseline", "from_search": True})
    return out


def _stage_spec(spec: SweepSpec, confirm: ConfirmSpec) -> SweepSpec:
    """The search's spec with the confirmation's seeds, no early stopping, the base's
    evaluation splits (whatever `search.splits` narrowed for the search), and its runs'
    artifacts (prediction files, checkpoints) switched on as `confirm` asks."""
    from fsf.config import apply_overrides

    search = spec.search.model_copy(
        update={
            "seeds": confirm_seeds(confirm),
            "scheduler": type(spec.search.scheduler)(),
            "splits": None,  # the base's splits: the answer's test scores come from here
        }
    )
    keep: list[tuple[str, Any]] = []
    if confirm.predictions:
        keep.append(("eval.predictions", True))
    if confirm.checkpoints != "none":
        keep.append(("checkpoint.save", "best"))
    base = apply_overrides(spec.base, keep)
    return spec.model_copy(update={"search": search, "confirm": confirm, "base": base})


def prune_checkpoints(confirm_dir: Location) -> list[str]:
    """Delete the saved checkpoints of every confirmed run outside the winning configuration
    (the target mean's answer under the sweep's objective); returns the trials pruned."""
    import shutil

    from fsf.results import best_per_language

    winner = best_per_language(read_results(confirm_dir)).target_mean
    keep = set(winner["trial_ids"]) if winner else set()
    pruned: list[str] = []
    runs: Location = confirm_dir / "runs"
    if not runs.is_dir():
        return pruned
    trials: list[Location] = sorted(runs.iterdir(), key=str)
    for trial in trials:
        if trial.name in keep:
            continue
        seeds: list[Location] = sorted(trial.iterdir(), key=str)
        for seed in seeds:
            ckpt = seed / "checkpoint"
            if not ckpt.is_dir():
                continue
            if isinstance(ckpt, Path):
                shutil.rmtree(ckpt)
            else:
                ckpt.fs.delete_dir(ckpt.path)
            pruned.append(trial.name)
    return sorted(set(pruned))


def _labels(candidates: list[dict[str, Any]]) -> dict[int, str]:
    """Each candidate's short label for the live bar: `#rank policy`, or `baseline policy`."""
    out = {}
    for i, c in enumerate(candidates):
        policy = c.get("policy") or (c.get("params") or {}).get("policy.name") or "?"
        rank = f"#{c['rank']} {policy}" if c.get("rank") else str(policy)
        out[i] = f"baseline {policy}" if c.get("role") == "baseline" else rank
    return out


def _names(candidates: list[dict[str, Any]]) -> dict[str, str]:
    """Trial id of each candidate's rows -> its label (for the race's lines)."""
    labels = _labels(candidates)
    return {c[CONFIRM_TRIAL]: labels[i] for i, c in enumerate(candidates)}


def _baseline_index(candidates: list[dict[str, Any]]) -> int:
    return next(i for i, c in enumerate(candidates) if "baseline" in str(c.get("role")))


def race_rule(race: RaceSpec) -> RaceRule:
    """The race's rule from its settings (the margin from points to the objective's unit)."""
    return RaceRule(
        first_round=race.first_round,
        per_round=race.per_round,
        max_seeds=race.max_seeds,
        alpha=race.alpha,
        margin=race.margin / 100,
        min_rounds=race.min_rounds,
    )


def _scores(cdir: Location) -> dict[str, dict[int, float]]:
    """Each candidate's objective per seed (trial id of its rows -> seed -> value), from the
    confirmation's completed runs, at each run's checkpoint: never test data."""
    from fsf.results import ResultsError

    out: dict[str, dict[int, float]] = {}
    try:
        runs = run_objectives(cdir)
    except ResultsError:  # nothing to read yet
        return out
    for run in runs:
        out.setdefault(run["trial_id"], {})[int(run["seed"])] = run["value"]
    return out


class Confirmation:
    """The confirmation stage of one sweep as the batches of runs a staged fit trains
    (`fsf.sweep.stages`): one batch for the fixed scheme, one per round of a race, each
    decided from the rows once its runs have all ended. Made, its record is on disk:
    `<sweep>/confirm/sweep.json` names the candidates (chosen now from the search's results,
    or read back from an earlier call, which must have asked for the same settings) before
    any of them trains."""

    def __init__(
        self, spec: SweepSpec, sweep_dir: Location, confirm: ConfirmSpec, *, progress: bool
    ):
        self.spec, self.confirm, self.progress = spec, confirm, progress
        self.cdir = sweep_dir / CONFIRM_DIR
        self.meta_path = self.cdir / "sweep.json"
        self.results_dir = self.cdir / "results"
        self.cspec = _stage_spec(spec, confirm)
        self.retries = confirm.retries
        begun = self.meta_path.is_file()
        self.meta = self._read() if begun else self._write_new(sweep_dir)
        self.candidates: list[dict[str, Any]] = self.meta["candidates"]
        self.labels = _labels(self.candidates)
        self.bar: Any = None  # the current batch's ProgressCallback
        self.asked: set[tuple[int, int]] = set()
        self.errors: dict[str, str] = {}
        self.retried: dict[str, list[str]] = {}
        self.ok = True  # no run has failed
        self.resumed: str | None = None
        self._begun = begun  # begun before this call: its first batch says what it found
        self._batches = self._rounds() if confirm.race is not None else self._fixed()
        self._open = False  # a batch was handed out and has not been closed

    @property
    def finished(self) -> bool:
        return bool(self.meta.get("finished"))

    def _read(self) -> dict[str, Any]:
        meta = json.loads(self.meta_path.read_text())
        recorded = ConfirmSpec.model_validate(meta["confirm"])
        if recorded != self.confirm:
            raise FsfError(
                f"{self.cdir} already holds a confirmation with other settings "
                f"({recorded.model_dump()}); remove that folder to confirm again"
            )
        if assign_trial_ids(meta["candidates"], self.results_dir):  # begun by an older fsf
            self._save(meta)
        return meta

    def _write_new(self, sweep_dir: Location) -> dict[str, Any]:
        spec, confirm = self.spec, self.confirm
        candidates = candidates_for(sweep_dir, confirm)
        assign_trial_ids(candidates, self.results_dir)
        meta = {
            "name": spec.name,
            "stage": "confirm",
            "objective": [o.model_dump() for o in spec.search.objective],
            "checkpoint": spec.search.checkpoint,
            "baseline": confirm.baseline,
            "seeds": confirm_seeds(confirm),
            "scheme": "race" if confirm.race is not None else "fixed",
            "confirm": confirm.model_dump(),
            "candidates": candidates,
            "finished": False,
            "provenance": {"driver": stack_versions()},
        }
        _write_text(
            self.cdir / "space.yaml",
            yaml.safe_dump(self.cspec.model_dump(mode="json"), sort_keys=False),
        )
        self._save(meta)
        return meta

    def _save(self, meta: dict[str, Any] | None = None) -> None:
        _write_text(self.meta_path, json.dumps(meta or self.meta, indent=2, default=str))

    # ------------------------------------------------------------ the batches

    def next_runs(self, failed: int) -> list[dict[str, Any]] | None:
        """The configs of the next batch's runs still to train, once the last batch's have
        all ended (`failed` of them failed); None when the confirmation has no more to run
        (finished, or stopped by a failed run: `fsf confirm DIR` runs it again)."""
        try:
            if self._open:
                self._close(failed)
                runs = self._batches.send(self.ok)
            else:
                runs = next(self._batches)
            while True:
                configs = self._start(*runs)
                if configs:
                    return configs
                self._close(0)
                runs = self._batches.send(self.ok)
        except StopIteration:
            return None

    def _start(self, runs: list[tuple[int, int]], desc: str) -> list[dict[str, Any]]:
        """Open a batch: its bar, and the configs of its runs without a completed fragment."""
        from fsf.sweep.progress import ProgressCallback

        plan = resume_confirm(self.candidates, runs, self.results_dir)
        if self._begun:
            self.resumed, self._begun = plan.note(), False
        self.asked |= set(runs)
        self.bar = ProgressCallback(
            total=len(runs),
            objective=self.spec.search.objective[0],
            enabled=self.progress,
            desc=desc,
            done=plan.finished,
            unit="run",
            labels=self.labels,
        )
        self._open = True
        return [
            {
                CANDIDATE: i,
                "seed": seed,
                TRIAL_KEY: rows,
                "params": dict(self.candidates[i]["params"]),
            }
            for i, seed, rows in plan.todo
        ]

    def _close(self, failed: int) -> None:
        """Close the open batch: its bar, its failures recorded in the fragments."""
        self._open = False
        bar = self.bar
        if bar is not None:
            bar.close()
            self.errors.update(bar.errors)
            self.retried.update(bar.retried)
        if failed:
            self.ok = False
        if self.results_dir.exists():
            finalise_statuses(self.results_dir, bar.errors if bar is not None else {})

    def _fixed(self) -> Generator[tuple[list[tuple[int, int]], str], bool, None]:
        seeds = confirm_seeds(self.confirm)
        yield [(i, s) for i in range(len(self.candidates)) for s in seeds], "confirm"

    def _rounds(self) -> Generator[tuple[list[tuple[int, int]], str], bool, None]:
        """The race's rounds from where its record stops (`meta["race"]`); after each, the
        round's decisions are written to sweep.json at once. A round with a failed run is
        not decided (`fsf confirm DIR` runs it again)."""
        confirm, meta = self.confirm, self.meta
        assert confirm.race is not None
        rule = race_rule(confirm.race)
        pool = confirm.race.seed_pool()
        candidates = self.candidates
        ids = [c[CONFIRM_TRIAL] for c in candidates]
        base = _baseline_index(candidates)
        record = meta.setdefault("race", {"rounds": [], "stop": None, "decision": None})
        mode = self.spec.search.objective[0].mode
        decided_before = len(record["rounds"])
        while not record.get("stop"):
            rounds = record["rounds"]
            k = len(rounds) + 1
            if rounds:
                alive = list(rounds[-1]["alive"])
            else:
                alive = [ids[i] for i, c in enumerate(candidates) if c.get("role") != "baseline"]
            seeds = pool[: rule.seeds_after(k)]
            racing = [i for i, t in enumerate(ids) if t in alive or i == base]
            runs = [(i, s) for i in racing for s in seeds]
            ok = yield runs, f"confirm round {k}"
            if not ok:
                return
            r = race_round(_scores(self.cdir), alive, ids[base], rule, round_no=k, mode=mode)
            if r.stop is None and rule.seeds_after(k + 1) == rule.seeds_after(k):
                r.stop = f"seed budget spent ({rule.max_seeds} seeds per candidate); undecided"
            rounds.append({**r.to_dict(), "seed_list": seeds, "runs": len(runs)})
            if r.stop:
                record["stop"], record["decision"] = r.stop, r.decision
            self._save()
            if decided_before and k == decided_before + 1 and self.resumed:
                self.resumed += (
                    f"; the race went on at round {k} ({decided_before} round(s) decided before)"
                )

    # ------------------------------------------------------------ the outcome

    def outcome(self, already_done: bool = False) -> ConfirmOutcome:
        """What the confirmation did; marks it finished in sweep.json (pruning the losers'
        checkpoints first) when every run it asked for has a completed fragment."""
        if already_done:
            return ConfirmOutcome(
                self.cdir,
                self.results_dir,
                self.candidates,
                0,
                {},
                already_done=True,
                race=self.meta.get("race"),
            )
        asked = sorted(self.asked)
        done = resume_confirm(self.candidates, asked, self.results_dir).finished if asked else 0
        statuses = {k: v for k, v in (("finished", done), ("failed", len(asked) - done)) if v}
        if self.ok and not statuses.get("failed"):
            if self.confirm.checkpoints == "winner":
                self.meta["checkpoints_pruned"] = prune_checkpoints(self.cdir)
            self.meta["finished"] = True
            self._save()
        return ConfirmOutcome(
            self.cdir,
            self.results_dir,
            self.candidates,
            len(asked),
            statuses,
            dict(self.errors),
            resumed=self.resumed,
            retried=dict(self.retried),
            race=self.meta.get("race"),
            names=_names(self.candidates),
        )


def run_confirm(
    spec: SweepSpec,
    sweep_dir: Location,
    *,
    confirm: ConfirmSpec | None = None,
    address: str | None = None,
    progress: bool = True,
    num_cpus: int | None = None,
) -> ConfirmOutcome:
    """Run (or resume, or report as done) the confirmation stage of the sweep in
    `sweep_dir` alone (its search has ended); returns where its results are. Each run
    (candidate x seed) is one Tune trial; the whole confirmation, every round of a race, is
    one fit (`fsf.sweep.stages`), whose Tune folder is `<sweep>/confirm/tune`. Ray starts
    only when a run is left to train."""
    check_address(address, num_cpus)
    stage = Confirmation(
        spec, sweep_dir, confirm or spec.confirm or ConfirmSpec(), progress=progress
    )
    if stage.finished:
        return stage.outcome(already_done=True)
    first = stage.next_runs(0)
    if first:
        from fsf.sweep.stages import fit_stages

        fit_stages(
            spec,
            sweep_dir,
            stage.cdir,
            confirmation=stage,
            first_batch=first,
            confirm_spec=stage.cspec,
            address=address,
            num_cpus=num_cpus,
        )
    return stage.outcome()
