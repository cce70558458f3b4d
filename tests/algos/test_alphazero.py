"""AlphaZero: its math, its SB3 surface, self-play on both search models, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pettingzoo.classic import tictactoe_v3
from stable_baselines3.common.callbacks import BaseCallback

import mbwrap
from mbwrap.algos.alphazero import (
    AlphaZero,
    alphazero_loss,
    dirichlet_alpha_for,
    outcome_targets,
)
from mbwrap.buffers.self_play import SelfPlayBuffer
from mbwrap.envs.aec import AECGame
from mbwrap.errors import CheckpointError
from mbwrap.networks import PolicyValueNet
from mbwrap.testing import assert_load_restores_everything, assert_same_checkpoints

# train_freq 8: one training phase per move of the 8 games.
SMALL = {"num_parallel_games": 8, "num_simulations": 8, "batch_size": 32,
         "learning_starts": 32, "train_freq": 8, "device": "cpu", "seed": 0}


def _obs(moves, name="tictactoe_v3"):
    game = AECGame(name)
    game.reset()
    for move in moves:
        game.play(move)
    return game.current_observation()


def test_outcome_targets_and_loss_by_hand():
    players = torch.tensor([[0, 1, 0, 1, 0], [0, 1, 0, 1, 0]])
    z = outcome_targets(players, torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
    assert z.tolist() == [[1, -1, 1, -1, 1], [0, 0, 0, 0, 0]]
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    total, value_loss, policy_loss = alphazero_loss(
        logits, torch.tensor([0.5]), torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([-1.0])
    )
    assert value_loss.item() == pytest.approx(2.25)  # (-1 - 0.5)^2
    assert policy_loss.item() == pytest.approx(np.log(2))  # -log 0.5
    assert total.item() == pytest.approx(2.25 + np.log(2))
    assert dirichlet_alpha_for(35) == pytest.approx(0.2857, abs=1e-4)  # chess: about 0.3


def test_predict_wins_and_blocks_with_an_untrained_network():
    algo = AlphaZero(tictactoe_v3.env(), eval_num_simulations=200, **SMALL)
    # X holds 0 and 1, O holds 3 and 4: X wins at 2.
    assert int(algo.predict(_obs((0, 3, 1, 4)), deterministic=True)[0]) == 2
    # X holds 0 and 1, O to move must block at 2.
    assert int(algo.predict(_obs((0, 3, 1)), deterministic=True)[0]) == 2


def test_predict_accepts_single_batched_and_listed_observations():
    algo = AlphaZero("tictactoe_v3", **SMALL)
    one = _obs((4,))
    action, state = algo.predict(one)
    assert state is None and action.shape == () and one["action_mask"][int(action)]
    listed, _ = algo.predict([one, _obs((0, 8))])
    assert listed.shape == (2,)
    batched = {k: np.stack([one[k], one[k]]) for k in one}
    actions, _ = algo.predict(batched, deterministic=True)
    assert actions.shape == (2,) and all(one["action_mask"][a] for a in actions)


def test_predict_errors_name_the_observation():
    algo = AlphaZero("tictactoe_v3", **SMALL)
    with pytest.raises(ValueError, match=r"observation: expected a PettingZoo observation dict "
                       r"with an 'action_mask' entry, got a dict with keys \['observation'\]"):
        algo.predict({"observation": np.zeros((3, 3, 2), np.int8)})
    with pytest.raises(ValueError, match="observation: expected a PettingZoo observation dict"):
        algo.predict(np.zeros((3, 3, 2)))
    no_move = {"observation": np.zeros((3, 3, 2), np.int8), "action_mask": np.zeros(9, np.int8)}
    with pytest.raises(ValueError, match=r"observation: expected an action_mask with at least "
                       r"one legal move, got none in rows \[0\]"):
        algo.predict(no_move)
    wrong = {"observation": np.zeros((6, 7, 2), np.int8), "action_mask": np.ones(9, np.int8)}
    with pytest.raises(ValueError, match=r"observation: expected observation of shape \(3, 3, 2\)"):
        algo.predict(wrong)


def test_predict_never_plays_a_masked_move():
    algo = AlphaZero("tictactoe_v3", **SMALL)
    obs = _obs(())
    obs["action_mask"] = np.zeros(9, np.int8)
    obs["action_mask"][7] = 1  # only 7 allowed, whatever the board says
    for _ in range(3):
        assert int(algo.predict(obs)[0]) == 7


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="num_simulations: expected a value >= 1, got 0"):
        AlphaZero("tictactoe_v3", num_simulations=0)
    with pytest.raises(ValueError, match=r"dirichlet_fraction: expected a value <= 1\.0, got 1\.5"):
        AlphaZero("tictactoe_v3", dirichlet_fraction=1.5)
    with pytest.raises(ValueError, match="env: expected a PettingZoo AEC game"):
        AlphaZero(None)
    with pytest.raises(ValueError, match="env: expected a PettingZoo classic game"):
        AlphaZero("tic_tac_toe_v0")


class _Count(BaseCallback):
    def __init__(self):
        super().__init__()
        self.calls, self.started = 0, False

    def _on_training_start(self):
        self.started = True

    def _on_step(self):
        self.calls += 1
        return self.calls < 1000


def test_learn_counts_moves_trains_and_feeds_callbacks():
    algo = AlphaZero("tictactoe_v3", **SMALL)
    callback = _Count()
    algo.learn(8 * 30, callback=callback, progress_bar=True)
    assert algo.num_timesteps == 240 and callback.calls == 30 and callback.started
    assert algo.games_played >= 20 and algo.n_updates > 0
    assert len(algo.buffer) == algo.buffer.added <= 240
    obs, policy, outcome = algo.buffer.sample(64)
    assert set(outcome.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.allclose(policy.sum(-1), torch.ones(64))
    # Search policies put no weight on occupied cells.
    occupied = obs.reshape(64, 9, 2).sum(-1) > 0
    assert policy[occupied].sum() == 0
    # Every game's first position has the first player (value target from X's view) to move.
    assert algo.ep_info_buffer and all(abs(e["r"]) <= 1 for e in algo.ep_info_buffer)


def test_learn_with_symmetry_augmentation():
    algo = AlphaZero("tictactoe_v3", augment=True, **SMALL)
    algo.learn(8 * 12)
    assert algo.n_updates > 0 and algo.get_config()["augment"] is True


def test_a_callback_can_stop_learning():
    class Stop(BaseCallback):
        def _on_step(self):
            return self.num_timesteps < 16

    algo = AlphaZero("tictactoe_v3", **SMALL)
    algo.learn(10_000, callback=Stop())
    assert algo.num_timesteps == 16


def test_self_play_on_the_real_game_without_tensor_rules():
    algo = AlphaZero("tictactoe_v3", tensor_rules=False, num_parallel_games=2, train_freq=2,
                     num_simulations=4, batch_size=8, learning_starts=8, device="cpu", seed=0,
                     network_kwargs={"kind": "mlp", "channels": 16, "blocks": 1})
    assert algo.rules is None
    algo.learn(2 * 20)
    assert algo.games_played >= 4 and len(algo.buffer) > 0 and algo.n_updates > 0
    _, policy, outcome = algo.buffer.sample(16)
    assert torch.allclose(policy.sum(-1), torch.ones(16))
    assert set(outcome.unique().tolist()) <= {-1.0, 0.0, 1.0}
    game = AECGame("tictactoe_v3")
    game.reset()
    for move in (0, 3, 1, 4):
        game.play(move)
    algo.config.eval_num_simulations = 100
    action, _ = algo.predict(game.current_observation(), game=game, deterministic=True)
    assert int(action) == 2  # the win, found on the real game
    with pytest.raises(ValueError, match="game: tictactoe_v3 has no tensor rules"):
        algo.predict(game.current_observation())


def test_save_and_load_round_trip(tmp_path):
    algo = AlphaZero("tictactoe_v3", **SMALL)
    algo.learn(8 * 10)
    path = tmp_path / "az.pt"
    algo.save(path)
    loaded = AlphaZero.load(path, device="cpu")
    assert loaded.num_timesteps == algo.num_timesteps and loaded.n_updates == algo.n_updates
    for (name, a), b in zip(algo.network.state_dict().items(),
                            loaded.network.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert len(loaded.buffer) == len(algo.buffer)
    obs = _obs((0,))
    assert int(loaded.predict(obs, deterministic=True)[0]) == int(
        algo.predict(obs, deterministic=True)[0])
    loaded.learn(8 * 2)  # keeps learning
    with pytest.raises(CheckpointError, match="env: expected the saved game 'tictactoe_v3'"):
        AlphaZero.load(path, env="connect_four_v3", device="cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        AlphaZero.load(tmp_path / "junk.pt")


@pytest.mark.skipif("alphazero" not in mbwrap.registry.available("algo"),
                    reason="the alphazero entry point is not installed yet")
def test_make_algo_builds_alphazero():
    algo = mbwrap.make_algo("alphazero", tictactoe_v3.env(), **SMALL)
    assert isinstance(algo, AlphaZero)


def test_training_fits_the_search_targets():
    """Gradient steps on a window of self-play shrink the loss towards its floor (the
    entropy of the search policies) by half."""
    algo = AlphaZero("tictactoe_v3", **{**SMALL, "num_parallel_games": 32, "gradient_steps": 0})
    algo.learn(32 * 12)
    obs, policy, outcome = algo.buffer.sample(512, generator=torch.Generator().manual_seed(1))
    floor = -(policy * torch.log(policy.clamp(min=1e-12))).sum(-1).mean().item()

    def excess_loss() -> float:
        algo.network.eval()
        with torch.no_grad():
            return alphazero_loss(*algo.network(obs), policy, outcome)[0].item() - floor

    before = excess_loss()
    metrics = algo.train(400)
    assert excess_loss() < 0.6 * before
    assert set(metrics) == {"loss", "value_loss", "policy_loss"}


@pytest.mark.slow
def test_example_learns_to_draw_perfect_tictactoe():
    """The example's self-play (a few minutes): at most one loss in 20 games against
    minimax."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "alphazero_tictactoe.py"
    spec = importlib.util.spec_from_file_location("alphazero_tictactoe", path)
    example = importlib.util.module_from_spec(spec)
    sys.modules["alphazero_tictactoe"] = example  # dataclasses look their module up there
    spec.loader.exec_module(example)
    result = example.main(example.Config())
    assert result.losses <= 1


