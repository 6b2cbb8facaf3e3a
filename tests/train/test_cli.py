"""`fsf-train`: a run end to end, and bad input that must fail cleanly (exit code, no traceback)."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from fsf.cli.train import main
from fsf.testing import tiny_tokenizer

pytestmark = pytest.mark.slow


def _args(assets, tmp_path, *extra):
    return [
        "--no-progress",
        "--set",
        f"model.name={assets['xlmr']}",
        "--set",
        f"task.dataset={assets['pawsx']}",
        "--set",
        "target_langs=[de, fr]",
        "--set",
        "optim.max_steps=4",
        "--set",
        "optim.batch_size=8",
        "--set",
        "eval.every_steps=2",
        "--set",
        f"output_dir={tmp_path}",
        *extra,
    ]


def test_run_writes_rows_and_prints_a_table(assets, tmp_path, capsys):
    assert main(_args(assets, tmp_path, "--set", "name=demo")) == 0
    out = capsys.readouterr().out
    assert "target mean" in out and "gap" in out and "fr" in out
    table = ds.dataset(tmp_path / "demo" / "results", partitioning="hive").to_table()
    # 3 evaluations x 2 splits x 3 languages x 1 metric, and the loss of each of the 4 steps
    assert table.num_rows == 18 + 4
    train = table.filter(pc.equal(table["split"], "train"))
    assert train["step"].to_pylist() == [1, 2, 3, 4]
    assert set(train["metric"].to_pylist()) == {"loss"}
    assert set(table.column("status").to_pylist()) == {"completed"}


def test_only_rank_zero_prints_the_table(monkeypatch, capsys):
    """Under torchrun every rank runs `fsf train`; the table is printed once, by rank 0."""
    from fsf.cli.train import _print_outcome
    from fsf.config import validate_run_config
    from fsf.train.reporter import RunSummary
    from tests.results.helpers import evaluation

    config = validate_run_config({"source_lang": "en", "target_langs": ["de"]})
    summary = RunSummary([evaluation(10, {"en": 0.9, "de": 0.7}, {"en": 0.8, "de": 0.6})])
    monkeypatch.setenv("RANK", "1")
    _print_outcome(summary, config, "rows.parquet")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    _print_outcome(summary, config, "rows.parquet")
    out = capsys.readouterr().out
    assert "target mean" in out and "evaluation rows: rows.parquet" in out


def _unmappable_model(path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tok = tiny_tokenizer(path)
    GPT2ForSequenceClassification(
        GPT2Config(
            n_layer=2, n_embd=8, n_head=2, vocab_size=len(tok), pad_token_id=tok.pad_token_id
        )
    ).save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--set", "policy.name=slowfast"], ["policy.name", "unknown policy", "fsf"]),
        (["--set", "policy.c1=1.0"], ["policy.c1", "0 <= c1 < 1"]),
        (["--set", "policy.c2=0.5"], ["policy.c2", "> 1"]),
        (["--set", "policy.sets.s1=1-5"], ["policy.sets.s1", "1-5", "within 1..2"]),
        (["--set", "target_langs=[de, sw]"], ["'sw'", "target_langs"]),
        (
            ["--set", "optim.lr=-1", "--set", "optim.batchsize=3"],
            ["optim.lr", "optim.batchsize", "2 problems"],
        ),
        (["--config", "/nonexistent.yaml"], ["cannot read"]),
        (["--set", "noequals"], ["key=value"]),
    ],
)
def test_bad_input_fails_cleanly(assets, tmp_path, capsys, extra, needles):
    code = main(_args(assets, tmp_path, *extra))
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_unmappable_architecture(assets, tmp_path, capsys):
    path = _unmappable_model(tmp_path / "gpt2")
    code = main(_args(assets, tmp_path, "--set", f"model.name={path}"))
    err = capsys.readouterr().err
    assert code == 2
    assert "transformer.h.0.attn.c_attn.weight" in err and "model.patterns" in err


def test_a_stale_deepspeed_build_lock_does_not_hang_a_run(assets, tmp_path):
    """A process killed while DeepSpeed JIT-compiled an op leaves its lock file behind; the
    CPU worker compiles no op, so a later run must not wait on that lock."""
    import os
    import subprocess
    import sys

    ext = tmp_path / "torch_extensions"
    for op in ("deepspeed_shm_comm", "cpu_adam"):
        (ext / f"py{sys.version_info.major}{sys.version_info.minor}_cpu" / op).mkdir(parents=True)
        (ext / f"py{sys.version_info.major}{sys.version_info.minor}_cpu" / op / "lock").touch()
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(ext)}
    code = "import sys; from fsf.cli.train import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run(
        [sys.executable, "-c", code, *_args(assets, tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    built = [p.name for p in ext.rglob("*") if p.is_file() and p.name != "lock"]
    assert built == [], f"the CPU worker compiled DeepSpeed ops: {built}"


def test_torchrun_two_ranks_zero2_bf16_autocast(assets, tmp_path):
    """`fsf train` under torchrun: 2 CPU ranks, ZeRO-2, bf16 autocast; one table, one set of
    rows (rank 0 writes), a finite loss at every step."""
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "-m", "fsf", "train",
        *_args(assets, tmp_path, "--set", "deepspeed.precision=bf16",
               "--set", "deepspeed.zero_stage=2", "--set", "name=two"),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("target mean") == 1 and out.stdout.count("evaluation rows") == 1
    table = ds.dataset(tmp_path / "two" / "results", partitioning="hive").to_table()
    loss = table.filter(pc.equal(table["split"], "train"))
    assert loss["step"].to_pylist() == [1, 2, 3, 4]
    assert all(v == v and abs(v) < 1e6 for v in loss["value"].to_pylist())
