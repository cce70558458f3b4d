"""The PettingZoo adapter, snapshots of whole games, cloneable Gymnasium envs, opponents."""

from __future__ import annotations

import copy
import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.classic import connect_four_v3
from pettingzoo.test import api_test

from mbwrap.envs.aec import AECGame, action_mask, make_classic_env, stack_observations
from mbwrap.envs.clonable import ClonableEnv
from mbwrap.envs.opponents import (
    MinimaxTicTacToe,
    RolloutMCTSConnectFour,
    play_match,
    tictactoe_values,
)

HAS_CHESS = importlib.util.find_spec("chess") is not None
GAMES = ["tictactoe_v3", "connect_four_v3"] + (["chess_v6"] if HAS_CHESS else [])


def _random_game(game: AECGame, rng: np.random.Generator, max_moves: int = 80) -> list[int]:
    moves = []
    while not game.game_over and len(moves) < max_moves:
        moves.append(int(rng.choice(np.flatnonzero(game.legal_actions()))))
        game.play(moves[-1])
    return moves


def _trace(game: AECGame, moves: list[int]) -> list[tuple]:
    """Everything an agent sees along ``moves``: observations, masks, rewards, ends."""
    seen = []
    for move in moves:
        obs = game.current_observation()
        reward, over = game.play(move)
        seen.append((obs["observation"].tobytes(), obs["action_mask"].tobytes(), reward, over,
                     dict(game.rewards), dict(game.terminations), game.agent_selection))
    return seen


@pytest.mark.parametrize("name", GAMES)
def test_adapter_passes_pettingzoo_api_test(name):
    api_test(AECGame(name), num_cycles=20 if name == "chess_v6" else 100)


