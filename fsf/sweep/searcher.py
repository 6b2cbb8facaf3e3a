"""The search: Ray Tune's `OptunaSearch` made resumable and honest about repeats (a repeated
(configuration, seed) is answered from the study or parked until its twin finishes; an
exhausted space ends the search), the sampler a space names, the confirmation stage's
candidates, and the search algorithm around either that Tune is given (`search_algorithm`),
whose saved state (with the ASHA scheduler's rungs, which Tune does not save) is reconciled
with Tune's restored trials when a sweep resumes."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Collection
from typing import Any

from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import AsyncHyperBandScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from fsf.errors import FsfError
from fsf.sweep.spec import SweepSpec

__all__ = ["reconcile_orphans", "search_algorithm"]

log = logging.getLogger("fsf.sweep")

_RESTORED: list[Any] = []
"""The search Tune restored in the running fit (unpickled from tuner.pkl, then given its saved
state if that was found): a `_Search`, or the bare searcher of a sweep started before
`_Search` existed; it waits for its `reconcile` with the trials Tune restored
(`fsf.sweep._callbacks._ResumeCheck`, on the first step)."""


def search_algorithm(
    searcher: Searcher, max_concurrent: int | None, scheduler: Any = None
) -> SearchGenerator:
    """What Tune is given as `search_alg`: `searcher` behind a `ConcurrencyLimiter` (when
    `max_concurrent` is set) in a `_Search`. Pass `max_concurrent_trials=None` to Tune, and
    `scheduler` both here and to Tune: an ASHA scheduler's rungs are saved and restored
    with the search's state."""
    if max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return _Search(searcher, scheduler)


class _Search(SearchGenerator):
    """Tune's `SearchGenerator` whose restored state is made to agree with Tune's trials.

    Tune saves its trials (`experiment_state-*.json`) and the search's state
    (`search_gen_state-*.json`: trials created, the concurrency limiter's live trials;
    `searcher-state-*.pkl`) as separate files, one after the other, and uploads them to
    remote storage one by one: a driver killed in between leaves files of different saves.
    Restored as they are, the search may count trials Tune does not have (fewer new trials
    are created, so grid points are lost), hold a concurrency slot for a trial Tune will
    never run (the sweep waits forever), or not know a trial Tune runs again.
    `reconcile(trials)`, called with Tune's restored trials before any new trial is asked
    for, rebuilds that state from them: the count, the live trials, and the searcher's own
    (`_ResumableOptunaSearch.reconcile`, `_Candidates.reconcile`).

    Tune saves no scheduler state: restored as Tune leaves it, an ASHA scheduler starts
    with empty rungs, and judges the trials after a resume against those alone (the first
    to reach a rung always goes on; trials an uninterrupted sweep would stop are trained
    in full). So the rungs of `scheduler` (an `AsyncHyperBandScheduler`: each rung's
    recorded score per trial) are saved in the search's state, written in the same save,
    and restored with it; `reconcile` drops the records of trials Tune did not restore
    (their ids are handed out again)."""

    def __init__(self, searcher: Searcher, scheduler: Any = None):
        super().__init__(searcher)
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        rungs = _rungs(self._scheduler())
        if rungs is not None:
            state["asha_rungs"] = [[dict(recorded) for _, recorded in b] for b in rungs]
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        rungs, saved = _rungs(self._scheduler()), state.get("asha_rungs")
        if rungs is None or saved is None:
            return
        if [len(b) for b in rungs] != [len(b) for b in saved]:  # not the scheduler saved
            log.warning("ASHA's saved rungs do not fit its brackets; it starts afresh")
            return
        for bracket, saved_bracket in zip(rungs, saved, strict=True):
            for (_, recorded), was in zip(bracket, saved_bracket, strict=True):
                recorded.clear()
                recorded.update(was)

    def _scheduler(self) -> Any:
        return getattr(self, "scheduler", None)  # (absent in a sweep started before it)

    def asha_scored(self) -> int | None:
        """How many trials ASHA's rungs hold a score of (None: the scheduler is not ASHA)."""
        rungs = _rungs(self._scheduler())
        if rungs is None:
            return None
        return len({t for bracket in rungs for _, recorded in bracket for t in recorded})

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Tune unpickles the search from tuner.pkl on restore, before it looks for the saved
        # search state (which may never have been saved): it is reconciled either way
        self.__dict__.update(state)
        _RESTORED[:] = [self]

    def restore_from_dir(self, dirpath: str) -> None:
        super().restore_from_dir(dirpath)
        _RESTORED[:] = [self]

    def is_finished(self) -> bool:
        # Tune asks this before its first step: restored, the count may come from a save
        # that knew more trials than Tune restored (one created after Tune's last save of
        # its trials), and the sweep would end with that trial's point never run. So a
        # restored search says no until the first step has reconciled it.
        return self not in _RESTORED and super().is_finished()

    def reconcile(self, trials: list) -> None:
        if self._experiment is None:  # no saved search state (`check_tune_state` refuses it)
            raise FsfError(
                "Ray Tune restored the sweep's trials but not its search state, so the "
                "sweep cannot be resumed; nothing was changed. To go on, start a new sweep "
                "(--name NEW)"
            )
        self._counter = len(trials)
        self._finished = False  # the searcher says again whether it has finished
        searcher = self.searcher
        if isinstance(searcher, ConcurrencyLimiter):
            live = {t.trial_id for t in trials if not t.is_finished()}
            searcher.live_trials = live
            searcher.num_unfinished_live_trials = len(live)
            searcher = searcher.searcher
        searcher.reconcile(trials)
        known = {t.trial_id for t in trials}
        for bracket in _rungs(self._scheduler()) or []:
            for _, recorded in bracket:
                for trial_id in set(recorded) - known:
                    del recorded[trial_id]


