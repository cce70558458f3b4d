"""MuZero self-play on CartPole-v1: moves per second in this process against moves per
second on Ray self-play actors, side by side in one process.

All runs play the same number of moves with the same settings (``MUZERO_CARTPOLE``:
Gumbel search, 16 simulations): in this process ``--games`` games searched together,
on the actors first the same games split between them, then ``--games`` games on each
(``envs_per_worker``'s default); once self-play alone, once training by the preset's
rule (one update per 2 moves, on the learner, while the actors play the next round).
The figure is all games' moves over the wall time of ``learn``; actor start-up and the
first weight push are left out (a warm-up ``learn`` runs first).

Usage::

    python benchmarks/self_play_workers.py --moves 6000 --workers 2 --games 32
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3.common.env_util import make_vec_env

from mbwrap.algos.muzero import MuZero
from mbwrap.algos.presets import MUZERO_CARTPOLE
from mbwrap.distributed import ensure_ray


def moves_per_second(algo: MuZero, moves: int) -> float:
    """All games' moves per second of ``algo.learn(moves)`` (a warm-up ``learn`` first)."""
    algo.learn(4 * algo.n_envs)
    start = time.perf_counter()
    algo.learn(moves, reset_num_timesteps=False)
    return moves / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=6000, help="moves of all games")
    parser.add_argument("--workers", type=int, default=2, help="self-play actors")
    parser.add_argument("--games", type=int, default=32, help="games in this process")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_ray(None, num_cpus=args.workers, log_to_driver=False)
    print(
        f"MuZero CartPole-v1, {args.games} games, {args.moves} moves, "
        f"{MUZERO_CARTPOLE['num_simulations']} simulations, {args.workers} actors"
    )
    # Self-play alone (training never starts), then with the preset's training.
    for label, learning_starts in (("self-play only", 10**9), ("with training", 500)):
        settings = {
            **MUZERO_CARTPOLE,
            "seed": 0,
            "device": "cpu",
            "learning_starts": learning_starts,
        }
        here = MuZero(make_vec_env("CartPole-v1", n_envs=args.games, seed=0), **settings)
        in_process = moves_per_second(here, args.moves)
        print(f"{label}: in-process, {args.games} games: {in_process:7.1f} moves/s")
        # The same games split over the actors, then as many games on each actor as in
        # this process (envs_per_worker's default).
        for per_worker in (args.games // args.workers, args.games):
            there = MuZero(
                make_vec_env("CartPole-v1", n_envs=args.games, seed=0),
                **settings,
                num_workers=args.workers,
                envs_per_worker=per_worker,
            )
            on_actors = moves_per_second(there, args.moves)
            version = there.self_play_pool.version
            there.close()
            print(
                f"{label}: {args.workers} actors x {per_worker} games: {on_actors:7.1f} "
                f"moves/s (weights version {version}), ratio {on_actors / in_process:.2f}"
            )


if __name__ == "__main__":
    main()
