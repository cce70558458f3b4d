"""The tensor rules play move for move as PettingZoo's tic-tac-toe and connect four."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pettingzoo.classic import connect_four_v3, tictactoe_v3

from mbwrap.envs.board_games import (
    ConnectFour,
    GameState,
    TicTacToe,
    apply_symmetry,
    board_game,
    has_line,
)

GAMES = [(TicTacToe, tictactoe_v3, 60), (ConnectFour, connect_four_v3, 40)]


@pytest.mark.parametrize(("rules_cls", "module", "num_games"), GAMES)
def test_rules_match_pettingzoo_over_random_games(rules_cls, module, num_games):
    """``num_games`` random games run in one batch on the tensors and one by one in
    PettingZoo: observations, masks, rewards and terminations agree at every move."""
    rules = rules_cls()
    rng = np.random.default_rng(0)
    envs = [module.env() for _ in range(num_games)]
    for env in envs:
        env.reset()
    state = rules.initial_state(num_games)
    alive = np.ones(num_games, dtype=bool)
    for _move in range(rules.num_cells + 1):
        obs, mask = rules.observe(state)
        actions = np.zeros(num_games, dtype=np.int64)
        for i, env in enumerate(envs):
            if not alive[i]:
                continue
            expected = env.observe(env.agent_selection)
            np.testing.assert_array_equal(obs[i].numpy(), expected["observation"])
            np.testing.assert_array_equal(mask[i].numpy(), expected["action_mask"])
            assert int(state.to_play[i]) == env.possible_agents.index(env.agent_selection)
            actions[i] = rng.choice(np.flatnonzero(expected["action_mask"]))
        legal = rules.legal_actions(state)
        assert bool(legal[torch.as_tensor(alive)].gather(
            1, torch.as_tensor(actions[alive])[:, None]).all())
        state, reward, terminal = rules.step(state, torch.as_tensor(actions))
        for i, env in enumerate(envs):
            if not alive[i]:
                continue
            mover = env.agent_selection
            env.step(int(actions[i]))
            other = next(a for a in env.possible_agents if a != mover)
            assert float(reward[i]) == env.rewards[mover]
            assert -float(reward[i]) == env.rewards[other]
            assert bool(terminal[i]) == all(env.terminations.values())
            if bool(terminal[i]):
                # PettingZoo still shows the last board to the next player.
                expected = env.observe(env.agent_selection)
                obs_after, mask_after = rules.observe(state)
                np.testing.assert_array_equal(obs_after[i].numpy(), expected["observation"])
                np.testing.assert_array_equal(mask_after[i].numpy(), expected["action_mask"])
                assert not bool(rules.legal_actions(state)[i].any())
                alive[i] = False
        if not alive.any():
            break
    assert not alive.any(), "every game should have ended"
    assert bool(state.terminal.all())


@pytest.mark.parametrize("rules_cls", [TicTacToe, ConnectFour])
def test_state_from_observation_inverts_observe(rules_cls):
    rules = rules_cls()
    gen = torch.Generator().manual_seed(1)
    state = rules.initial_state(32)
    for _ in range(rules.num_cells):
        obs, _ = rules.observe(state)
        back = rules.state_from_observation(obs)
        assert torch.equal(back.board, state.board)
        assert torch.equal(back.to_play, state.to_play)
        assert torch.equal(back.terminal, state.terminal)
        legal = rules.legal_actions(state).float() + 1e-9
        action = torch.multinomial(legal, 1, generator=gen).squeeze(1)
        state = rules.step(state, action).state


def test_finished_games_stay_put():
    rules = TicTacToe()
    state = rules.initial_state(1)
    for a in (0, 3, 1, 4, 2):  # X takes cells 0, 1 and 2, a line
        state, reward, terminal = rules.step(state, torch.tensor([a]))
    assert float(reward) == 1.0 and bool(terminal)
    after = rules.step(state, torch.tensor([8]))
    assert torch.equal(after.state.board, state.board)
    assert float(after.reward) == 0.0 and bool(after.terminal)


def test_connect_four_vertical_win_and_stacking():
    rules = ConnectFour()
    state = rules.initial_state(1)
    for a in (3, 4, 3, 4, 3, 4):
        state, reward, terminal = rules.step(state, torch.tensor([a]))
        assert not bool(terminal)
    grid = state.board.view(6, 7)
    assert grid[5, 3] == 1 and grid[3, 3] == 1 and grid[2, 3] == 0 and grid[5, 4] == 2
    state, reward, terminal = rules.step(state, torch.tensor([3]))
    assert float(reward) == 1.0 and bool(terminal)


def test_has_line_checks_the_given_piece():
    board = torch.tensor([[1, 1, 1, 0, 2, 2, 0, 0, 0]], dtype=torch.int8)
    lines = TicTacToe().lines
    assert bool(has_line(board, lines, torch.tensor([1])))
    assert not bool(has_line(board, lines, torch.tensor([2])))


def test_illegal_actions_are_named():
    rules = TicTacToe()
    state = rules.step(rules.initial_state(2), torch.tensor([4, 0])).state
    with pytest.raises(ValueError, match=r"action: expected legal moves, got \[4\] in games \[0\]"):
        rules.check_actions(state, torch.tensor([4, 1]))
    with pytest.raises(ValueError, match=r"action: expected moves in \[0, 9\)"):
        rules.check_actions(state, torch.tensor([9, 1]))
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1, got 0"):
        rules.initial_state(0)
    with pytest.raises(ValueError, match=r"observation: expected shape \[B, 3, 3, 2\]"):
        rules.state_from_observation(torch.zeros(2, 6, 7, 2))


def test_board_game_lookup():
    assert isinstance(board_game("connect_four_v3"), ConnectFour)
    assert board_game("chess_v6") is None
    assert isinstance(TicTacToe().initial_state(1), GameState)


@pytest.mark.parametrize(("rules_cls", "count"), [(TicTacToe, 8), (ConnectFour, 2)])
def test_symmetries_keep_the_rules(rules_cls, count):
    """Seen through any symmetry, a position has the same winner, the moved legal moves,
    and apply_symmetry moves its observation and policy the same way."""
    rules = rules_cls()
    cells, actions = rules.symmetries()
    assert cells.shape == (count, rules.num_cells) and actions.shape == (count, rules.num_actions)
    assert torch.equal(cells[0], torch.arange(rules.num_cells))
    assert len({tuple(c.tolist()) for c in cells}) == count
    gen = torch.Generator().manual_seed(2)
    state = rules.initial_state(64)
    for _ in range(rules.num_cells // 2):
        legal = rules.legal_actions(state).float() + 1e-9
        state = rules.step(state, torch.multinomial(legal, 1, generator=gen).squeeze(1)).state
    obs, _ = rules.observe(state)
    policy = torch.rand(64, rules.num_actions, generator=gen)
    for s in range(count):
        board = state.board[:, cells[s]]
        for piece in (1, 2):
            pieces = torch.full((64,), piece)
            assert torch.equal(has_line(board, rules.lines, pieces),
                               has_line(state.board, rules.lines, pieces))
        assert torch.equal(rules.open_moves(board), rules.open_moves(state.board)[:, actions[s]])
        which = torch.full((64,), s)
        moved_obs, moved_policy = apply_symmetry(obs, policy, which, cells, actions)
        expected_obs, _ = rules.observe(GameState(board, state.to_play, state.terminal))
        assert torch.equal(moved_obs, expected_obs)
        assert torch.equal(moved_policy, policy[:, actions[s]])
