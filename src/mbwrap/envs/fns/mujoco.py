"""Reward and termination of Gymnasium's MuJoCo ``*-v5`` tasks, for their default
constructor arguments (Gymnasium 1.4, ``gymnasium/envs/mujoco/*_v5.py``).

Termination is known for all of them. Reward is known for ``InvertedPendulum-v5`` and
``Reacher-v5``: the others pay for forward progress measured by a position the default
observation leaves out (``exclude_current_positions_from_observation=True``), so their
``reward`` is ``None`` and the model's own reward head is used.

Each function takes ``obs: [B, obs_dim]``, ``action: [B, act_dim]`` and
``next_obs: [B, obs_dim]`` and returns ``[B]`` on the inputs' device.
"""

from __future__ import annotations

import torch

from mbwrap.envs.fns.base import EnvFns


def _never_terminates(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """All ``False``, ``[B]``: the task ends only by the ``TimeLimit`` wrapper's truncation."""
    return torch.zeros(next_obs.shape[0], dtype=torch.bool, device=next_obs.device)


def _inside(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``low < x < high`` elementwise; NaN is outside, as in the envs' Python comparisons."""
    return (x > low) & (x < high)


# --- InvertedPendulum-v5 (inverted_pendulum_v5.py) ------------------------------------------
# obs = [qpos (slider, hinge), qvel (slider, hinge)], unclipped.


def _inverted_pendulum_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """A non-finite observation, or pole angle ``|next_obs[:, 1]| > 0.2``: ``[B]`` bool."""
    return ~torch.isfinite(next_obs).all(dim=-1) | (next_obs[:, 1].abs() > 0.2)


def _inverted_pendulum_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """``1`` while the pole stays up, ``0`` on the step that terminates: ``[B]``."""
    terminated = _inverted_pendulum_termination(obs, action, next_obs)
    return (~terminated).to(next_obs.dtype)


# --- InvertedDoublePendulum-v5 (inverted_double_pendulum_v5.py) ----------------------------
# obs = [cart x, sin q1, sin q2, cos q1, cos q2, clip(qvel, ±10) (3), clip(qfrc_constraint[0])].
# Both links are 0.6 long and hinge about y (assets/inverted_double_pendulum.xml), so the
# tip's height above the rail is 0.6 cos q1 + 0.6 cos(q1 + q2).
_DOUBLE_PENDULUM_LINK = 0.6


def _inverted_double_pendulum_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Tip height ``<= 1`` (``y <= 1`` of ``site_xpos[0]`` in ``step``): ``[B]`` bool.

    The env reads the tip from MuJoCo's ``site_xpos``, which ``mj_step`` leaves from the last
    RK4 stage rather than the final state; it differs from the height of the observed
    angles by up to about 5e-5, so the two can disagree only that close to the threshold.
    """
    sin1, sin2, cos1, cos2 = next_obs[:, 1], next_obs[:, 2], next_obs[:, 3], next_obs[:, 4]
    cos12 = cos1 * cos2 - sin1 * sin2
    height = _DOUBLE_PENDULUM_LINK * (cos1 + cos12)
    return height <= 1.0


# Reward is None: its distance penalty uses the same stale site_xpos, and its velocity
# penalty uses qvel[1:3], which the observation clips to ±10.


# --- Hopper-v5 (hopper_v5.py) ---------------------------------------------------------------
# obs = [qpos[1:] (z, torso angle, 3 joints), clip(qvel, ±10) (6)]. Defaults:
# healthy_z_range=(0.7, inf), healthy_angle_range=(-0.2, 0.2),
# healthy_state_range=(-100, 100) over state_vector()[2:] = qpos[2:] and qvel.


def _hopper_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Not ``is_healthy`` (``terminate_when_unhealthy=True``): ``[B]`` bool.

    The state check runs over ``next_obs[:, 1:]``; the env runs it on unclipped
    velocities, so a real velocity beyond ±100 (seen as ±10) is the one case it misses.
    """
    z, angle, state = next_obs[:, 0], next_obs[:, 1], next_obs[:, 1:]
    healthy = (
        _inside(state, -100.0, 100.0).all(dim=-1)
        & _inside(z, 0.7, float("inf"))
        & _inside(angle, -0.2, 0.2)
    )
    return ~healthy


# Reward is None for Hopper, Walker2d and HalfCheetah: forward_reward is
# (qpos[0] after - qpos[0] before) / dt, and qpos[0] is not observed.


# --- Walker2d-v5 (walker2d_v5.py) -----------------------------------------------------------
# obs = [qpos[1:] (z, torso angle, 6 joints), clip(qvel, ±10) (9)]. Defaults:
# healthy_z_range=(0.8, 2.0), healthy_angle_range=(-1, 1).


def _walker2d_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Not ``is_healthy`` (``terminate_when_unhealthy=True``): ``[B]`` bool."""
    z, angle = next_obs[:, 0], next_obs[:, 1]
    return ~(_inside(z, 0.8, 2.0) & _inside(angle, -1.0, 1.0))


# --- Ant-v5 (ant_v5.py) ---------------------------------------------------------------------
# obs = [qpos[2:] (13), qvel (14), clip(cfrc_ext[1:], ±1) (78)]. Default
# healthy_z_range=(0.2, 1.0), inclusive here, unlike the other tasks.
_ANT_QPOS_QVEL_DIM = 13 + 14


def _ant_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Not ``is_healthy``: a non-finite ``qpos``/``qvel`` or torso height ``next_obs[:, 0]``
    outside ``[0.2, 1.0]``. ``[B]`` bool.

    The env also checks the unobserved x-y position for finiteness; it integrates the
    observed velocities, so it is non-finite only when they are.
    """
    state, z = next_obs[:, :_ANT_QPOS_QVEL_DIM], next_obs[:, 0]
    healthy = torch.isfinite(state).all(dim=-1) & (z >= 0.2) & (z <= 1.0)
    return ~healthy


# Reward is None for Ant and Humanoid: forward_reward is the x displacement of the torso
# (Ant) or of the centre of mass (Humanoid) over the step, neither of which is observed.


# --- Humanoid-v5 (humanoid_v5.py) -----------------------------------------------------------
# obs = [qpos[2:] (22), qvel (23), cinert, cvel, qfrc_actuator, cfrc_ext]. Default
# healthy_z_range=(1.0, 2.0).


def _humanoid_termination(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """Not ``is_healthy``: torso height ``next_obs[:, 0]`` outside ``(1, 2)``. ``[B]`` bool."""
    return ~_inside(next_obs[:, 0], 1.0, 2.0)


# --- Reacher-v5 (reacher_v5.py) ----------------------------------------------------------
# obs = [cos q (2), sin q (2), target xy (2), qvel (2), (fingertip - target) xy (2)]; the
# reward is computed after the simulation step, from the new fingertip-target vector (whose
# z component is 0: both bodies sit at the same height).


def _reacher_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """``-|fingertip - target| - |a|^2`` (default weights 1 and 1), ``[B]``."""
    distance = torch.linalg.vector_norm(next_obs[:, 8:10], dim=-1)
    return -distance - action.square().sum(-1)


INVERTED_PENDULUM_FNS = EnvFns(
    reward=_inverted_pendulum_reward, termination=_inverted_pendulum_termination
)
INVERTED_DOUBLE_PENDULUM_FNS = EnvFns(
    reward=None, termination=_inverted_double_pendulum_termination
)
HOPPER_FNS = EnvFns(reward=None, termination=_hopper_termination)
WALKER2D_FNS = EnvFns(reward=None, termination=_walker2d_termination)
# HalfCheetah-v5 never terminates (step returns terminated=False).
HALF_CHEETAH_FNS = EnvFns(reward=None, termination=_never_terminates)
# Reacher-v5 never terminates either.
REACHER_FNS = EnvFns(reward=_reacher_reward, termination=_never_terminates)
ANT_FNS = EnvFns(reward=None, termination=_ant_termination)
HUMANOID_FNS = EnvFns(reward=None, termination=_humanoid_termination)
