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

- fixed (`confirm.seeds`): every configuration on every seed, one `Tuner.fit`;
- a race (`confirm.race`): rounds of fresh seeds, one `Tuner.fit` per round, after which
  `fsf.results.race.race_round` drops the candidates a paired test separates from the best
  and stops the race once the best's difference to the baseline is decided (on the
  objective, never test data); each round's record goes to sweep.json when it is decided.

Queries on the sweep then answer from these runs alone (`fsf-sweep best DIR`, `show`,
`report`), with paired statistics against the baseline on the shared fresh seeds.

Layout: `<sweep>/confirm/` is a sweep folder of its own: `sweep.json` (stage `confirm`, the
scheme and seeds, the candidates with where they came from and their trial ids, a race's
rounds; written before any training, so a resumed confirmation never re-selects),
`space.yaml`, `results/`, `tune/` (Tune's logs, `tune/round-<k>/` per round of a race; an
interrupted confirmation is resumed from `sweep.json` and its results with `fsf-sweep
confirm DIR` or `fsf-sweep resume DIR`: each run with a completed fragment is kept,
`fsf.sweep.resume.resume_confirm`) and `runs/<trial>/seed-<s>/` with each confirmed run's
XTREME prediction files and saved checkpoint (`confirm.predictions`, `confirm.checkpoints`;
by default only the winning configuration's checkpoints are kept once the confirmation has
finished).
"""

from __future__ import annotations

import json
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
from fsf.sweep._callbacks import _fit, _statuses, _TrialDirname, _TrialResources
from fsf.sweep._ray import _init_ray
from fsf.sweep.address import check_address
from fsf.sweep.folder import TUNE_DIR, _write_text
from fsf.sweep.resume import CONFIRM_TRIAL, assign_trial_ids, resume_confirm
from fsf.sweep.searcher import _Candidates
from fsf.sweep.spec import ConfirmSpec, RaceSpec, SweepSpec, confirm_seeds
from fsf.sweep.trial import TRIAL_KEY, _trial

__all__ = [
    "ConfirmOutcome",
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


def _confirm_trial(
    config: dict[str, Any],
    *,
    spec_data: dict[str, Any],
    sweep_dir: str,
    candidates: list[dict[str, Any]],
) -> None:
    """A Tune trial of the confirmation: one run, candidate `config["candidate"]` on seed
    `config["seed"]`, its rows under the candidate's trial id (`TRIAL_KEY`)."""
    params = {**candidates[config["candidate"]]["params"], TRIAL_KEY: config[TRIAL_KEY]}
    one_seed = {**spec_data, "search": {**spec_data["search"], "seeds": [config["seed"]]}}
    _trial(params, spec_data=one_seed, sweep_dir=sweep_dir)


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


@dataclass
class _Stage:
    """What the fits of one confirmation have done so far: the runs asked for (candidate,
    seed), failures and retries, and what a resume found."""

    asked: set[tuple[int, int]] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    retried: dict[str, list[str]] = field(default_factory=dict)
    failed: int = 0  # runs whose trial failed (after its retries)
    resumed: str | None = None


class _Runner:
    """Fits a list of runs (candidate x seed) as Tune trials, at the sweep's concurrency."""

    def __init__(
        self,
        spec: SweepSpec,
        cspec: SweepSpec,
        cdir: Location,
        candidates: list[dict[str, Any]],
        *,
        address: str | None,
        num_cpus: int | None,
        progress: bool,
    ):
        self.spec, self.cspec, self.cdir, self.candidates = spec, cspec, cdir, candidates
        self.address, self.num_cpus, self.progress = address, num_cpus, progress
        self.stage = _Stage()
        # a confirmation that had begun before this call: its first fit says what it found
        self._begun = (cdir / TUNE_DIR).exists() or (cdir / "results").exists()

    def run(self, runs: list[tuple[int, int]], desc: str, storage: Location, name: str) -> bool:
        """Train those of `runs` without a completed fragment (Tune's folder `storage/name`);
        returns whether none failed."""
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter

        from fsf.sweep.progress import ProgressCallback

        results_dir = self.cdir / "results"
        plan = resume_confirm(self.candidates, runs, results_dir)
        if self._begun:
            self.stage.resumed, self._begun = plan.note(), False
        self.stage.asked |= set(runs)
        callback = ProgressCallback(
            total=len(runs),
            objective=self.spec.search.objective[0],
            enabled=self.progress,
            desc=desc,
            done=plan.finished,
            unit="run",
            labels=_labels(self.candidates),
        )
        if not plan.todo:
            callback.close()
            return True
        _init_ray(self.address, self.num_cpus)
        trainable = tune.with_resources(
            tune.with_parameters(
                _confirm_trial,
                spec_data=self.cspec.model_dump(mode="json"),
                sweep_dir=str(self.cdir),
                candidates=self.candidates,
            ),
            _TrialResources(self.cspec, self.candidates),
        )
        assert self.cspec.confirm is not None  # _stage_spec sets it
        searcher: Any = _Candidates(plan.todo)
        if self.spec.search.max_concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=self.spec.search.max_concurrent)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=len(plan.todo),
                reuse_actors=True,
                trial_dirname_creator=_TrialDirname(self.candidates),
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(storage),
                verbose=0,
                # a confirmation run is retried on its own budget (a dead worker is usually
                # transient)
                failure_config=tune.FailureConfig(max_failures=self.cspec.confirm.retries),
                callbacks=[callback],
            ),
        )
        grid = _fit(tuner, callback)
        self.stage.failed += _statuses(grid).get("failed", 0)
        self.stage.errors.update(callback.errors)
        self.stage.retried.update(callback.retried)
        if results_dir.exists():
            finalise_statuses(results_dir, callback.errors)
        return not any(r.error is not None for r in grid)


