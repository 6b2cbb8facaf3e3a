"""Smoke runs of the benchmark scripts: they complete and print their table (no timing)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


#: a process group made in-process by an earlier test leaves these in os.environ; a script
#: that inherited them would try to listen on that process's port
_DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")


def _smoke(script: str, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_policy_overhead_smoke():
    assert "FSF / DF step time" in _smoke("bench_policy_overhead.py")
    assert "FSF with policy_iv: cka / FSF step time" in _smoke(
        "bench_policy_overhead.py", "--cka", "--cka-every", "2"
    )


def test_query_smoke():
    out = _smoke("bench_query.py")
    assert "best_per_language" in out and "yes" in out


def test_read_types_smoke():
    out = _smoke("bench_read_types.py")
    assert "1 compacted file" in out and "fragments" in out
    assert "Table.sort_by" in out  # what changing the text columns' types would break


@pytest.mark.slow
def test_trainer_smoke():
    out = _smoke("bench_trainer.py", "--accuracy", "--hf-defaults", "--lr", "1e-3")
    assert "samples/s (steady)" in out and "peak RSS MB" in out
    assert "source dev accuracy" in out and "its defaults" in out
    assert "fsf / Trainer throughput" in out


@pytest.mark.slow
def test_sweep_overhead_smoke():
    out = _smoke("bench_sweep_overhead.py")
    assert "Ray start-up" in out and "minimal Tune loop" in out
    assert "fsf sweep / ideal" in out


@pytest.mark.slow
def test_fixed_cost_smoke():
    """One real `fsf sweep` (search and confirmation) and one `fsf train`, their moments read
    from the rows each wrote."""
    out = _smoke("bench_fixed_cost.py")
    assert "start -> first step" in out and "stage -> stage" in out and "last row -> exit" in out


@pytest.mark.slow
def test_search_efficiency_smoke():
    out = _smoke("bench_search_efficiency.py")
    assert "tpe + ASHA" in out and "grid compute (trial-steps)" in out


def test_search_efficiency_table_shipped():
    """The shipped table replays: every configuration of the grid has a full curve."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_search_efficiency as bse
    finally:
        sys.path.remove(str(BENCH))
    curves = bse.load_table(bse.TABLE)
    points = bse.grid_points(bse.grid_spec())
    assert {bse.key(p) for p in points} == set(curves)
    steps = {tuple(c) for c in curves.values()}
    assert (
        len(steps) == 1 and max(next(iter(steps))) == bse.grid_spec().base_config().optim.max_steps
    )


@pytest.mark.slow
def test_science_smoke():
    """Tuned vs tuned through two real fsf-sweep runs (lr + the policy's knobs, then a
    confirmation on fresh seeds), the paired table and FSF's sensitivity."""
    out = _smoke("bench_science.py", "--sensitivity")
    assert "Δ target vs DF [95% CI]" in out and "| fsf |" in out and "| df |" in out
    assert "lr=" in out  # every policy's tuned configuration names its learning rate
    assert "FSF sensitivity around its tuned configuration" in out and "c1=0.5" in out


@pytest.mark.slow
def test_world_smoke():
    """The world's DF lr grid through a real fsf-sweep, the tables and the checks."""
    out = _smoke("bench_world.py")
    assert "DF's best peak lr by mean target-language dev accuracy" in out
    assert "checks at DF's best lr" in out and "CKA to the pretrained encoder" in out


@pytest.mark.slow
def test_real_size_smoke():
    # one rank: the two-rank path (Ray TorchTrainer, ~5 min on 2 cores) is the sweep's own
    # multi-worker trial, tested in tests/sweep/test_sweep_integration.py
    out = _smoke("bench_real_size.py", "--ranks", "1")
    assert "tiny x 1" in out and "fsf / Trainer" in out


@pytest.mark.slow
def test_real_size_levers_smoke():
    out = _smoke("bench_real_size.py", "--levers", "--only", "+ group_by_length")
    assert "+ group_by_length" in out and "Trainer defaults" in out and "/ Trainer defaults" in out


def test_gpu_script_syntax():
    for script in ("run.sh", "wheels.sh"):
        assert subprocess.run(["bash", "-n", str(BENCH / "gpu" / script)]).returncode == 0
    compile((BENCH / "gpu" / "gpu_bench.py").read_text(), "gpu_bench.py", "exec")


