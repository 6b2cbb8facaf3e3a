"""The confirmation stage: the search's best configurations, and the baseline, trained again
at full budget on fresh seeds, so that the sweep's answer is not inflated by the search.

A search picks the configuration whose dev score was highest over many noisy trials; that
score, and the test score of the same runs, are biased upwards (the winner's curse). The
confirmation stage takes the `top_k` configurations under the sweep's own objective
(`fsf.results.top_configurations`, the rule Optuna optimised), adds the best configuration
matching `baseline` (plain DF unless set; the space's base config with the baseline's keys
when the search never ran one), and trains each on every seed of `confirm.seeds`, none of
which the search used, with no early stopping. Queries on the sweep then answer from these
runs alone (`fsf-sweep best DIR`, `show`, `report`), with paired statistics against the
baseline on the shared fresh seeds.

Layout: `<sweep>/confirm/` is a sweep folder of its own: `sweep.json` (stage `confirm`, the
seeds, the candidates and where they came from; written before any training, so a resumed
confirmation never re-selects), `space.yaml`, `results/`, `tune/` (Tune's logs; an
interrupted confirmation is resumed from `sweep.json` and its results with `fsf-sweep
confirm DIR` or `fsf-sweep resume DIR`: `fsf.sweep.resume.resume_confirm`) and `runs/<trial>/seed-<s>/` with each confirmed run's XTREME prediction files and saved
checkpoint (`confirm.predictions`, `confirm.checkpoints`; by default only the winning
configuration's checkpoints are kept once the confirmation has finished).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsf.errors import FsfError
from fsf.provenance import stack_versions
from fsf.results import read_results, top_configurations
from fsf.results.fragments import finalise_statuses
from fsf.results.reader import CONFIRM_DIR
from fsf.results.storage import Location
from fsf.sweep._callbacks import _fit, _statuses, _TrialResources
from fsf.sweep._ray import _init_ray
from fsf.sweep.address import check_address
from fsf.sweep.folder import TUNE_DIR, _write_text
from fsf.sweep.resume import resume_confirm
from fsf.sweep.searcher import _Candidates
from fsf.sweep.spec import ConfirmSpec, SweepSpec
from fsf.sweep.trial import TRIAL_KEY, _trial

__all__ = ["ConfirmOutcome", "candidates_for", "confirm_spec", "prune_checkpoints", "run_confirm"]


@dataclass
class ConfirmOutcome:
    """Where the confirmation's results are, what it confirmed and how its trials ended."""

    confirm_dir: Location
    results_dir: Location
    candidates: list[dict[str, Any]]
    num_trials: int
    statuses: dict[str, int]
    errors: dict[str, str] = field(default_factory=dict)
    already_done: bool = False
    resumed: str | None = None  # what a resume found (`ConfirmResume.note`)
    retried: dict[str, list[str]] = field(default_factory=dict)  # trial -> why it failed


def confirm_spec(
    spec: SweepSpec,
    *,
    top_k: int | None = None,
    seeds: list[int] | None = None,
    baseline: dict[str, Any] | None = None,
) -> ConfirmSpec:
    """The space's `confirm` section (defaults when it has none), with any overrides."""
    base = spec.confirm or ConfirmSpec()
    update: dict[str, Any] = {}
    if top_k is not None:
        update["top_k"] = top_k
    if seeds is not None:
        update["seeds"] = seeds
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
    """A Tune trial of the confirmation: one candidate, every confirmation seed, its rows
    under the trial id its config names."""
    params = {**candidates[config["candidate"]]["params"]}
    if TRIAL_KEY in config:
        params[TRIAL_KEY] = config[TRIAL_KEY]
    _trial(params, spec_data=spec_data, sweep_dir=sweep_dir)


def _stage_spec(spec: SweepSpec, confirm: ConfirmSpec) -> SweepSpec:
    """The search's spec with the confirmation's seeds, no early stopping, and its runs'
    artifacts (prediction files, checkpoints) switched on as `confirm` asks."""
    from fsf.config import apply_overrides

    search = spec.search.model_copy(
        update={"seeds": list(confirm.seeds), "scheduler": type(spec.search.scheduler)()}
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
    `sweep_dir`; returns where its results are."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from fsf.sweep.progress import ProgressCallback

    check_address(address, num_cpus)
    confirm = confirm or spec.confirm or ConfirmSpec()
    cdir = sweep_dir / CONFIRM_DIR
    meta_path = cdir / "sweep.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        recorded = ConfirmSpec.model_validate(meta["confirm"])
        if recorded != confirm:
            raise FsfError(
                f"{cdir} already holds a confirmation with other settings "
                f"({recorded.model_dump()}); remove that folder to confirm again"
            )
        candidates = meta["candidates"]
    else:
        candidates = candidates_for(sweep_dir, confirm)
        meta = {
            "name": spec.name,
            "stage": "confirm",
            "objective": [o.model_dump() for o in spec.search.objective],
            "checkpoint": spec.search.checkpoint,
            "baseline": confirm.baseline,
            "seeds": list(confirm.seeds),
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
    results_dir = cdir / "results"
    if meta.get("finished"):
        return ConfirmOutcome(cdir, results_dir, candidates, len(candidates), {}, already_done=True)
    cspec = _stage_spec(spec, confirm)
    spec_data = cspec.model_dump(mode="json")
    plan = resume_confirm(candidates, list(confirm.seeds), results_dir)
    resumed = plan.note() if (cdir / TUNE_DIR).exists() or results_dir.exists() else None
    callback = ProgressCallback(
        total=len(candidates),
        objective=spec.search.objective[0],
        enabled=progress,
        desc="confirm",
        done=plan.finished,
    )
    statuses = {"finished": plan.finished}
    num_run = 0
    if plan.todo:
        _init_ray(address, num_cpus)
        trainable = tune.with_resources(
            tune.with_parameters(
                _confirm_trial, spec_data=spec_data, sweep_dir=str(cdir), candidates=candidates
            ),
            _TrialResources(cspec, candidates),
        )
        searcher: Any = _Candidates(plan.todo)
        if spec.search.max_concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.search.max_concurrent)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher, num_samples=len(plan.todo), reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(cdir),
                verbose=0,
                # a confirmation trial is retried on its own budget (a dead worker is usually
                # transient; the seeds it completed are read back, not trained again)
                failure_config=tune.FailureConfig(max_failures=confirm.retries),
                callbacks=[callback],
            ),
        )
        grid = _fit(tuner, callback)
        num_run = len(grid)
        for key, count in _statuses(grid).items():
            statuses[key] = statuses.get(key, 0) + count
    else:
        callback.close()
    statuses = {k: v for k, v in statuses.items() if v}
    if results_dir.exists():
        finalise_statuses(results_dir, callback.errors)
    if not statuses.get("failed"):
        if confirm.checkpoints == "winner":
            meta["checkpoints_pruned"] = prune_checkpoints(cdir)
        meta["finished"] = True
        _write_text(meta_path, json.dumps(meta, indent=2, default=str))
    return ConfirmOutcome(
        cdir,
        results_dir,
        candidates,
        plan.finished + num_run,
        statuses,
        dict(callback.errors),
        resumed=resumed,
        retried=dict(callback.retried),
    )