def test_self_play_buffer_keeps_the_latest_positions_in_order():
    buffer = SelfPlayBuffer(5, (1,), 2)
    for start in (0, 3):
        n = 3
        buffer.add(torch.arange(start, start + n)[:, None], torch.full((n, 2), 0.5),
                   torch.arange(start, start + n).float())
    assert len(buffer) == 5 and buffer.added == 6
    assert buffer.positions()["outcome"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="capacity: expected an int >= 1, got 0"):
        SelfPlayBuffer(0, (1,), 2)


@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_policy_value_net_shapes(kind):
    net = PolicyValueNet((6, 7, 2), 7, kind=kind, channels=8, blocks=1)
    logits, value = net(torch.zeros(4, 6, 7, 2, dtype=torch.int8))
    assert logits.shape == (4, 7) and value.shape == (4,) and value.abs().max() <= 1
    with pytest.raises(ValueError, match="kind: expected 'resnet' or 'mlp', got 'cnn'"):
        PolicyValueNet((6, 7, 2), 7, kind="cnn")


# ---------------------------------------------------------------------- resume
_SIMULATOR = {"tensor_rules": False, "num_parallel_games": 2, "train_freq": 2,
              "num_simulations": 4, "batch_size": 8, "learning_starts": 8,
              "network_kwargs": {"kind": "mlp", "channels": 16, "blocks": 1}}


