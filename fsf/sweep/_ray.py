"""Starting or joining Ray for a sweep: a private, loopback-only instance with token auth on one
machine, or the cluster `--address` / `RAY_ADDRESS` names."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

from fsf.errors import UsageError, clip, short_repr

__all__ = []

log = logging.getLogger("fsf.sweep")


#: `HOST:PORT` of a Ray cluster (an IPv6 host in brackets)
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
#: the most CPUs `--num-cpus` may give the local instance
MAX_NUM_CPUS = 100_000


def _check_address(address: str | None, num_cpus: int | None = None) -> None:
    """Refuse an `--address` (or `RAY_ADDRESS`) and `--num-cpus` that Ray would refuse only
    after starting (or would hang on): one line naming the flag, before Ray or the sweep
    folder is touched."""
    if num_cpus is not None and not 1 <= num_cpus <= MAX_NUM_CPUS:
        raise UsageError(f"--num-cpus must be in 1..{MAX_NUM_CPUS:,}, got {num_cpus}")
    for flag, value in (("--address", address), ("RAY_ADDRESS", os.environ.get("RAY_ADDRESS"))):
        if not value or value in ("auto", "local") or value.startswith("ray://"):
            continue
        m = _HOST_PORT.fullmatch(value)
        if m is None or not 1 <= int(m.group(1)) <= 65535:
            raise UsageError(
                f"{flag} {short_repr(value)}: expected auto, or HOST:PORT of a Ray cluster's "
                "head (e.g. 10.0.0.1:6379; an IPv6 host in brackets, [::1]:6379)"
            )
    if address and address.startswith("ray://"):
        raise UsageError(
            f"--address {address}: Ray Client is not supported for sweeps (Tune's driver and "
            "fsf's callbacks must run in this process, on the cluster); run fsf-sweep on a "
            "cluster node with --address auto (or HEAD:6379), or submit it as a job: "
            "ray job submit --address http://HEAD:8265 -- fsf-sweep ... (cluster/README.md)"
        )


LOOPBACK = "127.0.0.1"
"""Where the private local Ray instance listens: Ray binds its GCS, raylet, object manager
and workers to loopback only when the node's address is literally 127.0.0.1."""


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Let `ray.init(_node_ip_address="127.0.0.1")` keep that address. Ray replaces a
    loopback node address by the machine's outward one (for clusters), and then listens on
    every interface; a private instance must not (tests/sweep/test_ray_security.py checks
    the listening sockets of a real instance)."""
    from ray._private import services

    resolve = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host  # type: ignore[assignment]
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = resolve  # type: ignore[assignment]


def _private_token() -> None:
    """Keep Ray's token authentication on for the private instance without writing a token
    file: unless the user chose an auth mode or a token, a fresh random token goes into this
    process's environment (readable by this user only), which Ray's processes inherit."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # Ray turns token mode on by default when RAY_AUTH_MODE is unset, and says so once
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )


class _OneLineTrialFailures(logging.Filter):
    """Ray Tune logs each failed trial with the worker's whole traceback (Ray's frames and
    fsf's). fsf reports every failure itself, one line per trial with its recorded reason,
    so by default Tune's record keeps its first line and the exception's type and message;
    with `-v` (fsf's log level INFO or lower) the traceback is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and logging.getLogger("fsf").getEffectiveLevel() > logging.INFO:
            exc = record.exc_info[1]
            cause = exc.__cause__ or exc if exc is not None else None
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else ""
            record.msg = f"{record.getMessage()}: {clip(reason, 300)} (-v for the traceback)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_TRIAL_FAILURES = _OneLineTrialFailures()


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if _TRIAL_FAILURES not in controller.filters:
        controller.addFilter(_TRIAL_FAILURES)
    _check_address(address)
    private = address is None and not os.environ.get("RAY_ADDRESS")
    if private:
        _private_token()
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's own loggers stay on: each trial folder under <sweep>/tune/ gets result.json,
    # progress.csv and TensorBoard events (tensorboardX), for ExperimentAnalysis, Tuner.restore
    # (...).get_results() and `tensorboard --logdir <sweep>/tune` (docs/results.md)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # finished trials survive a crash
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=True,
    )
    if address:
        ray.init(address=address, **kwargs)
    elif private:
        with _loopback_node():
            ray.init(num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)
    else:  # RAY_ADDRESS names a running cluster: join it
        ray.init(num_cpus=num_cpus, **kwargs)
