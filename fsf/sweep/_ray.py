"""Starting or joining Ray for a sweep: a private, loopback-only instance with token auth on one
machine (on the Ray versions that have it, 2.52 and later), or the cluster `--address` /
`RAY_ADDRESS` names (whose Ray must be this process's: a mismatch is one line, exit 2)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

from fsf.errors import UsageError, clip
from fsf.sweep.address import check_address

__all__ = []

log = logging.getLogger("fsf.sweep")


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
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = resolve


#: The first Ray with token authentication. A local `ray.init()` turns it on by itself only
#: from 2.59, so fsf asks for it (RAY_AUTH_MODE=token) on every Ray that has it.
TOKEN_AUTH_SINCE = (2, 52)

NO_TOKEN_AUTH = (
    "Ray {version} has no token authentication (it came in Ray 2.52): the private Ray "
    "instance listens on 127.0.0.1 only, so nothing outside this machine reaches it, but "
    "other users of this machine could; on a shared machine use Ray >= 2.52"
)


def _ray_minor(version: str) -> tuple[int, int]:
    """`2.55.1` -> (2, 55); an unreadable version counts as new (dev builds, `3.0.0.dev0`)."""
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (99, 0)


def _private_auth(ray_version: str, environ: dict[str, str] | None = None) -> str | None:
    """Keep Ray's token authentication on for the private instance without writing a token
    file: unless the user chose an auth mode, `RAY_AUTH_MODE=token` and (unless the user gave
    one) a fresh random token go into this process's environment (readable by this user
    only), which Ray's processes inherit. Ray before 2.52 has no token authentication: the
    environment is left alone and the returned line says how the instance is protected."""
    env = os.environ if environ is None else environ
    if "RAY_AUTH_MODE" in env:
        return None
    if _ray_minor(ray_version) < TOKEN_AUTH_SINCE:
        return NO_TOKEN_AUTH.format(version=ray_version)
    env["RAY_AUTH_MODE"] = "token"
    if not (env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")):
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return None


def _refresh_ray_config() -> None:
    """Make this process see the auth mode just set: Ray reads its config from the environment
    once, when it is imported (fsf's driver has imported it by then), and its processes
    started later read it anew; a driver still on the old mode could not talk to them. Ray
    does the same when it turns token mode on by itself (2.59 and later)."""
    from ray._raylet import Config

    Config.initialize("")


def _supported_ray() -> str:
    """The Ray range fsf declares, from its installed metadata (README.md states it)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        for req in requires("fsf") or []:
            m = re.match(r"ray(\[[^\]]*\])?\s*([^;]+)", req)
            if m and "extra" not in req:
                return f"ray{m.group(2).strip()}"
    except PackageNotFoundError:
        pass
    return "the Ray versions README.md lists"


_MISMATCH = re.compile(r"Ray: (\S+)\s+Python: (\S+)")


def _version_mismatch(exc: BaseException, address: str) -> UsageError | None:
    """Ray's `RuntimeError("Version mismatch: ...")` from `ray.init` joining a cluster of
    another Ray (or Python) as one line naming both versions and the fix; None for any other
    error."""
    text = str(exc)
    found = _MISMATCH.findall(text)
    if not text.startswith("Version mismatch") or len(found) < 2:
        return None
    (ray_c, py_c), (ray_d, py_d) = found[0], found[1]
    if ray_c != ray_d:
        what = f"the cluster at {address} runs Ray {ray_c}, this driver Ray {ray_d}"
        fix = (
            f"install the cluster's Ray where the driver runs (pip install "
            f"'ray[tune,train]=={ray_c}'; fsf supports {_supported_ray()})"
        )
    else:
        what = f"the cluster at {address} runs Python {py_c}, this driver Python {py_d}"
        fix = f"run the driver with Python {py_c}"
    return UsageError(
        f"Ray version mismatch: {what}: {fix}, or submit the sweep to the cluster as a job "
        "(ray job submit ... -- fsf-sweep ...; cluster/README.md)"
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


def _tensorboardx_without_torch() -> None:
    """Import tensorboardX, which Tune's TensorBoard logger loads in the driver, without the
    torch it imports only to accept torch tensors (Tune logs Python numbers). The driver
    never needs torch, and importing it there costs 2-3 s of CPU while the trial processes
    import their own (docs/benchmarks.md, benchmark 13). Nothing happens when torch is
    already loaded, and tensorboardX keeps working if it is missing or fails."""
    import sys

    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        return
    # a None entry makes `import torch` raise ImportError (typeshed types the dict's values
    # as modules only)
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        pass
    finally:
        del sys.modules["torch"]


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if _TRIAL_FAILURES not in controller.filters:
        controller.addFilter(_TRIAL_FAILURES)
    check_address(address)
    private = address is None and not os.environ.get("RAY_ADDRESS")
    if private:
        asked = "RAY_AUTH_MODE" not in os.environ
        if warning := _private_auth(ray.__version__):
            log.warning("%s", warning)
        elif asked and "RAY_AUTH_MODE" in os.environ:
            _refresh_ray_config()
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's own loggers stay on: each trial folder under <sweep>/tune/ gets result.json,
    # progress.csv and TensorBoard events (tensorboardX), for ExperimentAnalysis, Tuner.restore
    # (...).get_results() and `tensorboard --logdir <sweep>/tune` (docs/results.md)
    # Tune's experiment state (what ExperimentAnalysis reads; fsf's resume reads the study
    # and the results instead) is saved every second, so Tune's view of a killed sweep too
    # knows its finished trials
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    _tensorboardx_without_torch()
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=True,
    )
    if private:
        with _loopback_node():
            ray.init(num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)
        return
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # RAY_ADDRESS names a running cluster: join it
            ray.init(num_cpus=num_cpus, **kwargs)
    except RuntimeError as exc:
        mismatch = _version_mismatch(exc, address or os.environ.get("RAY_ADDRESS", ""))
        if mismatch is None:
            raise
        raise mismatch from None
