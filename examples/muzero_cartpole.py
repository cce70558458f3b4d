"""MuZero learns CartPole-v1 from self-play with a learned model, then plays by search.

MuZero (Schrittwieser et al. 2020) never sees CartPole's equations: it learns a
representation, a dynamics and a prediction network whose only job is to make a tree
search work. Eight envs play at once; every move is one Gumbel search (Danihelka et al.
2022) of 16 simulations over all eight roots together. Moves go to a prioritised replay,
and the networks are trained on 5 unrolled steps against the search policies, 10-step
returns and rewards. At the end the agent plays with a noise-free search, and with its
policy head alone, to show what planning adds.

Run: ``python examples/muzero_cartpole.py`` (about 10 minutes on one CPU core;
``--steps 3000`` for a quick look).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields

import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from mbwrap.algos.muzero import MuZero


@dataclass
class Config:
    seed: int = 0
    steps: int = 30_000  # real env steps
    n_envs: int = 8  # envs searched together
    search: str = "gumbel"  # or "muzero" (pUCT with Dirichlet noise; wants ~50 simulations)
    num_simulations: int = 16
    gamma: float = 0.997  # MuZero (Atari)
    n_step: int = 10  # MuZero, Appendix G (Atari)
    num_unroll_steps: int = 5  # MuZero, Appendix G
    network_kwargs: dict = field(
        default_factory=lambda: {"hidden_size": 64, "layers": 2, "support_size": 20}
    )
    batch_size: int = 128
    learning_rate: float = 1e-3
    value_loss_coef: float = 1.0
    priority_alpha: float = 0.5  # flatter than MuZero's 1 (Appendix G)
    bootstrap_with_network: bool = True  # value targets from a recent network, not stored
    target_update_interval: int = 200  # updates between refreshes of that network
    train_freq: int = 2  # real steps (all envs counted) per gradient_steps updates
    gradient_steps: int = 1
    learning_starts: int = 500
    buffer_size: int = 50_000
    eval_episodes: int = 10
    threads: int = 1  # small networks: a second thread mostly waits


ALGO_FIELDS = ("search", "num_simulations", "gamma", "n_step", "num_unroll_steps",
               "network_kwargs", "batch_size", "learning_rate", "value_loss_coef",
               "priority_alpha", "bootstrap_with_network", "target_update_interval",
               "train_freq", "gradient_steps", "learning_starts", "buffer_size")


def evaluate(algo: MuZero, config: Config) -> float:
    """Mean return of ``eval_episodes`` episodes played side by side, noise-free."""
    env = make_vec_env("CartPole-v1", n_envs=config.eval_episodes, seed=config.seed + 10_000)
    mean, _ = evaluate_policy(algo, env, n_eval_episodes=config.eval_episodes,
                              deterministic=True, warn=False)
    return float(mean)


def main(config: Config) -> dict[str, float]:
    torch.set_num_threads(config.threads)
    env = make_vec_env("CartPole-v1", n_envs=config.n_envs, seed=config.seed)
    algo = MuZero(env, seed=config.seed, device="auto", verbose=1,
                  **{name: getattr(config, name) for name in ALGO_FIELDS})

    start = time.perf_counter()
    algo.learn(config.steps, log_interval=250)
    print(f"trained on {algo.num_timesteps} real steps with {algo.n_updates} updates "
          f"in {time.perf_counter() - start:.0f} s")

    with_search = evaluate(algo, config)
    # The same networks without search: the policy head's most likely action.
    algo.config.eval_num_simulations = 0
    policy_head = evaluate(algo, config)
    print(f"mean return with a {config.num_simulations}-simulation search: {with_search:.1f}; "
          f"policy head alone: {policy_head:.1f}")
    return {"search": with_search, "policy_head": policy_head}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scalar_types = {"int": int, "float": float, "str": str}
    for f in fields(Config):
        if f.type in scalar_types:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=scalar_types[f.type],
                                default=getattr(Config(), f.name))
    main(Config(**vars(parser.parse_args())))
