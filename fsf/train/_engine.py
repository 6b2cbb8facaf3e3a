"""The engines a run trains in: DeepSpeed (any ZeRO stage, any number of ranks, its process
group created once per process) or plain PyTorch on one rank (`engine: torch`, bf16 by
autocast; on CPU bf16 is autocast with either engine); the optimizer either wraps.
`fsf.train.worker` builds one per run."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import torch

from fsf.config import RunConfig
from fsf.errors import FsfError, clip

log = logging.getLogger("fsf.train")


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
            os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
            _one_rank_group(cuda)
        with _stdout_to_stderr():
            deepspeed.init_distributed(
                dist_backend="nccl" if cuda else "gloo", auto_mpi_discovery=False, verbose=False
            )
        atexit.register(_destroy_group)
    return dist.get_rank(), dist.get_world_size()


def _loopback_interface() -> str | None:
    """The name of the loopback network interface (`lo` on Linux, `lo0` on macOS), if
    there is one."""
    names = [name for _, name in socket.if_nameindex()]
    for name in names:  # Linux: the interface flagged IFF_LOOPBACK
        try:
            with open(f"/sys/class/net/{name}/flags") as fh:
                if int(fh.read(), 16) & 0x8:
                    return name
        except (OSError, ValueError):
            continue
    return next((n for n in names if n in ("lo", "lo0")), None)


def _one_rank_group(cuda: bool) -> None:
    """The process group of a one-rank run, opening no socket beyond loopback: its store is
    an in-memory `HashStore` (a `TCPStore` would listen on every interface), and gloo's
    device is bound to the loopback interface (by default it binds the address the host
    name resolves to). A rank of several, started by a launcher, joins its group as the
    launcher's environment says instead. tests/train/test_engines.py lists the sockets."""
    import datetime

    import torch.distributed as dist

    if not cuda and "GLOO_SOCKET_IFNAME" not in os.environ:
        loopback = _loopback_interface()
        if loopback is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = loopback  # read when the group is created
    dist.init_process_group(
        backend="nccl" if cuda else "gloo",
        store=dist.HashStore(),
        rank=0,
        world_size=1,
        timeout=datetime.timedelta(minutes=30),
    )


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
    """fp32, bf16 or fp16. bf16 on a GPU is DeepSpeed's bf16 mode (engine deepspeed) or
    autocast (engine torch); on CPU it is autocast with either engine (`bf16_autocast`); fp16
    needs a GPU."""
    precision = config.deepspeed.precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not cuda:
        raise FsfError("deepspeed.precision=fp16 needs a GPU; use bf16 (autocast on CPU) or fp32")
    return precision


def bf16_autocast(config: RunConfig, cuda: bool) -> bool:
    """Whether forward passes (training and evaluation) run under `torch.autocast(bf16)` with
    fp32 weights, gradients and optimizer state: bf16 with engine torch, or on CPU (matrix
    products in bf16: fast on CPUs with AMX, e.g. Sapphire Rapids and later)."""
    return _precision(config, cuda) == "bf16" and (config.engine == "torch" or not cuda)


