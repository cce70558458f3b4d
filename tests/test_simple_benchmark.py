"""benchmarks/simple.py: ``--set`` overrides the config's settings, dicts one level deep."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "simple.py"


@pytest.fixture(scope="module")
def simple_benchmark():
    spec = importlib.util.spec_from_file_location("simple_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_merges_a_dict_setting_and_replaces_the_rest(simple_benchmark):
    small = simple_benchmark.CONFIGS["small"]["settings"]
    out = simple_benchmark.merged(
        small, {"model_kwargs": {"reward_estimate": "mean"}, "fit_steps": 7}
    )
    assert out["model_kwargs"] == {**small["model_kwargs"], "reward_estimate": "mean"}
    assert out["fit_steps"] == 7
    assert {k: v for k, v in out.items() if k not in ("model_kwargs", "fit_steps")} == {
        k: v for k, v in small.items() if k not in ("model_kwargs", "fit_steps")
    }
    assert "reward_estimate" not in small["model_kwargs"]  # the preset is not changed
    # A dict over a non-dict (or the reverse) replaces it.
    assert simple_benchmark.merged({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert simple_benchmark.merged({"a": {"b": 2}}, {"a": None}) == {"a": None}


def test_action_names_are_the_games_meanings_in_action_order(simple_benchmark):
    pytest.importorskip("ale_py")
    names = simple_benchmark.action_names("ALE/MsPacman-v5")
    assert names[:3] == ["NOOP", "UP", "RIGHT"] and len(names) == 9
    assert simple_benchmark.action_names("ALE/Centipede-v5")[10] == "UPFIRE"
