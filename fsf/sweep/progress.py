"""A concise live view of a sweep: one progress bar with trials done/running/failed and the
best objective so far, instead of Ray Tune's wall of logs."""

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


class ProgressCallback(Callback):
    """Counts trials and remembers why failed trials failed (`errors[trial id of the rows]`)
    and why trials that were run again failed before (`retried[trial id of the rows]`).

    `done` and `failed`: trials that ended before this fit (a resumed sweep's)."""

    def __init__(
        self,
        total: int,
        objective: Any,
        enabled: bool = True,
        desc: str = "trials",
        done: int = 0,
        failed: int = 0,
    ):
        self.total = total
        self.metric = objective.metric
        self.sign = 1.0 if objective.mode == "max" else -1.0
        self.best = -math.inf
        self.running: set[str] = set()
        self.done = done
        self.failed = failed
        self.errors: dict[str, str] = {}
        self.retried: dict[str, list[str]] = {}  # trial id -> why each failed attempt failed
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=done, desc=desc, unit="trial", dynamic_ncols=True)
            self._refresh()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config (callbacks included) into tuner.pkl, which fsf never
        # reads back: the live bar (a terminal stream) stays out of it
        return {**self.__dict__, "_bar": None}

    def _refresh(self) -> None:
        if self._bar is None:
            return
        best = "-" if self.best == -math.inf else f"{self.sign * self.best:.4f}"
        self._bar.set_postfix_str(
            f"running={len(self.running)} failed={self.failed} best {self.metric}={best}"
        )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._refresh()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value):
            self.best = max(self.best, self.sign * value)
        self._refresh()

    def _finished(self, trial: Any) -> None:
        self.running.discard(trial.trial_id)
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
        self._finished(trial)

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
