"""A concise live view of a sweep: one progress bar with trials (or confirmation runs) done,
which run now and how far each is, failures, the best objective any ended trial holds and
the time left, instead of Ray Tune's wall of logs."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fsf.sweep.trial import record_id

__all__ = ["ProgressCallback"]


#: a line that starts an exception's message: `[module.]Name: text` at the line's start
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Died|Diverged)\w*:"
)


def _last_line(text: str | None) -> str:
    """The exception line of a trial's error text (`TrainingDiverged: ...`, its module path
    dropped): of the last failure Tune recorded (`Failure # N ...` blocks), the last line that
    starts an exception's message, else that failure's first line (Ray's ActorDiedError is
    written without its name: "The actor died unexpectedly ...", then details)."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    starts = [i for i, line in enumerate(lines) if line.startswith("Failure # ")]
    block = lines[starts[-1] + 1 :] if starts and starts[-1] + 1 < len(lines) else lines
    named = [line for line in block if _EXCEPTION_LINE.match(line)]
    line = named[-1] if named else (block[0] if starts else block[-1])
    return re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*:)", "", line.strip())[:500]


def _error_text(trial: Any) -> str | None:
    """The trial's error as Tune wrote it: the driver's own copy (written at once), else the
    one in the experiment's storage (synced later)."""
    local = getattr(trial, "error_file", None)
    if local and Path(local).is_file():
        return Path(local).read_text(errors="replace")
    return trial.get_error()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressCallback(Callback):
    """Counts trials (or runs: a confirmation's trial is one run), shows which are running
    and how far each is, the best objective any ended trial holds and an estimate of the
    time left; remembers why failed trials failed (`errors[trial id of the rows]`) and why
    trials that were run again failed before (`retried[trial id of the rows]`).

    `done` and `failed`: trials that ended before this fit (a resumed sweep's). The best is
    each ended trial's last reported objective, the value Optuna holds for it and `fsf show`
    ranks it by (a trial ASHA stopped counts with the value it stopped at), never a value
    only reported on the way. `seeds`: the runs of a trial (its time is their steps).
    `labels`: a confirmation candidate's label by index (a trial's config names its
    candidate and seed); other trials are shown by their trial id."""

    def __init__(
        self,
        total: int,
        objective: Any,
        enabled: bool = True,
        desc: str = "trials",
        done: int = 0,
        failed: int = 0,
        *,
        unit: str = "trial",
        seeds: int = 1,
        labels: dict[int, str] | None = None,
    ):
        self.total = total
        self.metric = objective.metric
        self.sign = 1.0 if objective.mode == "max" else -1.0
        self.best = -math.inf
        self.running: dict[str, tuple[str, float]] = {}  # Tune id -> (label, fraction done)
        self.done = done
        self.failed = failed
        self.errors: dict[str, str] = {}
        self.retried: dict[str, list[str]] = {}  # trial id -> why each failed attempt failed
        self.seeds = max(1, seeds)
        self.labels = dict(labels or {})
        self._start_done = done
        self._started: float | None = None
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=done, desc=desc, unit=unit, dynamic_ncols=True)
            self._refresh()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config (callbacks included) into tuner.pkl, which fsf never
        # reads back: the live bar (a terminal stream) stays out of it
        return {**self.__dict__, "_bar": None}

    def _label(self, trial: Any) -> str:
        config = getattr(trial, "config", None) or {}
        if "candidate" in config and "seed" in config:
            name = self.labels.get(config["candidate"], f"#{config['candidate']}")
            return f"{name} s{config['seed']}"
        return record_id(trial)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the fraction of this fit's work done so far (None: unknown)."""
        import time

        if self._started is None:
            return None
        left = self.total - self._start_done
        if left <= 0:
            return 0.0
        ended = self.done - self._start_done
        fraction = (ended + sum(f for _, f in self.running.values())) / left
        if fraction <= 0:
            return None
        elapsed = (now if now is not None else time.monotonic()) - self._started
        return elapsed * (1 - fraction) / fraction

    def status(self) -> str:
        """The bar's postfix: what runs now, failures, the best so far, the time left."""
        best = "-" if self.best == -math.inf else f"{self.sign * self.best:.4f}"
        shown = [f"{label} {100 * f:.0f}%" for label, f in list(self.running.values())[:4]]
        if len(self.running) > 4:
            shown.append(f"+{len(self.running) - 4}")
        eta = self.eta()
        return (
            f"running: {', '.join(shown) or '-'}; failed={self.failed} best {self.metric}={best}"
            + ("" if eta is None else f" eta {_duration(eta)}")
        )

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self.status())

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        import time

        if self._started is None:
            self._started = time.monotonic()
        self.running[trial.trial_id] = (self._label(trial), 0.0)
        self._refresh()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        step, total = result.get("progress_step"), result.get("total_steps")
        if trial.trial_id in self.running and isinstance(step, (int, float)) and total:
            fraction = min(1.0, float(step) / (float(total) * self.seeds))
            self.running[trial.trial_id] = (self.running[trial.trial_id][0], fraction)
        self._refresh()

    def _finished(self, trial: Any, ended_well: bool = False) -> None:
        self.running.pop(trial.trial_id, None)
        if ended_well:  # the value the trial ended with: what Optuna and `fsf show` hold
            value = (getattr(trial, "last_result", None) or {}).get(self.metric)
            if isinstance(value, (int, float)) and not math.isnan(value):
                self.best = max(self.best, self.sign * value)
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        failures = getattr(trial, "num_failures", 0) or 0
        if failures:  # it failed and Tune ran it again (`max_failures`, `confirm.retries`)
            try:
                reason = _last_line(_error_text(trial))
            except Exception:
                reason = "unknown error"
            self.retried[record_id(trial)] = [f"{failures} failure(s), the last {reason}"]
        self._finished(trial, ended_well=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failed += 1
        try:
            self.errors[record_id(trial)] = _last_line(_error_text(trial))
        except Exception:
            self.errors[record_id(trial)] = "trial failed"
        self._finished(trial)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
