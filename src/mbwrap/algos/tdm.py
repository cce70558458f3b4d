"""Temporal difference models with hindsight relabelling (TDM; Pong, Gu, Dalal & Levine
2018, "Temporal Difference Models: Model-Free Deep RL for Model-Based Control"; HER:
Andrychowicz et al. 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agent_clock import AgentClock, NoisyPolicy
from mbwrap.algos.base import Algorithm
from mbwrap.algos.tdm_config import TDMConfig
from mbwrap.algos.tdm_critic import use_goal_distance_critic
from mbwrap.algos.tdm_sampler import TDMSampler
from mbwrap.algos.tdm_targets import GOAL, HORIZON, OBSERVATION, next_horizons
from mbwrap.envs.spaces_only import spaces_only_vec_env
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.space_support import SpaceSupport

_GOAL_KEYS = (OBSERVATION, "achieved_goal", GOAL)


def horizon_space(observation_space: spaces.Dict, max_tau: int) -> spaces.Dict:
    """What a TDM's agent observes: the env's ``observation`` and ``desired_goal``, and the
    horizon ``tau`` as ``Box(0, max_tau, (1,))``.

    :raises UnsupportedSpaceError: naming ``env.observation_space`` unless it is a
        goal-conditioned ``Dict`` (Gymnasium-Robotics' layout) with flat ``Box`` goals of
        one shape.
    """
    entries = getattr(observation_space, "spaces", {})
    if not isinstance(observation_space, spaces.Dict) or not set(_GOAL_KEYS) <= set(entries):
        raise UnsupportedSpaceError(
            "env.observation_space: a TDM needs a goal-conditioned Dict with "
            f"{', '.join(_GOAL_KEYS)} entries (Gymnasium-Robotics' layout), got "
            f"{observation_space!r}"
        )
    achieved, desired = entries["achieved_goal"], entries[GOAL]
    flat_boxes = all(isinstance(s, spaces.Box) and len(s.shape) == 1 for s in (achieved, desired))
    if not flat_boxes or achieved.shape != desired.shape:
        raise UnsupportedSpaceError(
            "env.observation_space: achieved_goal and desired_goal must be flat Boxes of one "
            f"shape, got {achieved!r} and {desired!r}"
        )
    tau = spaces.Box(0.0, float(max_tau), (1,), np.float32)
    return spaces.Dict({OBSERVATION: entries[OBSERVATION], GOAL: desired, HORIZON: tau})


class TDM(AgentClock, Algorithm):
    """TDM: a goal- and horizon-conditioned ``Q(s, a, g, tau)`` learned by an SB3
    actor-critic (DDPG, TD3, SAC) from real goal-conditioned transitions whose goals
    (HER's ``future``) and horizons (uniform on ``0 .. max_tau``) are relabelled.

    The Q-function is the model: it predicts how close to ``g`` the state will be ``tau``
    steps on, per goal dimension (:class:`~mbwrap.algos.tdm_critic.GoalDistanceCritic`),
    with the structure ``-|f(s, a, g, tau) - g|``; the actor ``pi(s, g, tau)`` maximises
    the sum of its components, which is the paper's policy-based action choice. The
    agent trains through its own ``train()``; its ``replay_buffer`` is a
    :class:`~mbwrap.algos.tdm_sampler.TDMSampler`.

    Acting (:meth:`predict`, also in the real env during training) counts ``tau`` down
    from ``max_tau`` each step and starts again after 0; the count is the recurrent
    ``state`` SB3's ``predict`` passes along (``evaluate_policy`` does), restarted with
    each episode.

    The env must be goal-conditioned: a ``Dict`` with ``observation``, ``achieved_goal``
    and ``desired_goal`` (Gymnasium-Robotics' layout, or ``mbwrap/PointGoal-v0``); the
    env's reward is not used. Logs: ``rollout/success_rate`` (the env's ``is_success``)
    and ``tdm/...`` (share of relabelled goals, distance to the goals replayed).

    Settings: :class:`~mbwrap.algos.tdm_config.TDMConfig` (``agent`` also by position).
    """

    registry_name = "tdm"
    Config = TDMConfig
    config: TDMConfig
    space_support = SpaceSupport(
        observations=("Dict",),
        leaves=("Box",),
        actions=("Box",),
        bounded_actions=True,
        observation_note="goal-conditioned: observation, achieved_goal and desired_goal "
        "(flat Box goals)",
        action_note="an SB3 actor-critic (DDPG, TD3, SAC) acts",
    )
    positional_settings = ("agent",)
    saved_state = ("agent", "sampler", "agent_updates")
    saved_buffers = ("buffer",)

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        #: What the agent observes (:func:`horizon_space`).
        self.agent_observation_space = horizon_space(self.observation_space, config.max_tau)
        self.buffer = self._make_buffer()
        self.agent = self._make_agent()
        goal_dim = self.agent_observation_space[GOAL].shape[0]
        if config.vectorized:
            use_goal_distance_critic(self.agent, goal_dim)
        self._default_action_noise(config.action_noise)
        #: What the agent's ``train()`` samples from.
        self.sampler = TDMSampler(
            self.buffer,
            self.agent,
            config.max_tau,
            vectorized=config.vectorized,
            future_ratio=config.future_ratio,
            seed=config.seed,
        )
        self.agent.replay_buffer = self.sampler  # type: ignore[assignment]
        self.agent_updates = 0

    def _placeholder_env(self) -> VecEnv:
        space = self.agent_observation_space
        return spaces_only_vec_env(space, self.action_space)

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The agent's action for the env's goal-conditioned ``observation`` (one, or a
        batch of ``n``) at the horizon carried in ``state``.

        :param state: ``(tau,)``, ``[n]`` ints, as the previous call returned; ``None``
            starts at ``max_tau``.
        :param episode_start: ``[n]`` bool, envs whose count restarts at ``max_tau``.
        :return: ``(actions, (next tau,))``.
        """
        goal = np.asarray(observation[GOAL], np.float32)
        single = goal.ndim == 1
        n = 1 if single else goal.shape[0]
        max_tau = self.config.max_tau
        tau = np.full(n, max_tau) if state is None else np.array(state[0], dtype=np.int64)
        if episode_start is not None:
            tau = np.where(np.asarray(episode_start, bool).reshape(-1), max_tau, tau)
        agent_obs = {
            OBSERVATION: np.asarray(observation[OBSERVATION], np.float32),
            GOAL: goal,
            HORIZON: tau.astype(np.float32).reshape(-1, 1)[0 if single else slice(None)],
        }
        action, _ = self.agent.predict(agent_obs, deterministic=deterministic)
        following = next_horizons(torch.as_tensor(tau), max_tau).numpy()
        return action, (following,)

    def _behaviour_policy(self) -> Any:
        if getattr(self.agent, "action_noise", None) is not None:
            return NoisyPolicy(_NoisyActor(self))
        return self

    # ------------------------------------------------------------------ logs
    def _dump_logs(self) -> None:
        self._dump_per_episode("tdm", self.sampler.metrics())


class _NoisyActor:
    """:meth:`TDM.predict` with the agent's policy and noise, as
    :class:`~mbwrap.algos.agent_clock.NoisyPolicy` reads them."""

    def __init__(self, tdm: TDM) -> None:
        self.predict = tdm.predict
        self.policy, self.action_noise = tdm.agent.policy, tdm.agent.action_noise
