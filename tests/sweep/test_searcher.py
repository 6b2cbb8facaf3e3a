"""fsf's Optuna searcher, driven by hand the way Tune drives it (no Ray started)."""

from __future__ import annotations

import optuna

from fsf.sweep.points import define_by_run
from fsf.sweep.searcher import _StudySearch, enqueue_points
from fsf.sweep.space import validate_space


def _searcher(tmp_path, skip_repeats: bool, searcher: str = "random"):
    spec = validate_space(
        {
            "search": {
                "parameters": {
                    "policy.name": {"type": "categorical", "values": ["df", "fs", "fsf"]},
                    "policy.c1": {
                        "type": "categorical",
                        "values": [0.01, 0.1],
                        "when": {"policy.name": ["fs", "fsf"]},
                    },
                },
                "searcher": searcher,
            }
        }
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return _StudySearch(
        _study(tmp_path, seed=3), define_by_run(spec), [("dev_target_mean", "max")], skip_repeats
    )


def _study(tmp_path, seed: int) -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        study_name="s",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        direction="maximize",
    )


def _params(suggestion: dict) -> dict:
    """The sampled parameters of a suggestion (without the trial id of its rows)."""
    return {k: v for k, v in suggestion.items() if k != "fsf_trial"}


def _run(searcher, n: int) -> list[tuple]:
    """n trials, one after the other; the objective is a function of the configuration."""
    configs = []
    for i in range(n):
        params = _params(searcher.suggest(f"t{i}"))
        key = tuple(sorted(params.items()))
        configs.append(key)
        searcher.on_trial_complete(f"t{i}", {"dev_target_mean": hash(key) % 100 / 100})
    return configs


def test_repeated_configurations_are_answered_from_the_study(tmp_path):
    searcher = _searcher(tmp_path, skip_repeats=True)
    configs = _run(searcher, 5)  # the space has exactly 5 configurations
    assert len(set(configs)) == 5
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    repeats = [t for t in study.trials if "fsf_repeat_of" in t.user_attrs]
    run = [t for t in study.trials if "tune_trial_id" in t.user_attrs]
    assert len(run) == 5 and all(t.state.name == "COMPLETE" for t in study.trials)
    for t in repeats:  # told the result of the configuration it repeats
        (orig,) = [o for o in study.trials if o.number == t.user_attrs["fsf_repeat_of"]]
        assert t.params == orig.params and t.values == orig.values
        assert "tune_trial_id" not in t.user_attrs


def test_an_exhausted_space_ends_the_search_instead_of_training_repeats(tmp_path):
    from ray.tune.search import Searcher

    searcher = _searcher(tmp_path, skip_repeats=True)
    configs = _run(searcher, 5)
    assert len(set(configs)) == 5
    assert searcher.suggest("t5") == Searcher.FINISHED  # every configuration is trained
    assert searcher.suggest("t6") == Searcher.FINISHED
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len([t for t in study.trials if "tune_trial_id" in t.user_attrs]) == 5
    assert study.metric_names == ["dev_target_mean"]


def test_a_repeat_of_a_configuration_in_training_waits_for_it(tmp_path):
    spec = validate_space(
        {"search": {"parameters": {"policy.name": {"type": "categorical", "values": ["df"]}}}}
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _StudySearch(
        _study(tmp_path, seed=0), define_by_run(spec), [("dev_target_mean", "max")], True
    )
    assert searcher.suggest("t0") == {"policy.name": "df", "fsf_trial": "t0"}  # training
    assert searcher.suggest("t1") is None  # the same configuration: wait, do not launch it
    assert searcher.suggest("t2") is None
    searcher.on_trial_complete("t0", {"dev_target_mean": 0.7})
    from ray.tune.search import Searcher

    assert searcher.suggest("t3") == Searcher.FINISHED  # answered from t0; nothing else to try
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    launched = [t for t in study.trials if "tune_trial_id" in t.user_attrs]
    assert [t.user_attrs["tune_trial_id"] for t in launched] == ["t0"]
    waited = [t for t in study.trials if "fsf_waiting_for" in t.user_attrs]
    assert len(waited) == 1 and waited[0].values == [0.7] and waited[0].state.name == "COMPLETE"
    assert all(t.state.name == "COMPLETE" for t in study.trials)


def test_without_skip_repeats_the_sampler_decides(tmp_path):
    configs = _run(_searcher(tmp_path, skip_repeats=False), 12)
    assert len(configs) > len(set(configs))  # random search over 5 points repeats


def test_enqueued_points_run_even_when_they_repeat(tmp_path):
    searcher = _searcher(tmp_path, skip_repeats=True)
    point = {"policy.name": "df"}
    enqueue_points(searcher.study, [point, point])  # points enqueued by fsf: each always runs
    configs = _run(searcher, 2)
    assert configs == [(("policy.name", "df"),)] * 2
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.user_attrs.get("tune_trial_id") for t in study.trials] == ["t0", "t1"]


