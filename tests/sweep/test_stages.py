"""The staged fit's parts without Ray running: the searcher that hands out the search's
trials, waits for them, then the confirmation's batches; the scheduler that never stops a
confirmation run; the callbacks and failure budget that tell the stages apart."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from fsf.sweep.stages import _ConfirmRetries, _ForStage, _SearchOnly, _Stages
from fsf.sweep.trial import CANDIDATE, TRIAL_KEY, is_confirm_run


class _Search(Searcher):
    """Draws {"x": i} and records what it is told."""

    def __init__(self, stall: set[int] = frozenset()):
        super().__init__(metric="m", mode="max")
        self.drawn = 0
        self.stall = set(stall)  # suggestions that answer None (a parked repeat)
        self.told: list[tuple[str, Any, bool]] = []
        self.results: list[str] = []

    def suggest(self, trial_id: str) -> dict | None:
        if self.drawn in self.stall:
            self.stall.discard(self.drawn)
            return None
        self.drawn += 1
        return {"x": self.drawn, TRIAL_KEY: f"rows-{trial_id}"}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.results.append(trial_id)

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        self.told.append((trial_id, result, error))


class _Confirmation:
    """Batches of runs, as `fsf.sweep.confirm.Confirmation` hands them out."""

    retries = 1
    bar = None

    def __init__(self, batches: list[list[int]]):
        self.batches = list(batches)
        self.failed_seen: list[int] = []

    def next_runs(self, failed: int) -> list[dict[str, Any]] | None:
        self.failed_seen.append(failed)
        if not self.batches:
            return None
        seeds = self.batches.pop(0)
        return [{CANDIDATE: 0, "seed": s, TRIAL_KEY: "c0", "params": {"x": 1}} for s in seeds]


def test_the_confirmation_starts_once_every_search_trial_has_ended():
    search, events = _Search(), []
    made: list[Any] = []

    def make(record):
        events.append(("made", record.finished, record.failed))
        made.append(_Confirmation([[7, 8], [9]]))
        return made[-1]

    stages = _Stages(search, 3, make, settle=lambda: events.append("settled"))
    first = [stages.suggest(t) for t in ("a", "b", "c")]
    assert [c["x"] for c in first] == [1, 2, 3]
    assert stages.suggest("d") is None  # the search's trials still train
    stages.on_trial_result("a", {"m": 0.5})
    stages.on_trial_complete("a", {"m": 0.5})
    stages.on_trial_complete("b", error=True)
    assert stages.suggest("d") is None and not events  # "c" still trains
    stages.on_trial_complete("c", {"m": 0.7})
    assert search.results == ["a"] and [t for t, _, _ in search.told] == ["a", "b", "c"]
    run = stages.suggest("d")
    assert events == ["settled", ("made", 2, 1)]
    assert is_confirm_run(run) and run["seed"] == 7 and run["params"] == {"x": 1}
    assert stages.suggest("e")["seed"] == 8
    assert stages.suggest("f") is None  # the round's runs train: it is decided on all
    stages.on_trial_result("d", {"m": 0.9})
    stages.on_trial_complete("d", {"m": 0.9})
    stages.on_trial_complete("e", error=True)
    assert stages.suggest("f")["seed"] == 9  # the next round, told one run failed
    stages.on_trial_complete("f", {"m": 0.8})
    assert stages.suggest("g") == Searcher.FINISHED
    assert made[0].failed_seen == [0, 1, 0]
    assert search.results == ["a"] and len(search.told) == 3  # the search sees its own only
    assert (stages.record.finished, stages.record.failed) == (2, 1)


def test_a_search_waits_through_a_parked_draw_and_ends_without_a_confirmation():
    search = _Search(stall={1})
    stages = _Stages(search, 2, lambda record: None)
    assert stages.suggest("a")["x"] == 1
    assert stages.suggest("b") is None  # parked: Tune asks again
    assert stages.suggest("b")["x"] == 2
    stages.on_trial_complete("a", {"m": 1})
    stages.on_trial_complete("b", {"m": 1})
    assert stages.suggest("c") == Searcher.FINISHED


def test_an_exhausted_space_ends_the_search_early():
    search = _Search()
    search.suggest = lambda trial_id: Searcher.FINISHED  # type: ignore[method-assign]
    confirmation = _Confirmation([[7]])
    stages = _Stages(search, 5, lambda record: confirmation)
    assert is_confirm_run(stages.suggest("a"))


def test_a_confirmation_alone_starts_from_its_first_batch():
    confirmation = _Confirmation([[9]])
    first = confirmation.next_runs(0)
    stages = _Stages(confirmation=confirmation, first_batch=first)
    assert stages.suggest("a")["seed"] == 9
    assert stages.suggest("b") is None
    stages.on_trial_complete("a", {"m": 1})
    assert stages.suggest("b") == Searcher.FINISHED
    assert confirmation.failed_seen == [0, 0]


def test_an_error_choosing_the_confirmation_ends_the_fit_and_is_kept():
    def make(record):
        raise ValueError("no configuration to rank")

    stages = _Stages(_Search(), 1, make)
    stages.suggest("a")
    stages.on_trial_complete("a", error=True)
    assert stages.suggest("b") == Searcher.FINISHED
    assert isinstance(stages.record.error, ValueError)
    assert stages.suggest("c") == Searcher.FINISHED


def _trial(config: dict, trial_id: str = "t") -> Any:
    return SimpleNamespace(config=config, trial_id=trial_id, max_failures=0)


SEARCHED = {"x": 1, TRIAL_KEY: "a"}
CONFIRMED = {CANDIDATE: 0, "seed": 7, TRIAL_KEY: "c", "params": {"x": 1}}


class _Scheduler:
    metric, mode = "m", "max"

    def __init__(self):
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> str:
            self.calls.append(name)
            return TrialScheduler.STOP

        return record


def test_the_scheduler_judges_the_search_only():
    inner = _Scheduler()
    scheduler = _SearchOnly(inner)
    for config in (SEARCHED, CONFIRMED):
        trial = _trial(config)
        scheduler.on_trial_add(None, trial)
        decision = scheduler.on_trial_result(None, trial, {"m": 1})
        scheduler.on_trial_complete(None, trial, {"m": 1})
        scheduler.on_trial_error(None, trial)
        scheduler.on_trial_remove(None, trial)
        if is_confirm_run(config):
            assert decision == TrialScheduler.CONTINUE
    assert inner.calls == [
        "on_trial_add",
        "on_trial_result",
        "on_trial_complete",
        "on_trial_error",
        "on_trial_remove",
    ]
    assert scheduler.metric == "m" and scheduler.mode == "max"


class _Recorder:
    def __init__(self):
        self.seen: list[tuple[str, str | None]] = []

    def __getattr__(self, name: str) -> Any:
        def record(**info: Any) -> None:
            trial = info.get("trial")
            self.seen.append((name, trial.trial_id if trial is not None else None))

        return record


@pytest.mark.parametrize("confirm", [False, True])
def test_each_stage_callback_sees_its_own_trials(confirm):
    inner = _Recorder()
    view = _ForStage(inner, confirm=confirm)
    view.setup(stop=None)
    for config, tid in ((SEARCHED, "s"), (CONFIRMED, "c")):
        trial = _trial(config, tid)
        view.on_trial_start(iteration=1, trials=[], trial=trial)
        view.on_trial_result(iteration=1, trials=[], trial=trial, result={})
        view.on_trial_error(iteration=1, trials=[], trial=trial)
    view.on_experiment_end(trials=[])
    mine = "c" if confirm else "s"
    assert inner.seen == [
        ("setup", None),
        ("on_trial_start", mine),
        ("on_trial_result", mine),
        ("on_trial_error", mine),
        ("on_experiment_end", None),
    ]


def test_the_confirmation_view_follows_the_current_batch_bar():
    stages = SimpleNamespace(confirmation=None)
    view = _ForStage(confirm=True, stages=stages)
    view.on_trial_start(iteration=1, trials=[], trial=_trial(CONFIRMED))  # no bar yet: ignored
    first, second = _Recorder(), _Recorder()
    stages.confirmation = SimpleNamespace(bar=first)
    view.on_trial_start(iteration=1, trials=[], trial=_trial(CONFIRMED, "r1"))
    stages.confirmation.bar = second
    view.on_trial_start(iteration=1, trials=[], trial=_trial(CONFIRMED, "r2"))
    assert first.seen == [("on_trial_start", "r1")] and second.seen == [("on_trial_start", "r2")]
    assert view.__getstate__()["stages"] is None  # Tune's pickle holds no driver state


def test_confirmation_runs_get_their_own_failure_budget():
    budget = _ConfirmRetries(2)
    searched, confirmed = _trial(SEARCHED), _trial(CONFIRMED)
    for trial in (searched, confirmed):
        budget.on_trial_start(iteration=1, trials=[], trial=trial)
    assert searched.max_failures == 0 and confirmed.max_failures == 2


def test_tunes_pickle_of_the_searcher_holds_no_driver_state():
    """Tune pickles its searcher into tuner.pkl when the fit is made; a confirmation (a
    generator of rounds) cannot be pickled, and fsf never reads that copy back."""
    import pickle

    def rounds():
        yield [7]

    confirmation = _Confirmation([[7]])
    confirmation.rounds = rounds()  # type: ignore[attr-defined]
    stages = _Stages(confirmation=confirmation, first_batch=confirmation.next_runs(0))
    copy = pickle.loads(pickle.dumps(stages))
    assert copy.confirmation is None and stages.confirmation is confirmation
    assert copy.todo == stages.todo
