"""AlphaZero on PettingZoo tic-tac-toe and connect four: train for a fixed wall-clock
time, then play 100 games against a fixed opponent, 50 as each side.

Targets:

* ``tictactoe_v3``: at most 10 minutes of training on a 2-core CPU (one thread), then
  no loss against a perfect minimax player (which picks at random among its optimal
  moves, so that games differ).
* ``connect_four_v3``: at least 90% wins against UCT with 200 random playouts per move.

With ``--curve S1 S2 ...`` (cumulative training seconds) training stops at each of those
times for a match of ``--curve-games`` games and goes on; the win rates against training
time are printed as a table and, with ``--plot``, drawn.

Usage::

    python benchmarks/alphazero.py --game tictactoe_v3 --train-seconds 600
    python benchmarks/alphazero.py --game connect_four_v3 --train-seconds 1800
    python benchmarks/alphazero.py --game connect_four_v3 --train-seconds 1800 \
        --curve 300 600 1200 --curve-games 40 --plot curve.png
    python benchmarks/alphazero.py --game connect_four_v3 --train-seconds 1800 --lr-final 0.1
"""

from __future__ import annotations

import argparse
import json
import math
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
        # The compiled tree search plays about 600 moves/s here, so positions come much
        # faster than 2 gradient steps per move of the 256 games learn from them: 8 (each
        # position sampled about 16 times) and a window of 500,000 positions (RESULTS.md).
        "train_freq": 256,
        "gradient_steps": 8,
        "buffer_size": 500_000,
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


class AnnealLearningRate(BaseCallback):
    """Cosine anneal of the optimiser's step size over the training budget, by wall time.

    The budget is in seconds, not moves, so SB3's progress (moves done over
    ``total_timesteps``) cannot drive a schedule. AlphaZero drops its step size by 10x
    several times during training (Silver et al. 2018, Methods); a cosine from
    ``learning_rate`` to ``final_factor`` times it is the smooth form of that.

    :param offset: training seconds already spent (the segments before a match).
    """

    def __init__(self, total: float, offset: float, initial: float, final_factor: float) -> None:
        super().__init__()
        self.total, self.offset = total, offset
        self.initial, self.final_factor = initial, final_factor
        self.start = time.perf_counter()

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self._set()

    def _on_step(self) -> bool:
        self._set()
        return True

    def _set(self) -> None:
        done = min((self.offset + time.perf_counter() - self.start) / self.total, 1.0)
        factor = self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * done))
        for group in self.model.optimizer.param_groups:
            group["lr"] = self.initial * factor


def opponent_for(game: str, seed: int) -> tuple[Any, str]:
    """The fixed opponent of each game's target, and its name."""
    if game == "tictactoe_v3":
        return MinimaxTicTacToe(seed=seed), "minimax"
    return RolloutMCTSConnectFour(200, seed=seed), "UCT-200 playouts"


def match(algo: AlphaZero, game: str, games: int, seed: int) -> dict[str, Any]:
    """``games`` games against the game's opponent, alternating who moves first."""
    def agent(obs: dict[str, Any]) -> int:
        return int(algo.predict(obs, deterministic=True)[0])

    opponent, name = opponent_for(game, seed)
    start = time.perf_counter()
    result = play_match(game, agent, opponent, games)
    first, second = result.outcomes[0::2], result.outcomes[1::2]
    return {
        "opponent": name,
        "games": games,
        "wins": result.wins,
        "draws": result.draws,
        "losses": result.losses,
        "as_first": [first.count(1), first.count(0), first.count(-1)],
        "as_second": [second.count(1), second.count(0), second.count(-1)],
        "eval_seconds": round(time.perf_counter() - start),
    }


def progress(algo: AlphaZero, seconds: float) -> dict[str, Any]:
    """How much self-play and training ``algo`` has done after ``seconds`` of training."""
    return {
        "train_seconds": round(seconds),
        "self_play_moves": algo.num_timesteps,
        "self_play_games": algo.games_played,
        "gradient_steps": algo.n_updates,
    }