@pytest.mark.parametrize("settings", [{"augment": True}, _SIMULATOR])
def test_load_restores_the_whole_run(tmp_path, settings):
    algo = AlphaZero("tictactoe_v3", **{**SMALL, **settings})
    algo.learn(algo.n_envs * 12)
    assert algo.n_updates > 0
    loaded = assert_load_restores_everything(algo, tmp_path, device="cpu")
    assert loaded.games_played == algo.games_played and loaded._alpha() == algo._alpha()
    assert loaded.config == algo.config and loaded.real_steps == algo.real_steps
    small = tmp_path / "small.pt"
    algo.save(small, include_buffer=False)
    assert small.stat().st_size < (tmp_path / "saved.pt").stat().st_size
    assert len(AlphaZero.load(small, device="cpu").buffer) == 0


@pytest.mark.parametrize("settings", [{}, _SIMULATOR])
def test_two_runs_continued_from_one_checkpoint_are_identical(tmp_path, settings):
    """Games in progress are not saved, so a loaded run cannot follow the uninterrupted
    one; runs continued from one checkpoint all follow the same course."""
    algo = AlphaZero("tictactoe_v3", **{**SMALL, **settings})
    algo.learn(algo.n_envs * 8)
    algo.save(tmp_path / "stopped.pt")
    for name in ("first", "second"):
        resumed = AlphaZero.load(tmp_path / "stopped.pt", device="cpu")
        resumed.learn(algo.n_envs * 8, reset_num_timesteps=False)
        assert resumed.num_timesteps == algo.n_envs * 16 and resumed.n_updates > algo.n_updates
        resumed.save(tmp_path / f"{name}.pt")
    assert_same_checkpoints(tmp_path / "first.pt", tmp_path / "second.pt")


def test_callbacks_see_the_games_as_the_training_env():
    seen = []

    class Record(BaseCallback):
        def _on_step(self):
            seen.append((self.training_env.num_envs, self.locals["dones"].shape))
            return True

    algo = AlphaZero("tictactoe_v3", **SMALL)
    algo.learn(16, callback=Record())
    assert algo.get_env() is algo.env and seen == [(8, (8,))] * 2
    assert algo.config.network_kwargs["kind"] == "mlp"  # tic-tac-toe's preset, written back
    assert AlphaZero("connect_four_v3", num_parallel_games=2).config.num_simulations == 100
