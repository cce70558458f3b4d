"""Settings tuned for small real-step budgets on classic-control tasks.

The algorithms' defaults are the papers' (MuJoCo scale: thousands of random steps,
100,000 rollouts per refit). These presets are what the demo, the benchmarks and the
learning tests use on small tasks, in one place so that all three agree:
``make_algo(name, env, **PRESETS[(name, env_id)])``.
"""

from __future__ import annotations

from typing import Any

from mbwrap.algos.dreamer import DREAMER_CARTPOLE, DREAMER_PENDULUM
from mbwrap.algos.mb_mf import PENDULUM_MB_MF
from mbwrap.algos.muzero import MUZERO_CARTPOLE

# CartPole mission (the demo). Dyna with PPO on short rollouts of 16 imagined episodes of
# up to 200 steps from real states; the model is refitted every 500 real steps.
CARTPOLE_DYNA: dict[str, Any] = {
    "agent": "PPO",
    "model": "mlp",
    "agent_kwargs": {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3},
    "num_envs": 16,
    "horizon": 200,
    "real_steps_per_iteration": 500,
    "imagined_steps_per_iteration": 16_384,
    "initial_random_steps": 1_000,
}

# MBPO on Pendulum at small scale: one episode per epoch, a refit every 50 real steps with
# 2000 rollouts (40 per real step), k = 1, and a smaller, faster-learning SAC (learning
# rate 1e-3 as rl-baselines3-zoo uses for Pendulum, entropy coefficient starting at 0.1).
PENDULUM_MBPO: dict[str, Any] = {
    "agent_kwargs": {
        "learning_rate": 1e-3,
        "ent_coef": "auto_0.1",
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "epoch_length": 200,
    "model_train_freq": 50,
    "rollout_batch_size": 2000,
    "rollout_schedule": (0, 10, 1, 1),
    "updates_per_step": 20,
    "initial_random_steps": 200,
}

# PETS on Pendulum at CPU scale: the ensemble of 5 (TS1) with 3 x 64 hidden units, trained
# 20 epochs in batches of 32 (PETS's batch size) after every episode, and a CEM of 200
# candidates, 20 elites, 4 iterations over 25 steps with 2 particles (PETS's own settings,
# 500 x 5 x 30 x 20, cost about 37 times as much per decision). A 15-step horizon swung
# the pendulum up from most starts but not from hanging still at the bottom.
PENDULUM_PETS: dict[str, Any] = {
    "model_kwargs": {
        "ensemble_size": 5,
        "num_elites": 5,
        "propagation": "ts1",
        "hidden_sizes": [64, 64, 64],
        "batch_size": 32,
    },
    "planner_kwargs": {
        "population": 200,
        "num_elites": 20,
        "iterations": 4,
        "horizon": 25,
        "particles": 2,
    },
    "fit_kwargs": {"epochs": 20},
}

# PETS on MuJoCo's small tasks at CPU scale, the same ensemble and a lighter CEM (their
# dynamics are smoother and their reward is known: registered in mbwrap.fns).
INVERTED_PENDULUM_PETS: dict[str, Any] = {
    **PENDULUM_PETS,
    "planner_kwargs": {
        "population": 100,
        "num_elites": 10,
        "iterations": 3,
        "horizon": 15,
        "particles": 2,
    },
}
REACHER_PETS: dict[str, Any] = {
    **PENDULUM_PETS,
    "planner_kwargs": {
        "population": 200,
        "num_elites": 20,
        "iterations": 4,
        "horizon": 10,
        "particles": 2,
    },
}

#: ``(algorithm name, env id) -> keyword arguments of make_algo``.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("dyna", "CartPole-v1"): CARTPOLE_DYNA,
    ("mbpo", "Pendulum-v1"): PENDULUM_MBPO,
    ("pets", "Pendulum-v1"): PENDULUM_PETS,
    ("pets", "InvertedPendulum-v5"): INVERTED_PENDULUM_PETS,
    ("pets", "Reacher-v5"): REACHER_PETS,
    # Defined beside the algorithm (8,000 real steps: PENDULUM_MB_MF_TIMESTEPS).
    ("mb-mf", "Pendulum-v1"): PENDULUM_MB_MF,
    # Defined beside the algorithm (Gumbel search, 16 simulations, 8 envs).
    ("muzero", "CartPole-v1"): MUZERO_CARTPOLE,
    # Defined beside the algorithm (a small RSSM, 1 gradient step per 8 env steps).
    ("dreamer", "CartPole-v1"): DREAMER_CARTPOLE,
    ("dreamer", "Pendulum-v1"): DREAMER_PENDULUM,
}