def test_the_gpu_install_refuses_without_fsfs_wheel(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH / "gpu" / "install.py"), str(tmp_path), str(tmp_path / "s"),
         str(tmp_path / "install.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == f"error: no fsf wheel in {tmp_path}/ (make them with: bash bench/gpu/wheels.sh)"
    )


@pytest.mark.slow
def test_gpu_script_cpu_fallback(tmp_path):
    import json
    import os

    import torch
    import transformers

    # the install path of the GPU machine: wheels made here (for this Python), installed with
    # --no-index --no-deps into a folder of their own onto this environment's torch and
    # transformers, which must stay as they are
    wheels, site = tmp_path / "whl", tmp_path / "site"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    made = subprocess.run(
        ["bash", str(BENCH / "gpu" / "wheels.sh"), str(wheels), "{}.{}".format(*sys.version_info)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    env.update(FSF_WHEELS=str(wheels), FSF_SITE=str(site))
    out = subprocess.run(
        ["bash", str(BENCH / "gpu" / "run.sh"), "--cpu", "--smoke", "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    installed = json.loads((tmp_path / "install.json").read_text())
    assert installed["problems"] == [] and "fsf" in installed["installed"]
    assert installed["fsf"]["file"].startswith(str(site))  # fsf from its wheel, not the checkout
    kept = installed["kept"]
    assert kept["torch"]["version"] == torch.__version__
    assert kept["transformers"]["version"] == transformers.__version__
    assert not kept["torch"]["file"].startswith(str(site))
    got = json.loads((tmp_path / "gpu.json").read_text())
    assert got["errors"] == {}
    runs = got["real_size"]["runs"]
    assert set(runs) == {
        "fsf_df", "fsf_fsf", "fsf_defaults", "trainer", "trainer_defaults", "fsf_defaults_batch32",
        "fsf_defaults_embedding_rows",
    }  # fmt: skip
    failed = {k: r.get("error") for k, r in runs.items() if "samples_per_s" not in r}
    assert not failed, failed  # (a run that raised is kept with its error, not in "errors")
    assert all(r["samples_per_s"] > 0 for r in runs.values())
    assert set(got["ratios"]) == {
        "fsf_over_trainer_equal", "fsf_defaults_over_trainer_defaults", "fsf_over_df_step_time",
        "embedding_rows_over_dense",
    }  # fmt: skip
    assert got["mfu"]["peak_tflops_bf16_dense"] > 0 and len(got["mfu"]["runs"]) == 7
    assert [t["policy"] for t in got["tiny_sweep"]["trials"]] == [
        "df",
        "noisytune",
        "fs",
        "ff",
        "fsf",
    ]
    assert got["tiny_sweep"]["best_target_mean"] in {"df", "noisytune", "fs", "ff", "fsf"}


@pytest.mark.slow
def test_sweep_scale_smoke():
    out = _smoke("bench_sweep_scale.py")
    assert "overhead_per_trial_s" in out and "optuna_db_kb" in out and "report_s" in out


@pytest.mark.slow
def test_levers_accuracy_smoke():
    out = _smoke("bench_levers_accuracy.py")
    assert "group_by_length" in out and "fsf defaults" in out and "bf16 autocast" in out
    assert "Δ tgt last (paired, 95% CI)" in out and "~ noise" in out


@pytest.mark.slow
def test_step_parts_smoke():
    out = _smoke("bench_step_parts.py")
    assert "word embedding frozen" in out and "bf16 matmul internals" in out
    assert "embedding rows, 100 read" in out
    out = _smoke("bench_step_parts.py", "--exactness", "2")
    assert "rows read" in out and "embedded" in out


def test_science_from_folders_pairs_each_policy_with_df_by_seed(tmp_path, capsys):
    """`bench_science.py --from`: runs already made (two folders, as a sweep continued under
    a new name) grouped by policy, each seed paired with DF's run of that seed."""
    from tests.results.helpers import evaluation, run, write

    def runs(policy: str, seeds: list[int], bonus: float) -> list[tuple]:
        out = []
        for seed in seeds:
            de = 0.40 + 0.02 * seed + bonus  # seed effects shared by both policies
            ev = evaluation(10, {"en": 0.8, "de": de}, {"en": 0.8, "de": de}, total=10)
            out.append(run(f"{policy}-t", [ev], seed=seed, policy=policy, params={"p": policy}))
        return out

    write(tmp_path / "a" / "results", runs("df", [0, 1], 0.0) + runs("fsf", [0, 1], 0.03))
    write(tmp_path / "b" / "results", runs("df", [2], 0.0) + runs("fsf", [2], 0.03))
    sys.path.insert(0, str(BENCH))
    try:
        import bench_science
    finally:
        sys.path.remove(str(BENCH))
    png = tmp_path / "d.png"
    code = bench_science.main(
        ["--from", str(tmp_path / "a"), str(tmp_path / "b"), "--title", "T", "--png", str(png)]
    )
    out = capsys.readouterr().out
    assert code == 0 and png.is_file()
    assert "T (seeds [0, 1, 2])" in out
    # +3.0 points on every seed: a paired difference with no spread, outside the noise
    fsf = next(line for line in out.splitlines() if line.startswith("| fsf | 80.0"))
    assert "+3.0 [+3.0, +3.0]" in fsf and "| 3 |" in fsf
    with pytest.raises(SystemExit, match="seed 2 twice"):
        bench_science.main(["--from", str(tmp_path / "b"), str(tmp_path / "b")])


@pytest.mark.slow
def test_race_smoke():
    """Fixed vs racing confirmation through four real tiny fsf sweeps: each sweep's decision
    and the agreement table."""
    out = _smoke("bench_race.py")
    assert "agreement between runs of the default sweep" in out
    assert "| fixed | 2 | 1 |" in out and "| race | 2 | 1 |" in out
    assert "race-bench-race-1" in out and "race-bench-fixed-0" in out  # one search each repeat


def test_science_from_folders_with_the_baseline_from_other_folders(tmp_path, capsys):
    """`--baseline-from`: DF comes from those folders alone (say DF at another lr on the same
    seeds); a DF run among the `--from` folders is a row of its own, paired with that DF."""
    from tests.results.helpers import evaluation, run, write

    def runs(policy: str, seeds: list[int], bonus: float, params: dict) -> list[tuple]:
        out = []
        for seed in seeds:
            de = 0.40 + 0.02 * seed + bonus
            ev = evaluation(10, {"en": 0.8, "de": de}, {"en": 0.8, "de": de}, total=10)
            out.append(run(f"{policy}-{bonus}", [ev], seed=seed, policy=policy, params=params))
        return out

    # the baseline's folder also holds an FSF of another configuration: not read
    grid = runs("df", [0, 1, 2], 0.02, {"lr": 4e-4}) + runs("fsf", [0, 1, 2], 0.0, {"c1": 1})
    tuned = runs("df", [0, 1, 2], 0.0, {"lr": 2e-4}) + runs("fsf", [0, 1, 2], 0.03, {"c1": 2})
    write(tmp_path / "grid" / "results", grid)
    write(tmp_path / "tuned" / "results", tuned)
    sys.path.insert(0, str(BENCH))
    try:
        import bench_science
    finally:
        sys.path.remove(str(BENCH))
    code = bench_science.main(
        ["--from", str(tmp_path / "tuned"), "--baseline-from", str(tmp_path / "grid"),
         "--title", "T", "--png", str(tmp_path / "d.png")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    main_table = out.split("paired difference to DF per target language")[0]
    rows = {r.split(" | ")[0].lstrip("| "): r for r in main_table.splitlines() if "|" in r}
    assert "lr=0.0004" in rows["df"] and "| 44.0 ± 2.0 |" in rows["df"]  # the grid's DF
    assert "-2.0 [-2.0, -2.0]" in rows["df (--from)"] and "lr=0.0002" in rows["df (--from)"]
    assert "+1.0 [+1.0, +1.0]" in rows["fsf"] and "c1=2" in rows["fsf"]
    write(tmp_path / "no-df" / "results", runs("fsf", [0], 0.0, {"c1": 1}))
    with pytest.raises(SystemExit, match="--baseline-from: no DF run"):
        bench_science.main(
            ["--from", str(tmp_path / "tuned"), "--baseline-from", str(tmp_path / "no-df")]
        )
