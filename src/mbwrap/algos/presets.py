"""Settings tuned for small real-step budgets on classic-control tasks.

The algorithms' defaults are the papers' (MuJoCo scale: thousands of random steps,
100,000 rollouts per refit). These presets are what the demo, the benchmarks and the
learning tests use on small tasks, in one place so that all three agree:
``make_algo(name, env, **PRESETS[(name, env_id)])``.
"""

from __future__ import annotations

import math
from typing import Any

# CartPole mission (the demo). Dyna with PPO on short rollouts of 16 imagined episodes of
# up to 200 steps from real states; the model is refitted every 500 real steps.
CARTPOLE_DYNA: dict[str, Any] = {
    "agent": "PPO",
    "model": "mlp",
    "agent_kwargs": {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3},
    "num_imagined_envs": 16,
    "imagination_horizon": 200,
    "train_freq": 500,
    "imagined_steps": 16_384,
    "learning_starts": 1_000,
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
    "gradient_steps": 20,
    "learning_starts": 200,
}

# MBPO with DQN on CartPole-v1 (discrete actions) at small scale: a small ensemble refitted
# every 100 real steps, then 1000 rollouts (10 per real step) of k = 1 growing to 5 by
# epoch 5; 5 DQN updates per real step on batches of 30% real transitions. DQN's target
# network follows by Polyak averaging (tau 0.01 per real step) instead of SB3's periodic
# copies, which made the greedy policy swing between evaluations.
CARTPOLE_MBPO: dict[str, Any] = {
    "agent": "DQN",
    "agent_kwargs": {
        "learning_rate": 1e-3,
        "batch_size": 64,
        "target_update_interval": 1,
        "tau": 0.01,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.02,
        "policy_kwargs": {"net_arch": [128, 128]},
    },
    "model_kwargs": {"hidden_sizes": [64, 64], "ensemble_size": 5, "num_elites": 3},
    "epoch_length": 200,
    "model_train_freq": 100,
    "rollout_batch_size": 1000,
    "rollout_schedule": (0, 5, 1, 5),
    "gradient_steps": 5,
    "real_ratio": 0.3,
    "learning_starts": 200,
}

# PETS on Pendulum at CPU scale: the ensemble of 5 (TS1) with 3 x 64 hidden units, trained
# 20 epochs in batches of 32 (PETS's batch size) after every episode, and a CEM of 200
# candidates, 20 elites, 4 iterations over 25 steps with 2 particles (PETS's own
# 500 x 5 x 30 x 20 costs about 37 times as much per decision).
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

# MB-MF on Pendulum-v1 at small scale: a smaller model than the paper's, random shooting
# with the released cheetah config's 1000 candidates over 20 steps, 4 DAgger rounds, then
# SAC with rl-baselines3-zoo's Pendulum learning rate and a critic warm-up
# (benchmarks/RESULTS.md, "MB-MF", explains each choice).
PENDULUM_MB_MF: dict[str, Any] = {
    "agent": "SAC",
    "agent_kwargs": {"learning_rate": 1e-3, "ent_coef": "auto_0.1"},
    "model_kwargs": {"hidden_sizes": [64, 64], "batch_size": 32, "max_epochs": 200, "patience": 10},
    "planner_kwargs": {"population": 1000, "horizon": 20},
    "learning_starts": 400,
    "model_based_steps": 1800,
    "model_train_freq": 200,
    "dagger_iterations": 4,
    "dagger_steps": 200,
    "bc_epochs": 100,
    "bc_batch_size": 64,
    "critic_warmup_steps": 2000,
}
#: Real steps of a run with PENDULUM_MB_MF: 1800 model-based, 800 DAgger, the rest
#: fine-tuning.
PENDULUM_MB_MF_TIMESTEPS = 8_000

# MuZero on CartPole-v1 with 8 envs: Gumbel search (Danihelka et al. 2022: it improves the
# policy even with few simulations), small networks, MuZero's n = 10 and gamma 0.997
# (its Atari values), a support of +-20 (h(333) = 17.6 covers the discounted returns), one
# update per 2 real steps; benchmarks/RESULTS.md, "MuZero", explains the other choices.
MUZERO_CARTPOLE: dict[str, Any] = {
    "search": "gumbel",
    "num_simulations": 16,
    "gamma": 0.997,
    "n_step": 10,
    "network_kwargs": {"hidden_size": 64, "layers": 2, "support_size": 20},
    "batch_size": 128,
    "learning_rate": 1e-3,
    "value_loss_coef": 1.0,
    "priority_alpha": 0.5,
    "bootstrap_with_network": True,
    "target_update_interval": 200,
    "train_freq": 2,
    "gradient_steps": 1,
    "learning_starts": 500,
    "buffer_size": 50_000,
}

