"""The searcher: Ray Tune's `OptunaSearch` made resumable and honest about repeats (a repeated
(configuration, seed) is answered from the study or parked until its twin finishes; an
exhausted space ends the search), and the sampler a space names."""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from fsf.sweep.spec import SweepSpec

__all__ = ["reconcile_orphans"]

log = logging.getLogger("fsf.sweep")


class _ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch whose study (in the RDB) and Tune's saved state agree after a crash.

    Tune saves its state (trials and this searcher) every second; the Optuna study is written
    at once. A crash between the two leaves two kinds of disagreement, both handled here:

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
        if stored is not None and stored.state.is_finished():
            self._completed_trials.add(trial_id)
        else:
            super().on_trial_complete(trial_id, result, error)
        self._release(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.orphans = reconcile_orphans(self._ot_study, self._ot_trials.values())


ORPHANS_ATTR = "fsf_orphans"
"""Study user attr: numbers of the trials orphaned by interruptions (their rows were moved
to `results/.orphaned/`, their points run again)."""


def reconcile_orphans(study: Any, known: Any) -> list[int]:
    """Deal with the study's trials that Tune's saved state does not know (`known`: the
    Optuna trials of the restored searcher): handed out to Tune (or still RUNNING) after its
    last save. Their fixed points (grid points) are enqueued again, RUNNING ones are marked
    FAIL; each is handled once over any number of resumes (study user attr `fsf_orphans`).
    Returns the numbers of the new orphans."""
    from optuna.trial import TrialState

    known_ids = {t._trial_id for t in known}
    storage = study._storage
    handled = set(study.user_attrs.get(ORPHANS_ATTR, []))
    orphans = []
    for trial in study.get_trials(deepcopy=False):
        if trial._trial_id in known_ids or trial.number in handled:
            continue
        if trial.state == TrialState.RUNNING and "fsf_waiting_for" in trial.user_attrs:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # a parked repeat
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
