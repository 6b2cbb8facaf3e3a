"""The loss-trend phase rule on hand-made loss curves, and the step/fraction switch modes."""

import random

import pytest

from fsf.policies import PhaseTracker


def phases(losses, **kw):
    tracker = PhaseTracker(**kw)
    return [tracker.update(x) for x in losses]


def first_p2(states):
    return next((s.step for s in states if s.phase == "P2"), None)


def test_fewer_than_2w_losses_is_p1_with_no_phi():
    states = phases([1.0] * 19, window=10)
    assert all(s.phase == "P1" and s.phi is None for s in states)
    assert [s.step for s in states] == list(range(1, 20))


def test_plateau_switches_at_2w():
    states = phases([1.0] * 30, window=10)
    assert first_p2(states) == 20
    assert states[19].phi == pytest.approx(1.0)


def test_fast_drop_then_plateau():
    # the loss falls by 0.02 per step for 100 steps, then stays flat
    losses = [3.0 - 0.02 * t for t in range(100)] + [1.0] * 100
    states = phases(losses, window=10, threshold=0.1)
    # while falling, the two window means differ by 10 * 0.02 = 0.2 > 0.1: P1
    assert all(s.phase == "P1" for s in states[:100])
    t = first_p2(states)
    # the fall stops after step 100; at step 111 the windows' means are 1.09 and 1.0
    assert t == 111
    a = sum(losses[t - 20 : t - 10]) / 10
    b = sum(losses[t - 10 : t]) / 10
    assert a - b <= 0.1 and states[t - 1].phi == pytest.approx(b / a)
    assert all(s.phase == "P2" for s in states[t - 1 :])


def test_noisy_plateau_stays_p2_when_sticky():
    rng = random.Random(0)
    losses = [1.0 + rng.uniform(-0.3, 0.3) for _ in range(300)]
    states = phases(losses, window=10, threshold=0.1)
    t = first_p2(states)
    assert t is not None and t >= 20
    assert all(s.phase == "P2" for s in states[t - 1 :])
    # without stickiness a noisy curve flips back to P1 sometimes
    loose = phases(losses, window=10, threshold=0.1, sticky=False)
    flips = [s for s in loose[t:] if s.phase == "P1"]
    assert flips


def test_increasing_loss_is_p2():
    states = phases([1.0 + 0.01 * t for t in range(40)], window=10)
    assert first_p2(states) == 20
    assert states[-1].phi > 1


def test_non_sticky_returns_to_p1_when_the_loss_falls_again():
    losses = [1.0] * 40 + [1.0 - 0.05 * t for t in range(30)]
    states = phases(losses, window=10, sticky=False)
    assert states[25].phase == "P2"
    assert states[-1].phase == "P1"
    assert phases(losses, window=10)[-1].phase == "P2"


def test_step_and_fraction_modes():
    states = phases([5.0 - 0.1 * t for t in range(30)], window=10, mode="step", switch_step=7)
    assert first_p2(states) == 8  # the first 7 iterations are P1
    assert states[8].phi is None  # phi still needs 2w losses
    states = phases([1.0] * 100, window=10, mode="fraction", switch_fraction=0.25, total_steps=100)
    assert first_p2(states) == 26
    assert first_p2(phases([1.0] * 5, mode="step", switch_step=0)) == 1