# AlphaZero on small boards: smaller networks than the paper's 19 to 39 residual blocks,
# fewer simulations than its 800 and fewer moves sampled from the visit counts than its 30
# (about a third of a typical game). AlphaZero fills the settings left None from these.
TICTACTOE_ALPHAZERO: dict[str, Any] = {
    "network_kwargs": {"kind": "mlp", "channels": 128, "blocks": 2, "value_hidden": 64},
    "num_simulations": 64,
    "temperature_moves": 3,
}
CONNECT_FOUR_ALPHAZERO: dict[str, Any] = {
    "network_kwargs": {"kind": "resnet", "channels": 64, "blocks": 4, "value_hidden": 64},
    "num_simulations": 100,
    "temperature_moves": 10,
}

# Dreamer on classic control from vector observations at CPU scale: DreamerV3's recipe
# with a much smaller model (benchmarks/RESULTS.md, "Dreamer").
DREAMER_CARTPOLE: dict[str, Any] = {
    "model_kwargs": {
        "deter": 64,
        "hidden": 64,
        "layers": 1,
        "stoch": 8,
        "classes": 8,
        "batch_size": 16,
        "sequence_length": 32,
        "learning_rate": 1e-3,
    },
    "hidden": 64,
    "layers": 1,
    "actor_learning_rate": 3e-5,
    # Ten times DreamerV3's 3e-5: at 3e-5 the zero-initialised critic of this small model
    # still valued imagined states at about 3 after 8,000 real steps, so the actor learned
    # from 15-step returns alone and the real return declined after its peak on four seeds
    # of six. At 3e-4 six seeds of six (0-5) reached 475 by 7,500 real steps and ended at
    # 409-500 at 15,000 (benchmarks/RESULTS.md, "Dreamer on CartPole-v1").
    "critic_learning_rate": 3e-4,
    # DreamerV3's train ratio 128 over batches of 16 x 32 replayed steps.
    "train_freq": 4,
    "gradient_steps": 1,
    "learning_starts": 500,
}

# Pendulum was measured (-200 on three seeds) with DreamerV3's critic learning rate.
DREAMER_PENDULUM: dict[str, Any] = {
    **DREAMER_CARTPOLE,
    "gamma": 0.99,
    "critic_learning_rate": 3e-5,
}

# World Models on CartPole seen as 64x64 grayscale frames (PixelObservation, drawn at
# 300x200), at CPU scale: a small VAE with the Bernoulli reconstruction (CartPole's frames
# are nearly all white, where the paper's L2 loss saturates; see vae_loss), a 64-unit
# LSTM, and CMA-ES with 16 candidates x 4 dreamed rollouts. Not in PRESETS: the CLI makes
# CartPole-v1 with state observations. Results: benchmarks/RESULTS.md.
WORLD_MODELS_CARTPOLE_PIXELS: dict[str, Any] = {
    "model_kwargs": {
        "latent_dim": 16,
        "vae_channels": [8, 16, 32, 64],
        "reconstruction": "bernoulli",
        "hidden_size": 64,
        "batch_size": 32,
        "vae_learning_rate": 1e-3,
    },
    "fit_kwargs": {"vae_epochs": 10, "rnn_epochs": 50},
    "population": 16,
    "rollouts": 4,
    "generations": 20,
}

# TD3 on Pendulum, the agent of MVE's and STEVE's presets and their model-free peer: a
# smaller network (64 x 64) and rl-baselines3-zoo's learning rate for Pendulum (1e-3), with
# N(0, 0.1) exploration noise and 1,000 random steps first.
PENDULUM_TD3_KWARGS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "policy_kwargs": {"net_arch": [64, 64]},
}

# MVE with that TD3 on Pendulum: H = 3 (the paper's value where its model was poor), one
# update per real step as TD3 alone, a 2 x 200 model refitted every 250 real steps, and the
# critic trained at the real states only: with the TD-k trick (three imagined rows per real
# one, all at the target policy's actions) TD3 reached -200 in 6,500 real steps on one seed
# of three and not within 8,000 on the others, without it in 2,750-3,250
# (benchmarks/RESULTS.md).
PENDULUM_MVE: dict[str, Any] = {
    "agent": "TD3",
    "agent_kwargs": PENDULUM_TD3_KWARGS,
    "model_kwargs": {"hidden_sizes": [200, 200]},
    "horizon": 3,
    "td_k": False,
    "gradient_steps": 1,
    "learning_starts": 1000,
    "model_train_freq": 250,
}

# STEVE likewise: the paper's H = 3 and 4 x 4 ensembles, the model 4 members of 2 x 200.
PENDULUM_STEVE: dict[str, Any] = {
    **{k: v for k, v in PENDULUM_MVE.items() if k != "td_k"},
    "model_kwargs": {"hidden_sizes": [200, 200], "ensemble_size": 4, "num_elites": 4},
}

# TDM on mbwrap/PointGoal-v0 (50 steps, goals up to 1.6 away at 0.1 per step): DDPG with
# 2 x 64 networks and HER's Polyak rate (Andrychowicz et al. 2017, Appendix A: 0.95, i.e.
# tau = 0.05), max_tau 5. With SB3's tau = 0.005 or max_tau 10 the success rate after 6,000
# real steps stayed at 0.2-0.8 on seeds 1 and 2; the scalar TDM stayed under 0.3 on seed 0.
POINT_GOAL_TDM: dict[str, Any] = {
    "agent": "DDPG",
    "agent_kwargs": {"policy_kwargs": {"net_arch": [64, 64]}, "tau": 0.05},
    "max_tau": 5,
    "learning_starts": 500,
}

