"""The worker's speed levers: plain-PyTorch engine, AdamW implementations, length grouping."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fsf.errors import FsfError
from fsf.train import train
from fsf.train._data import batches as _batches


def _losses(cfg) -> list[float]:
    return [e.loss for e in train(cfg).evaluations if e.loss is not None]


def test_group_by_length_covers_each_example_once_per_epoch_in_similar_lengths():
    lengths = [(i * 37) % 91 + 5 for i in range(1000)]
    size = 8
    stream = _batches(1000, size, seed=3, lengths=lengths)
    epoch = [next(stream) for _ in range(125)]  # 1000 / 8: exactly one epoch
    assert sorted(i for b in epoch for i in b) == list(range(1000))
    # within a mega-batch of 50 batches, lengths never increase
    flat = [lengths[i] for b in epoch[:50] for i in b]
    assert flat == sorted(flat, reverse=True)
    plain = _batches(1000, size, seed=3)
    pad = [sum(max(lengths[i] for i in b) - lengths[i] for i in b) for b in epoch]
    pad_plain = [sum(max(lengths[i] for i in b) - lengths[i] for i in b) for b in (
        next(plain) for _ in range(125))]  # fmt: skip
    assert sum(pad) < 0.2 * sum(pad_plain)
    # a second epoch is another order
    assert [next(stream) for _ in range(125)] != epoch


def test_deepspeed_cpu_adam_needs_deepspeed_on_cpu(run_config):
    cfg = run_config(**{"engine": "torch", "optim.adamw": "deepspeed-cpu"})
    with pytest.raises(FsfError, match="deepspeed-cpu"):
        train(cfg)


def test_torch_engine_is_one_rank_only(run_config, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(FsfError, match="one rank"):
        train(run_config(engine="torch"))


@pytest.mark.slow
def test_torch_engine_matches_a_one_rank_deepspeed_engine(run_config):
    """Same model, data, optimizer and clipping: the two engines train the same weights."""
    over = {"optim.grad_accum": 2, "policy.name": "fsf", "optim.group_by_length": False}
    ds = _losses(run_config(**over))
    pt = _losses(run_config(engine="torch", **over))
    assert pt == pytest.approx(ds, rel=1e-5, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_adamw_implementations_train_alike(run_config, impl):
    base = _losses(run_config(**{"optim.adamw": "for-loop"}))
    assert _losses(run_config(**{"optim.adamw": impl})) == pytest.approx(base, rel=1e-4)


_NO_DEEPSPEED = """
import json, sys
sys.modules["deepspeed"] = None  # any import of DeepSpeed fails
from fsf.config import validate_run_config
from fsf.train import train
cfg = validate_run_config(json.loads(sys.argv[1]))
summary = train(cfg)
print(json.dumps({"steps": [e.step for e in summary.evaluations],
                  "deepspeed": "deepspeed" in sys.modules and sys.modules["deepspeed"] is not None}))
"""


@pytest.mark.slow
def test_torch_engine_runs_where_deepspeed_is_not_installed(run_config):
    cfg = run_config(engine="torch")
    out = subprocess.run(
        [sys.executable, "-c", _NO_DEEPSPEED, cfg.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"steps": [0, 3, 6], "deepspeed": False}


def test_fp16_needs_a_gpu(run_config):
    with pytest.raises(FsfError, match="fp16 needs a GPU"):
        train(run_config(**{"deepspeed.precision": "fp16"}))


def test_bf16_on_cpu_is_deepspeeds_torch_autocast_with_fp32_weights(run_config):
    from fsf.train._engine import _ds_config, bf16_autocast

    cfg = run_config(**{"deepspeed.precision": "bf16"})
    ds = _ds_config(cfg, 1, cuda=False)
    assert ds["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert ds["bf16"] == {"enabled": False}  # DeepSpeed's bf16 mode would make bf16 weights
    assert ds["gradient_clipping"] == 0.0  # fp32 gradients: the worker clips them with torch
    assert bf16_autocast(cfg, cuda=False)
    assert not bf16_autocast(run_config(), cuda=False)  # auto is fp32 on CPU
    on_gpu = _ds_config(cfg, 1, cuda=True)
    assert on_gpu["bf16"] == {"enabled": True} and "torch_autocast" not in on_gpu


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["deepspeed", "torch"])
def test_bf16_on_cpu_trains_and_evaluates_in_bf16(run_config, engine, monkeypatch):
    """Training and evaluation forward passes run their matrix products in bf16 (autocast);
    weights and optimizer state stay fp32; the run learns as fp32 does, to bf16's precision."""
    seen: list[tuple[bool, torch.dtype]] = []
    original = torch.nn.Linear.forward

    def forward(self, x):
        out = original(self, x)
        seen.append((self.training, out.dtype))
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", forward)
    over = {"engine": engine, "policy.name": "fsf"}
    summary = train(run_config(**over, **{"deepspeed.precision": "bf16"}))
    assert {d for t, d in seen if t} == {torch.bfloat16}  # training
    assert {d for t, d in seen if not t} == {torch.bfloat16}  # evaluation
    seen.clear()
    fp32 = train(run_config(**over))
    assert {d for _, d in seen} == {torch.float32}
    losses = [e.loss for e in summary.evaluations if e.loss is not None]
    ref = [e.loss for e in fp32.evaluations if e.loss is not None]
    assert losses == pytest.approx(ref, rel=0.05)


