"""Seconds per planning decision of mbrl-lib's PETS planner (CEM over a Gaussian ensemble).

Wall-clock time of ``TrajectoryOptimizerAgent.act``, on CPU by default, with random (untrained)
model weights: how fast a decision is does not depend on how well the model is fitted.

This is the mbrl-lib half of the planning-speed comparison with mbwrap's CEM. It must run in
mbrl-lib's own virtual environment (see ``benchmarks/setup_mbrl_venv.sh``) and never imports
mbwrap. What it builds is what ``mbrl.algorithms.pets`` builds from mbrl-lib's example configs
(``algorithm/pets.yaml``, ``dynamics_model/gaussian_mlp_ensemble.yaml``,
``action_optimizer/cem.yaml``), only with the sizes and CEM settings given on the command line:

* a ``mbrl.models.GaussianMLP`` ensemble (SiLU, ``--layers`` hidden layers of ``--hidden``
  units, learned rewards off, delta targets, input normaliser in double precision) wrapped in
  ``OneDTransitionRewardModel`` and ``ModelEnv``, with a known batched reward and no
  termination (as mbrl-lib's HalfCheetah PETS config has);
* a ``mbrl.planning.TrajectoryOptimizerAgent`` with a ``CEMOptimizer`` made by
  ``create_trajectory_optim_agent_for_model`` (``replan_freq=1``, ``keep_last_solution`` left at
  its default ``True``, ``return_mean_elites=True``, truncated-normal sampling), scoring each
  candidate as the mean return of ``--particles`` particles.

Uncertainty propagation defaults to ``random_model``, the one mbrl-lib's PETS example config
uses (TS1: at every step the particles are dealt out afresh, in equal shares, to the ensemble
members); ``--propagation fixed_model`` gives TS-inf (one member per particle for the whole
horizon) and ``expectation`` runs every particle through every member and averages.

Each timed decision is one ``agent.act(obs)`` call, which runs the whole CEM optimisation
(``replan_freq=1``), after one warm-up call per agent. mbrl-lib plans for one observation at
a time (``ModelEnv.evaluate_action_sequences`` takes a single state), so with ``--num-envs N``
one decision is N sequential ``act`` calls on N agents (one per env, as each agent keeps its
own shifted last solution), which is what a user of mbrl-lib would have to do.

Prints one line of JSON. Usage::

    .peers/mbrl-venv/bin/python benchmarks/_mbrl_cem_decision.py               # HalfCheetah-sized
    .peers/mbrl-venv/bin/python benchmarks/_mbrl_cem_decision.py --obs-dim 3 --act-dim 1

(``$MBWRAP_PEERS_DIR/mbrl-venv`` when that variable is set; see setup_mbrl_venv.sh.)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import mbrl
import mbrl.models
import mbrl.planning
import mbrl.util.common
import numpy as np
import omegaconf
import torch


class _SpacesOnlyEnv(gym.Env):
    """Carries the observation and action spaces, the only thing ``ModelEnv`` reads from the
    real environment; planning never steps it."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)