# PILCO on its cart-pole swing-up with the planning settings of PILCO's released code for
# this task: a 4 s horizon (T = 4.0 s of dt = 0.1 s, 40 steps, beyond the 3 s episode so
# that the controller also holds the pole) and 150 line searches per optimisation
# (opt.length = 150); 200 GP points. Seeds 0, 1, 2 solved it after 5, 9 and 13 real
# episodes; with a 30-step horizon and 50 iterations, not in 15, 7 and 10 (RESULTS.md).
SWING_UP_PILCO: dict[str, Any] = {
    "horizon": 40,
    "policy_iterations": 150,
    "model_kwargs": {"max_points": 200},
}

# PILCO on Pendulum-v1, whose start angle is uniform on the circle (and its velocity on
# [-1, 1]). As PILCO's scenarios give the start distribution (mu0, S0), the task's is given
# here: eight Gaussians at angles k pi / 4 at rest, std 0.4 over the model's state (angle,
# velocity), propagated side by side over a 60-step (3 s) horizon, 50 L-BFGS iterations,
# 100 GP points. The cost is the mean of PILCO's saturating cost (width 0.5) and one of
# half its width (a scale mixture of widths, as PILCO's released code allows), which also
# charges a pole that wobbles near the top, as Pendulum's reward does (benchmarks/RESULTS.md,
# "PILCO": one episode sooner on seeds 0 and 2, seed 1 -220 against -280 after 10).
# Its cost is predicted from 50 particles per start (propagation="particles"): from upright
# and hanging the real outcomes split, which one Gaussian cannot hold (predicted 50 of 60
# against 10 real); with particles seeds 0-2 reached -200 after 7, 10 and 6 episodes.
PENDULUM_STARTS: list[list[float]] = [
    [math.cos(k * math.pi / 4), math.sin(k * math.pi / 4), 0.0] for k in range(-3, 5)
]
PENDULUM_PILCO: dict[str, Any] = {
    "policy_iterations": 50,
    "horizon": 60,
    "start_means": PENDULUM_STARTS,
    "start_std": 0.4,
    "cost_scales": [0.5, 1.0],
    "model_kwargs": {"max_points": 100},
    "propagation": "particles",
    "particles": 50,
}

# SimPLe on these CPUs: the paper's loop (16 simulated envs, 50-step rollouts from real
# frame stacks, the paper's PPO) with 42x42 frames (make_atari_vec_env(screen_size=42)), a
# video model of hidden size 16 and 3 downsampling steps, and much shorter fits and PPO
# budgets: a gradient step of the model costs about 0.14 s here on one thread at 8
# sequences of 2 steps, most of it the per-pixel 256-way softmax. Not in PRESETS: the
# frames come from make_atari_vec_env, not gymnasium.make. benchmarks/simple.py.
ATARI_SIMPLE_SMALL: dict[str, Any] = {
    "model_kwargs": {
        "hidden_size": 16,
        "compress_steps": 3,
        "bits": 16,
        "bit_predictor_size": 32,
        "batch_size": 8,
        "sequence_length": 2,
        "scheduled_sampling_decay_steps": 1_000,
        "latent_warmup_steps": 1_000,
    },
    "learning_starts": 2_000,
    "train_freq": 2_000,
    "first_fit_steps": 1_500,
    "fit_steps": 500,
    "imagined_steps": 32_000,
    "buffer_size": 20_000,
}

#: ``(algorithm name, env id) -> keyword arguments of make_algo``.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("dyna", "CartPole-v1"): CARTPOLE_DYNA,
    ("mbpo", "Pendulum-v1"): PENDULUM_MBPO,
    ("mbpo", "CartPole-v1"): CARTPOLE_MBPO,
    ("pets", "Pendulum-v1"): PENDULUM_PETS,
    ("pets", "InvertedPendulum-v5"): INVERTED_PENDULUM_PETS,
    ("pets", "Reacher-v5"): REACHER_PETS,
    ("mb-mf", "Pendulum-v1"): PENDULUM_MB_MF,
    ("muzero", "CartPole-v1"): MUZERO_CARTPOLE,
    ("alphazero", "tictactoe_v3"): TICTACTOE_ALPHAZERO,
    ("alphazero", "connect_four_v3"): CONNECT_FOUR_ALPHAZERO,
    ("dreamer", "CartPole-v1"): DREAMER_CARTPOLE,
    ("dreamer", "Pendulum-v1"): DREAMER_PENDULUM,
    ("mve", "Pendulum-v1"): PENDULUM_MVE,
    ("steve", "Pendulum-v1"): PENDULUM_STEVE,
    ("tdm", "mbwrap/PointGoal-v0"): POINT_GOAL_TDM,
    ("pilco", "mbwrap/CartPoleSwingUp-v0"): SWING_UP_PILCO,
    ("pilco", "Pendulum-v1"): PENDULUM_PILCO,
}