def _scores(cfg) -> list[tuple]:
    return [(e.step, e.loss, e.scalars()) for e in train(cfg).evaluations]


def _close(a: list[tuple], b: list[tuple]) -> None:
    assert [x[0] for x in a] == [x[0] for x in b]
    for (_, la, sa), (_, lb, sb) in zip(a, b, strict=True):
        assert la == lb or la == pytest.approx(lb, rel=1e-5, abs=1e-6)  # (None at step 0)
        assert sa.keys() == sb.keys()
        for k in sa:
            assert sa[k] == pytest.approx(sb[k], rel=1e-4, abs=1e-4), k


def test_row_wise_embedding_update_trains_like_dense_adamw(run_config, monkeypatch):
    """`optim.embedding_update: rows` (forced: the tiny model's vocabulary is below auto's
    threshold; kept row-wise to the end) trains the same model as dense AdamW, with clipping
    and a policy on top."""
    monkeypatch.setattr("fsf.train._rows.DENSE_AT", 2.0)
    # (a weight decay large enough that the decay owed by unread rows shows in the scores)
    over = {"engine": "torch", "policy.name": "fsf", "optim.grad_clip": 0.05,
            "optim.weight_decay": 30.0}  # fmt: skip
    weights = {}
    for mode in ("dense", "rows"):
        cfg = run_config(**over, **{"optim.embedding_update": mode, "checkpoint.save": "final"})
        weights[mode] = (_scores(cfg), _saved_weights(cfg.run_dir() / "checkpoint"))
    _close(weights["rows"][0], weights["dense"][0])
    # every weight, the embedding's rows no batch read included (their owed decay applied)
    dense, rows = weights["dense"][1], weights["rows"][1]
    assert dense.keys() == rows.keys()
    for name, tensor in dense.items():
        assert torch.allclose(rows[name], tensor, rtol=1e-5, atol=1e-7), name


def _saved_weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_row_wise_embedding_update_in_a_deepspeed_engine(run_config, monkeypatch):
    monkeypatch.setattr("fsf.train._rows.DENSE_AT", 2.0)
    over = {"policy.name": "fsf", "optim.grad_accum": 2, "optim.grad_clip": 0.05,
            "optim.weight_decay": 30.0}  # fmt: skip
    dense = _scores(run_config(**over, **{"optim.embedding_update": "dense"}))
    rows = _scores(run_config(**over, **{"optim.embedding_update": "rows"}))
    _close(rows, dense)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"deepspeed.zero_stage": 2}, "one rank without ZeRO"),
        ({"optim.adamw": "foreach"}, "fused AdamW"),
    ],
)
def test_row_wise_embedding_update_says_where_it_cannot_apply(run_config, over, match):
    from fsf.errors import ConfigError

    with pytest.raises(ConfigError, match=match) as err:  # at load: exit code 2
        run_config(**over, **{"optim.embedding_update": "rows"})
    assert err.value.exit_code == 2


def test_row_wise_embedding_update_needs_one_rank(run_config):
    """The number of ranks is known to the running worker only: it refuses there."""
    from fsf.train._engine import row_embedding

    model = torch.nn.Module()
    model.get_input_embeddings = lambda: torch.nn.Embedding(10, 2)
    with pytest.raises(FsfError, match="one rank without ZeRO"):
        row_embedding(model, run_config(**{"optim.embedding_update": "rows"}), 2, False)


def test_auto_embedding_update_picks_rows_for_real_vocabularies_on_cpu(run_config):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from fsf.train._engine import ROWS_FROM, row_embedding

    small = XLMRobertaForSequenceClassification(
        XLMRobertaConfig(vocab_size=1000, hidden_size=8, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=8)
    )  # fmt: skip
    cfg = run_config()
    assert cfg.optim.embedding_update == "auto"
    assert row_embedding(small, cfg, world=1, cuda=False) is None  # 1,000 rows: dense
    small.resize_token_embeddings(ROWS_FROM)
    assert row_embedding(small, cfg, world=1, cuda=False) is small.get_input_embeddings()
    assert row_embedding(small, cfg, world=1, cuda=True) is None  # not measured on GPUs
    assert row_embedding(small, cfg, world=2, cuda=False) is None


_LISTENING = r"""
import json, os
import psutil
import torch
import torch.distributed as dist
from fsf.train._engine import _process_group

assert _process_group(False) == (0, 1)
dist.all_reduce(torch.ones(2))  # the group works
dist.new_group([0])  # a group made later (DeepSpeed makes its own) binds as the first did
print(json.dumps([
    [c.laddr.ip, c.laddr.port]
    for c in psutil.net_connections("inet")
    if c.pid == os.getpid() and c.status == psutil.CONN_LISTEN
]))
"""


def test_one_rank_process_group_listens_on_loopback_only():
    """The process group of a one-rank run (every trial of a sweep on one machine, `fsf
    train`) opens no TCPStore on every interface: the store is in memory and gloo's device
    is bound to loopback. The listening sockets are read with psutil, in a process of its
    own (a process group lives as long as its process). A one-step DeepSpeed run listed the
    same sockets when this was written (slower: not repeated here)."""
    pytest.importorskip("psutil")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    proc = subprocess.run(
        [sys.executable, "-c", _LISTENING], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sockets = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sockets, "gloo's device listens somewhere: the listing saw nothing at all"
    assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip, _ in sockets), sockets
