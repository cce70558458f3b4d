"""Search models over the real game (snapshot/restore) and over the tensor rules."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbwrap.envs.aec import AECGame
from mbwrap.envs.board_games import ConnectFour, TicTacToe
from mbwrap.envs.clonable import ClonableEnv
from mbwrap.planners.mcts import SearchModel, muzero_policy
from mbwrap.planners.mcts.simulator import BoardGameSearch, SimulatorSearch


def _game(moves, name="tictactoe_v3"):
    game = AECGame(name)
    game.reset()
    for move in moves:
        game.play(move)
    return game


def _search(model, root, simulations=200, seed=0):
    return muzero_policy(root, model.recurrent_fn, simulations, dirichlet_fraction=0.0,
                         temperature=0.0, generator=torch.Generator().manual_seed(seed))


def _uniform(planes):
    return torch.zeros(planes.shape[0], 9), torch.zeros(planes.shape[0])


# X (player_1) holds cells 0 and 1, O holds 3 and 4: X to move wins at 2.
WIN = (0, 3, 1, 4)
# X holds 0 and 1, O holds 3: O to move must block at 2.
BLOCK = (0, 3, 1)


def test_simulator_search_finds_the_winning_move_in_the_real_game():
    model = SimulatorSearch(_game(WIN), num_rollouts=2, seed=0)
    assert isinstance(model, SearchModel)
    out = _search(model, model.root())
    assert int(out.action) == 2


def test_simulator_search_blocks_the_losing_move():
    model = SimulatorSearch(_game(BLOCK), num_rollouts=4, seed=0)
    out = _search(model, model.root(), simulations=300)
    assert int(out.action) == 2


def test_simulator_search_leaves_the_real_game_untouched_and_masks_illegal_moves():
    game = _game(WIN)
    before = game.current_observation()["observation"].copy()
    model = SimulatorSearch(game, num_rollouts=1, seed=0)
    root = model.root()
    assert root.invalid_actions[0].tolist() == [True, True, False, True, True, False, False,
                                                False, False]
    out = _search(model, root, simulations=50)
    np.testing.assert_array_equal(game.current_observation()["observation"], before)
    assert out.action_weights[0, root.invalid_actions[0]].sum() == 0


def test_simulator_steps_give_two_player_rewards_and_discounts():
    model = SimulatorSearch(_game(WIN), num_rollouts=1, seed=0)
    root = model.root_from_snapshots([_game(WIN).snapshot(), _game(WIN).snapshot()])
    out, embedding = model.recurrent_fn(root.embedding, torch.tensor([2, 5]))
    assert out.reward.tolist() == [1.0, 0.0]  # the mover's reward
    assert out.discount.tolist() == [0.0, -1.0]  # 0 after the end, -1 between moves
    assert out.value[0] == 0.0
    assert bool(out.invalid_actions[0].all())
    assert out.invalid_actions[1].tolist() == [True, True, False, True, True, True, False,
                                                False, False]  # five marks now
    # A finished node stays finished.
    again, _ = model.recurrent_fn(embedding, torch.tensor([7, 7]))
    assert again.reward[0] == 0.0 and again.discount[0] == 0.0


def test_rollout_values_are_from_the_player_to_move():
    # X holds 0, 1, 5, 6 and O 3, 4, 7, 8: X to move fills 2 and wins.
    last = (0, 3, 1, 4, 5, 7, 6, 8)
    assert float(SimulatorSearch(_game(last), num_rollouts=3, seed=0).root().value) == 1.0
    # One move earlier O is to move with 2 and 8 free: 8 loses (X plays 2), 2 draws, so
    # random playouts are worth -0.5 to O.
    value = float(SimulatorSearch(_game(last[:-1]), num_rollouts=200, seed=0).root().value)
    assert value == pytest.approx(-0.5, abs=0.1)


def test_simulator_uses_a_value_fn_and_policy_value_fn():
    calls = []

    def value_fn(obs):
        calls.append(obs["observation"].shape)
        return torch.full((obs["observation"].shape[0],), 0.5)

    model = SimulatorSearch(_game(()), value_fn=value_fn)
    assert float(model.root().value) == 0.5 and calls == [(1, 3, 3, 2)]

    def policy_value_fn(obs):
        logits = torch.zeros(obs["observation"].shape[0], 9)
        logits[:, 4] = 5.0
        return logits, torch.zeros(obs["observation"].shape[0])

    model = SimulatorSearch(_game(()), policy_value_fn=policy_value_fn)
    assert int(model.root().prior_logits.argmax()) == 4
    with pytest.raises(ValueError, match="value_fn, policy_value_fn: pass at most one"):
        SimulatorSearch(_game(()), value_fn=value_fn, policy_value_fn=policy_value_fn)


def test_simulator_search_on_cartpole_prefers_staying_up():
    env = ClonableEnv(gym.make("CartPole-v1"))
    env.reset(seed=0)
    env.unwrapped.state = np.array([0.0, 0.0, 0.15, 0.5])  # falling right: push right (1)
    model = SimulatorSearch(env, num_rollouts=2, max_rollout_steps=20, gamma=0.99, seed=0)
    out = _search(model, model.root(), simulations=40)
    assert int(out.action) == 1
    assert out.search_tree.children_discounts[0, 0].max() == pytest.approx(0.99)


def test_simulator_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_rollouts: expected an int >= 1, got 0"):
        SimulatorSearch(_game(()), num_rollouts=0)
    with pytest.raises(TypeError, match="env: expected an mbwrap AECGame or ClonableEnv"):
        SimulatorSearch(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="max_rollout_steps: expected an int >= 1 for a "
                       "single-agent env"):
        SimulatorSearch(ClonableEnv(gym.make("CartPole-v1")))
    model = SimulatorSearch(_game(()))
    with pytest.raises(ValueError, match="num_simulations: expected an int >= 1, got 0"):
        muzero_policy(model.root(), model.recurrent_fn, 0)


def test_board_game_search_finds_the_win_and_the_block_with_a_uniform_prior():
    rules = TicTacToe()
    model = BoardGameSearch(rules, _uniform)
    for moves in (WIN, BLOCK):
        obs = _game(moves).current_observation()
        out = _search(model, model.root(obs), simulations=400)
        assert int(out.action) == 2, moves


def test_board_game_search_matches_the_simulator_step_for_step():
    rules = ConnectFour()
    model = BoardGameSearch(rules, lambda p: (torch.zeros(p.shape[0], 7),
                                              torch.zeros(p.shape[0])))
    game = _game((3, 3, 4, 4, 5), "connect_four_v3")  # the first player threatens 2 and 6
    sim = SimulatorSearch(game, value_fn=lambda o: torch.zeros(o["observation"].shape[0]))
    root_rules = model.root(game.current_observation())
    root_sim = sim.root()
    assert torch.equal(root_rules.invalid_actions, root_sim.invalid_actions)
    actions = torch.arange(7)
    emb_rules = tuple(t.expand(7, *t.shape[1:]).clone() for t in root_rules.embedding)
    root_sim = sim.root_from_snapshots([game.snapshot()] * 7)
    out_rules, _ = model.recurrent_fn(emb_rules, actions)
    out_sim, _ = sim.recurrent_fn(root_sim.embedding, actions)
    for field in ("reward", "discount", "invalid_actions"):
        assert torch.equal(getattr(out_rules, field), getattr(out_sim, field)), field


def test_board_game_search_batches_without_a_host_loop_and_checks_input():
    rules = TicTacToe()
    model = BoardGameSearch(rules, _uniform)
    state = rules.initial_state(16)
    out = _search(model, model.root_from_state(state), simulations=16)
    assert out.action.shape == (16,)
    with pytest.raises(ValueError, match="obs: expected a PettingZoo observation dict with an "
                       "'action_mask'"):
        model.root({"observation": np.zeros((3, 3, 2))})
    with pytest.raises(TypeError, match="game: expected an mbwrap BoardGame"):
        BoardGameSearch("tictactoe", _uniform)
