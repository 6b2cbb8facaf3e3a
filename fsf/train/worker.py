"""One training run as one DeepSpeed rank: build, train on the source language, evaluate all.

`train(config, reporter)` is the whole public surface. It works as a single process (it then
creates its own one-rank process group on a free port) or as one rank of several started by
torchrun, `deepspeed`, or Ray Train (the process group then already exists). Every rank
computes the same learning rates: the loss that drives the phase rule is averaged over ranks.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fsf.config import RunConfig
from fsf.errors import ConfigError, FsfError, Problem, clip
from fsf.policies import (
    PhaseState,
    PhaseTracker,
    Unit,
    build_policy,
    map_parameters,
    policy_class,
    set_multipliers,
)
from fsf.results.evaluation import Evaluation, StepRecord
from fsf.tasks import build_task
from fsf.train._data import batches, load_data
from fsf.train._engine import (
    _ds_config,
    _one_rank,
    _optimizer,
    _process_group,
    _quiet_libraries,
    _stdout_to_stderr,
    _TorchEngine,
    _use_cuda,
    bf16_autocast,
    ds_config_problem,
    row_embedding,
)
from fsf.train._evaluate import Keeper, predict
from fsf.train._probe import apply_probe
from fsf.train._rows import clip_grad_norm_ as _clip_rows
from fsf.train.model_path import resolve_model_path
from fsf.train.reporter import Reporter, RunSummary

__all__ = [
    "TrainingDiverged",
    "resolve_model_path",
    "scheduled_lr_factor",
    "train",
]

log = logging.getLogger("fsf.train")


class TrainingDiverged(FsfError):
    """The training loss became NaN or infinite."""


def scheduled_lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then linear decay; `step` is 1-based.

    The first update already has a non-zero lr and the last a small positive one.
    """
    if warmup > 0 and step <= warmup:
        return step / warmup
    return max(0.0, min(1.0, (total - step + 1) / max(1, total - warmup)))


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
    recipe = _Recipe(config, reporter, rank, world, cuda)
    recipe.setup()
    recipe.loop(progress)
    if config.keeps_artifacts and rank == 0:
        recipe.write_artifacts(artifacts_dir)
    return recipe.summary