def test_a_retried_trial_reporting_its_steps_again_is_not_a_warning(tmp_path, recwarn):
    searcher = _searcher(tmp_path, skip_repeats=False)
    searcher.suggest("t0")
    for attempt in range(2):  # the trial fails after step 2 and is retried from scratch
        for step in (1, 2):
            searcher.on_trial_result(
                "t0", {"dev_target_mean": 0.1 * step + attempt, "training_iteration": step}
            )
    searcher.on_trial_complete("t0", {"dev_target_mean": 1.2})
    assert not [w for w in recwarn if "already reported" in str(w.message)]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.trials[0].intermediate_values == {1: 0.1, 2: 0.2}  # the first attempt's


def _report(searcher, trial: str, values: list[float], *, seeds: int = 1, whole: bool) -> None:
    """Results as fsf's trial reports them (one seed): the last is its final evaluation only
    when the trial ran its whole budget."""
    for step, value in enumerate(values, 1):
        last = step == len(values)
        searcher.on_trial_result(
            trial,
            {
                "dev_target_mean": value,
                "training_iteration": step,
                "is_final": last and whole,
                "seed_index": seeds - 1,
            },
        )
    final = {"dev_target_mean": values[-1], "is_final": whole, "seed_index": seeds - 1}
    searcher.on_trial_complete(trial, final)


def test_a_trial_the_scheduler_stopped_is_pruned_with_the_value_it_stopped_at(tmp_path):
    """ASHA ends a trial by stopping it; Optuna records it PRUNED (optuna-dashboard showed
    it COMPLETE), with its last objective as its value; a whole one is COMPLETE, and a
    repeat of the pruned configuration is answered PRUNED with the same value."""
    spec = validate_space(
        {"search": {"parameters": {"policy.name": {"type": "categorical", "values": ["df"]}}}}
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _StudySearch(
        _study(tmp_path, seed=0), define_by_run(spec), [("dev_target_mean", "max")], True
    )
    searcher.suggest("t0")
    _report(searcher, "t0", [0.5, 0.6], whole=False)  # stopped at its second report
    searcher.suggest("t1")  # only repeats of it: each answered from the study
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    first, *repeats = study.trials
    assert first.state.name == "PRUNED" and first.value == 0.6
    assert repeats and all(t.user_attrs["fsf_repeat_of"] == 0 for t in repeats)
    assert {(t.state.name, t.value) for t in repeats} == {("PRUNED", 0.6)}

    (tmp_path / "b").mkdir()
    other = _StudySearch(
        _study(tmp_path / "b", seed=0),
        define_by_run(spec),
        [("dev_target_mean", "max")],
        False,
        num_seeds=2,
    )
    other.suggest("w0")
    _report(other, "w0", [0.5, 0.7], seeds=2, whole=True)
    other.suggest("w1")
    _report(other, "w1", [0.5, 0.8], seeds=1, whole=True)  # final, but of its first seed
    states = [(t.state.name, t.value) for t in other.study.trials]
    assert states == [("COMPLETE", 0.7), ("PRUNED", 0.8)]