def _race(runner: _Runner, confirm: ConfirmSpec, meta: dict[str, Any], meta_path: Location) -> bool:
    """Run the race's rounds from where its record stops (`meta["race"]`); after each, the
    round's decisions are written to sweep.json at once. Returns whether no run failed."""
    assert confirm.race is not None
    rule = race_rule(confirm.race)
    pool = confirm.race.seed_pool()
    candidates = runner.candidates
    ids = [c[CONFIRM_TRIAL] for c in candidates]
    base = _baseline_index(candidates)
    record = meta.setdefault("race", {"rounds": [], "stop": None, "decision": None})
    mode = runner.spec.search.objective[0].mode
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
        if not runner.run(runs, f"confirm round {k}", runner.cdir / TUNE_DIR, f"round-{k}"):
            return False  # a failed run: the round is not decided (`fsf confirm DIR` retries)
        r = race_round(_scores(runner.cdir), alive, ids[base], rule, round_no=k, mode=mode)
        if r.stop is None and rule.seeds_after(k + 1) == rule.seeds_after(k):
            r.stop = f"seed budget spent ({rule.max_seeds} seeds per candidate); undecided"
        rounds.append({**r.to_dict(), "seed_list": seeds, "runs": len(runs)})
        if r.stop:
            record["stop"], record["decision"] = r.stop, r.decision
        _write_text(meta_path, json.dumps(meta, indent=2, default=str))
        if decided_before and k == decided_before + 1 and runner.stage.resumed:
            runner.stage.resumed += (
                f"; the race went on at round {k} ({decided_before} round(s) decided before)"
            )
    return True


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
    `sweep_dir`; returns where its results are. Each run (candidate x seed) is one Tune
    trial; a race fits one round at a time (`confirm.race`)."""
    check_address(address, num_cpus)
    confirm = confirm or spec.confirm or ConfirmSpec()
    cdir = sweep_dir / CONFIRM_DIR
    meta_path = cdir / "sweep.json"
    results_dir = cdir / "results"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        recorded = ConfirmSpec.model_validate(meta["confirm"])
        if recorded != confirm:
            raise FsfError(
                f"{cdir} already holds a confirmation with other settings "
                f"({recorded.model_dump()}); remove that folder to confirm again"
            )
        candidates = meta["candidates"]
        if assign_trial_ids(candidates, results_dir):  # begun by an older fsf
            _write_text(meta_path, json.dumps(meta, indent=2, default=str))
    else:
        candidates = candidates_for(sweep_dir, confirm)
        assign_trial_ids(candidates, results_dir)
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
        cspec = _stage_spec(spec, confirm)
        _write_text(
            cdir / "space.yaml", yaml.safe_dump(cspec.model_dump(mode="json"), sort_keys=False)
        )
        _write_text(meta_path, json.dumps(meta, indent=2, default=str))
    if meta.get("finished"):
        return ConfirmOutcome(
            cdir, results_dir, candidates, 0, {}, already_done=True, race=meta.get("race")
        )
    cspec = _stage_spec(spec, confirm)
    runner = _Runner(
        spec, cspec, cdir, candidates, address=address, num_cpus=num_cpus, progress=progress
    )
    if confirm.race is not None:
        ok = _race(runner, confirm, meta, meta_path)
    else:
        runs = [(i, s) for i in range(len(candidates)) for s in confirm_seeds(confirm)]
        ok = runner.run(runs, "confirm", cdir, TUNE_DIR)
    stage = runner.stage
    asked = sorted(stage.asked)
    done = resume_confirm(candidates, asked, results_dir).finished if asked else 0
    statuses = {k: v for k, v in (("finished", done), ("failed", len(asked) - done)) if v}
    if ok and not statuses.get("failed"):
        if confirm.checkpoints == "winner":
            meta["checkpoints_pruned"] = prune_checkpoints(cdir)
        meta["finished"] = True
        _write_text(meta_path, json.dumps(meta, indent=2, default=str))
    return ConfirmOutcome(
        cdir,
        results_dir,
        candidates,
        len(asked),
        statuses,
        dict(stage.errors),
        resumed=stage.resumed,
        retried=dict(stage.retried),
        race=meta.get("race"),
        names=_names(candidates),
    )