def reward_fn(actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Quadratic cost, batched: ``-|next_obs|^2 - 0.1 |action|^2``, shape ``(B, 1)``.

    A known (not learned) reward, as mbrl-lib's PETS uses with ``learned_rewards: false``.
    """
    return (-(next_obs**2).sum(dim=1) - 0.1 * (actions**2).sum(dim=1)).unsqueeze(1)


def termination_fn(actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Never terminates (mbrl-lib's ``no_termination``), shape ``(B, 1)``."""
    del actions
    return torch.zeros(next_obs.shape[0], 1, dtype=torch.bool, device=next_obs.device)


def build_cfg(args: argparse.Namespace, device: str) -> omegaconf.DictConfig:
    """mbrl-lib's PETS example config, flattened, with the sizes and CEM settings of ``args``."""
    return omegaconf.OmegaConf.create(
        {
            "device": device,
            "dynamics_model": {
                "_target_": "mbrl.models.GaussianMLP",
                # Hydra >= 1.1 instantiates nested configs by default; GaussianMLP expects
                # ``activation_fn_cfg`` as a config (mbrl-lib was written for Hydra 1.0.3).
                "_recursive_": False,
                "device": device,
                "num_layers": args.layers,
                "in_size": args.obs_dim + args.act_dim,
                "out_size": args.obs_dim,
                "ensemble_size": args.ensemble_size,
                "hid_size": args.hidden,
                "deterministic": False,
                "propagation_method": args.propagation,
                "learn_logvar_bounds": False,
                "activation_fn_cfg": {"_target_": "torch.nn.SiLU"},
            },
            "algorithm": {
                "agent": {
                    "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
                    # Same reason: the agent needs ``optimizer_cfg`` uninstantiated, as its
                    # bounds are only filled in by TrajectoryOptimizer.
                    "_recursive_": False,
                    "action_lb": "???",
                    "action_ub": "???",
                    "planning_horizon": args.horizon,
                    "optimizer_cfg": {
                        "_target_": "mbrl.planning.CEMOptimizer",
                        "num_iterations": args.iterations,
                        "elite_ratio": args.elite_ratio,
                        "population_size": args.population,
                        "alpha": args.alpha,
                        "lower_bound": "???",
                        "upper_bound": "???",
                        "return_mean_elites": True,
                        "device": device,
                        "clipped_normal": False,
                    },
                    "replan_freq": 1,
                    "verbose": False,
                },
                "normalize": True,
                "normalize_double_precision": True,
                "target_is_delta": True,
                "learned_rewards": False,
                "num_particles": args.particles,
            },
            # No ``num_elites``: elites are only chosen by training, and an untrained
            # ensemble plans with all its members.
            "overrides": {},
        }
    )


def build_agents(
    args: argparse.Namespace, device: str
) -> list[mbrl.planning.TrajectoryOptimizerAgent]:
    cfg = build_cfg(args, device)
    model = mbrl.util.common.create_one_dim_tr_model(cfg, (args.obs_dim,), (args.act_dim,))
    generator = torch.Generator(device=device)
    generator.manual_seed(args.seed)
    model_env = mbrl.models.ModelEnv(
        _SpacesOnlyEnv(args.obs_dim, args.act_dim),
        model,
        termination_fn,
        reward_fn,
        generator=generator,
    )
    # One agent per env: each keeps its own warm-start (the shifted last solution).
    return [
        mbrl.planning.create_trajectory_optim_agent_for_model(
            model_env, cfg.algorithm.agent.copy(), num_particles=args.particles
        )
        for _ in range(args.num_envs)
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--act-dim", type=int, default=6)
    parser.add_argument("--ensemble-size", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4, help="hidden layers")
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--population", type=int, default=350)
    parser.add_argument("--elite-ratio", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--particles", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument(
        "--propagation",
        choices=["random_model", "fixed_model", "expectation"],
        default="random_model",
        help="random_model = TS1 (mbrl-lib's PETS default); fixed_model = TS-inf",
    )
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    agents = build_agents(args, args.device)
    observations = rng.standard_normal((args.num_envs, args.obs_dim)).astype(np.float32)

    def decide() -> None:
        for agent, obs in zip(agents, observations, strict=True):
            agent.act(obs)

    decide()  # warm-up: first-call allocations, and each agent's warm start becomes a real one
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds: list[float] = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        decide()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)

    median = statistics.median(seconds)
    result: dict[str, Any] = {
        "library": "mbrl-lib",
        "version": mbrl.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        # One decision = actions for all ``num_envs`` envs (sequential ``act`` calls).
        "seconds_per_decision": seconds,
        "median": median,
        "median_per_env": median / args.num_envs,
        "obs_dim": args.obs_dim,
        "act_dim": args.act_dim,
        "ensemble_size": args.ensemble_size,
        "hidden": args.hidden,
        "layers": args.layers,
        "activation": "SiLU",
        "horizon": args.horizon,
        "population": args.population,
        "elite_ratio": args.elite_ratio,
        "elite_num": int(agents[0].optimizer.optimizer.elite_num),
        "iterations": args.iterations,
        "particles": args.particles,
        "alpha": args.alpha,
        "propagation": args.propagation,
        "keep_last_solution": agents[0].optimizer.keep_last_solution,
        "return_mean_elites": True,
        "clipped_normal": False,
        "normalize_double_precision": True,
        "num_envs": args.num_envs,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
