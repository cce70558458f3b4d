"""Known reward/termination functions (entry-point group ``mbwrap.fns``)."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import mbwrap
from mbwrap import EnvFns
from mbwrap.envs.fns.dyna_maze import DYNA_MAZE_FNS

MAZE_ID = "mbwrap/DynaMaze-v0"


def random_rollout(steps: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``steps`` uniformly random transitions of the real maze, batched."""
    env = gym.make(MAZE_ID)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = int(rng.integers(4))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, reward, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    obs, action, next_obs, reward, terminated = zip(*rows, strict=True)
    return (
        torch.tensor(obs),
        torch.tensor(action),
        torch.tensor(next_obs),
        torch.tensor(reward, dtype=torch.float32),
        torch.tensor(terminated),
    )


def test_the_maze_entry_is_registered_as_a_plugin():
    info = mbwrap.registry.available("fn")[MAZE_ID]
    assert info.target == "mbwrap.envs.fns.dyna_maze:DYNA_MAZE_FNS"
    assert info.dist == "mbwrap"
    assert mbwrap.registry.get_fn(MAZE_ID) is DYNA_MAZE_FNS
    assert isinstance(DYNA_MAZE_FNS, EnvFns)


def test_unknown_env_ids_have_no_fns():
    assert mbwrap.registry.get_fn(None) is None
    assert mbwrap.registry.get_fn("Acrobot-v1") is None


def test_maze_fns_agree_with_the_real_env_on_a_random_rollout():
    obs, action, next_obs, reward, terminated = random_rollout(3000, seed=0)
    assert int(terminated.sum()) >= 2  # the rollout reached the goal
    fns = mbwrap.registry.get_fn(MAZE_ID)
    fn_reward = fns.reward(obs, action, next_obs)
    fn_terminated = fns.termination(obs, action, next_obs)
    assert fn_reward.shape == fn_terminated.shape == (3000,)
    assert fn_reward.dtype == torch.float32
    torch.testing.assert_close(fn_reward, reward)
    assert torch.equal(fn_terminated.bool(), terminated)


def test_maze_fns_depend_on_the_next_cell_only():
    obs = torch.tensor([0, 17, 8, 26])
    action = torch.tensor([3, 0, 2, 0])
    next_obs = torch.tensor([1, 8, 8, 17])
    assert DYNA_MAZE_FNS.reward(obs, action, next_obs).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert DYNA_MAZE_FNS.termination(obs, action, next_obs).tolist() == [False, True, True, False]


def test_env_fns_is_a_frozen_pair_of_optional_functions():
    fns = EnvFns()
    assert fns.reward is None and fns.termination is None
    assert fns.action_mask is None  # every action valid
    with pytest.raises(dataclasses.FrozenInstanceError):
        fns.reward = DYNA_MAZE_FNS.reward


# ---------------------------------------------------------------------- one resolver
class _Spaces:
    """A stand-in with what resolve_fns reads from a world model."""

    def __init__(self, env_id, latent=False):
        import gymnasium as gym

        box = gym.spaces.Box(-1.0, 1.0, (4,))
        self.env_id = env_id
        self.observation_space = box
        self.dream_observation_space = gym.spaces.Box(-1.0, 1.0, (8,)) if latent else box


def test_resolve_fns_prefers_given_then_registered_then_the_model():
    from mbwrap.envs.fns import resolve_fns
    from mbwrap.registry import get_fn

    def given(obs, action, next_obs):
        return obs[:, 0]

    registered = get_fn("CartPole-v1")
    fns = resolve_fns(_Spaces("CartPole-v1"))
    assert fns.reward_fn is registered.reward and fns.termination_fn is registered.termination
    assert (fns.reward_source, fns.termination_source) == ("registered", "registered")
    fns = resolve_fns(_Spaces("CartPole-v1"), reward_fn=given)
    assert fns.reward_fn is given and fns.reward_source == "given"
    assert fns.termination_source == "registered"
    fns = resolve_fns(_Spaces(None))
    assert fns == (None, None, "model", "model")
    # A latent model imagines its own features: registered functions of real
    # observations never apply, a given one does.
    fns = resolve_fns(_Spaces("CartPole-v1", latent=True), termination_fn=given)
    assert fns == (None, given, "model", "given")


def test_registered_fns_are_the_entry_for_real_observations_only():
    from mbwrap.envs.fns import registered_fns
    from mbwrap.registry import get_fn

    assert registered_fns(_Spaces("CartPole-v1")) is get_fn("CartPole-v1")
    assert registered_fns(_Spaces("CartPole-v1", latent=True)) is None
    assert registered_fns(_Spaces(None)) is None
    assert get_fn("CartPole-v1").action_mask is None
