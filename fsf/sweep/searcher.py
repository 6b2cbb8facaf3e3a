"""The search Ray Tune is given, kept in fsf's own records (docs/architecture.md, "Resume
design"): `_StudySearch` draws each configuration from the sweep's Optuna study
with Optuna's ask-and-tell API and tells the study each trial's result, so the study holds
every configuration handed out (user attr `tune_trial_id`: the trial id of its rows). With
`skip_repeats` a configuration drawn again is answered from the study, or waits for its twin
still in training, instead of being trained twice; a space that yields only repeats ends the
search. The confirmation's runs are handed out after it in the same fit (`fsf.sweep.stages`).

Every Tune trial's config carries the trial id of its rows under `TRIAL_KEY`: the id of the
Tune trial a configuration was first handed to, and that id again when an interrupted trial
runs again after a resume (`fsf.sweep.resume`). The search saves no state of its own: a
resumed sweep builds a fresh one from the study and the result fragments.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.search import Searcher

from fsf.sweep.points import define_by_run
from fsf.sweep.spec import SweepSpec
from fsf.sweep.trial import TRIAL_KEY

__all__ = ["enqueue_points", "open_study", "study_search"]

log = logging.getLogger("fsf.sweep")

#: Optuna user attributes fsf sets on the study's trials (and on the study)
TRIAL_ATTR = "tune_trial_id"  # the trial id of its rows (named when it was always Tune's)
RERUN_ATTR = "fsf_rerun_of"  # a re-run after a resume: the number of the trial it continues
POINT_ATTR = "fsf_point"  # an enqueued point (a grid point): always run, never a repeat
REPEAT_ATTR = "fsf_repeat_of"  # a repeat answered from the study: the trial it repeats
WAITING_ATTR = "fsf_waiting_for"  # a repeat waiting for its twin in training
ORPHANS_ATTR = "fsf_orphans"
"""Study user attr written by fsf before it resumed from its own records: numbers of the
trials orphaned by interruptions then (their rows were moved to `results/.orphaned/`, their
points run again); a resume ignores them."""


def open_study(spec: SweepSpec, storage: Any, seed_offset: int = 0) -> Any:
    """The sweep's Optuna study in `storage` (created if missing), with the space's sampler
    seeded with `searcher_seed + seed_offset`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.search.objective]
    return optuna.create_study(
        storage=storage,
        sampler=_sampler(spec, seed_offset),
        study_name=spec.name,
        directions=directions,
        load_if_exists=True,
    )


def enqueue_points(study: Any, points: list[dict[str, Any]]) -> None:
    """Enqueue `points` (a grid) in the study: asked first, each always run."""
    for point in points:
        study.enqueue_trial(point, user_attrs={POINT_ATTR: True})


