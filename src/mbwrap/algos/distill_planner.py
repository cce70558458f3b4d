"""A planner distilled into an SB3 policy by DAgger: MB-MF's behaviour cloning and data
aggregation (Nagabandi et al. 2018, Section V; Ross, Gordon & Bagnell 2011), for any
planner and any SB3 agent with a policy network. The policy then acts alone, in a fraction
of the planner's decision time, or seeds the planner's search (POPLIN-A, Wang & Ba 2019:
:class:`~mbwrap.planners.POPLINA`)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from mbwrap.algos.agents import resolve_agent
from mbwrap.algos.mb_mf_distill import (
    BC_LOSSES,
    check_distillable,
    clone,
    cloning_optimizer,
)
from mbwrap.device import resolve_device
from mbwrap.envs.sb3_vec_env import wrap_env
from mbwrap.planners import Planner


def _rollout(
    env: gym.Env, act: Any, steps: int, seed: int | None
) -> tuple[np.ndarray, np.ndarray, list[float], list[int]]:
    """``steps`` real steps of ``act(obs) -> action`` from a reset: the observations acted
    on ``[steps, *obs_shape]``, the actions ``[steps, *act_shape]``, the returns of the
    episodes that ended and the index of each episode's first step."""
    obs, _ = env.reset(seed=seed)
    seen, taken, returns, starts, total = [], [], [], [0], 0.0
    for step in range(steps):
        seen.append(obs)
        taken.append(act(obs))
        obs, reward, terminated, truncated, _ = env.step(taken[-1])
        total += float(reward)
        if terminated or truncated:
            returns.append(total)
            total = 0.0
            obs, _ = env.reset()
            if step + 1 < steps:
                starts.append(step + 1)
    return np.stack(seen), np.stack(taken), returns, starts


def label_in_order(planner: Planner, obs: np.ndarray, starts: list[int]) -> np.ndarray:
    """The planner's actions on the states of whole episodes, each episode in its own order
    so the planner warm-starts from its plan for the previous state, as when it acts; the
    episodes are planned side by side, one batched call per time step.

    :param obs: ``[N, *obs_shape]``, episodes one after another.
    :param starts: the index of each episode's first state in ``obs``.
    :return: ``[N, *act_shape]``.
    """
    bounds = [*starts, len(obs)]
    lengths = [b - a for a, b in itertools.pairwise(bounds)]
    longest = max(lengths)
    # Shorter episodes repeat their last state; those labels are dropped.
    index = np.array(
        [[a + min(t, n - 1) for t in range(longest)] for a, n in zip(starts, lengths, strict=True)]
    )  # [E, T]
    planner.reset()
    labels = []
    for t in range(longest):
        first = np.full(len(starts), t == 0)
        labels.append(planner.predict(obs[index[:, t]], episode_start=first, deterministic=True)[0])
    planner.reset()
    grid = np.stack(labels, axis=1)  # [E, T, *act_shape]
    return np.concatenate([grid[e, :n] for e, n in enumerate(lengths)])


def distill_planner(
    planner: Planner,
    env: gym.Env,
    agent: Any = "SAC",
    *,
    agent_kwargs: dict[str, Any] | None = None,
    iterations: int = 3,
    steps_per_iteration: int = 2000,
    bc_loss: str = "mse",
    bc_epochs: int = 300,
    bc_batch_size: int = 512,
    bc_learning_rate: float = 1e-3,
    seed: int | None = None,
    device: str | torch.device = "auto",
) -> tuple[BaseAlgorithm, list[dict[str, float]]]:
    """Distil ``planner`` into ``agent``'s policy with DAgger.

    The planner acts for ``steps_per_iteration`` real steps; its (observation, action)
    pairs are cloned into the policy. Then, ``iterations`` times, the policy acts for as
    many steps (deterministically), the planner labels every state it visited (each episode
    in order, so that it warm-starts as when it acts: :func:`label_in_order`), and the
    policy is cloned again on all pairs so far. Defaults are MB-MF's (3 DAgger iterations
    of 2 rollouts of 1000 steps, 300 epochs of Adam at 1e-3 on batches of 512; the squared
    error of the deterministic actions, ``bc_loss="mse"``).

    :param planner: the expert, planning over a model of ``env``.
    :param env: the real env (a ``gymnasium.Env``).
    :param agent: an SB3 algorithm with a policy network: a name, a class (built with
        ``agent_kwargs``) or an instance.
    :return: ``(agent, report)``: one entry per round (0: the planner's own), with
        ``iteration``, ``pairs``, the mean ``return`` of the episodes the acting policy
        finished in it (NaN if none), its ``decision_ms`` (per real step), and the cloning
        fit's ``bc_loss`` and ``expert_gap`` (mean squared difference from the planner's
        actions in ``[-1, 1]`` units, on all pairs).
    """
    if not isinstance(planner, Planner):
        raise TypeError(f"planner: expected an mbwrap Planner, got {type(planner).__name__}")
    if not isinstance(env, gym.Env):
        raise TypeError(f"env: expected a gymnasium.Env, got {type(env).__name__}")
    for name, value, low in (("iterations", iterations, 0), ("steps", steps_per_iteration, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            name = "steps_per_iteration" if name == "steps" else name
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    if bc_loss not in BC_LOSSES:
        raise ValueError(f"bc_loss: expected one of {list(BC_LOSSES)}, got {bc_loss!r}")
    vec_env = wrap_env(env)
    built, _, _ = resolve_agent(
        agent, agent_kwargs, vec_env, seed=seed, device=resolve_device(device)
    )
    check_distillable(type(built), env.action_space, bc_loss=bc_loss, critic_warmup_steps=0)
    optimizer = cloning_optimizer(built, loss=bc_loss, learning_rate=bc_learning_rate)
    device = built.device

    def planner_acts(obs: np.ndarray) -> np.ndarray:
        return planner.predict(obs[None], deterministic=True)[0][0]

    def policy_acts(obs: np.ndarray) -> np.ndarray:
        return built.predict(obs, deterministic=True)[0]

    report: list[dict[str, float]] = []
    all_obs: list[torch.Tensor] = []
    all_actions: list[torch.Tensor] = []
    for iteration in range(iterations + 1):
        act = planner_acts if iteration == 0 else policy_acts
        planner.reset()
        start = time.perf_counter()
        episode_seed = None if seed is None else seed + iteration
        obs, actions, returns, starts = _rollout(env, act, steps_per_iteration, episode_seed)
        decision_ms = 1000 * (time.perf_counter() - start) / steps_per_iteration
        obs_t = torch.as_tensor(obs, device=device)
        all_obs.append(obs_t)
        # The planner's own round is labelled by what it did; later rounds by asking it.
        labels = torch.as_tensor(
            actions if iteration == 0 else label_in_order(planner, obs, starts)
        )
        all_actions.append(labels.to(device))
        fit = clone(
            built,
            optimizer,
            torch.cat(all_obs),
            torch.cat(all_actions).float(),
            loss=bc_loss,
            epochs=bc_epochs,
            batch_size=bc_batch_size,
        )
        report.append(
            {
                "iteration": float(iteration),
                "pairs": float(fit["pairs"]),
                "return": float(np.mean(returns)) if returns else float("nan"),
                "decision_ms": decision_ms,
                "bc_loss": fit["bc_loss"],
                "expert_gap": fit["expert_gap"],
            }
        )
    return built, report
