"""AlphaZero on PettingZoo tic-tac-toe and connect four: train for a fixed wall-clock
time, then play 100 games against a fixed opponent, 50 as each side.

Targets:

* ``tictactoe_v3``: at most 10 minutes of training on a 2-core CPU (one thread), then
  no loss against a perfect minimax player (which picks at random among its optimal
  moves, so that games differ).
* ``connect_four_v3``: at least 90% wins against UCT with 200 random playouts per move.

Usage::

    python benchmarks/alphazero.py --game tictactoe_v3 --train-seconds 600
    python benchmarks/alphazero.py --game connect_four_v3 --train-seconds 1800
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.alphazero import AlphaZero
from mbwrap.envs.opponents import MinimaxTicTacToe, RolloutMCTSConnectFour, play_match

#: Self-play settings per game (scaled down from the paper's; see AlphaZeroConfig).
SETTINGS: dict[str, dict[str, Any]] = {
    "tictactoe_v3": {
        "num_parallel_games": 256,
        "num_simulations": 48,
        "eval_num_simulations": 128,
        "batch_size": 256,
        # A gradient step costs far less than a batched search step on these cores: 16
        # per move of the 256 games.
        "train_freq": 256,
        "gradient_steps": 16,
        "buffer_size": 30_000,
        "learning_starts": 2_000,
        # The 8 symmetries of the board (as AlphaGo Zero): without them the rarer
        # openings (an edge) stay unlearnt after 10 minutes.
        "augment": True,
    },
    "connect_four_v3": {
        # On one CPU thread a residual tower costs 3x the whole search; an MLP does not.
        "network_kwargs": {"kind": "mlp", "channels": 256, "blocks": 3, "value_hidden": 128},
        "num_parallel_games": 256,
        "num_simulations": 64,
        "eval_num_simulations": 200,
        "batch_size": 512,
        "train_freq": 256,
        "gradient_steps": 2,
        "buffer_size": 150_000,
        "learning_starts": 5_000,
    },
}


class StopAfter(BaseCallback):
    """Stops training after ``seconds`` of wall-clock time."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.start = time.perf_counter()

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        return time.perf_counter() - self.start < self.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", choices=sorted(SETTINGS), default="tictactoe_v3")
    parser.add_argument("--train-seconds", type=float, default=600.0)
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", default=None, help="write the trained algorithm here")
    parser.add_argument("--load", default=None, help="evaluate a saved algorithm instead")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.game}: load average {os.getloadavg()[0]:.2f}, {args.threads} threads, "
          f"device {args.device}", flush=True)

    start = time.perf_counter()
    if args.load:
        algo = AlphaZero.load(args.load, device=args.device)
        train_seconds = 0.0
    else:
        algo = AlphaZero(args.game, seed=args.seed, device=args.device, verbose=args.verbose,
                         **SETTINGS[args.game])
        algo.learn(10**12, callback=StopAfter(args.train_seconds), log_interval=50)
        train_seconds = time.perf_counter() - start
        if args.save:
            algo.save(args.save)
    print(f"trained {train_seconds:.0f} s: {algo.num_timesteps} self-play moves, "
          f"{algo.games_played} games, {algo.n_updates} gradient steps", flush=True)

    def agent(obs: dict[str, Any]) -> int:
        return int(algo.predict(obs, deterministic=True)[0])

    if args.game == "tictactoe_v3":
        opponent, name = MinimaxTicTacToe(seed=args.seed), "minimax"
    else:
        opponent, name = RolloutMCTSConnectFour(200, seed=args.seed), "UCT-200 playouts"
    eval_start = time.perf_counter()
    result = play_match(args.game, agent, opponent, args.games)
    half = args.games // 2 + args.games % 2
    first, second = result.outcomes[0::2], result.outcomes[1::2]
    report = {
        "game": args.game,
        "opponent": name,
        "train_seconds": round(train_seconds),
        "self_play_moves": algo.num_timesteps,
        "self_play_games": algo.games_played,
        "gradient_steps": algo.n_updates,
        "eval_num_simulations": algo.config.eval_num_simulations,
        "wins": result.wins,
        "draws": result.draws,
        "losses": result.losses,
        "as_first": [first.count(1), first.count(0), first.count(-1)],
        "as_second": [second.count(1), second.count(0), second.count(-1)],
        "eval_seconds": round(time.perf_counter() - eval_start),
    }
    print(f"\n{args.games} games vs {name} ({half} as first player): "
          f"W/D/L {result.wins}/{result.draws}/{result.losses} "
          f"(first: {report['as_first']}, second: {report['as_second']})")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