class _Recipe:
    """One fine-tuning run in torchtune's recipe shape: `setup` (data, model, probe, policy,
    engine), `evaluate` (every language and split, one `Evaluation` to the reporter), `loop`
    (the optimizer steps with the policy's multipliers on the scheduled lr), and
    `write_artifacts` (the selected checkpoint's predictions and weights). The mutable state
    of the run (phase, multipliers, logs since the last evaluation) lives on the instance."""

    def __init__(
        self, config: RunConfig, reporter: Reporter | None, rank: int, world: int, cuda: bool
    ):
        self.config, self.reporter = config, reporter
        self.rank, self.world, self.cuda = rank, world, cuda
        self.t0 = time.perf_counter()
        self.summary = RunSummary()
        self.step_log: list[StepRecord] = []  # analysis records since the previous evaluation
        self.cka_log: dict[int, dict[str, list[float]]] = {}
        self.keep = Keeper(config, rank)  # the selected evaluation's predictions and weights

    # -- setup ------------------------------------------------------------------------------

    def setup(self) -> None:
        from transformers import AutoTokenizer

        config = self.config
        torch.manual_seed(config.seed)
        self.task = task = build_task(config.task, config.model)
        model_path = resolve_model_path(config.model.name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.model.tokenizer or model_path)
        except (OSError, ValueError) as exc:
            raise FsfError(f"cannot load the tokenizer of model {model_path!r}: {exc}") from None
        self.tokenizer = tokenizer
        self.pad_id = pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.train_features, self.eval_sets = load_data(task, config, tokenizer)
        log.info(
            "%d training features (%s); evaluating %s",
            len(self.train_features),
            config.source_lang,
            ", ".join(f"{s}: {len(d)} languages" for s, d in self.eval_sets.items()),
        )

        try:
            with warnings.catch_warnings():  # torch's note on a pickle it then refuses
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                model = task.build_model(model_path)
        except pickle.UnpicklingError as exc:  # torch's safe loader refused a pickle
            reason = clip(str(exc).strip().splitlines()[0] if str(exc).strip() else "", 120)
            raise ConfigError(
                [
                    Problem(
                        "model.name",
                        "its weights file is a pickle that torch's safe loader (weights_only) "
                        f"refused ({reason}): it may run code when loaded; use a model with "
                        "model.safetensors weights, or one you trust converted to them",
                        config.model.name,
                        True,
                    )
                ]
            ) from None
        except (OSError, ValueError) as exc:
            raise FsfError(f"cannot load model {model_path!r}: {exc}") from None
        num_layers = getattr(model.config, "num_hidden_layers", None)
        param_map = map_parameters(
            (n for n, _ in model.named_parameters()), config.model.patterns, num_layers
        )
        self.cka = None  # forgetting monitor: the pretrained states, before anything changes
        if config.analysis.cka.every_steps:
            from fsf.train._cka import CkaMonitor

            feats = {
                s: {lang: es.features for lang, es in d.items()} for s, d in self.eval_sets.items()
            }
            self.cka = CkaMonitor.build(config, task, tokenizer, feats, pad_id, model)
        apply_probe(model, param_map, config.probe, torch.Generator().manual_seed(config.seed + 2))
        sets = config.policy.sets.resolve(param_map.num_layers)
        self.gate = None  # policy_iv: cka: the V_II layers' CKA trend, from the pretrained model
        if config.policy.policy_iv == "cka" and "IV" in policy_class(config.policy.name).uses:
            from fsf.train._cka import VCkaGate

            v2 = sets.ranges["V_II"]
            layers = list(v2.layers()) if v2 is not None else []
            self.gate = VCkaGate.build(config, task, self.train_features, pad_id, model, layers)
        self.policy = build_policy(config.policy, sets)
        self.policy.prepare(model, param_map, torch.Generator().manual_seed(config.seed + 1))

        opt = config.optim
        n = len(self.train_features)
        self.total = opt.max_steps or max(1, math.ceil(opt.epochs * n / opt.batch_size))
        self.warmup = int(opt.warmup_ratio * self.total)
        groups, self.group_units = _param_groups(model, param_map.units, opt.weight_decay)
        self._build_engine(model, groups)
        self.tracker = PhaseTracker.from_config(config.policy, self.total)
        self.state = PhaseState(0, "P1", None)
        self.mults = self.policy.multipliers(self.state)

    def _build_engine(self, model: torch.nn.Module, groups: list[dict[str, Any]]) -> None:
        config, opt, world, cuda = self.config, self.config.optim, self.world, self.cuda
        rows = row_embedding(model, config, world, cuda)
        self.clip_norm = _clip_rows if rows is not None else torch.nn.utils.clip_grad_norm_
        if config.engine == "torch":
            engine: Any = _TorchEngine(model, None, config, cuda)  # on its device before AdamW
            engine.optimizer = _optimizer(groups, config, cuda, rows)
            self.clip = opt.grad_clip or None
        else:
            import deepspeed

            ds_config = _ds_config(config, world, cuda)
            problem = ds_config_problem(config, world, cuda)
            if problem:
                raise ConfigError([Problem("deepspeed.extra", problem)])
            with _stdout_to_stderr():
                engine, _, _, _ = deepspeed.initialize(
                    model=model,
                    optimizer=_optimizer(groups, config, cuda, rows),
                    config=ds_config,
                    dist_init_required=False,
                )
            self.clip = (
                opt.grad_clip if opt.grad_clip and not ds_config["gradient_clipping"] else None
            )
            if world == 1 and config.deepspeed.zero_stage == 0:
                # A one-rank all-reduce is the identity, yet DeepSpeed would still flatten,
                # reduce and copy back every gradient at each step (~8% of a step of the tiny
                # encoder on CPU; bench/bench_trainer.py). ZeRO >= 1 keeps its own reduction.
                engine.enable_backward_allreduce = False
        self.engine = engine
        self.device = engine.device
        self.param_groups = engine.optimizer.param_groups
        if len(self.param_groups) != len(self.group_units):  # pragma: no cover - DeepSpeed
            raise RuntimeError("DeepSpeed reordered or merged the optimizer's param groups")
        autocast = bf16_autocast(config, cuda)  # evaluation runs as training's forward does
        self.evaluating = lambda: torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=autocast
        )

    # -- evaluate ---------------------------------------------------------------------------

    def evaluate(self, step: int, loss: float | None, final: bool) -> None:
        config, engine, task = self.config, self.engine, self.task
        engine.module.eval()
        scores: dict[str, dict[str, dict[str, float]]] = {}
        test_preds: dict[str, list[Any]] = {}
        with torch.no_grad(), self.evaluating():
            for split, per_lang in self.eval_sets.items():
                scores[split] = {}
                for lang, es in per_lang.items():
                    ordered = predict(
                        task,
                        engine.module,
                        es,
                        config.eval.batch_size,
                        self.pad_id,
                        self.device,
                        self.rank,
                        self.world,
                    )
                    scores[split][lang] = task.score(ordered, es.features)
                    if split == "test":
                        test_preds[lang] = ordered
        engine.module.train()
        ev = Evaluation(
            step=step,
            epoch=step * config.optim.batch_size / len(self.train_features),
            loss=loss,
            phase=self.state.phase,
            phi=self.state.phi,
            multipliers=set_multipliers(self.policy, self.mults),
            scores=scores,
            metric=task.metric,
            source_lang=config.source_lang,
            target_langs=list(config.target_langs),
            elapsed_s=time.perf_counter() - self.t0,
            total_steps=self.total,
            is_final=final,
            train_steps=list(self.step_log),
            cka=dict(self.cka_log),
        )
        self.step_log.clear()
        self.cka_log.clear()
        self.summary.evaluations.append(ev)
        self.keep.offer(ev, test_preds, engine.module)
        if self.reporter is not None:
            self.reporter.report(ev)

    # -- the optimizer steps ----------------------------------------------------------------

    def loop(self, progress: bool) -> None:
        import torch.distributed as dist

        config, opt, engine, task = self.config, self.config.optim, self.engine, self.task
        rank, world, device, total, cka = self.rank, self.world, self.device, self.total, self.cka
        micro = opt.batch_size // world // opt.grad_accum
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"{config.name} [{config.policy.name}]", unit="step")
        engine.module.train()
        if cka is not None:
            self.cka_log[0] = cka.measure(engine.module, device)
        gate, falling = self.gate, None
        if gate is not None:
            falling = gate.measure(engine.module, device, 0)
            self.step_log.append(StepRecord(0, None, "P1", None, cka_v2=gate.last))
        if config.eval.at_start:
            self.evaluate(0, None, final=False)
        features = self.train_features
        lengths = [len(f["input_ids"]) for f in features] if opt.group_by_length else None
        stream = batches(len(features), opt.batch_size, config.seed, lengths)
        loss_sum, loss_n = 0.0, 0
        for step in range(1, total + 1):
            idx = next(stream)[rank::world]
            step_loss = torch.zeros((), dtype=torch.float32)
            for a in range(opt.grad_accum):
                feats = [features[i] for i in idx[a * micro : (a + 1) * micro]]
                batch = {k: v.to(device) for k, v in task.collate(feats, self.pad_id).items()}
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
            state = self.tracker.update(value)
            measured = None
            if gate is not None and step % config.policy.cka.every_steps == 0:
                # measured before this step's update, like the loss the phase uses
                falling = gate.measure(engine.module, device, step)
                measured = gate.last
            if gate is not None:
                state = replace(state, cka_falling=falling)
            self.state = state
            if config.analysis.loss_curve or measured is not None:
                loss_v = value if config.analysis.loss_curve else None
                self.step_log.append(
                    StepRecord(step, loss_v, state.phase, state.phi, cka_v2=measured)
                )
            self.mults = mults = self.policy.multipliers(state)
            base = opt.lr * scheduled_lr_factor(step, self.warmup, total)
            for pg, unit in zip(self.param_groups, self.group_units, strict=True):
                pg["lr"] = base * mults[unit]
            if self.clip is not None:  # see _ds_config: DeepSpeed does not clip in this case
                self.clip_norm(engine.module.parameters(), self.clip)
            engine.step()
            loss_sum += value
            loss_n += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}", phase=state.phase, refresh=False)
            if cka is not None and (step % config.analysis.cka.every_steps == 0 or step == total):
                self.cka_log[step] = cka.measure(engine.module, device)
            if step % config.eval.every_steps == 0 or step == total:
                self.evaluate(step, loss_sum / loss_n, final=step == total)
                loss_sum, loss_n = 0.0, 0
        if bar is not None:
            bar.close()

    # -- artifacts --------------------------------------------------------------------------

    def write_artifacts(self, artifacts_dir: str | Path | None) -> None:
        from fsf.train.artifacts import write_artifacts

        config, module = self.config, self.engine.module
        chosen, preds, state_dict = self.keep.result(self.summary)
        if state_dict is not None:
            module.load_state_dict(state_dict)
        log.info("writing artifacts of step %d (%s)", chosen.step, config.selection)
        self.summary.artifacts = write_artifacts(
            Path(artifacts_dir) if artifacts_dir is not None else config.run_dir(),
            config,
            self.task,
            chosen,
            preds,
            {lang: es.features for lang, es in self.eval_sets.get("test", {}).items()},
            module if config.checkpoint.save != "none" else None,
            self.tokenizer,
        )
