"""Shared test setup."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests use tiny networks: one thread avoids stalls when CI's two cores are shared.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``, as ``tox -e test`` runs the suite)
    each test module stays on one worker, so that its module-scoped fixtures are built
    once, and all the Ray tests share one worker, so that one Ray session at a time holds
    the machine's cores."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = "ray" if "distributed" in item.path.parts else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts on one torch thread (code under test, such as an in-process
    worker, may set its own): tiny networks on shared cores only contend with more."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Each test sees the installed plugins as they are now (tests add fake ones)."""
    import mbwrap

    mbwrap.registry.refresh()
    yield
    mbwrap.registry.refresh()
