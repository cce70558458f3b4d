"""ME-TRPO's policy validation (Kurutach et al. 2018, section 4.3): the policy's imagined
return under each ensemble member, the fraction of members under which it rose, the rule
that ends a policy-improvement phase, and the real episodes' first observations that
imagined and validation episodes start from."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mbwrap.envs import DreamVecEnv
from mbwrap.models import WorldModel
from mbwrap.types import Transition


# ---------------------------------------------------------------------------- the stop rule
def improvement_ratio(old_returns: Any, new_returns: Any) -> float:
    """The fraction of ensemble members under which the policy's return strictly rose:
    ``(1/K) sum_k 1[new_returns[k] > old_returns[k]]`` (Kurutach et al. 2018, section 4.3).

    :param old_returns: ``[K]``, the imagined return of the reference policy under member k.
    :param new_returns: ``[K]``, the same for the updated policy.
    :return: a float in ``[0, 1]``.
    """
    old = np.asarray(old_returns, dtype=np.float64).reshape(-1)
    new = np.asarray(new_returns, dtype=np.float64).reshape(-1)
    if old.shape != new.shape or old.size == 0:
        raise ValueError(
            f"old_returns, new_returns: expected two non-empty [K] arrays of one size, got "
            f"shapes {old.shape} and {new.shape}"
        )
    return float(np.mean(new > old))


def should_stop(
    iteration: int, last_improvement: int, *, patience: int, max_iterations: int
) -> bool:
    """Whether policy improvement on the current models ends after TRPO ``iteration``.

    It ends when the last validation that counted as an improvement is ``patience`` or more
    TRPO iterations back (the paper "tolerates a small number of updates in case the
    performance improves"), or after ``max_iterations``.

    :param iteration: TRPO iterations run in this policy-improvement phase.
    :param last_improvement: the iteration of the last improving validation (0 before any).
    """
    return iteration - last_improvement >= patience or iteration >= max_iterations


# ---------------------------------------------------------------------------- validation
def ensemble_members(model: WorldModel) -> list[int | None]:
    """The members a policy is validated under: the ensemble's elites when it keeps some,
    else all of its members; ``[None]`` (the model as it is) for a single model."""
    elites = getattr(model, "elite_indices", None)
    if elites is not None:
        return [int(k) for k in torch.as_tensor(elites).reshape(-1).tolist()]
    size = getattr(model, "ensemble_size", None)
    return list(range(int(size))) if size else [None]


def member_returns(
    policy: Any,
    model: WorldModel,
    start_obs: torch.Tensor,
    horizon: int,
    *,
    members: list[int | None],
    seed: int,
) -> np.ndarray:
    """Undiscounted imagined return of ``policy``'s deterministic action from each start
    state, under each member, averaged over the start states (the authors' code validates
    the policy's mean action, undiscounted, from fixed start states).

    Every member sees the same start states and the same seed, so two calls with different
    policies are compared on common random numbers.

    :param policy: anything with SB3's ``predict``.
    :param start_obs: ``[N, *obs_shape]``, one imagined episode from each.
    :param horizon: the longest imagined episode.
    :return: ``[K]``, one mean return per entry of ``members``.
    """
    n = start_obs.shape[0]

    def starts(count: int, generator: torch.Generator) -> torch.Tensor:
        return start_obs[:count]  # all of them, in order, at the first reset

    returns = np.zeros(len(members))
    for index, member in enumerate(members):
        venv = DreamVecEnv(model, num_envs=n, start_states=starts, horizon=horizon, member=member)
        obs, _ = venv.reset(seed=seed)
        total = np.zeros(n)
        running = np.ones(n, dtype=bool)
        while running.any():
            actions, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = venv.step(actions)
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
        returns[index] = total.mean()
    return returns


# ---------------------------------------------------------------------------- real data
def episode_starts(first: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Which of ``T`` consecutive real vector steps were taken from an episode's first
    observation: step 0 where ``first``, step ``t`` where step ``t - 1`` ended an episode.

    :param first: ``[n_envs]`` bool, the envs whose current episode had just begun.
    :param done: ``[T, n_envs]`` bool, ``terminated | truncated`` of each step.
    :return: ``[T, n_envs]`` bool.
    """
    return torch.cat([first.reshape(1, -1).to(done), done[:-1]])


def first_observations(data: Transition, first: torch.Tensor, steps: int) -> torch.Tensor:
    """The first observations of the episodes begun in the newest ``steps`` vector steps.

    :param data: transitions, oldest first, ``n_envs`` per vector step.
    :param first: ``[n_envs]`` bool, the envs whose episode had just begun before them.
    :return: ``[M, *obs_shape]``, in the order the episodes began.
    """
    n_envs = first.shape[0]
    obs = data.obs[-steps * n_envs :].reshape(steps, n_envs, *data.obs.shape[1:])
    done = (data.terminated | data.truncated)[-steps * n_envs :].reshape(steps, n_envs)
    return obs[episode_starts(first.to(done.device), done)]
