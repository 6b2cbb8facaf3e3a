"""One Tune run for a whole sweep call: the search's trials, then the confirmation's runs
(every round of a race), in one `Tuner.fit`.

Tune hands a trial process on to the next trial (`reuse_actors`) only within one fit. When
each stage (and each round of a race) was a fit of its own, every stage change started new
trial processes that imported torch and transformers again: about 9 s of a 14 s stage change
on 2 cores (docs/benchmarks.md, benchmark 13). Here the confirmation's runs start in the
search's warm processes.

`_Stages` is the fit's searcher. It draws the search's trials from the study's searcher,
then waits (returns None, so Tune asks again) until every one of them has ended, settles
their fragments' statuses, and only then asks the confirmation for its batches of runs
(`fsf.sweep.confirm.Confirmation.next_runs`): a fixed scheme is one batch, a race one batch
per round, decided from the rows once the round has ended. A confirmation run's config
names its candidate (`fsf.sweep.trial.CANDIDATE`); everything Tune does per trial tells the
stages apart by it:

- the scheduler (`_SearchOnly`): ASHA judges the search's trials only, never stops a
  confirmation run;
- the failure budget (`_ConfirmRetries`): a confirmation run is retried `confirm.retries`
  times, a search trial `search.max_failures` times (Tune's budget is per fit, so the
  confirmation's is set on each of its trials as it starts);
- the callbacks (`_ForStage`): the search's progress bar and the extra loggers see the
  search's trials; the confirmation's bars (one per batch) see its runs.

What a fit records is fsf's own (the study, sweep.json, the fragments), so a killed call is
resumed stage by stage as before (`fsf.sweep.resume`); only Tune's logs of a call that ran
both stages are in `<sweep>/tune/` together (a confirmation run's trial folder is named
`..._confirm_seed=S_...`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from fsf.results.storage import Location
from fsf.sweep._callbacks import _TrialDirname, _TrialResources
from fsf.sweep._ray import _init_ray
from fsf.sweep.folder import TUNE_DIR
from fsf.sweep.spec import SweepSpec
from fsf.sweep.trial import _trial, is_confirm_run

__all__: list[str] = []


class ConfirmationStage(Protocol):
    """What the staged fit asks of a confirmation (`fsf.sweep.confirm.Confirmation`)."""

    retries: int  # how often a failed run is run again
    bar: Callback | None  # the progress bar of the current batch (its runs' hooks go there)

    def next_runs(self, failed: int) -> list[dict[str, Any]] | None:
        """The configs of the next batch's runs still to train (never an empty list), once
        the previous batch's runs have all ended, `failed` of them failed; None: finished."""
        ...


@dataclass
class SearchRecord:
    """How the fit's search trials ended (this fit's only)."""

    finished: int = 0
    failed: int = 0
    error: BaseException | None = None  # raised in the searcher: re-raised after the fit


