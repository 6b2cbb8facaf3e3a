"""One training run as one DeepSpeed rank: build, train on the source language, evaluate all.

`train(config, reporter)` is the whole public surface. It works as a single process (it then
creates its own one-rank process group on a free port) or as one rank of several started by
torchrun, `deepspeed`, or Ray Train (the process group then already exists). Every rank
computes the same learning rates: the loss that drives the phase rule is averaged over ranks.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fsf.config import RunConfig
from fsf.errors import FsfError
from fsf.policies import (
    PhaseState,
    PhaseTracker,
    Unit,
    build_policy,
    map_parameters,
    set_multipliers,
)
from fsf.tasks import Task, build_task
from fsf.train._probe import apply_probe
from fsf.train.reporter import Evaluation, Reporter, RunSummary, StepRecord

__all__ = [
    "TrainingDiverged",
    "evaluate_model",
    "resolve_model_path",
    "scheduled_lr_factor",
    "train",
]

log = logging.getLogger("fsf.train")


class TrainingDiverged(FsfError):
    """The training loss became NaN or infinite."""


def resolve_model_path(name: str) -> str:
    """`synthetic` -> the shipped tiny encoder; anything else unchanged (hub name or path)."""
    if name == "synthetic":
        from fsf.synthetic import model_dir

        return str(model_dir())
    return name


def scheduled_lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then linear decay; `step` is 1-based.

    The first update already has a non-zero lr and the last a small positive one.
    """
    if warmup > 0 and step <= warmup:
        return step / warmup
    return max(0.0, min(1.0, (total - step + 1) / max(1, total - warmup)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _use_cuda(config: RunConfig) -> bool:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise FsfError("device: cuda was asked for, but no CUDA GPU is visible")
    return config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what libraries print to stdout to stderr instead, at the file-descriptor level
    (DeepSpeed prints "DeepSpeed deepspeed_shm_comm built successfully" and op build
    times with `print`, and a C++ op build writes to fd 1): stdout is for fsf's results."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (a daemon): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _process_group(cuda: bool) -> tuple[int, int]:
    """(rank, world size) of the current process group, creating a one-rank group if none
    exists. A group this function creates lives until the process exits: DeepSpeed caches
    its groups, so a second run in the same process (Ray reuses trial actors) must find the
    same group again."""
    import torch.distributed as dist

    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    with _stdout_to_stderr():
        import deepspeed
    if not cuda:
        _skip_shm_comm_build(deepspeed)

    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            os.environ.update(
                RANK="0",
                WORLD_SIZE="1",
                LOCAL_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(_free_port()),
            )
        with _stdout_to_stderr():
            deepspeed.init_distributed(
                dist_backend="nccl" if cuda else "gloo", auto_mpi_discovery=False, verbose=False
            )
        atexit.register(_destroy_group)
    return dist.get_rank(), dist.get_world_size()


def _skip_shm_comm_build(deepspeed) -> None:
    """Tell DeepSpeed's CPU backend not to JIT-compile its shared-memory all-reduce op.

    `init_distributed` on CPU builds `deepspeed_shm_comm` with g++/ninja (~40 s on first use)
    under a file lock in ~/.cache/torch_extensions. A process killed mid-build (a trial
    stopped by Tune, a test timeout) leaves that lock behind, and every later run on the
    machine waits on it forever. fsf's CPU runs all-reduce through gloo, which needs no op;
    marking the op incompatible makes DeepSpeed fall back to gloo exactly as on a machine
    without a compiler."""
    ops = deepspeed.ops.__compatible_ops__
    ops["deepspeed_shm_comm"] = False


def _destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _quiet_libraries() -> None:
    for name in ("DeepSpeed", "deepspeed", "transformers", "datasets", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()  # save_pretrained's "Writing model shards" bar
    except ImportError:  # pragma: no cover
        pass


def _precision(config: RunConfig, cuda: bool) -> str:
    precision = config.deepspeed.precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision != "fp32" and not cuda:
        raise FsfError(f"deepspeed.precision={precision} needs a GPU; use fp32 (or auto) on CPU")
    return precision


def _one_rank() -> tuple[int, int]:
    """(0, 1) for `engine: torch`, which never starts a process group; an error if this
    process is one rank of several."""
    import torch.distributed as dist

    world = (
        dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
    )
    if world > 1:
        raise FsfError(
            f"engine: torch runs one rank, but this process is one of {world}; use engine: "
            "deepspeed for several workers"
        )
    return 0, 1


def _ds_config(config: RunConfig, world: int, cuda: bool) -> dict[str, Any]:
    opt, ds = config.optim, config.deepspeed
    per_rank = opt.batch_size // (world * opt.grad_accum)
    if per_rank < 1 or per_rank * world * opt.grad_accum != opt.batch_size:
        raise FsfError(
            f"optim.batch_size={opt.batch_size} must be a multiple of workers ({world}) x "
            f"optim.grad_accum ({opt.grad_accum})"
        )
    precision = _precision(config, cuda)
    # One rank, ZeRO-0, fp32: whole gradients sit in .grad and the worker clips them itself
    # with torch's clip_grad_norm_ (DeepSpeed's per-tensor loop costs ~2 ms a step on CPU)
    own_clip = world == 1 and ds.zero_stage == 0 and precision == "fp32"
    cfg: dict[str, Any] = {
        "train_batch_size": opt.batch_size,
        "train_micro_batch_size_per_gpu": per_rank,
        "gradient_accumulation_steps": opt.grad_accum,
        "gradient_clipping": 0.0 if own_clip else (opt.grad_clip or 0.0),
        "zero_optimization": {"stage": ds.zero_stage},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    cfg.update(ds.extra)
    return cfg


def _param_groups(
    model: torch.nn.Module, units: dict[str, Unit], weight_decay: float
) -> tuple[list[dict[str, Any]], list[Unit]]:
    """One param group per (unit, decays?): biases and LayerNorm weights do not decay."""
    buckets: dict[tuple[Unit, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decays = param.ndim >= 2 and "LayerNorm" not in name and "layer_norm" not in name
        buckets.setdefault((units[name], decays), []).append(param)
    groups, group_units = [], []
    for (unit, decays), params in sorted(buckets.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        groups.append(
            {
                "params": params,
                "weight_decay": weight_decay if decays else 0.0,
                "name": f"{unit.name}{'' if decays else '.no_decay'}",
            }
        )
        group_units.append(unit)
    return groups, group_units


class _EvalSet:
    """Encoded examples of one (split, language), sorted by length for cheap padding."""

    def __init__(self, features: list[dict[str, Any]]):
        self.features = features
        self.order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))


def _load_data(
    task: Task, config: RunConfig, tokenizer: Any
) -> tuple[list[dict[str, Any]], dict[str, dict[str, _EvalSet]]]:
    """Source train (+ few-shot) features, and eval sets per split and language."""
    train_examples = list(task.load(config.source_lang, "train"))
    eval_examples: dict[str, dict[str, list[dict[str, Any]]]] = {
        split: {lang: task.load(lang, split) for lang in config.languages}
        for split in config.eval.splits
    }
    m = config.few_shot.m
    if m:
        import random

        if "dev" not in eval_examples:
            eval_examples["dev"] = {lang: task.load(lang, "dev") for lang in config.languages}
        for lang in config.target_langs:
            dev = eval_examples["dev"][lang]
            if len(dev) <= m:
                raise FsfError(
                    f"few_shot.m={m} but the {lang} dev split has only {len(dev)} examples"
                )
            rng = random.Random(f"{config.few_shot.seed}:{lang}")
            picked = set(rng.sample(range(len(dev)), m))
            train_examples += [dev[i] for i in sorted(picked)]
            eval_examples["dev"][lang] = [ex for i, ex in enumerate(dev) if i not in picked]
        if "dev" not in config.eval.splits:
            del eval_examples["dev"]
    if not train_examples:
        raise FsfError(f"no training examples for the source language {config.source_lang!r}")
    train = task.encode(train_examples, tokenizer)
    evals = {
        split: {lang: _EvalSet(task.encode(exs, tokenizer)) for lang, exs in per_lang.items()}
        for split, per_lang in eval_examples.items()
    }
    return train, evals


def _batches(n: int, size: int, seed: int, lengths: list[int] | None = None) -> Iterator[list[int]]:
    """An endless stream of global batches of example indices, reshuffled each epoch.

    With `lengths` (tokens per example), each epoch's shuffled order is grouped by length
    as `transformers.Trainer`'s `group_by_length` does it: cut into mega-batches of 50
    batches, each sorted longest first, so a batch holds examples of similar length and
    needs little padding; every example is still seen once per epoch, in random mega-batches.
    """
    gen = torch.Generator().manual_seed(seed)
    buf: list[int] = []
    while True:
        while len(buf) < size:
            order = torch.randperm(n, generator=gen).tolist()
            if lengths is not None:
                mega = 50 * size
                order = [
                    i
                    for k in range(0, n, mega)
                    for i in sorted(order[k : k + mega], key=lambda j: -lengths[j])
                ]
            buf += order
        yield buf[:size]
        buf = buf[size:]


def _optimizer(groups: list[dict[str, Any]], config: RunConfig, cuda: bool) -> Any:
    """The AdamW of `optim.adamw` over the policy's param groups."""
    opt = config.optim
    kwargs: dict[str, Any] = {"lr": opt.lr, "betas": opt.betas, "eps": opt.eps}
    if opt.adamw == "deepspeed-cpu":
        if cuda or config.engine != "deepspeed":
            raise FsfError(
                "optim.adamw=deepspeed-cpu is DeepSpeed's CPU Adam: it needs device cpu and "
                "engine deepspeed; choose fused, foreach or for-loop"
            )
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, adamw_mode=True, **kwargs)
    flags = {"torch": {}, "for-loop": {"foreach": False}, "foreach": {"foreach": True}}
    return torch.optim.AdamW(groups, **kwargs, **flags.get(opt.adamw, {"fused": True}))


class _TorchEngine:
    """The part of a DeepSpeed engine the training loop uses, in plain PyTorch, for one
    rank (`engine: torch`): the loss is divided by `grad_accum` in `backward`, and `step`
    updates at the end of each accumulation, as DeepSpeed does; bf16 runs under autocast
    (fp32 weights and optimizer state)."""

    def __init__(self, model: torch.nn.Module, optimizer: Any, config: RunConfig, cuda: bool):
        self.device = torch.device("cuda" if cuda else "cpu")
        self.module = model.to(self.device)
        self.optimizer = optimizer
        self.accum = config.optim.grad_accum
        self.micro = 0
        precision = _precision(config, cuda)
        if precision not in ("fp32", "bf16"):
            raise FsfError(
                f"deepspeed.precision={precision}: engine torch runs fp32 or bf16 (autocast)"
            )
        self.bf16 = precision == "bf16"

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def __call__(self, **batch: torch.Tensor) -> Any:
        with self.autocast():
            return self.module(**batch)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.accum if self.accum > 1 else loss).backward()

    def step(self) -> None:
        self.micro += 1
        if self.micro % self.accum == 0:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def train(
    config: RunConfig,
    reporter: Reporter | None = None,
    *,
    progress: bool = False,
    all_ranks_report: bool = False,
    artifacts_dir: str | Path | None = None,
) -> RunSummary:
    """Fine-tune `config.model` on the source language with `config.policy`; evaluate every
    language every `config.eval.every_steps` updates and at the end; report each evaluation
    to `reporter`: on rank 0 only, or on every rank with `all_ranks_report` (for collective
    reporters such as Ray Train's). Every rank computes the same scores. Returns the summary
    (on every rank).

    With `eval.predictions` and / or `checkpoint.save`, rank 0 writes the selected
    checkpoint's XTREME prediction files and / or the checkpoint into `artifacts_dir`
    (default: `config.run_dir()`): `predictions/<task>/test-<lang>.<tsv|json>`,
    `checkpoint/` (fsf.train.artifacts); `summary.artifacts` names them."""
    _quiet_libraries()
    cuda = _use_cuda(config)
    rank, world = _one_rank() if config.engine == "torch" else _process_group(cuda)
    if rank != 0 and not all_ranks_report:
        reporter = None
    return _train(config, reporter, progress and rank == 0, rank, world, cuda, artifacts_dir)


def _train(
    config: RunConfig,
    reporter: Reporter | None,
    progress: bool,
    rank: int,
    world: int,
    cuda: bool,
    artifacts_dir: str | Path | None = None,
) -> RunSummary:
    import torch.distributed as dist
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    task = build_task(config.task, config.model)
    model_path = resolve_model_path(config.model.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model.tokenizer or model_path)
    except (OSError, ValueError) as exc:
        raise FsfError(f"cannot load the tokenizer of model {model_path!r}: {exc}") from None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_features, eval_sets = _load_data(task, config, tokenizer)
    log.info(
        "%d training features (%s); evaluating %s",
        len(train_features),
        config.source_lang,
        ", ".join(f"{s}: {len(d)} languages" for s, d in eval_sets.items()),
    )

    try:
        model = task.build_model(model_path)
    except (OSError, ValueError) as exc:
        raise FsfError(f"cannot load model {model_path!r}: {exc}") from None
    num_layers = getattr(model.config, "num_hidden_layers", None)
    param_map = map_parameters(
        (n for n, _ in model.named_parameters()), config.model.patterns, num_layers
    )
    cka = None  # forgetting monitor: the pretrained states, taken before anything changes
    if config.analysis.cka.every_steps:
        from fsf.train._cka import CkaMonitor

        feats = {s: {lang: es.features for lang, es in d.items()} for s, d in eval_sets.items()}
        cka = CkaMonitor.build(config, task, tokenizer, feats, pad_id, model)
    apply_probe(model, param_map, config.probe, torch.Generator().manual_seed(config.seed + 2))
    sets = config.policy.sets.resolve(param_map.num_layers)
    policy = build_policy(config.policy, sets, policy_iv=task.policy_iv_default)
    policy.prepare(model, param_map, torch.Generator().manual_seed(config.seed + 1))

    opt = config.optim
    total = opt.max_steps or max(1, math.ceil(opt.epochs * len(train_features) / opt.batch_size))
    warmup = int(opt.warmup_ratio * total)
    groups, group_units = _param_groups(model, param_map.units, opt.weight_decay)
    if config.engine == "torch":
        engine: Any = _TorchEngine(model, None, config, cuda)  # on its device before AdamW
        engine.optimizer = _optimizer(groups, config, cuda)
        clip = opt.grad_clip or None
    else:
        import deepspeed

        ds_config = _ds_config(config, world, cuda)
        with _stdout_to_stderr():
            engine, _, _, _ = deepspeed.initialize(
                model=model,
                optimizer=_optimizer(groups, config, cuda),
                config=ds_config,
                dist_init_required=False,
            )
        clip = opt.grad_clip if opt.grad_clip and not ds_config["gradient_clipping"] else None
        if world == 1 and config.deepspeed.zero_stage == 0:
            # A one-rank all-reduce is the identity, yet DeepSpeed would still flatten, reduce
            # and copy back every gradient at each step (~8% of a step of the tiny encoder on
            # CPU; bench/bench_trainer.py). ZeRO >= 1 keeps its own reduction path.
            engine.enable_backward_allreduce = False
    device = engine.device
    param_groups = engine.optimizer.param_groups
    if len(param_groups) != len(group_units):  # pragma: no cover - a DeepSpeed change
        raise RuntimeError("DeepSpeed reordered or merged the optimizer's param groups")
    evaluating = engine.autocast if isinstance(engine, _TorchEngine) else contextlib.nullcontext

    tracker = PhaseTracker.from_config(config.policy, total)
    state = PhaseState(0, "P1", None)
    mults = policy.multipliers(state)
    summary = RunSummary()
    micro = opt.batch_size // world // opt.grad_accum
    step_log: list[StepRecord] = []  # analysis records since the previous evaluation
    cka_log: dict[int, dict[str, list[float]]] = {}

    keep = _Keeper(config, rank)  # the selected evaluation's predictions and weights

    def evaluate(step: int, loss: float | None, final: bool) -> None:
        engine.module.eval()
        scores: dict[str, dict[str, dict[str, float]]] = {}
        test_preds: dict[str, list[Any]] = {}
        with torch.no_grad(), evaluating():
            for split, per_lang in eval_sets.items():
                scores[split] = {}
                for lang, es in per_lang.items():
                    ordered = _predict(
                        task, engine.module, es, config.eval.batch_size, pad_id, device, rank, world
                    )
                    scores[split][lang] = task.score(ordered, es.features)
                    if split == "test":
                        test_preds[lang] = ordered
        engine.module.train()
        ev = Evaluation(
            step=step,
            epoch=step * opt.batch_size / len(train_features),
            loss=loss,
            phase=state.phase,
            phi=state.phi,
            multipliers=set_multipliers(policy, mults),
            scores=scores,
            metric=task.metric,
            source_lang=config.source_lang,
            target_langs=list(config.target_langs),
            elapsed_s=time.perf_counter() - t0,
            total_steps=total,
            is_final=final,
            train_steps=list(step_log),
            cka=dict(cka_log),
        )
        step_log.clear()
        cka_log.clear()
        summary.evaluations.append(ev)
        keep.offer(ev, test_preds, engine.module)
        if reporter is not None:
            reporter.report(ev)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"{config.name} [{config.policy.name}]", unit="step")
    engine.module.train()
    if cka is not None:
        cka_log[0] = cka.measure(engine.module, device)
    if config.eval.at_start:
        evaluate(0, None, final=False)
    lengths = [len(f["input_ids"]) for f in train_features] if opt.group_by_length else None
    stream = _batches(len(train_features), opt.batch_size, config.seed, lengths)
    loss_sum, loss_n = 0.0, 0
    for step in range(1, total + 1):
        idx = next(stream)[rank::world]
        step_loss = torch.zeros((), dtype=torch.float32)
        for a in range(opt.grad_accum):
            feats = [train_features[i] for i in idx[a * micro : (a + 1) * micro]]
            batch = {k: v.to(device) for k, v in task.collate(feats, pad_id).items()}
            loss = engine(**batch).loss
            engine.backward(loss)
            step_loss += loss.detach().float().cpu() / opt.grad_accum
            if a < opt.grad_accum - 1:
                engine.step()
        if world > 1:
            dist.all_reduce(step_loss)
            step_loss /= world
        value = float(step_loss)
        if not math.isfinite(value):
            raise TrainingDiverged(f"the training loss is {value} at step {step}")
        state = tracker.update(value)
        if config.analysis.loss_curve:
            step_log.append(StepRecord(step, value, state.phase, state.phi))
        mults = policy.multipliers(state)
        base = opt.lr * scheduled_lr_factor(step, warmup, total)
        for pg, unit in zip(param_groups, group_units, strict=True):
            pg["lr"] = base * mults[unit]
        if clip is not None:  # see _ds_config: DeepSpeed does not clip in this case
            torch.nn.utils.clip_grad_norm_(engine.module.parameters(), clip)
        engine.step()
        loss_sum += value
        loss_n += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", phase=state.phase, refresh=False)
        if cka is not None and (step % config.analysis.cka.every_steps == 0 or step == total):
            cka_log[step] = cka.measure(engine.module, device)
        if step % config.eval.every_steps == 0 or step == total:
            evaluate(step, loss_sum / loss_n, final=step == total)
            loss_sum, loss_n = 0.0, 0
    if bar is not None:
        bar.close()
    if config.keeps_artifacts and rank == 0:
        from fsf.train.artifacts import write_artifacts

        chosen, preds, state_dict = keep.result(summary)
        if state_dict is not None:
            engine.module.load_state_dict(state_dict)
        log.info("writing artifacts of step %d (%s)", chosen.step, config.selection)
        summary.artifacts = write_artifacts(
            Path(artifacts_dir) if artifacts_dir is not None else config.run_dir(),
            config,
            task,
            chosen,
            preds,
            {lang: es.features for lang, es in eval_sets.get("test", {}).items()},
            engine.module if config.checkpoint.save != "none" else None,
            tokenizer,
        )
    return summary


def evaluate_model(
    config: RunConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    splits: tuple[str, ...] = ("test",),
) -> dict[str, dict[str, dict[str, float]]]:
    """Score `model` (e.g. a saved checkpoint loaded with `AutoModelFor...from_pretrained`)
    on `splits` of every language of `config`, exactly as the training run evaluates:
    `{split: {lang: {metric: value}}}`. Runs in this process, on the model's device."""
    task = build_task(config.task, config.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, dict[str, dict[str, float]]] = {}
    try:
        with torch.no_grad():
            for split in splits:
                out[split] = {}
                for lang in config.languages:
                    es = _EvalSet(task.encode(task.load(lang, split), tokenizer))
                    preds = _predict(task, model, es, config.eval.batch_size, pad_id, device)
                    out[split][lang] = task.score(preds, es.features)
    finally:
        model.train(was_training)
    return out


def _predict(
    task: Task,
    model: torch.nn.Module,
    es: _EvalSet,
    batch_size: int,
    pad_id: int,
    device: Any,
    rank: int = 0,
    world: int = 1,
) -> list[Any]:
    """The task's predictions for every feature of `es`, in the features' order (each rank
    predicts its share, the shares are gathered). The model must be in eval mode."""
    import torch.distributed as dist

    mine = es.order[rank::world]
    preds: list[Any] = []
    for i in range(0, len(mine), batch_size):
        feats = [es.features[j] for j in mine[i : i + batch_size]]
        batch = {k: v.to(device) for k, v in task.collate(feats, pad_id).items()}
        preds += task.predict(model, batch)
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, list(zip(mine, preds, strict=True)))
        pairs = sorted(p for part in gathered for p in part)
    else:
        pairs = sorted(zip(mine, preds, strict=True))
    return [p for _, p in pairs]


class _Keeper:
    """Keeps what the run's artifacts need of the selected evaluation (`config.selection`):
    with `source-dev`, the evaluation with the best source-language dev score so far (ties:
    the earlier one, as `RunSummary.best_by_source_dev`), its test predictions and, for
    `checkpoint.save: best`, a CPU copy of the weights; with `final`, the last evaluation's.
    Only rank 0 keeps weights."""

    def __init__(self, config: RunConfig, rank: int):
        self.active = config.keeps_artifacts
        self.rule = config.selection
        self.weights = config.checkpoint.save == "best" and rank == 0
        self.best: tuple[float, Evaluation, dict[str, list[Any]]] | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.last: tuple[Evaluation, dict[str, list[Any]]] | None = None

    def offer(
        self, ev: Evaluation, test_preds: dict[str, list[Any]], model: torch.nn.Module
    ) -> None:
        if not self.active:
            return
        self.last = (ev, test_preds)
        if self.rule != "source-dev":
            return
        score = ev.source("dev")
        if math.isnan(score) or (self.best is not None and score <= self.best[0]):
            return
        self.best = (score, ev, test_preds)
        if self.weights:
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def result(
        self, summary: RunSummary
    ) -> tuple[Evaluation, dict[str, list[Any]], dict[str, torch.Tensor] | None]:
        """(selected evaluation, its test predictions, the weights to load or None: the
        model as it is now)."""
        if self.rule == "source-dev" and self.best is not None:
            _, ev, preds = self.best
            return ev, preds, self.state
        if self.last is None:  # pragma: no cover - a run always evaluates at its end
            raise FsfError("no evaluation was made: nothing to select")
        return self.last[0], self.last[1], None
