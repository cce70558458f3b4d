"""AlphaZero learns tic-tac-toe by self-play, then plays a perfect minimax player.

Self-play runs many games at once on the game's tensor rules; each move is chosen by a
batched tree search guided by a small policy-value network, which is trained on the
searches' visit distributions and the games' outcomes. A few minutes on one CPU thread
take it from random play to mostly drawing against perfect play.

    python examples/alphazero_tictactoe.py
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pettingzoo.classic import tictactoe_v3

from mbwrap.algos.alphazero import AlphaZero
from mbwrap.envs.aec import AECGame
from mbwrap.envs.opponents import MatchResult, MinimaxTicTacToe, play_match


@dataclass
class Config:
    self_play_moves: int = 256 * 370  # learn() counts every game's moves
    num_parallel_games: int = 256
    num_simulations: int = 48  # AlphaZero: 800 per move; tic-tac-toe needs far fewer
    eval_num_simulations: int = 128
    temperature_moves: int = 3  # sample the first moves from the visit counts (paper: 30)
    batch_size: int = 256  # paper: 4096
    train_freq: int = 256  # self-play moves (all games counted) per training phase
    gradient_steps: int = 16  # per phase: per move of all games (cheap next to the search)
    learning_starts: int = 2_000  # positions in the window before training
    learning_rate: float = 1e-3  # Adam; the paper anneals SGD from 0.2
    buffer_size: int = 30_000  # positions in the training window
    augment: bool = True  # train on the 8 symmetries of the board (AlphaGo Zero did)
    eval_games: int = 20  # half as X, half as O
    seed: int = 0
    threads: int = 1


def show(game: AECGame) -> str:
    board = game.unwrapped.board.squares  # PettingZoo: 1 = X, 2 = O, cell i in column i // 3
    marks = np.array([".XO"[v] for v in board]).reshape(3, 3).T
    return "\n".join(" ".join(row) for row in marks)


def main(config: Config | None = None) -> MatchResult:
    config = config or Config()
    torch.set_num_threads(config.threads)

    # 1. Self-play and training.
    algo = AlphaZero(
        tictactoe_v3.env(),
        num_parallel_games=config.num_parallel_games,
        num_simulations=config.num_simulations,
        eval_num_simulations=config.eval_num_simulations,
        temperature_moves=config.temperature_moves,
        batch_size=config.batch_size,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        learning_starts=config.learning_starts,
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        augment=config.augment,
        seed=config.seed,
        device="cpu",
    )
    algo.learn(config.self_play_moves, progress_bar=True)
    print(f"{algo.games_played} self-play games, {algo.n_updates} gradient steps")

    # 2. predict() takes PettingZoo's observation of the player to move.
    def agent(obs: dict) -> int:
        return int(algo.predict(obs, deterministic=True)[0])

    game = AECGame(tictactoe_v3.env())
    game.reset()
    minimax = MinimaxTicTacToe(seed=config.seed)
    while not game.game_over:
        player = agent if game.to_play == 0 else minimax
        game.play(player(game.current_observation()))
    print(f"AlphaZero (X) vs minimax (O):\n{show(game)}")

    # 3. A match against perfect play: draws are the best anyone can do.
    result = play_match("tictactoe_v3", agent, minimax, config.eval_games)
    print(f"{config.eval_games} games vs minimax: {result.wins} won, {result.draws} drawn, "
          f"{result.losses} lost")
    return result


if __name__ == "__main__":
    main()
