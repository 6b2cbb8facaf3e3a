"""The confirmation stage's settings and what the user sees of it, without Ray: a race is
validated with every problem at once, the dry run prices either scheme, the live bar counts
runs with the best value trials ended with, and Tune's folder names keep full precision."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fsf.errors import ConfigError
from fsf.sweep.space import validate_space


def _space(confirm: dict, **search) -> dict:
    return {"search": {"seeds": [0], "max_concurrent": 2, **search}, "confirm": confirm}


def test_a_race_is_checked_with_every_problem_at_once():
    with pytest.raises(ConfigError) as info:
        validate_space(
            _space(
                {
                    "seeds": [1, 2],
                    "race": {"first_round": 3, "max_seeds": 4, "min_rounds": 3, "first_seed": 0},
                }
            )
        )
    text = str(info.value)
    assert "3 problems" in text
    assert "confirm.seeds: a race draws its own seeds" in text
    assert "confirm.race.min_rounds: the seed budget allows at most 2 round(s)" in text
    assert "confirm.race.first_seed: seeds [0] were used by the search" in text
    with pytest.raises(ConfigError) as info:
        validate_space(_space({"race": {"first_round": 5, "max_seeds": 4}}))
    assert "confirm.race.max_seeds: must be >= race.first_round (5)" in str(info.value)
    with pytest.raises(ConfigError, match=r"confirm\.race\.alpha"):
        validate_space(_space({"race": {"alpha": 1.5}}))


def test_the_fixed_scheme_stays_the_default_and_a_race_has_no_fixed_seeds():
    from fsf.sweep.spec import confirm_seeds

    fixed = validate_space(_space({"top_k": 1})).confirm
    assert fixed.race is None and confirm_seeds(fixed) == [100, 101, 102]
    race = validate_space(_space({"race": {"first_seed": 7, "max_seeds": 4}})).confirm
    assert race.seeds is None and confirm_seeds(race) == [7, 8, 9, 10]
    # a race written to space.yaml loads again (no seeds beside it)
    again = validate_space(_space(race.model_dump(mode="json"))).confirm
    assert again == race


def test_confirm_seeds_replaces_the_spaces_race_with_the_fixed_scheme():
    from fsf.sweep.confirm import confirm_spec

    spec = validate_space(_space({"race": {"max_seeds": 4}}))
    assert confirm_spec(spec, seeds=[50, 51]).race is None
    assert confirm_spec(spec, seeds=[50, 51]).seeds == [50, 51]
    assert confirm_spec(spec, top_k=3).race == spec.confirm.race


def test_the_dry_run_prices_the_confirmation():
    from fsf.sweep.plan import confirm_plan

    fixed = confirm_plan(validate_space(_space({"top_k": 2, "seeds": [5, 6, 7]})), "24 steps")
    assert "each run (24 steps, no early stopping) its own trial, 2 at a time" in fixed[0]
    assert fixed[1].strip() == (
        "fixed: 3 configurations x 3 fresh seeds [5, 6, 7] = 9 runs (5 run-lengths at 2 at a time)"
    )
    race = confirm_plan(
        validate_space(_space({"top_k": 1, "race": {"first_round": 2, "max_seeds": 5}}))
    )
    assert "round 1 = 2 configurations x 2 fresh seeds (from 100) = 4 runs" in race[1]
    assert "at most 5 seeds each = 10 runs (4 rounds)" in race[1]
    assert confirm_plan(validate_space({"search": {}})) == []


def _trial(tid: str, config: dict, last: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config=config, last_result=last or {}, num_failures=0)


def test_the_bar_shows_the_value_trials_ended_with_not_the_best_report_on_the_way():
    """A trial whose objective peaked at 0.9 and ended at 0.7: Optuna and `fsf show` hold
    0.7 (its objective at its checkpoint when it ended), so the bar's best is 0.7."""
    from fsf.sweep.progress import ProgressCallback

    cb = ProgressCallback(3, SimpleNamespace(metric="m", mode="max"), enabled=False)
    t0 = _trial("a", {"fsf_trial": "a"}, {"m": 0.7})
    cb.on_trial_start(0, [], t0)
    for value in (0.5, 0.9, 0.7):
        cb.on_trial_result(0, [], t0, {"m": value})
    assert "best m=-" in cb.status()  # nothing ended yet
    cb.on_trial_complete(0, [], t0)
    assert cb.sign * cb.best == pytest.approx(0.7) and "best m=0.7000" in cb.status()
    t1 = _trial("b", {"fsf_trial": "b"}, {"m": 0.95})
    cb.on_trial_start(0, [], t1)
    cb.on_trial_error(0, [], t1)  # a failed trial's last value is no answer
    assert cb.sign * cb.best == pytest.approx(0.7)