class _Stages(Searcher):
    """The staged fit's searcher (see the module doc). `search`: the study's searcher (no
    concurrency limit: the fit puts one over both stages) and `num_search` trials to draw
    from it; `make_confirmation(record)`: the confirmation, made once every search trial has
    ended (`settle()` first settles their fragments), None for none; or `confirmation` with
    its `first_batch` when only the confirmation runs."""

    def __init__(
        self,
        search: Searcher | None = None,
        num_search: int = 0,
        make_confirmation: Callable[[SearchRecord], ConfirmationStage | None] | None = None,
        settle: Callable[[], None] | None = None,
        *,
        confirmation: ConfirmationStage | None = None,
        first_batch: list[dict[str, Any]] | None = None,
    ):
        metric, mode = (search.metric, search.mode) if search is not None else (None, None)
        super().__init__(metric=metric, mode=mode)
        self.search = search
        self.left = num_search if search is not None else 0
        self.make_confirmation = make_confirmation
        self.settle = settle
        self.confirmation = confirmation
        self.started_confirmation = confirmation is not None
        self.todo: list[dict[str, Any]] = list(first_batch or [])
        self.record = SearchRecord()
        self.live: dict[str, bool] = {}  # Tune trial id -> a confirmation run
        self.batch_failed = 0
        self.finished = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its searcher into tuner.pkl, which fsf never reads back (a resume
        # starts from the study, sweep.json and the fragments): the driver's links stay out
        drop = ("make_confirmation", "settle", "confirmation")
        return {k: (None if k in drop else v) for k, v in self.__dict__.items()}

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        if self.search is not None:
            return self.search.set_search_properties(metric, mode, config, **spec)
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.finished:
            return Searcher.FINISHED
        try:
            return self._suggest(trial_id)
        except Exception as exc:  # reported after the fit (Tune would bury it in its logs)
            self.record.error, self.finished = exc, True
            return Searcher.FINISHED

    def _suggest(self, trial_id: str) -> dict | str | None:
        if not self.started_confirmation:
            if self.left > 0:
                assert self.search is not None
                config = self.search.suggest(trial_id)
                if config is None:
                    return None
                if config == Searcher.FINISHED:  # the space is exhausted
                    self.left = 0
                else:
                    self.left -= 1
                    self.live[trial_id] = False
                    return config
            if self.live:
                return None  # the confirmation chooses from the whole search: wait for it
            self.started_confirmation = True
            if self.settle is not None:
                self.settle()
            self.confirmation = (
                self.make_confirmation(self.record) if self.make_confirmation else None
            )
        if self.confirmation is None:
            self.finished = True
            return Searcher.FINISHED
        if not self.todo:
            if self.live:
                return None  # the batch's runs still train (a race decides on all of them)
            batch = self.confirmation.next_runs(self.batch_failed)
            self.batch_failed = 0
            if not batch:
                self.finished = True
                return Searcher.FINISHED
            self.todo = list(batch)
        config = self.todo.pop(0)
        self.live[trial_id] = True
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.live.get(trial_id) is False and self.search is not None:
            self.search.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        confirm_run = self.live.pop(trial_id, None)
        if confirm_run is None:
            return
        if confirm_run:
            self.batch_failed += bool(error)
            return
        if error:
            self.record.failed += 1
        else:
            self.record.finished += 1
        if self.search is not None:
            self.search.on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study, sweep.json and the fragments are the record."""

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("fsf resumes from the study and the results, not Tune's state")


class _SearchOnly(TrialScheduler):
    """The search's scheduler for the search's trials only: a confirmation run is trained to
    its end (every hook of it is answered CONTINUE or ignored)."""

    def __init__(self, inner: Any):
        self.inner = inner

    @property
    def metric(self) -> Any:
        return self.inner.metric

    @property
    def mode(self) -> Any:
        return self.inner.mode

    @property
    def _supports_buffered_results(self) -> bool:
        return getattr(self.inner, "_supports_buffered_results", True)

    def set_search_properties(self, metric: Any, mode: Any, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if not is_confirm_run(trial.config):
            self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        if not is_confirm_run(trial.config):
            self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if is_confirm_run(trial.config):
            return TrialScheduler.CONTINUE
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if not is_confirm_run(trial.config):
            self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if not is_confirm_run(trial.config):
            self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


class _ForStage(Callback):
    """A callback that sees one stage's trials: `inner` gets the hooks of the search's
    trials (`confirm=False`) or of the confirmation's runs, and the hooks of no trial. Tune
    calls callbacks with keywords only. `inner` may be set later (the confirmation's bar of
    the current batch)."""

    def __init__(self, inner: Callback | None = None, *, confirm: bool, stages: Any = None):
        self.inner = inner
        self.confirm = confirm
        self.stages = stages  # with no `inner`: the current bar of `stages.confirmation`

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into tuner.pkl, which fsf never reads back
        return {"inner": self.inner, "confirm": self.confirm, "stages": None}

    def _target(self) -> Callback | None:
        if self.inner is not None or self.stages is None:
            return self.inner
        return getattr(self.stages.confirmation, "bar", None)

    def _each(self, hook: str, info: dict[str, Any]) -> None:
        target = self._target()
        if target is not None:
            getattr(target, hook)(**info)

    def _trial(self, hook: str, info: dict[str, Any]) -> None:
        if is_confirm_run(getattr(info.get("trial"), "config", None)) == self.confirm:
            self._each(hook, info)

    def setup(self, **info: Any) -> None:
        self._each("setup", info)

    def on_step_begin(self, **info: Any) -> None:
        self._each("on_step_begin", info)

    def on_step_end(self, **info: Any) -> None:
        self._each("on_step_end", info)

    def on_experiment_end(self, **info: Any) -> None:
        self._each("on_experiment_end", info)

    def on_trial_start(self, **info: Any) -> None:
        self._trial("on_trial_start", info)

    def on_trial_restore(self, **info: Any) -> None:
        self._trial("on_trial_restore", info)

    def on_trial_save(self, **info: Any) -> None:
        self._trial("on_trial_save", info)

    def on_trial_result(self, **info: Any) -> None:
        self._trial("on_trial_result", info)

    def on_trial_complete(self, **info: Any) -> None:
        self._trial("on_trial_complete", info)

    def on_trial_recover(self, **info: Any) -> None:
        self._trial("on_trial_recover", info)

    def on_trial_error(self, **info: Any) -> None:
        self._trial("on_trial_error", info)

    def on_checkpoint(self, **info: Any) -> None:
        self._trial("on_checkpoint", info)


class _ConfirmRetries(Callback):
    """Give each confirmation run its own failure budget as it starts (`confirm.retries`;
    a worker death is usually transient), whatever the fit's `max_failures` (the search's)."""

    def __init__(self, retries: int):
        self.retries = retries

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if is_confirm_run(trial.config):
            trial.max_failures = self.retries


def fit_stages(
    spec: SweepSpec,
    sweep_dir: Location,
    storage: Location,
    *,
    search: Searcher | None = None,
    num_search: int = 0,
    scheduler: Any = None,
    search_callbacks: Sequence[Callback] = (),
    make_confirmation: Callable[[SearchRecord], ConfirmationStage | None] | None = None,
    confirmation: ConfirmationStage | None = None,
    first_batch: list[dict[str, Any]] | None = None,
    confirm_spec: SweepSpec | None = None,
    settle: Callable[[], None] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
) -> Any:
    """Fit the search's `num_search` trials (from `search`, judged by `scheduler`, shown by
    `search_callbacks`), then the confirmation's runs (`confirmation` with its `first_batch`
    when only the confirmation runs, else `make_confirmation(how the search's trials
    ended)` once the search has ended), in one `Tuner.fit` whose Tune folder is
    `storage/tune`. `confirm_spec`: the confirmation stage's spec, its runs' folder
    `sweep_dir/confirm`. Returns Tune's `ResultGrid`; an error raised while choosing or
    deciding the confirmation's runs is raised here, after the fit."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    from fsf.results.reader import CONFIRM_DIR

    _init_ray(address, num_cpus)
    stages = _Stages(
        search,
        num_search,
        make_confirmation,
        settle,
        confirmation=confirmation,
        first_batch=first_batch,
    )
    searcher: Any = stages
    if spec.search.max_concurrent:
        searcher = ConcurrencyLimiter(stages, max_concurrent=spec.search.max_concurrent)
    retries = confirm_spec.confirm.retries if confirm_spec and confirm_spec.confirm else 0
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial,
            spec_data=spec.model_dump(mode="json"),
            sweep_dir=str(sweep_dir),
            confirm_data=confirm_spec.model_dump(mode="json") if confirm_spec else None,
            confirm_dir=str(sweep_dir / CONFIRM_DIR),
        ),
        _TrialResources(spec),
    )
    callbacks: list[Callback] = [_ForStage(cb, confirm=False) for cb in search_callbacks]
    callbacks += [_ForStage(confirm=True, stages=stages), _ConfirmRetries(retries)]
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_SearchOnly(scheduler or FIFOScheduler()),
            num_samples=-1,  # the searcher says when both stages are done
            reuse_actors=True,  # a stage's runs start in the warm processes of the last
            trial_dirname_creator=_TrialDirname(),
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(storage),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
            callbacks=callbacks,
        ),
    )
    try:
        grid = tuner.fit()
    finally:
        for cb in search_callbacks:
            if hasattr(cb, "close"):
                cb.close()
        bar = getattr(stages.confirmation, "bar", None)
        if bar is not None and hasattr(bar, "close"):
            bar.close()
    if stages.record.error is not None:
        raise stages.record.error
    return grid


def search_statuses(grid: Any) -> dict[str, int]:
    """How the search's trials of a fitted `ResultGrid` ended: {"finished": n, "failed": m}."""
    statuses: dict[str, int] = {}
    for result in grid:
        if is_confirm_run(result.config):
            continue
        key = "failed" if result.error is not None else "finished"
        statuses[key] = statuses.get(key, 0) + 1
    return statuses
