"""Sweeps: the only package that imports Ray. It adapts the training core to Ray Tune."""

from fsf.sweep.points import define_by_run, grid_points
from fsf.sweep.space import load_space, validate_space
from fsf.sweep.spec import SweepSpec

__all__ = ["SweepSpec", "define_by_run", "grid_points", "load_space", "run_sweep", "validate_space"]


def __getattr__(name: str):  # run_sweep imports Ray: load it only when asked for
    if name == "run_sweep":
        from fsf.sweep.tune import run_sweep

        return run_sweep
    raise AttributeError(name)