def test_the_bar_counts_runs_names_the_running_ones_and_estimates_the_time_left():
    from fsf.sweep.progress import ProgressCallback

    cb = ProgressCallback(
        4,
        SimpleNamespace(metric="m", mode="max"),
        enabled=False,
        unit="run",
        labels={0: "#1 fs", 1: "baseline df"},
    )
    a = _trial("x1", {"candidate": 0, "seed": 100, "fsf_trial": "c0"})
    b = _trial("x2", {"candidate": 1, "seed": 100, "fsf_trial": "c1"})
    cb.on_trial_start(0, [], a)
    cb.on_trial_start(0, [], b)
    cb._started -= 100.0  # 100 s ago
    cb.on_trial_result(0, [], a, {"progress_step": 150, "total_steps": 300})
    cb.on_trial_result(0, [], b, {"progress_step": 50, "total_steps": 300})
    assert "running: #1 fs s100 50%, baseline df s100 17%" in cb.status()
    # 4 runs; 0.5 + 1/6 of one done in 100 s: 2/3 of a run per 100 s, 10/3 runs left
    assert cb.eta() == pytest.approx(100 * (4 - 2 / 3) / (2 / 3), rel=1e-3)
    assert "eta 8m20s" in cb.status()


def test_tune_folder_names_keep_the_learning_rate():
    """Tune's own names round floats to 4 decimals (optim.lr=0.0000 for 4.2e-05)."""
    from fsf.sweep._callbacks import _TrialDirname

    trial = SimpleNamespace(
        trial_id="ab12c_00003",
        trainable_name="_trial",
        config={"policy.name": "fs", "optim.lr": 4.2137e-05, "fsf_trial": "ab12c_00003"},
    )
    name = _TrialDirname()(trial)
    assert name == "_trial_ab12c_00003_policy.name=fs,optim.lr=4.2137e-05"
    params = {"optim.lr": 1.5e-4, "policy.name": "df"}
    config = {"candidate": 0, "seed": 101, "fsf_trial": "c", "params": params}
    run = SimpleNamespace(trial_id="q_1", trainable_name="t", config=config)
    assert _TrialDirname()(run) == "t_q_1_confirm_seed=101_optim.lr=0.00015,policy.name=df"


# ------------------------------------------------------------- the race's rounds, without Ray

#: each configuration's objective (target dev) per seed: FS far behind, FSF ahead of DF with
#: noise that 3 seeds cannot settle and 4 can
_VALUES = {
    "fsf": [0.80, 0.81, 0.82, 0.80, 0.81],
    "fs": [0.60, 0.61, 0.59, 0.60, 0.61],
    "df": [0.75, 0.70, 0.78, 0.73, 0.74],
}


def _train(stage, die_after: int | None = None) -> list[tuple[int, str, int]]:
    """Train a confirmation's batches as the staged fit would, with Tune replaced: a run
    writes its fragment with the value above; `die_after` runs into a round after the
    first, it raises (a killed driver). Returns (round, policy, seed) of each run trained."""
    from tests.results.helpers import ev2, run, write

    trained = []
    configs = stage.next_runs(0)
    while configs:
        k = len(stage.meta["race"]["rounds"]) + 1
        for n, config in enumerate(configs):
            if die_after is not None and n == die_after and k > 1:
                raise KeyboardInterrupt("killed")
            c = stage.candidates[config["candidate"]]
            seed = config["seed"]
            evs = [ev2(10, 0.9, _VALUES[c["policy"]][seed - 100])]
            one = run(
                config["fsf_trial"],
                evs,
                seed=seed,
                params=c["params"],
                policy=c["policy"],
                targets=("de",),
            )
            write(stage.results_dir, [one])
            trained.append((k, c["policy"], seed))
        configs = stage.next_runs(0)
    return trained


