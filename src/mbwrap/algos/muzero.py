"""MuZero (Schrittwieser et al. 2020, "Mastering Atari, Go, Chess and Shogi by Planning
with a Learned Model"), with MuZero's pUCT search or Gumbel MuZero's (Danihelka et al.
2022, "Policy improvement by planning with Gumbel").

Self-play searches all envs of a ``VecEnv`` at once over the learned model; trajectory
segments go to a prioritised replay; the networks are trained on ``K`` unrolled steps
against the search policies, n-step returns and observed rewards.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.muzero_config import MuZeroConfig
from mbwrap.algos.self_play import SelfPlayAlgorithm
from mbwrap.algos.state import env_rng_states, set_env_rng_states
from mbwrap.buffers import check_finite_step, step_vec_env
from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer, SegmentWriter
from mbwrap.device import make_generator
from mbwrap.distributed.env_maker import env_maker
from mbwrap.distributed.self_play import VecEnvMaker
from mbwrap.envs.sb3_vec_env import wrap_env
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models.images import image_layout
from mbwrap.models.muzero_nets import MuZeroNetworks, muzero_losses, scale_gradient
from mbwrap.planners.mcts import MCTSPlanner, MuZeroSearchModel
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import as_batch, check_same_space

__all__ = ["MuZero", "MuZeroConfig", "visit_temperature"]


def visit_temperature(progress: float) -> float:
    """MuZero Appendix D: visit-count temperature 1 for the first half of training, 0.5
    for the next quarter, 0.25 after. :param progress: fraction of training done."""
    if progress < 0.5:
        return 1.0
    return 0.5 if progress < 0.75 else 0.25


class MuZero(SelfPlayAlgorithm):
    """MuZero: self-play by batched tree search over learned networks.

    ``learn(total_timesteps)`` repeats: search from every env's observation at once, step
    the ``VecEnv``, write the moves (with search values and policies) into trajectory
    segments, and, after ``learning_starts`` real steps, make ``gradient_steps`` updates
    every ``train_freq`` real steps on prioritised batches unrolled ``K`` steps.

    A checkpoint holds the networks, the target networks, the optimizer, the replay with
    its priorities, the generators of both searches and of replay sampling, the counters
    and the env's random states: saved where every env's episode just ended (and loaded on
    an in-process env), the run resumes exactly.

    :param env: the real env, with ``Discrete`` actions and ``Box`` observations; pass a
        ``VecEnv`` of several envs so that searches batch over them; ``None`` only when
        loading for prediction, with ``observation_space`` and ``action_space``.
        ``uint8`` images may be ``[C, H, W]`` or ``[H, W, C]`` of any size (see
        :mod:`mbwrap.models.images`). The networks and the replay work on action indices
        ``0..n-1``; the env gets ``index + start`` for ``Discrete(n, start)``.

    Settings: :class:`MuZeroConfig`.
    """

    registry_name = "muzero"
    space_support = SpaceSupport(observations=("Box", "image"), actions=("Discrete",))
    Config = MuZeroConfig
    saved_state = ("networks", "target_networks", "optimizer", "self_play_rng", "eval_rng",
                   "replay_rng")
    saved_buffers = ("buffer",)
    config: MuZeroConfig

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        *args: Any,
        config: MuZeroConfig | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        **kwargs: Any,
    ) -> None:
        if env is not None:
            # The env's own spaces, checked before SB3's wrappers can fail on them.
            self.check_spaces(env.observation_space, env.action_space)
        games = None if env is None else wrap_env(env)
        if games is not None:
            given = {"observation_space": observation_space, "action_space": action_space}
            for name, space in given.items():
                if space is not None:  # a checkpoint's spaces: the env must have them
                    check_same_space(space, getattr(games, name), name=f"env.{name}")
            observation_space, action_space = games.observation_space, games.action_space
        elif observation_space is None or action_space is None:
            raise ValueError("env: pass a real env, or observation_space and action_space")
        super().__init__(args, kwargs, config=config, observation_space=observation_space,
                         action_space=action_space)
        if not isinstance(self.action_space, spaces.Discrete):
            raise UnsupportedSpaceError(
                f"env.action_space: MuZero needs Discrete actions, got {self.action_space!r}"
            )
        if not isinstance(self.observation_space, spaces.Box):
            raise UnsupportedSpaceError(
                f"env.observation_space: MuZero needs a Box, got {self.observation_space!r}"
            )
        self.env = games
        cfg, seed = self.config, self.config.seed
        num_actions = int(self.action_space.n)
        self.networks = MuZeroNetworks(
            tuple(self.observation_space.shape), num_actions, **self._network_kwargs()
        ).to(self.device)
        self.search_model = MuZeroSearchModel(
            self.networks, self.observation_space, self.action_space, gamma=cfg.gamma
        )
        #: Values the n-step targets bootstrap from (``bootstrap_with_network``).
        self.target_model = MuZeroSearchModel(
            copy.deepcopy(self.networks) if cfg.target_update_interval else self.networks,
            self.observation_space, self.action_space, gamma=cfg.gamma,
        )
        common = {
            "num_simulations": cfg.num_simulations, "search": cfg.search,
            "max_num_considered_actions": min(cfg.max_num_considered_actions, num_actions),
            "c_visit": cfg.c_visit, "c_scale": cfg.c_scale,
            "dirichlet_alpha": cfg.dirichlet_alpha,
        }
        #: Acts in self-play: root noise (pUCT) or Gumbel noise, visit temperature.
        self.self_play_planner = MCTSPlanner(
            self.search_model, **common, temperature=1.0,
            dirichlet_fraction=cfg.dirichlet_fraction, gumbel_scale=1.0, seed=seed,
        )
        #: Acts in :meth:`predict` and reanalyses: no noise, the best action.
        self.planner = MCTSPlanner(
            self.search_model,
            **{**common, "num_simulations": cfg.eval_num_simulations or cfg.num_simulations},
            temperature=0.0, dirichlet_fraction=0.0, gumbel_scale=0.0,
            seed=None if seed is None else seed + 1,
        )
        self.optimizer = torch.optim.Adam(
            self.networks.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        obs_dtype = torch.uint8 if self.observation_space.dtype == np.uint8 else torch.float32
        self.buffer = PrioritizedTrajectoryBuffer(
            cfg.buffer_size, tuple(self.observation_space.shape), num_actions,
            gamma=cfg.gamma, n_step=cfg.n_step, num_unroll_steps=cfg.num_unroll_steps,
            alpha=cfg.priority_alpha, beta=cfg.priority_beta, obs_dtype=obs_dtype,
            device=self.device, generator=make_generator(self.device, seed),
        )
        self._writer: SegmentWriter | None = None
        self._last_obs: Any = None
        # The env's random states before the last step, and whether it ended every
        # episode: a checkpoint taken there restarts them as that step's autoreset did.
        self._env_rngs_before_step: list[dict[str, Any]] | None = None
        self._all_episodes_ended = False
        if seed is not None and games is not None:
            games.seed(seed)

    def _network_kwargs(self) -> dict[str, Any]:
        """``network_kwargs``, with the image layout of a uint8 image space filled in."""
        kwargs = dict(self.config.network_kwargs)
        space = self.observation_space
        is_image = space.dtype == np.uint8 and len(space.shape) == 3
        if is_image and kwargs.get("kind", "auto") != "mlp":
            layout = image_layout(space.shape, name="env.observation_space")
            kwargs.setdefault("channels_last", layout.channels_last)
        return kwargs

    # ------------------------------------------------------------------ declared state
    @property
    def target_networks(self) -> MuZeroNetworks:
        """The networks n-step targets bootstrap from (the trained ones without a target)."""
        return self.target_model.networks

    @property
    def self_play_rng(self) -> torch.Generator:
        return self.self_play_planner.generator

    @property
    def eval_rng(self) -> torch.Generator:
        return self.planner.generator

    @property
    def replay_rng(self) -> torch.Generator | None:
        return self.buffer.generator

    def _run_state(self) -> dict[str, Any]:
        state = super()._run_state()
        ended = self._all_episodes_ended and self._env_rngs_before_step is not None
        state["env_rngs"] = self._env_rngs_before_step if ended else env_rng_states(self.env)
        return state

    def _set_run_state(self, state: dict[str, Any]) -> None:
        super()._set_run_state(state)
        set_env_rng_states(self.env, state.get("env_rngs"))

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions by search (noise-free when ``deterministic``), or by the policy head when
        ``eval_num_simulations`` is 0."""
        if self.config.eval_num_simulations == 0:
            obs = np.asarray(observation)
            batched = obs.shape != self.observation_space.shape
            root = self.search_model.root(obs)
            actions = self.planner.action_values(root.prior_logits.argmax(-1)).cpu().numpy()
            return (actions if batched else actions[0]), None
        planner = self.planner if deterministic else self.self_play_planner
        return planner.predict(observation, state, episode_start, deterministic)

    def _reanalyse_fn(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.planner.search_policy(obs)
        return out.search_tree.summary().value, out.action_weights

    # ------------------------------------------------------------------ self-play
    def _start_games(self, reset: bool) -> None:
        if reset or self._last_obs is None:
            self._last_obs = self.env.reset()
            self._writer = SegmentWriter(self.buffer, self.n_envs, self.config.segment_length)

    def _self_play_step(self) -> dict[str, Any]:
        assert self._writer is not None
        progress = self.num_timesteps / max(self._total_timesteps, 1)
        self.self_play_planner.temperature = visit_temperature(progress)
        obs = self._last_obs
        out = self.self_play_planner.search_policy(obs)
        actions = self.self_play_planner.action_values(out.action).cpu().numpy()
        self._env_rngs_before_step = env_rng_states(self.env)
        new_obs, rewards, terminated, truncated, final_obs, infos = step_vec_env(
            self.env, actions
        )
        check_finite_step(final_obs, rewards, self.num_timesteps + self.n_envs)
        self._writer.append(
            self._stored_obs(obs), out.action, torch.as_tensor(rewards),
            out.search_tree.summary().value, out.action_weights,
        )
        self._finish_episodes(terminated, truncated, final_obs)
        dones = terminated | truncated
        self._all_episodes_ended = bool(dones.all())
        self._last_obs = new_obs
        self._update_info_buffer(infos)
        return {"new_obs": new_obs, "rewards": rewards, "dones": dones, "infos": infos,
                "actions": actions}

    def _stored_obs(self, obs: Any) -> torch.Tensor:
        """Observations as stored: ``[n, *obs_shape]`` in the env's dtype, on the device."""
        return as_batch(obs, self.observation_space, name="obs", device=self.device)[0]

    def _finish_episodes(
        self, terminated: np.ndarray, truncated: np.ndarray, final_obs: np.ndarray
    ) -> None:
        """Close the segments of envs whose episode ended this step: ``[n_envs]`` masks and
        the observations the step produced ``[n_envs, *obs_shape]``; a truncated episode
        bootstraps from the value head."""
        assert self._writer is not None
        ended = np.flatnonzero(terminated | truncated)
        if ended.size == 0:
            return
        values = self.search_model.root(final_obs[ended]).value
        cut = torch.as_tensor(truncated[ended], device=values.device)
        values = torch.where(cut, values, 0.0)
        stored = self._stored_obs(final_obs[ended])
        for j, i in enumerate(ended):
            self._writer.finish(int(i), stored[j], values[j], terminated=bool(terminated[i]))

    def _warming_up(self) -> bool:
        return super()._warming_up() or self.buffer.added == 0

    def _worker_games(self, n_games: int) -> tuple[VecEnvMaker, dict[str, Any]]:
        """A worker's copy steps ``n_games`` copies of the env, rebuilt from its Gymnasium
        spec; its replay only passes segments on, so it holds one."""
        changes = {"buffer_size": self.config.segment_length + 1}
        return VecEnvMaker(env_maker(self.env), n_games), changes

    def _self_play_metrics(self) -> dict[str, Any]:
        return {"buffer_positions": self.buffer.num_positions}

    # ------------------------------------------------------------------ training
    def train(self, gradient_steps: int) -> dict[str, torch.Tensor]:
        """``gradient_steps`` updates; the last one's losses (0-d tensors)."""
        metrics: dict[str, torch.Tensor] = {}
        for _ in range(gradient_steps):
            metrics = self.train_step()
        return metrics

    def train_step(self) -> dict[str, torch.Tensor]:
        """One gradient update on a prioritised batch; returns the losses (0-d tensors)."""
        cfg = self.config
        if cfg.reanalyse_fraction > 0 and not self.reanalyses_remotely:
            count = max(1, int(cfg.reanalyse_fraction * cfg.batch_size))
            self.buffer.reanalyse(self._reanalyse_fn, self.buffer.uniform_rows(count))
        batch = self.buffer.sample(
            cfg.batch_size,
            bootstrap_fn=self._target_values if cfg.bootstrap_with_network else None,
        )
        if batch is None:  # a replay actor restarted empty: train once games are stored
            return {}
        nets = self.networks
        nets.train()
        state = nets.represent(self.search_model.observations(batch.obs))
        policies, values, rewards = [], [], []
        for k in range(batch.actions.shape[1] + 1):
            if k > 0:
                # MuZero Appendix G: halve the gradient entering the dynamics function.
                state, reward = nets.dynamics(scale_gradient(state, 0.5), batch.actions[:, k - 1])
                rewards.append(reward)
            else:
                rewards.append(torch.zeros(
                    state.shape[0], 2 * nets.support_size + 1, device=state.device))
            logits, value = nets.predict(state)
            policies.append(logits)
            values.append(value)
        value_logits = torch.stack(values, 1)
        losses = muzero_losses(
            torch.stack(policies, 1), value_logits, torch.stack(rewards, 1), batch, nets.support
        )
        total = losses["policy"] + losses["reward"] + cfg.value_loss_coef * losses["value"]
        loss = (batch.weights * total).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(nets.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        nets.eval()
        with torch.no_grad():
            predicted = nets.to_scalar(value_logits[:, 0])
            error = (predicted - batch.target_values[:, 0]).abs()
        self.buffer.update_priorities(batch.indices, error)
        self.n_updates += 1
        interval = cfg.target_update_interval
        if interval and self.n_updates % interval == 0:
            self.target_model.networks.load_state_dict(nets.state_dict())
        # 0-d tensors: reading them (logging) is the only host sync of an update.
        return {
            "loss": loss.detach(),
            **{f"{name}_loss": v.detach().mean() for name, v in losses.items()},
            "priority_mean": error.mean(),
            "is_weight_mean": batch.weights.mean(),
        }

    def _target_values(self, obs: Any) -> torch.Tensor:
        """``[n]`` target-network values of observations (no search)."""
        return self.target_model.root(obs).value