def _rungs(scheduler: Any) -> list[list[tuple[Any, dict[str, float]]]] | None:
    """The rungs of each bracket of an ASHA scheduler (`(milestone, {trial id: score})`,
    Ray Tune's own lists, changed in place), or None for any other scheduler (or a Ray
    whose ASHA keeps them elsewhere: its sweeps resume with fresh rungs, as in Tune)."""
    if not isinstance(scheduler, AsyncHyperBandScheduler):
        return None
    try:
        return [b._rungs for b in scheduler._brackets]
    except AttributeError:  # (Ray is pinned to a version that has them)
        return None


class _Candidates(Searcher):
    """The confirmation stage's searcher: hands out `{"candidate": i}` for i < n, each to one
    trial; on resume, which were handed out is read off the trials Tune restored."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.handed: dict[str, int] = {}  # Tune trial id -> candidate

    def suggest(self, trial_id: str) -> dict | str | None:
        taken = set(self.handed.values())
        free = [i for i in range(self.n) if i not in taken]
        if not free:
            return Searcher.FINISHED
        self.handed[trial_id] = free[0]
        return {"candidate": free[0]}

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        pass

    def reconcile(self, trials: list) -> None:
        self.handed = {t.trial_id: t.config["candidate"] for t in trials}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"n": self.n, "handed": self.handed}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class _ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch whose study (in the RDB) and Tune's saved state agree after a crash.

    Tune saves its state (trials and this searcher) every second; the Optuna study is written
    at once. A crash between the two leaves two kinds of disagreement, both handled here
    (`reconcile`, with the trials Tune restored, whichever save this searcher's own state
    came from):

    - a trial Optuna already finished is rerun by Tune: reports to it are ignored (Optuna
      keeps its first result; the rerun rewrites the trial's fragment);
    - a trial Optuna handed out after the last save (unknown to Tune, whose fragments leave
      the results on resume) is an orphan: on restore, if it was an enqueued point (a grid
      point), its point is enqueued again, so no point is lost; if still RUNNING it is
      marked FAIL (user attr `fsf_orphaned`). One that already finished keeps its state
      (Optuna cannot change a finished trial): the study's user attr `fsf_orphans` lists
      every orphan's number.

    Each Optuna trial records its Tune trial id (user attr `tune_trial_id`), which is also
    the `trial_id` of its result rows.
    """

    #: with `skip_repeats`, how many repeats in a row a suggestion may draw before the space
    #: counts as exhausted (every configuration the sampler proposes was tried): then the
    #: searcher reports FINISHED and the sweep ends early instead of training repeats
    MAX_REDRAWS = 32

    def __init__(self, *args: Any, skip_repeats: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skip_repeats = skip_repeats
        self.exhausted = False
        # draws that repeat a configuration still training, by the twin's Optuna number;
        # they are told the twin's result when it finishes
        self._parked: dict[int, list[Any]] = {}
        self._waiting = False  # the last suggestion drew only repeats, some still training

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        metrics = self._metric if isinstance(self._metric, list) else [self._metric]
        if metrics and None not in metrics and not self._ot_study.metric_names:
            import warnings

            import optuna

            with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._ot_study.set_metric_names(list(metrics))

    def suggest(self, trial_id: str) -> dict | str | None:
        from ray.tune.search import Searcher

        if self.exhausted:
            return Searcher.FINISHED
        if self._waiting:
            return None  # the last draws all repeated configurations in training: wait
        for _ in range(self.MAX_REDRAWS + 1 if self.skip_repeats else 1):
            params = super().suggest(trial_id)
            verdict = self._answer_repeat(trial_id) if self.skip_repeats else "new"
            if verdict == "new":
                break
            if verdict == "parked":
                self._waiting = True  # the twin is training: ask again once it has finished
                return None
        else:
            self.exhausted = True
            log.warning(
                "the searcher drew only configurations already trained (%d in a row): the "
                "space is exhausted, so the sweep stops here instead of training repeats",
                self.MAX_REDRAWS + 1,
            )
            return Searcher.FINISHED
        ot_trial = self._ot_trials[trial_id]
        if ot_trial.user_attrs.get("tune_trial_id") != trial_id:
            ot_trial.set_user_attr("tune_trial_id", trial_id)
        return params

    def _answer_repeat(self, trial_id: str) -> str:
        """`new` if the trial just sampled is a new configuration (or an enqueued point, which
        always runs); `answered` if it repeats a finished one, whose result it is told (user
        attr `fsf_repeat_of`); `parked` if it repeats one still training (user attr
        `fsf_waiting_for`; told that one's result when it finishes). Either way a repeat is
        never trained twice and its Tune trial gets another draw."""
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        if "fixed_params" in self._ot_study._storage.get_trial_system_attrs(ot_trial._trial_id):
            return "new"  # an enqueued point (grid, points_to_evaluate) is always run
        states = (TrialState.COMPLETE, TrialState.RUNNING)
        for other in self._ot_study.get_trials(deepcopy=False, states=states):
            if other.number == ot_trial.number or other.params != ot_trial.params:
                continue
            if other.state == TrialState.COMPLETE:
                ot_trial.set_user_attr("fsf_repeat_of", other.number)
                self._ot_study.tell(ot_trial, other.values)
                del self._ot_trials[trial_id]
                return "answered"
            if "tune_trial_id" in other.user_attrs:  # handed to Tune: training now
                ot_trial.set_user_attr("fsf_waiting_for", other.number)
                self._parked.setdefault(other.number, []).append(ot_trial)
                del self._ot_trials[trial_id]
                return "parked"
        return "new"

    def _release(self, trial_id: str) -> None:
        """Tell the draws parked on a finished trial its result (or FAIL if it has none)."""
        from optuna.trial import TrialState

        stored = self._stored(trial_id)
        if stored is None or stored.number not in self._parked:
            return
        self._waiting = False
        for parked in self._parked.pop(stored.number):
            if stored.state == TrialState.COMPLETE:
                parked.set_user_attr("fsf_repeat_of", stored.number)
                self._ot_study.tell(parked, stored.values)
            else:
                self._ot_study.tell(parked, state=TrialState.FAIL)

    def _stored(self, trial_id: str) -> Any:
        """The Optuna trial of `trial_id` as stored now (None if there is none)."""
        ot_trial = self._ot_trials.get(trial_id)
        return None if ot_trial is None else self._ot_study._storage.get_trial(ot_trial._trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        stored = self._stored(trial_id)
        if stored is None or stored.state.is_finished():
            return
        if result.get(TRAINING_ITERATION) in stored.intermediate_values:
            return  # a retried trial reporting its steps again: Optuna keeps the first value
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        stored = self._stored(trial_id)
        if stored is None:  # a trial the study does not know (its storage lost writes)
            log.warning("trial %s has no Optuna trial: its result is not told", trial_id)
            return
        if stored.state.is_finished():
            self._completed_trials.add(trial_id)
        else:
            super().on_trial_complete(trial_id, result, error)
        self._release(trial_id)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)  # unpickled from tuner.pkl on restore (see `_Search`)
        self.orphans: list[int] = []
        _RESTORED[:] = [self]  # a `_Search` around this searcher replaces the entry

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        super().restore_from_dir(checkpoint_dir)
        _RESTORED[:] = [self]  # a `_Search` around this searcher replaces the entry

    def reconcile(self, trials: list) -> None:
        """Make the searcher agree with the trials Tune restored (`trials`), whatever save
        its own state came from: each Tune trial is mapped to the Optuna trial that records
        its id (user attr `tune_trial_id`); the study's trials handed to a Tune trial that
        Tune does not have are orphans (`reconcile_orphans`); draws parked on a twin that
        will not train again are failed. Sets `orphans`."""
        import optuna
        from optuna.trial import TrialState

        ids = {t.trial_id for t in trials}
        unfinished = {t.trial_id for t in trials if not t.is_finished()}
        mine, self._ot_trials = self._ot_trials, {}
        for stored in self._ot_study.get_trials(deepcopy=False):
            tid = stored.user_attrs.get("tune_trial_id")
            if tid in ids:
                had = mine.get(tid)
                same = had is not None and had._trial_id == stored._trial_id
                self._ot_trials[tid] = (
                    had if same else optuna.Trial(self._ot_study, stored._trial_id)
                )
        self._completed_trials &= ids
        live = {self._ot_trials[t].number for t in unfinished if t in self._ot_trials}
        kept: set[int] = set()
        for twin in list(self._parked):
            if twin in live:
                kept |= {p._trial_id for p in self._parked[twin]}
            else:
                for parked in self._parked.pop(twin):
                    self._ot_study._storage.set_trial_state_values(
                        parked._trial_id, TrialState.FAIL
                    )
        self._waiting = False
        self.exhausted = False  # the searcher finds out again, drawing
        self.orphans = reconcile_orphans(self._ot_study, self._ot_trials.values(), kept)


ORPHANS_ATTR = "fsf_orphans"
"""Study user attr: numbers of the trials orphaned by interruptions (their rows were moved
to `results/.orphaned/`, their points run again)."""


def reconcile_orphans(study: Any, known: Any, parked: Collection[int] = ()) -> list[int]:
    """Deal with the study's trials that Tune's restored trials do not include (`known`: the
    Optuna trials of those): handed out to Tune (or still RUNNING) after its last save. Their
    fixed points (grid points) are enqueued again, RUNNING ones are marked FAIL, as are
    RUNNING parked repeats other than `parked` (storage ids of the draws still waiting on a
    twin that trains again); each is handled once over any number of resumes (study user
    attr `fsf_orphans`). Returns the numbers of the new orphans."""
    from optuna.trial import TrialState

    known_ids = {t._trial_id for t in known}
    storage = study._storage
    handled = set(study.user_attrs.get(ORPHANS_ATTR, []))
    orphans = []
    for trial in study.get_trials(deepcopy=False):
        if trial._trial_id in known_ids or trial.number in handled:
            continue
        if trial.state == TrialState.RUNNING and "fsf_waiting_for" in trial.user_attrs:
            if trial._trial_id not in parked:  # a parked repeat whose twin will not finish
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            continue
        if trial.state == TrialState.RUNNING:
            storage.set_trial_user_attr(
                trial._trial_id, "fsf_orphaned", "handed out just before the sweep was interrupted"
            )
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif "tune_trial_id" not in trial.user_attrs:
            continue  # WAITING, or a repeat answered from the study
        fixed = trial.system_attrs.get("fixed_params")
        if fixed is not None:
            study.enqueue_trial(fixed)
        orphans.append(trial.number)
    if orphans:
        study.set_user_attr(ORPHANS_ATTR, sorted(handled | set(orphans)))
        log.warning("Optuna trials %s were orphaned by the interruption; rerunning", orphans)
    return orphans


def _sampler(spec: SweepSpec):  # type: ignore[no-untyped-def]
    import optuna

    s = spec.search
    seed = s.searcher_seed
    if s.searcher == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(8, max(2, s.num_trials // 4))
        )
    if s.searcher in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    if s.searcher == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed)
