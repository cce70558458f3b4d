"""Action masks in imagination: the mask layout sb3-contrib expects, where masks come from
(given, registered, the model's head, all valid), DreamEnv / DreamVecEnv and the SB3
adapter, and MaskablePPO honouring them. Bad masks: tests/test_bad_inputs_h2.py."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import mbwrap
from mbwrap import DreamEnv, DreamVecEnv
from mbwrap.envs.action_masks import ActionMasks, mask_size, mask_widths
from mbwrap.envs.fns import EnvFns

OBS = spaces.Box(-5.0, 5.0, (2,), np.float32)
# Start observations with x = -1, 0.5, 2 (the masks below depend on obs[:, 0]).
STARTS = np.array([[-1.0, 0.0], [0.5, 0.0], [2.0, 0.0]], np.float32)


def model(action_space: spaces.Space, env_id: str | None = None) -> mbwrap.models.WorldModel:
    return mbwrap.make_model("linear", OBS, action_space, device="cpu", env_id=env_id)


def positive_x_forbids_action_0(obs: torch.Tensor) -> torch.Tensor:
    """``[B, 3]``: action 0 is invalid where ``obs[:, 0] > 0``."""
    mask = torch.ones(obs.shape[0], 3, dtype=torch.bool, device=obs.device)
    mask[:, 0] = obs[:, 0] <= 0
    return mask


# ---------------------------------------------------------------------- layout
def test_mask_layout_is_sb3_contribs():
    assert mask_widths(spaces.Discrete(4)) == [4]
    assert mask_widths(spaces.Discrete(3, start=5)) == [3]
    assert mask_widths(spaces.MultiDiscrete([2, 3, 4])) == [2, 3, 4]
    assert mask_widths(spaces.MultiBinary(3)) == [2, 2, 2]
    assert mask_size(spaces.MultiDiscrete([2, 3, 4])) == 9


# ---------------------------------------------------------------------- sources
def test_all_actions_are_valid_without_a_source():
    env = DreamEnv(model(spaces.Discrete(3)), STARTS, horizon=5)
    env.reset(seed=0)
    assert env.action_masker.source == "all"
    mask = env.action_masks()
    assert mask.shape == (3,) and mask.dtype == np.bool_ and mask.all()
    venv = DreamVecEnv(model(spaces.MultiDiscrete([2, 3])), 4, STARTS, horizon=5)
    venv.reset(seed=0)
    assert venv.action_masks().shape == (4, 5) and venv.action_masks().all()


def test_a_given_function_reads_the_current_observations():
    venv = DreamVecEnv(
        model(spaces.Discrete(3)), 8, STARTS, horizon=5, action_mask_fn=positive_x_forbids_action_0
    )
    obs, _ = venv.reset(seed=0)
    for _ in range(3):
        masks = venv.action_masks()
        assert masks.shape == (8, 3) and masks.dtype == np.bool_
        np.testing.assert_array_equal(masks[:, 0], obs[:, 0] <= 0)
        assert masks[:, 1:].all()
        obs, *_ = venv.step(np.full(8, 1))
    env = DreamEnv(
        model(spaces.Discrete(3)), STARTS, horizon=5, action_mask_fn=positive_x_forbids_action_0
    )
    obs, _ = env.reset(seed=0)
    assert env.action_masks().tolist() == [bool(obs[0] <= 0), True, True]


def test_multi_discrete_masks_are_the_dimensions_concatenated():
    def mask(obs):
        # Dimension 0 (2 choices): only 1; dimension 1 (3 choices): not 2.
        row = torch.tensor([False, True, True, True, False])
        return row.expand(obs.shape[0], 5)

    venv = DreamVecEnv(
        model(spaces.MultiDiscrete([2, 3])), 2, STARTS, horizon=5, action_mask_fn=mask
    )
    venv.reset(seed=0)
    assert venv.action_masks().tolist() == [[False, True, True, True, False]] * 2


def test_registered_then_model_head_and_the_given_function_wins(monkeypatch):
    registered = EnvFns(
        action_mask=lambda obs: torch.tensor([[True, False, True]]).expand(obs.shape[0], 3)
    )
    monkeypatch.setattr(
        "mbwrap.envs.fns.resolve.get_fn",
        lambda env_id: registered if env_id == "Masked-v0" else None,
    )
    with_id = model(spaces.Discrete(3), env_id="Masked-v0")
    venv = DreamVecEnv(with_id, 2, STARTS, horizon=5)
    venv.reset(seed=0)
    assert venv.action_masker.source == "registered"
    assert venv.action_masks().tolist() == [[True, False, True]] * 2

    # A model head reads the model's state (here the identity of the observation).
    def head(state):
        return torch.stack([state[:, 0] > 100, state[:, 0] <= 100, state[:, 0] <= 100], 1)

    without_id = model(spaces.Discrete(3))
    without_id.action_masks = head
    venv = DreamVecEnv(without_id, 2, STARTS, horizon=5)
    venv.reset(seed=0)
    assert venv.action_masker.source == "model"
    assert venv.action_masks().tolist() == [[False, True, True]] * 2

    with_id.action_masks = head
    assert ActionMasks(with_id).source == "registered"  # registered before the head
    given = ActionMasks(with_id, positive_x_forbids_action_0)
    assert (given.source, given.fn) == ("given", positive_x_forbids_action_0)


def test_integer_zero_one_masks_are_accepted():
    venv = DreamVecEnv(
        model(spaces.Discrete(3)),
        2,
        STARTS,
        horizon=5,
        action_mask_fn=lambda obs: np.array([[0, 1, 1], [1, 1, 0]]),
    )
    venv.reset(seed=0)
    assert venv.action_masks().tolist() == [[False, True, True], [True, True, False]]


# ---------------------------------------------------------------------- SB3
def test_get_action_masks_through_the_sb3_adapter_and_its_wrappers():
    dream = DreamVecEnv(
        model(spaces.Discrete(3)), 5, STARTS, horizon=5, action_mask_fn=positive_x_forbids_action_0
    )
    venv = VecMonitor(mbwrap.sb3.as_vec_env(dream))
    obs = venv.reset()
    assert is_masking_supported(venv)
    masks = get_action_masks(venv)
    assert masks.shape == (5, 3)
    np.testing.assert_array_equal(masks[:, 0], obs[:, 0] <= 0)
    # Each index gets its own env's row.
    rows = venv.env_method("action_masks", indices=[3, 1])
    np.testing.assert_array_equal(np.stack(rows), masks[[3, 1]])
    # As DummyVecEnv of DreamEnv does, one env per row.
    single = DummyVecEnv([lambda: DreamEnv(dream.model, STARTS, horizon=5)] * 2)
    single.reset()
    assert get_action_masks(single).shape == (2, 3)


def test_maskable_ppo_never_picks_a_masked_action_in_imagination():
    dream = DreamVecEnv(
        model(spaces.Discrete(3)), 4, STARTS, horizon=10, action_mask_fn=positive_x_forbids_action_0
    )
    seen_obs, seen_actions = [], []
    step = dream.step

    def recording_step(actions):
        seen_obs.append(dream.core.obs.clone().numpy())
        seen_actions.append(np.asarray(actions).copy())
        return step(actions)

    dream.step = recording_step
    agent = MaskablePPO(
        "MlpPolicy",
        mbwrap.sb3.as_vec_env(dream),
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    agent.learn(128)
    obs, actions = np.concatenate(seen_obs), np.concatenate(seen_actions)
    assert len(actions) >= 128
    positive = obs[:, 0] > 0
    assert positive.any() and (~positive).any()
    assert not np.any(actions[positive] == 0)
    assert np.any(actions[~positive] == 0)  # where allowed, action 0 is still taken


def test_maskable_ppo_reads_multi_discrete_masks_per_dimension():
    def mask(obs):
        # Dimension 0: only choice 1; dimension 1: anything but choice 0.
        return torch.tensor([False, True, False, True, True]).expand(obs.shape[0], 5)

    dream = DreamVecEnv(
        model(spaces.MultiDiscrete([2, 3])), 4, STARTS, horizon=10, action_mask_fn=mask
    )
    agent = MaskablePPO(
        "MlpPolicy",
        mbwrap.sb3.as_vec_env(dream),
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    agent.learn(64)
    actions = agent.rollout_buffer.actions.reshape(-1, 2)
    assert (actions[:, 0] == 1).all() and (actions[:, 1] != 0).all()
    assert set(actions[:, 1].tolist()) == {1.0, 2.0}
