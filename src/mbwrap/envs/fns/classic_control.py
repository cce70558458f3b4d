"""Reward and termination of Gymnasium's ``CartPole-v1``, ``Pendulum-v1`` and
``MountainCarContinuous-v0``, for their default constructor arguments (Gymnasium 1.4).

Each function takes ``obs: [B, *obs_shape]``, ``action: [B, *act_shape]`` (CartPole:
int64 ``[B]``) and ``next_obs: [B, *obs_shape]`` and returns ``[B]``; all of them stay on
the inputs' device.
"""

from __future__ import annotations

import functools
import math

import torch

from mbwrap.envs.fns.base import EnvFns

# gymnasium/envs/classic_control/cartpole.py, CartPoleEnv.__init__
_CARTPOLE_X_THRESHOLD = 2.4
_CARTPOLE_THETA_THRESHOLD = 12 * 2 * math.pi / 360

# gymnasium/envs/classic_control/pendulum.py, PendulumEnv.__init__ and .step (the costs)
_PENDULUM_MAX_TORQUE = 2.0
_PENDULUM_REWARD_WEIGHTS = (-1.0, -0.1, -0.001)

# gymnasium/envs/classic_control/continuous_mountain_car.py, Continuous_MountainCarEnv.__init__
_MOUNTAIN_CAR_GOAL_POSITION = 0.45
_MOUNTAIN_CAR_GOAL_VELOCITY = 0.0  # the default ``goal_velocity=0``


def _never_terminates(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """All ``False``, ``[B]``: the task ends only by the ``TimeLimit`` wrapper's truncation."""
    return torch.zeros(next_obs.shape[0], dtype=torch.bool, device=next_obs.device)


def _cartpole_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """``1`` for every step, the terminating one included (``sutton_barto_reward=False``).

    :return: ``[B]`` in ``next_obs``'s dtype.
    """
    return next_obs.new_ones(next_obs.shape[0])


def _cartpole_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Cart position ``next_obs[:, 0]`` beyond ``±2.4`` or pole angle ``next_obs[:, 2]``
    beyond ``±12°`` (``CartPoleEnv.step``).

    :return: ``[B]`` bool.
    """
    # The env compares its float64 state and then rounds the observation to float32, so
    # the two can disagree within one float32 ulp of a threshold.
    x, theta = next_obs[:, 0], next_obs[:, 2]
    return (x.abs() > _CARTPOLE_X_THRESHOLD) | (theta.abs() > _CARTPOLE_THETA_THRESHOLD)


def _pendulum_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """``-(θ² + 0.1 θ̇² + 0.001 u²)`` of the pre-step state (``PendulumEnv.step``).

    ``θ`` is ``atan2(sin, cos)`` of ``obs[:, :2] = [cos θ, sin θ]``, which squares to the
    same value as the env's ``angle_normalize``; ``θ̇ = obs[:, 2]``; ``u`` is the action
    clipped to ``[-2, 2]`` as the env clips it.

    :return: ``[B]``.
    """
    cos, sin, theta_dot = obs.unbind(1)
    torque = (action if action.ndim == 2 else action.reshape(action.shape[0], -1)).select(1, 0)
    torque = torque.clamp(-_PENDULUM_MAX_TORQUE, _PENDULUM_MAX_TORQUE)
    # One weighted sum over the stacked terms (vecdot: the products, then their sum over
    # dim 0, in one call): this runs every imagined step, where each op (and each Python
    # scalar wrapped as a tensor) costs more than its arithmetic at small batches.
    terms = torch.stack([torch.atan2(sin, cos), theta_dot, torque]).square()  # [3, B]
    weights = _pendulum_reward_weights(terms.device, terms.dtype)
    return torch.linalg.vecdot(terms, weights, dim=0)


@functools.cache
def _pendulum_reward_weights(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[3, 1]``: the weights of ``θ², θ̇², u²`` in the reward, made once per device."""
    return torch.tensor(_PENDULUM_REWARD_WEIGHTS, dtype=dtype, device=device).reshape(3, 1)


def _mountain_car_continuous_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Position ``next_obs[:, 0] >= 0.45`` and velocity ``next_obs[:, 1] >= 0``.

    :return: ``[B]`` bool.
    """
    position, velocity = next_obs[:, 0], next_obs[:, 1]
    return (position >= _MOUNTAIN_CAR_GOAL_POSITION) & (velocity >= _MOUNTAIN_CAR_GOAL_VELOCITY)


def _mountain_car_continuous_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """``100`` on reaching the goal, minus ``0.1 a²``.

    The env clips the force it applies but charges for the action as given, so ``a`` is
    not clipped here either.

    :return: ``[B]``.
    """
    power = action.reshape(action.shape[0], -1)[:, 0]
    goal = _mountain_car_continuous_termination(obs, action, next_obs)
    return 100.0 * goal.to(power.dtype) - 0.1 * power.square()


CARTPOLE_FNS = EnvFns(reward=_cartpole_reward, termination=_cartpole_termination)
PENDULUM_FNS = EnvFns(reward=_pendulum_reward, termination=_never_terminates)
MOUNTAIN_CAR_CONTINUOUS_FNS = EnvFns(
    reward=_mountain_car_continuous_reward, termination=_mountain_car_continuous_termination
)
