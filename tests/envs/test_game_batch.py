"""GameBatch: self-play games side by side, on tensor rules or on copies of the game."""

from __future__ import annotations

import pytest
import torch

from mbwrap.envs.aec import AECGame
from mbwrap.envs.board_games import board_game
from mbwrap.envs.game_batch import GameBatch

# X takes the top row (cells 0, 3, 6 in PettingZoo's column-major order) while O plays
# 1 and 4: X wins on its third move, the fifth of the game.
X_WINS = (0, 1, 3, 4, 6)


@pytest.mark.parametrize("tensor_rules", [True, False])
def test_a_won_game_gives_every_position_its_outcome_and_restarts(tensor_rules):
    game = AECGame("tictactoe_v3")
    rules = board_game("tictactoe_v3") if tensor_rules else None
    batch = GameBatch(game, 2, rules=rules, seed=0)
    assert batch.num_envs == 2 and batch.obs_shape == (3, 3, 2)
    uniform = torch.full((2, 9), 1 / 9)
    for i, move in enumerate(X_WINS):
        assert batch.moves.tolist() == [i, i]
        done, finished = batch.play(torch.tensor([move, move]), uniform)
        assert done.tolist() == [i == 4, i == 4]
    assert finished is not None and finished.lengths == [5, 5]
    assert finished.first_player_outcomes == [1.0, 1.0]
    # X moved at positions 0, 2 and 4 and won; O lost.
    assert finished.outcome.tolist() == [1, -1, 1, -1, 1] * 2
    assert finished.obs.shape == (10, 3, 3, 2) and finished.obs.dtype == torch.int8
    torch.testing.assert_close(finished.policy, torch.full((10, 9), 1 / 9))
    # Plane 0 is the mover's marks: before O's second move O has one mark, X two.
    assert finished.obs[3, ..., 0].sum() == 1 and finished.obs[3, ..., 1].sum() == 2
    assert batch.moves.tolist() == [0, 0]  # new games in their place


def test_only_the_finished_games_restart():
    batch = GameBatch(AECGame("tictactoe_v3"), 2, rules=board_game("tictactoe_v3"))
    uniform = torch.full((2, 9), 1 / 9)
    for move in X_WINS[:4]:
        batch.play(torch.tensor([move, move]), uniform)
    done, finished = batch.play(torch.tensor([6, 2]), uniform)  # game 1: O's row not yet
    assert done.tolist() == [True, False] and finished.lengths == [5]
    assert batch.moves.tolist() == [0, 5]