def _one_rank() -> tuple[int, int]:
    """(0, 1) for `engine: torch`, which never starts a process group; an error if this
    process is one rank of several."""
    import torch.distributed as dist

    # a launcher's WORLD_SIZE counts even when a one-rank group already exists in-process
    world = max(
        dist.get_world_size() if dist.is_initialized() else 1,
        int(os.environ.get("WORLD_SIZE", "1")),
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
    autocast = bf16_autocast(config, cuda)  # on CPU: DeepSpeed's torch_autocast, fp32 weights
    # One rank, ZeRO-0, fp32 weights: whole gradients sit in .grad and the worker clips them
    # itself with torch's clip_grad_norm_ (DeepSpeed's per-tensor loop costs ~2 ms a step on CPU)
    own_clip = world == 1 and ds.zero_stage == 0 and (precision == "fp32" or autocast)
    cfg: dict[str, Any] = {
        "train_batch_size": opt.batch_size,
        "train_micro_batch_size_per_gpu": per_rank,
        "gradient_accumulation_steps": opt.grad_accum,
        "gradient_clipping": 0.0 if own_clip else (opt.grad_clip or 0.0),
        "zero_optimization": {"stage": ds.zero_stage},
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": precision == "bf16" and not autocast},
        "fp16": {"enabled": precision == "fp16"},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if autocast:
        cfg["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    cfg.update(ds.extra)
    return cfg


def ds_config_problem(config: RunConfig, world: int = 1, cuda: bool = False) -> str | None:
    """What DeepSpeed's own parser says of the config the engine would get (`deepspeed.extra`
    merged in), on one line, or None when it takes it (or there is no `extra` to check: fsf's
    own part is known good). `fsf validate` asks before a sweep starts, the worker before the
    engine is built, so that a wrong-typed section is one line, not DeepSpeed's traceback."""
    if config.engine != "deepspeed" or not config.deepspeed.extra:
        return None
    try:
        ds_config = _ds_config(config, world, cuda)
    except FsfError:
        return None  # a precision or batch this machine cannot run: the run says so
    saved = os.environ.get("DS_ACCELERATOR")
    if not cuda and saved is None:
        os.environ["DS_ACCELERATOR"] = "cpu"  # as the worker sets it; restored below
    try:
        with _stdout_to_stderr():
            from deepspeed.runtime.config import DeepSpeedConfig

        DeepSpeedConfig(ds_config)
    except Exception as exc:  # DeepSpeed's TypeError, ValueError, AssertionError, pydantic's
        lines = str(exc).strip().splitlines()
        return clip(f"DeepSpeed refuses the config ({type(exc).__name__}: {' '.join(lines[:3])})")
    finally:
        if saved is None:
            os.environ.pop("DS_ACCELERATOR", None)
    return None


#: `optim.embedding_update: auto` updates the word embedding by rows from this many rows on
ROWS_FROM = 32_768


def row_embedding(
    model: torch.nn.Module, config: RunConfig, world: int, cuda: bool
) -> torch.nn.Embedding | None:
    """The word embedding that AdamW updates row-wise (`optim.embedding_update`; see
    `fsf.train._rows`), or None: dense, like every other weight."""
    mode = config.optim.embedding_update
    if mode == "dense":
        return None
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    why = None
    if world > 1 or (config.engine == "deepspeed" and config.deepspeed.zero_stage > 0):
        why = "it needs one rank without ZeRO (its gradient is never all-reduced)"
    elif config.optim.adamw != "fused":
        why = f"it runs fused AdamW, not optim.adamw={config.optim.adamw}"
    elif _precision(config, cuda) != "fp32" and not bf16_autocast(config, cuda):
        why = "it needs fp32 weights (fp32, or bf16 as autocast)"
    elif not isinstance(emb, torch.nn.Embedding) or not emb.weight.requires_grad:
        why = "the model has no trainable nn.Embedding input embedding"
    elif out is not None and getattr(out, "weight", None) is emb.weight:
        why = "the input embedding is tied to the output layer"
    if mode == "rows" and why is not None:
        raise FsfError(f"optim.embedding_update=rows: {why}; use auto or dense")
    if why is not None or emb is None:
        return None
    if mode == "auto" and (cuda or emb.num_embeddings < ROWS_FROM):
        return None
    return emb


def _optimizer(
    groups: list[dict[str, Any]],
    config: RunConfig,
    cuda: bool,
    rows: torch.nn.Embedding | None = None,
) -> Any:
    """The AdamW of `optim.adamw` over the policy's param groups (`rows`: the embedding it
    updates row-wise, `fsf.train._rows.RowAdamW`)."""
    opt = config.optim
    kwargs: dict[str, Any] = {"lr": opt.lr, "betas": opt.betas, "eps": opt.eps}
    if rows is not None:
        from fsf.train._rows import RowAdamW

        return RowAdamW(groups, rows, **kwargs)
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
        self.bf16 = bf16_autocast(config, cuda)

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