def _race_folder(tmp_path, confirm):
    import json

    from fsf.sweep.resume import assign_trial_ids

    cdir = tmp_path / "confirm"
    cdir.mkdir()
    candidates = [
        {"rank": 1, "policy": "fsf", "params": {"policy": "fsf"}, "role": "candidate"},
        {"rank": 2, "policy": "fs", "params": {"policy": "fs"}, "role": "candidate"},
        {"rank": 5, "policy": "df", "params": {"policy": "df"}, "role": "baseline"},
    ]
    assign_trial_ids(candidates, cdir / "results")
    meta = {
        "name": "race",
        "stage": "confirm",
        "scheme": "race",
        "objective": [{"metric": "dev_target_mean", "mode": "max"}],
        "checkpoint": "source-dev",
        "baseline": {"policy.name": "df"},
        "seeds": [100, 101, 102, 103, 104],
        "candidates": candidates,
        "confirm": confirm.model_dump(),
    }
    (cdir / "sweep.json").write_text(json.dumps(meta))
    return cdir, meta


def test_a_race_drops_the_separated_candidate_and_resumes_at_its_round(tmp_path, capsys):
    """Round 1 (3 seeds) drops FS (worse than FSF, Holm) but leaves FSF vs DF open; round 2
    adds seed 103 to FSF and DF only and decides. A driver killed inside round 2 resumes
    there: round 1 is neither trained nor decided again, round 2 trains only what it lacked;
    `fsf best` and `fsf show` then say the seeds, the drop and why the race stopped."""
    import json

    from fsf.cli.results import main
    from fsf.results import read_results
    from fsf.sweep.confirm import Confirmation
    from fsf.sweep.spec import ConfirmSpec

    spec = validate_space({"search": {"seeds": [0]}})
    confirm = ConfirmSpec.model_validate(
        {"race": {"first_round": 3, "per_round": 1, "max_seeds": 5, "margin": 0}}
    )
    cdir, meta = _race_folder(tmp_path, confirm)
    killed: list = []
    with pytest.raises(KeyboardInterrupt):
        killed += _train(Confirmation(spec, tmp_path, confirm, progress=False), die_after=1)
    on_disk = json.loads((cdir / "sweep.json").read_text())
    (first,) = on_disk["race"]["rounds"]
    ids = {c["policy"]: c["confirm_trial_id"] for c in meta["candidates"]}
    assert first["alive"] == [ids["fsf"]] and list(first["dropped"]) == [ids["fs"]]
    assert "Holm" in first["dropped"][ids["fs"]] and first["stop"] is None
    assert first["runs"] == 9 and first["seed_list"] == [100, 101, 102]
    rows = read_results(cdir).table.select(["policy", "seed"]).to_pylist()
    trained = {(r["policy"], r["seed"]) for r in rows}  # round 1 whole, round 2's first run
    assert trained == {(p, s) for p in ("fsf", "fs", "df") for s in (100, 101, 102)} | {
        ("fsf", 103)
    }

    again = Confirmation(spec, tmp_path, confirm, progress=False)
    assert _train(again) == [(2, "df", 103)]  # only what round 2 lacked
    outcome = again.outcome()
    assert (
        outcome.statuses == {"finished": 8}
        and json.loads((cdir / "sweep.json").read_text())["finished"]
    )
    done = json.loads((cdir / "sweep.json").read_text())["race"]
    assert done["rounds"][0] == first and [r["round"] for r in done["rounds"]] == [1, 2]
    assert done["decision"] == "better" and done["stop"].startswith(f"decided: {ids['fsf']}")
    assert outcome.resumed.startswith("resumed from its results: 7 of 8 runs finished, 1 to")
    assert "the race went on at round 2 (1 round(s) decided before)" in outcome.resumed

    assert main(["best", str(cdir), "--lang", "target-mean", "--top", "3", "--split", "dev"]) == 0
    out = capsys.readouterr().out
    assert (
        f"race:      seeds per configuration: {ids['fsf']} (fsf, search #1) 4, "
        f"{ids['fs']} (fs, search #2) 3, {ids['df']} (df, baseline) 4" in out
    )
    assert "race:      round 1: 3 shared seeds (seeds 100-102), 2 live" in out
    assert f"race:        dropped {ids['fs']} (fs, search #2): worse than {ids['fsf']}" in out
    assert f"race:      stopped: decided: {ids['fsf']} is better than the baseline" in out
    assert main(["show", str(cdir)]) == 0
    assert "race:      round 2: 4 shared seeds (seeds 100-103), 1 live" in capsys.readouterr().out