class _StudySearch(Searcher):
    """The search stage's searcher: Optuna's ask-and-tell on the sweep's study (see the
    module doc). `space` is the define-by-run function of the space
    (`fsf.sweep.points.define_by_run`); `objectives` are (metric, mode) pairs.

    A waiting trial the study hands out first (a grid point, or a re-run enqueued by a
    resume with its trial id) is always run. Intermediate objective values are reported to
    Optuna once per step (a trial Tune retries reports its steps again: Optuna keeps the
    first); a multi-objective study gets final values only, as Optuna allows. A trial a
    scheduler stopped early (its last result is not its last seed's final evaluation;
    `num_seeds`: the seeds a trial runs) is told PRUNED: Optuna keeps its last reported
    value as its value, and a repeat of it is answered PRUNED with that value."""

    #: with `skip_repeats`, how many repeats in a row a suggestion may draw before the space
    #: counts as exhausted (every configuration the sampler proposes was tried): then the
    #: searcher reports FINISHED and the sweep ends early instead of training repeats
    MAX_REDRAWS = 32

    def __init__(
        self,
        study: Any,
        space: Any,
        objectives: list[tuple[str, str]],
        skip_repeats: bool = False,
        num_seeds: int = 1,
    ):
        metrics = [m for m, _ in objectives]
        modes = [mode for _, mode in objectives]
        single = len(objectives) == 1
        super().__init__(
            metric=metrics[0] if single else metrics, mode=modes[0] if single else modes
        )
        self.study = study
        self.space = space
        self.metrics = metrics
        self.skip_repeats = skip_repeats
        self.num_seeds = num_seeds
        self.exhausted = False
        self._trials: dict[str, Any] = {}  # Tune trial id -> its Optuna trial, while it runs
        self._reported: dict[str, set[int]] = {}  # Tune trial id -> steps told to Optuna
        # draws that repeat a configuration still training, by the twin's number; told the
        # twin's result when it finishes
        self._parked: dict[int, list[Any]] = {}
        self._waiting = False  # the last suggestion drew only repeats, some still training
        self._orphans = set(study.user_attrs.get(ORPHANS_ATTR, []))
        if not study.metric_names:
            import warnings

            import optuna

            with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(metrics)

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.exhausted:
            return Searcher.FINISHED
        if self._waiting:
            # the last draws all repeated configurations in training: wait (None keeps the
            # search open) rather than draw on, which TPE would answer with the same point
            return None
        for _ in range(self.MAX_REDRAWS + 1 if self.skip_repeats else 1):
            trial = self.study.ask()
            self.space(trial)
            verdict = self._answer_repeat(trial) if self.skip_repeats else "new"
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
        rows = trial.user_attrs.get(TRIAL_ATTR)  # set: a re-run of an interrupted trial
        if rows is None:
            # recorded in the study before Tune starts the trial, so that a driver killed at
            # any moment after leaves a study that names the fragments of every trial it ran
            rows = trial_id
            trial.set_user_attr(TRIAL_ATTR, rows)
        self._trials[trial_id] = trial
        return {**trial.params, TRIAL_KEY: rows}

    def _answer_repeat(self, trial: Any) -> str:
        """`new` if `trial` (just drawn) is a new configuration or a waiting trial that
        always runs; `answered` if it repeats a finished one, whose result it is told (user
        attr `fsf_repeat_of`); `parked` if it repeats one still training (user attr
        `fsf_waiting_for`; told that one's result when it finishes)."""
        from optuna.trial import TrialState

        if POINT_ATTR in trial.user_attrs or TRIAL_ATTR in trial.user_attrs:
            return "new"  # a grid point or a re-run: enqueued on purpose, never a repeat
        # a linear scan of the study per draw: studies hold hundreds of trials, not millions,
        # and an index would be one more state to rebuild on resume
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for other in self.study.get_trials(deepcopy=False, states=states):
            if other.number in (trial.number, *self._orphans) or other.params != trial.params:
                continue
            if other.state == TrialState.PRUNED and not other.intermediate_values:
                continue  # (pruned without a value: nothing to answer with)
            if other.state != TrialState.RUNNING:
                self._answer_from(trial, other)
                return "answered"
            if TRIAL_ATTR in other.user_attrs:  # handed to Tune: training now
                trial.set_user_attr(WAITING_ATTR, other.number)
                self._parked.setdefault(other.number, []).append(trial)
                return "parked"
        return "new"

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._trials.get(trial_id)
        if trial is None or len(self.metrics) > 1:
            return  # Optuna takes intermediate values only for a single objective
        step, value = result.get("training_iteration"), result.get(self.metrics[0])
        reported = self._reported.setdefault(trial_id, set())
        if step is None or value is None or step in reported:
            return  # (a retried trial reporting its steps again: Optuna keeps the first)
        reported.add(step)
        trial.report(value, step)

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        from optuna.trial import TrialState

        self._reported.pop(trial_id, None)
        trial = self._trials.pop(trial_id, None)
        if trial is None:
            log.warning("trial %s has no Optuna trial: its result is not told", trial_id)
            return
        values = [result.get(m) for m in self.metrics] if result else [None]
        # as Ray's OptunaSearch tells it: no value is PRUNED, or FAIL for a trial that failed
        if any(v is None for v in values):
            state, told = (TrialState.FAIL if error else TrialState.PRUNED), None
        elif not error and len(self.metrics) == 1 and not self._ran_whole(result):
            # stopped early (ASHA): PRUNED, its value the last objective it reported (Optuna
            # keeps a pruned trial's last intermediate value), as optuna-dashboard shows it
            state, told = TrialState.PRUNED, None
        else:
            state, told = TrialState.COMPLETE, values
        try:
            # skip_if_finished: a repeat already answered from its twin is finished in the study
            self.study.tell(trial, told, state=state, skip_if_finished=True)
        except Exception as exc:  # e.g. a value Optuna refuses: the trial stays as it is
            log.warning("trial %s: the study was not told its result (%s)", trial_id, exc)
        self._release(trial.number)

    def _ran_whole(self, result: dict) -> bool:
        """Whether a trial's last result is the final evaluation of its last seed (it ran
        its whole budget) rather than where a scheduler stopped it."""
        if "is_final" not in result:  # not a result of fsf's trial: taken as whole
            return True
        return bool(result["is_final"]) and result.get("seed_index") == self.num_seeds - 1

    def _release(self, number: int) -> None:
        """Tell the draws parked on trial `number` its result (FAIL if it has none)."""
        from optuna.trial import TrialState

        parked = self._parked.pop(number, [])
        if not parked:
            return
        self._waiting = False
        twin = self.study.get_trials(deepcopy=False)[number]
        for draw in parked:
            if twin.state == TrialState.COMPLETE or (
                twin.state == TrialState.PRUNED and twin.intermediate_values
            ):
                self._answer_from(draw, twin)
            else:
                self.study.tell(draw, state=TrialState.FAIL)

    def _answer_from(self, draw: Any, twin: Any) -> None:
        """Tell `draw` (a repeat) what its finished `twin` ended with: the same value and
        state (a PRUNED twin's reports, so that the draw's value is the one it stopped at)."""
        from optuna.trial import TrialState

        draw.set_user_attr(REPEAT_ATTR, twin.number)
        if twin.state == TrialState.PRUNED:
            for step, value in sorted(twin.intermediate_values.items()):
                draw.report(value, step)
            self.study.tell(draw, state=TrialState.PRUNED)
        else:
            self.study.tell(draw, twin.values)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study and the result fragments are the record."""

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("fsf resumes from the study and the results, not Tune's state")


def study_search(spec: SweepSpec, study: Any, limit: bool = True) -> Any:
    """What the search stage gives Tune as `search_alg`: the study's searcher over the space's
    define-by-run function, behind a concurrency limit unless `limit` is False (a staged fit
    puts one over both stages, `fsf.sweep.stages`)."""
    from ray.tune.search import ConcurrencyLimiter

    search = spec.search
    searcher: Any = _StudySearch(
        study,
        define_by_run(spec),
        [(o.metric, o.mode) for o in search.objective],
        # grid points always run: a grid draws nothing but its points
        skip_repeats=search.skip_repeats and search.searcher != "grid",
        num_seeds=len(search.seeds),
    )
    if limit and search.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent)
    return searcher


def _sampler(spec: SweepSpec, seed_offset: int = 0):
    import optuna

    s = spec.search
    seed = s.searcher_seed + seed_offset
    if s.searcher == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(8, max(2, s.num_trials // 4))
        )
    if s.searcher in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    if s.searcher == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed)
