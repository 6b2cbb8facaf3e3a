"""Shared fixtures for the synthetic benchmark's tests."""

from __future__ import annotations

import pytest

from fsf.synthetic.world import World


@pytest.fixture(scope="session")
def world() -> World:
    return World(0)
