"""docs/architecture.md's "Adding a policy" works as written: its two code blocks, run as they
stand (the policy class into the registry, its contract test), pass, and the rest of the
policy tests do not need to know the new policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsf.policies import registry
from fsf.testing import PolicyContract

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Adding a policy", 1)[1].split("**A task**", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture()
def slow_only(monkeypatch):
    """The page's first block, executed, its class added to the registry as it says."""
    namespace: dict = {}
    exec(_blocks()[0], namespace)  # the policy class, as the page writes it
    cls = namespace["SlowOnlyPolicy"]
    monkeypatch.setitem(registry._REGISTRY, cls.name, cls)
    return cls


def test_the_page_has_both_blocks():
    blocks = _blocks()
    assert len(blocks) == 2 and "SlowOnlyPolicy" in blocks[0] and "PolicyContract" in blocks[1]


def test_the_new_policy_is_found_by_name(slow_only):
    from fsf.policies import PhaseState, PolicyConfig, Unit, build_policy, policy_names

    assert "slow-only" in policy_names()
    config = PolicyConfig(name="slow-only")
    policy = build_policy(config, config.sets.resolve(12))
    k = policy.multipliers(PhaseState(10, "P1", None))
    assert k[Unit(1, "ffn")] == pytest.approx(config.c1) and k[Unit(12, "attention")] == 1.0


class TestSlowOnlyAsThePageWritesIt(PolicyContract):
    """The page's second block: the contract suite on the new policy."""

    @pytest.fixture()
    def make_policy(self, slow_only):
        namespace: dict = {}
        exec(_blocks()[1].replace("@pytest.fixture()", ""), namespace)
        test_class = next(v for k, v in namespace.items() if k.startswith("Test"))
        return test_class.make_policy(self)
