"""Shared test setup."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Each test sees the installed plugins as they are now (tests add fake ones)."""
    import mbwrap

    mbwrap.registry.refresh()
    yield
    mbwrap.registry.refresh()
