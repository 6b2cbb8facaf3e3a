"""The phase of fine-tuning: P1 (the loss falls fast) or P2 (it has flattened).

The loss trend of the paper, over a window of w iterations, at iteration t (1-based):

    a = mean(loss[t-2w+1 .. t-w]),  b = mean(loss[t-w+1 .. t]),  phi_t = b / a

Iteration t is in P1 while a - b > threshold, otherwise in P2; with fewer than 2w losses it is
in P1 and phi is undefined (None). The multiplier for the update of iteration t uses the losses
of iterations 1..t: the current loss is known before the optimizer step.

Switch modes: `loss-trend` (the rule above), `step` (the first `step` iterations are P1) and
`fraction` (the first round(fraction * total_steps) iterations are P1). Once P2 is reached it
stays P2 unless `sticky` is false (then only `loss-trend` can return to P1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fsf.policies.settings import PolicySettings, SwitchMode

__all__ = ["CkaTrend", "PhaseState", "PhaseTracker"]


@dataclass(frozen=True)
class PhaseState:
    """The phase of iteration `step` and the loss trend phi (None before 2w losses).

    `cka_falling`: with `policy_iv: cka`, whether the CKA of the V_II layers to the
    pretrained model is still falling (:class:`CkaTrend`; None: not measured, or too few
    measurements yet to tell)."""

    step: int
    phase: Literal["P1", "P2"]
    phi: float | None
    cka_falling: bool | None = None


class CkaTrend:
    """Whether a CKA curve is still falling, for `policy_iv: cka` (the paper applies Policy
    IV in P2 "whenever the CKA similarity of the last two layers is still falling").

    Feed it one measurement at a time (the CKA of the V_II layers' hidden states to the
    pretrained model's on a fixed probe batch). With the last `window` measurements
    m_1 .. m_window, the curve is falling when m_1 - m_window > `min_drop`; with fewer
    measurements `falling` is None (the caller decides; fsf applies c2 then, since
    fine-tuning starts at CKA 1 and can only fall). A pure function of the values fed.
    """

    def __init__(self, window: int = 3, min_drop: float = 0.001):
        if window < 2:
            raise ValueError(f"window must be >= 2 measurements, got {window}")
        self.window = window
        self.min_drop = min_drop
        self.values: list[tuple[int, float]] = []

    def update(self, step: int, value: float) -> bool | None:
        """Record the measurement at `step` and return :attr:`falling`."""
        self.values.append((step, float(value)))
        return self.falling

    @property
    def falling(self) -> bool | None:
        if len(self.values) < self.window:
            return None
        first, last = self.values[-self.window][1], self.values[-1][1]
        if first != first or last != last:  # NaN: CKA undefined, say nothing
            return None
        return first - last > self.min_drop


class PhaseTracker:
    """Feeds on one training loss per iteration and says which phase that iteration is in.

    Running sums make each `update` O(1), so tracking costs nothing next to a training step.
    """

    def __init__(
        self,
        mode: SwitchMode = "loss-trend",
        window: int = 100,
        threshold: float = 0.1,
        sticky: bool = True,
        switch_step: int | None = None,
        switch_fraction: float | None = None,
        total_steps: int | None = None,
    ):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.mode = mode
        self.window = window
        self.threshold = threshold
        self.sticky = sticky
        if mode == "step":
            if switch_step is None:
                raise ValueError("switch mode 'step' needs switch_step")
            self.p1_steps: int | None = switch_step
        elif mode == "fraction":
            if switch_fraction is None or total_steps is None:
                raise ValueError("switch mode 'fraction' needs switch_fraction and total_steps")
            self.p1_steps = int(switch_fraction * total_steps + 0.5)
        else:
            self.p1_steps = None
        self._prefix: list[float] = [0.0]  # prefix sums of the losses
        self._in_p2 = False

    @classmethod
    def from_config(cls, config: PolicySettings, total_steps: int | None) -> PhaseTracker:
        """The phase tracker a run with this policy config uses (`total_steps`: the run's
        optimizer steps, needed by the `fraction` switch mode)."""
        return cls(
            mode=config.switch,
            window=config.window,
            threshold=config.threshold,
            sticky=config.sticky,
            switch_step=config.switch_step,
            switch_fraction=config.switch_fraction,
            total_steps=total_steps,
        )

    @property
    def step(self) -> int:
        return len(self._prefix) - 1

    def update(self, loss: float) -> PhaseState:
        """Record the loss of the next iteration and return that iteration's phase."""
        self._prefix.append(self._prefix[-1] + float(loss))
        t, w = self.step, self.window
        phi = None
        decreasing = True
        if t >= 2 * w:
            p = self._prefix
            a = (p[t - w] - p[t - 2 * w]) / w
            b = (p[t] - p[t - w]) / w
            phi = b / a if a != 0 else 1.0
            decreasing = (a - b) > self.threshold
        if self.mode == "loss-trend":
            in_p2 = not decreasing
        else:
            assert self.p1_steps is not None
            in_p2 = t > self.p1_steps
        if self.sticky:
            in_p2 = in_p2 or self._in_p2
        self._in_p2 = in_p2
        return PhaseState(t, "P2" if in_p2 else "P1", phi)