@pytest.mark.parametrize("name", GAMES)
def test_restore_then_replay_gives_identical_games(name):
    """Snapshots at every move of whole random games; restoring any and replaying the
    rest gives the same observations, masks, rewards and terminations."""
    rng = np.random.default_rng(0)
    game = AECGame(name)
    for _ in range(2 if name == "chess_v6" else 8):
        game.reset()
        snapshots, moves = [], []
        while not game.game_over and len(moves) < 40:
            snapshots.append(game.snapshot())
            moves.append(int(rng.choice(np.flatnonzero(game.legal_actions()))))
            game.play(moves[-1])
        end = game.snapshot()
        for k in sorted({0, len(moves) // 2, len(moves) - 1}):
            game.restore(snapshots[k])
            first = _trace(game, moves[k:])
            game.restore(snapshots[k])  # a snapshot restores any number of times
            assert _trace(game, moves[k:]) == first
        game.restore(end)
        assert game.game_over == (len(moves) < 40 or game.game_over)


def test_restore_undoes_the_end_of_a_game_and_the_dead_steps():
    """After the game ended and the agents stepped out (``agents`` shrinks), a snapshot
    from mid-game brings everything back, the wrappers' cached mask included."""
    game = AECGame("tictactoe_v3")
    game.reset()
    for move in (0, 3):
        game.play(move)
    mid = game.snapshot()
    mask_mid = game.current_observation()["action_mask"].copy()
    for move in (1, 4, 2):  # X wins
        game.play(move)
    assert game.game_over
    for agent in game.agent_iter():
        game.step(None)
    assert game.agents == []
    game.restore(mid)
    assert game.agents == ["player_1", "player_2"] and not game.game_over
    np.testing.assert_array_equal(game.current_observation()["action_mask"], mask_mid)
    # The agent selector still shares its list with the env (as after reset()).
    raw = game.unwrapped
    assert raw._agent_selector.agent_order is raw.agents
    assert game.play(1) == (0.0, False)


def test_plain_deepcopy_of_the_raw_env_loses_the_game():
    """Why the snapshot copies attributes, not the env: PettingZoo's EzPickle rebuilds a
    fresh env from its constructor arguments on copy."""
    game = AECGame("tictactoe_v3")
    game.reset()
    game.play(4)
    copied = copy.deepcopy(game.unwrapped)
    assert copied.board.squares != game.unwrapped.board.squares
    restored = AECGame("tictactoe_v3")
    restored.reset()
    restored.restore(game.snapshot())
    assert restored.unwrapped.board.squares == game.unwrapped.board.squares


def test_adapter_reports_player_legal_moves_and_rewards():
    game = AECGame(connect_four_v3.env())
    game.reset()
    assert game.to_play == 0 and game.name == "connect_four_v3" and game.num_actions == 7
    for move in (0, 1, 0, 1, 0, 1):
        assert game.play(move) == (0.0, False)
    assert game.to_play == 0
    assert game.play(0) == (1.0, True)
    assert not game.legal_actions().any()


def test_bad_moves_and_games_are_named():
    game = AECGame("tictactoe_v3")
    game.reset()
    game.play(4)
    with pytest.raises(ValueError, match=r"action: expected a legal move of player_2 in "
                       r"\[0, 1, 2, 3, 5, 6, 7, 8\], got 4"):
        game.play(4)
    with pytest.raises(ValueError, match="action: expected an int move, got 'a'"):
        game.play("a")
    with pytest.raises(ValueError, match="env: expected a PettingZoo classic game"):
        make_classic_env("no_such_game_v0")
    with pytest.raises(TypeError, match="env: expected a PettingZoo AECEnv"):
        AECGame(gym.make("CartPole-v1"))
    other = AECGame("connect_four_v3")
    other.reset()
    with pytest.raises(TypeError, match="snapshot: expected a snapshot of an env with layers"):
        other.restore(_foreign_snapshot())
    with pytest.raises(TypeError, match="snapshot: expected a Snapshot"):
        game.restore({"board": 1})


def _foreign_snapshot():
    env = ClonableEnv(gym.make("CartPole-v1"))
    env.reset(seed=0)
    return env.snapshot()


def test_observation_helpers_need_the_mask():
    with pytest.raises(ValueError, match=r"observation: expected a PettingZoo observation dict "
                       r"with an 'action_mask' entry, got a dict with keys \['observation'\]"):
        action_mask({"observation": np.zeros((3, 3, 2))})
    obs = {"observation": np.zeros((3, 3, 2), np.int8), "action_mask": np.ones(9, np.int8)}
    planes, masks, batched = stack_observations([obs, obs], obs_shape=(3, 3, 2), num_actions=9)
    assert planes.shape == (2, 3, 3, 2) and masks.dtype == bool and batched
    with pytest.raises(ValueError, match=r"observation: expected action_mask of shape \[7\]"):
        stack_observations(obs, obs_shape=(6, 7, 2), num_actions=7)


def test_cartpole_snapshot_restores_state_rng_and_time_limit():
    env = ClonableEnv(gym.make("CartPole-v1"))
    env.reset(seed=3)
    for _ in range(5):
        env.step(env.action_space.sample())
    snap = env.snapshot()
    obs_at_snap = env.current_observation().copy()
    actions = [0, 1] * 5
    first = [env.step(a) for a in actions]
    after_reset_first = env.reset()[0]  # uses the env's RNG
    env.restore(snap)
    np.testing.assert_array_equal(env.current_observation(), obs_at_snap)
    second = [env.step(a) for a in actions]
    for (o1, r1, t1, u1, _), (o2, r2, t2, u2, _) in zip(first, second, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, t1, u1) == (r2, t2, u2)
    np.testing.assert_array_equal(env.reset()[0], after_reset_first)
    # TimeLimit's counter is part of the state.
    env.restore(snap)
    assert env.env._elapsed_steps == 5
    assert env.legal_actions().tolist() == [True, True]


def test_minimax_is_perfect_and_varies():
    # Empty board: every move draws with perfect play.
    assert max(tictactoe_values((0,) * 9)) == 0.0
    # Two in a row for the mover: the winning cell is worth +1.
    values = tictactoe_values((1, 1, 0, -1, -1, 0, 0, 0, 0))
    assert values[2] == 1.0 and values[0] == -np.inf
    result = play_match("tictactoe_v3", MinimaxTicTacToe(seed=0), MinimaxTicTacToe(seed=1), 6)
    assert result.draws == 6
    rng = np.random.default_rng(0)

    def random_player(obs):
        return int(rng.choice(np.flatnonzero(obs["action_mask"])))

    result = play_match("tictactoe_v3", MinimaxTicTacToe(seed=0), random_player, 20)
    assert result.losses == 0 and result.wins >= 14


def test_rollout_mcts_takes_a_win_and_beats_random():
    env = connect_four_v3.env()
    env.reset()
    for move in (0, 1, 0, 1, 0, 1):
        env.step(move)
    obs = env.observe(env.agent_selection)
    assert RolloutMCTSConnectFour(100, seed=0)(obs) == 0
    rng = np.random.default_rng(0)

    def random_player(obs):
        return int(rng.choice(np.flatnonzero(obs["action_mask"])))

    result = play_match("connect_four_v3", RolloutMCTSConnectFour(50, seed=0), random_player, 6)
    assert result.wins == 6
    with pytest.raises(ValueError, match="num_rollouts: expected an int >= 1, got 0"):
        RolloutMCTSConnectFour(0)


def test_play_match_alternates_sides():
    def lowest(obs):
        return int(np.flatnonzero(obs["action_mask"])[0])

    # Both take the lowest free cell: the first player gets 0, 2, 4, 6 and wins on the
    # line 2-4-6, so `player` wins the games it starts and loses the others.
    result = play_match("tictactoe_v3", lowest, lowest, 4)
    assert result.outcomes == (1, -1, 1, -1)
