"""MuZeroSearchModel: the SearchModel of MuZero's networks."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.models.muzero_nets import MuZeroNetworks
from mbwrap.planners.mcts import (
    MCTSPlanner,
    MuZeroSearchModel,
    SearchModel,
    gumbel_muzero_policy,
    muzero_policy,
)


def _model(obs_space=None, gamma=0.9):
    torch.manual_seed(0)
    obs_space = obs_space or spaces.Box(-1, 1, (4,), np.float32)
    nets = MuZeroNetworks(obs_space.shape, 3, hidden_size=8, layers=1, support_size=5,
                          downsample=False)
    return MuZeroSearchModel(nets, obs_space, spaces.Discrete(3), gamma=gamma), nets


def test_roots_and_steps_are_the_networks_functions():
    model, nets = _model()
    with torch.no_grad():  # the heads start at zero: make reward and value differ
        for param in nets.parameters():
            param.add_(0.3 * torch.randn_like(param))
    assert isinstance(model, SearchModel) and model.num_actions == 3
    obs = torch.randn(5, 4)
    root = model.root(obs)
    state = nets.represent(obs)
    logits, value = nets.predict(state)
    torch.testing.assert_close(root.embedding, state)
    torch.testing.assert_close(root.prior_logits, logits)
    torch.testing.assert_close(root.value, nets.to_scalar(value))
    out, next_state = model.recurrent_fn(root.embedding, torch.tensor([0, 1, 2, 0, 1]))
    expected_state, reward = nets.dynamics(state, torch.tensor([0, 1, 2, 0, 1]))
    torch.testing.assert_close(next_state, expected_state)
    torch.testing.assert_close(out.reward, nets.to_scalar(reward))
    torch.testing.assert_close(out.discount, torch.full((5,), 0.9))
    step_logits, step_value = nets.predict(expected_state)
    torch.testing.assert_close(out.prior_logits, step_logits)
    torch.testing.assert_close(out.value, nets.to_scalar(step_value))
    assert out.value.shape == (5,) and not torch.allclose(out.value, out.reward)


def test_image_observations_are_scaled_to_unit_range():
    model, _ = _model(spaces.Box(0, 255, (3, 8, 8), np.uint8))
    obs = np.full((2, 3, 8, 8), 255, dtype=np.uint8)
    assert model.observations(obs).max() == 1.0 and model.observations(obs).dtype == torch.float32


def test_both_searches_and_the_planner_run_on_it():
    model, _ = _model()
    root = model.root(np.zeros((3, 4), np.float32))
    pol = muzero_policy(root, model.recurrent_fn, 8)
    assert pol.search_tree.summary().visit_counts.sum(-1).eq(8).all()
    gum = gumbel_muzero_policy(root, model.recurrent_fn, 8, max_num_considered_actions=2)
    torch.testing.assert_close(gum.action_weights.sum(-1), torch.ones(3))
    actions, _ = MCTSPlanner(model, num_simulations=4).predict(np.zeros((2, 4), np.float32))
    assert actions.shape == (2,)