def plot_curve(points: list[dict[str, Any]], path: str, title: str, threads: int = 1) -> None:
    """Win rate (and win-or-draw rate) against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [p["train_seconds"] / 60 for p in points]
    wins = [p["wins"] / p["games"] for p in points]
    not_lost = [(p["wins"] + p["draws"]) / p["games"] for p in points]
    # One binomial standard error of the win rate: the matches are short.
    spread = [(w * (1 - w) / p["games"]) ** 0.5 for w, p in zip(wins, points, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(minutes, wins, yerr=spread, fmt="o-", capsize=3, label="wins (± 1 s.e.)")
    ax.plot(minutes, not_lost, "s--", label="wins + draws")
    ax.axhline(0.9, color="grey", lw=0.8, ls=":", label="target (90% wins)")
    ax.set_xlabel(f"training time (minutes, {threads} CPU thread{'s' if threads > 1 else ''})")
    ax.set_ylabel("fraction of games")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", choices=sorted(SETTINGS), default="tictactoe_v3")
    parser.add_argument("--train-seconds", type=float, default=600.0)
    parser.add_argument("--games", type=int, default=100)
    parser.add_argument("--curve", type=float, nargs="*", default=[],
                        help="cumulative training seconds at which to play a match as well")
    parser.add_argument("--curve-games", type=int, default=40)
    parser.add_argument("--plot", default=None, help="draw the learning curve here (PNG)")
    parser.add_argument("--set", default=None, help="JSON of settings overriding SETTINGS")
    parser.add_argument("--lr-final", type=float, default=None,
                        help="anneal the step size by a cosine over --train-seconds to this "
                             "fraction of the initial one (default: constant)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", default=None, help="write the trained algorithm here")
    parser.add_argument("--load", default=None, help="evaluate a saved algorithm instead")
    parser.add_argument("--eval-simulations", type=int, default=None,
                        help="the agent's simulations per move in the matches (default: "
                             "the settings' eval_num_simulations)")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.game}: load average {os.getloadavg()[0]:.2f}, {args.threads} threads, "
          f"device {args.device}", flush=True)

    curve: list[dict[str, Any]] = []
    if args.load:
        algo = AlphaZero.load(args.load, device=args.device)
        trained = 0.0
        if args.eval_simulations is not None:
            algo.config.eval_num_simulations = args.eval_simulations
    else:
        settings = {**SETTINGS[args.game], **json.loads(args.set or "{}")}
        if args.eval_simulations is not None:
            settings["eval_num_simulations"] = args.eval_simulations
        algo = AlphaZero(args.game, seed=args.seed, device=args.device, verbose=args.verbose,
                         **settings)
        trained = 0.0
        stops = sorted({*(s for s in args.curve if s < args.train_seconds), args.train_seconds})
        for stop in stops:
            # Matches are not training time: each segment runs to the next stop.
            start = time.perf_counter()
            callbacks: list[BaseCallback] = [StopAfter(stop - trained)]
            if args.lr_final is not None:
                callbacks.append(AnnealLearningRate(args.train_seconds, trained,
                                                    algo.config.learning_rate, args.lr_final))
            algo.learn(10**12, callback=callbacks, log_interval=50,
                       reset_num_timesteps=trained == 0.0)
            trained += time.perf_counter() - start
            if stop != args.train_seconds:
                point = {**progress(algo, trained), **match(algo, args.game,
                                                            args.curve_games, args.seed)}
                curve.append(point)
                print(json.dumps(point), flush=True)
        if args.save:
            algo.save(args.save)
    print(f"trained {trained:.0f} s: {algo.num_timesteps} self-play moves, "
          f"{algo.games_played} games, {algo.n_updates} gradient steps", flush=True)

    final = match(algo, args.game, args.games, args.seed)
    report = {"game": args.game, "lr_final": args.lr_final, **progress(algo, trained),
              "final_learning_rate": algo.optimizer.param_groups[0]["lr"],
              "eval_num_simulations": algo.config.eval_num_simulations, **final}
    half = args.games // 2 + args.games % 2
    print(f"\n{args.games} games vs {final['opponent']} ({half} as first player): "
          f"W/D/L {final['wins']}/{final['draws']}/{final['losses']} "
          f"(first: {final['as_first']}, second: {final['as_second']})")
    print(json.dumps(report))
    if curve:
        curve.append(report)
        print("\n| training (s) | gradient steps | self-play games | games | W / D / L |")
        print("|---|---|---|---|---|")
        for p in curve:
            print(f"| {p['train_seconds']:,} | {p['gradient_steps']:,} | "
                  f"{p['self_play_games']:,} | {p['games']} | "
                  f"{p['wins']} / {p['draws']} / {p['losses']} |")
        if args.plot:
            plot_curve(curve, args.plot, f"AlphaZero on {args.game} vs {final['opponent']}",
                       args.threads)


if __name__ == "__main__":
    main()
