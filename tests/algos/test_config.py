"""Typed configs (mbwrap.algos.config) and what checkpoints are made of (mbwrap.algos.state)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from mbwrap.algos import AlgoConfig, setting, settings_table
from mbwrap.algos import state as saved


@dataclass(kw_only=True)
class ToyConfig(AlgoConfig):
    algo_name: ClassVar[str] = "toy"

    buffer_size: int = setting(100, "transitions kept", source="Toy et al., Table 1", low=1)
    gamma: float = setting(0.99, "discount", low=0.0, high=1.0)
    mode: str = setting("a", "which mode", choices=("a", "b"))
    hidden: list[int] = setting([64, 64], "layer widths", low=1)
    kwargs: dict[str, Any] = setting({}, "extra keywords")
    horizon: int | None = setting(None, "None: the env's episode length", kind="int", low=1)

    def validate(self) -> None:
        super().validate()
        if self.mode == "b" and self.buffer_size < 10:
            raise ValueError("buffer_size: mode 'b' needs at least 10")


def test_defaults_are_copied_per_instance_and_validated():
    first, second = ToyConfig(), ToyConfig()
    first.hidden.append(1)
    assert second.hidden == [64, 64] and second.kwargs == {}
    assert ToyConfig(horizon=5).horizon == 5 and ToyConfig().horizon is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"buffer_size": 0}, ValueError, "buffer_size: expected a value >= 1, got 0"),
        ({"buffer_size": 1.5}, TypeError, "buffer_size: expected an int, got 1.5"),
        ({"buffer_size": True}, TypeError, "buffer_size: expected an int, got True"),
        ({"buffer_size": None}, ValueError, "buffer_size: expected a value, got None"),
        ({"gamma": 1.5}, ValueError, r"gamma: expected a value <= 1.0, got 1.5"),
        ({"gamma": "high"}, TypeError, "gamma: expected a number, got 'high'"),
        ({"mode": "c"}, ValueError, r"mode: expected one of \['a', 'b'\], got 'c'"),
        ({"hidden": []}, ValueError, r"hidden: expected a length >= 1, got \[\]"),
        ({"hidden": "64"}, TypeError, "hidden: expected a list, got '64'"),
        ({"kwargs": [1]}, TypeError, r"kwargs: expected a dict, got \[1\]"),
        ({"horizon": 2.5}, TypeError, "horizon: expected an int, got 2.5"),
        ({"mode": "b", "buffer_size": 5}, ValueError, "mode 'b' needs at least 10"),
    ],
)
def test_bad_values_name_the_setting_what_was_expected_and_what_came(kwargs, error, message):
    with pytest.raises(error, match=message):
        ToyConfig(**kwargs)


def test_unknown_keywords_list_the_valid_ones_and_suggest_the_nearest():
    with pytest.raises(TypeError, match=r"gama: not a setting of 'toy'\. Did you mean 'gamma'\?"):
        ToyConfig.from_kwargs(gama=0.9)
    valid = "Valid settings: buffer_size, device, envs_per_worker, gamma"
    with pytest.raises(TypeError, match=valid):
        ToyConfig.from_kwargs(zzz=1)
    with pytest.raises(TypeError, match="Did you mean 'buffer_size'"):
        ToyConfig().replace(buffer_sise=3)


def test_replace_validates_and_to_json_round_trips():
    config = ToyConfig().replace(gamma=0.5, hidden=(8,))
    assert config.gamma == 0.5
    with pytest.raises(ValueError, match="gamma"):
        config.replace(gamma=2.0)
    data = config.to_json()
    assert data["hidden"] == [8] and data["seed"] is None and data["device"] == "auto"
    assert ToyConfig.from_kwargs(**data) == ToyConfig(**{**data, "hidden": [8]})


def test_settings_table_documents_every_field_in_order():
    rows = settings_table(ToyConfig)
    assert [row["name"] for row in rows][:5] == [
        "seed", "device", "verbose", "tensorboard_log", "stats_window_size"
    ]
    row = next(row for row in rows if row["name"] == "buffer_size")
    assert row == {"name": "buffer_size", "default": 100, "doc": "transitions kept",
                   "source": "Toy et al., Table 1"}
    assert next(row for row in rows if row["name"] == "hidden")["default"] == [64, 64]


# ---------------------------------------------------------------------- state
def test_trees_split_into_json_and_tensors_and_join_back():
    value = {
        "weights": torch.arange(3.0),
        "array": np.arange(4).reshape(2, 2),
        "by_index": {0: {"step": torch.tensor(2.0)}, 3: [1, 2]},
        "pair": (1, "a"),
        "scalars": [np.int64(3), np.float32(0.5), np.bool_(True), None],
    }
    tensors: dict[str, torch.Tensor] = {}
    tree = saved.split_tree(value, "x", tensors)
    import json

    back = saved.join_tree(json.loads(json.dumps(tree)), tensors)
    assert torch.equal(back["weights"], value["weights"])
    np.testing.assert_array_equal(back["array"], value["array"])
    assert set(back["by_index"]) == {0, 3} and torch.equal(back["by_index"][0]["step"],
                                                           torch.tensor(2.0))
    assert back["pair"] == (1, "a") and back["scalars"] == [3, 0.5, True, None]
    with pytest.raises(TypeError, match=r"x\.bad: a object cannot be stored"):
        saved.split_tree({"bad": object()}, "x", {})


def test_global_and_generator_states_restore_the_same_draws():
    state = saved.global_rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    saved.set_global_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws  # noqa: NPY002
    for rng in (np.random.default_rng(0), torch.Generator().manual_seed(0)):
        kept = saved.generator_state(rng)
        first = rng.random() if isinstance(rng, np.random.Generator) else torch.rand(
            1, generator=rng).item()
        saved.set_generator_state(rng, kept)
        again = rng.random() if isinstance(rng, np.random.Generator) else torch.rand(
            1, generator=rng).item()
        assert first == again


def test_an_sb3_agent_state_restores_weights_optimizers_counters_and_replay():
    import gymnasium as gym

    agent = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=10, buffer_size=100,
                policy_kwargs={"net_arch": [8]}, seed=0)
    agent.learn(30)
    state = saved.capture(agent)
    other = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=10, buffer_size=100,
                policy_kwargs={"net_arch": [8]}, seed=1)

    class Owner:
        pass

    owner = Owner()
    owner.agent = other
    saved.restore(owner, "agent", state)
    for (name, a), b in zip(agent.policy.state_dict().items(),
                            other.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(agent.log_ent_coef, other.log_ent_coef)
    moments = agent.actor.optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(moments, other.actor.optimizer.state_dict()["state"][0]["exp_avg"])
    assert other.num_timesteps == 30 and other._n_updates == agent._n_updates
    assert other.replay_buffer.pos == agent.replay_buffer.pos
    np.testing.assert_array_equal(other.replay_buffer.observations,
                                  agent.replay_buffer.observations)
    without = saved.capture(agent, include_buffer=False)
    assert "replay_buffer" not in without["state"]
