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
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.base import Algorithm, _check_finite
from mbwrap.buffers.prioritized import PrioritizedTrajectoryBuffer, SegmentWriter
from mbwrap.device import make_generator
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models.muzero_nets import MuZeroNetworks, scale_gradient
from mbwrap.planners.mcts import MCTSPlanner, RecurrentFnOutput, RootFnOutput
from mbwrap.planners.mcts.policies import C_SCALE, C_VISIT, DIRICHLET_ALPHA, DIRICHLET_FRACTION
from mbwrap.spaces import as_batch
from mbwrap.transforms import scalar_to_two_hot, value_transform


def categorical_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-sum_k target_k log softmax(logits)_k``: ``[..., K]`` -> ``[...]``."""
    return -(target * torch.log_softmax(logits, -1)).sum(-1)


def visit_temperature(progress: float) -> float:
    """MuZero Appendix D: visit-count temperature 1 for the first half of training, 0.5
    for the next quarter, 0.25 after. :param progress: fraction of training done."""
    if progress < 0.5:
        return 1.0
    return 0.5 if progress < 0.75 else 0.25


def muzero_losses(
    policy_logits: torch.Tensor,
    value_logits: torch.Tensor,
    reward_logits: torch.Tensor,
    batch: Any,
    support: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-position losses of an unroll (MuZero Appendix G), each ``[B]``.

    Step ``k >= 1`` counts ``1 / K`` (the paper scales those gradients by ``1 / K``).
    Value and reward are cross-entropies against two-hot projections of ``h(z)`` and
    ``h(u)``; the policy a cross-entropy against the search policy.

    :param policy_logits: ``[B, K + 1, A]``; :param value_logits, reward_logits:
        ``[B, K + 1, 2S + 1]``; :param batch: a
        :class:`~mbwrap.buffers.prioritized.PrioritizedBatch`; :param support: ``[2S + 1]``.
    """
    steps = policy_logits.shape[1]
    scale = torch.full((steps,), 1.0 / max(steps - 1, 1), device=policy_logits.device)
    scale[0] = 1.0
    value_target = scalar_to_two_hot(value_transform(batch.target_values), support)
    reward_target = scalar_to_two_hot(value_transform(batch.target_rewards), support)
    value = categorical_cross_entropy(value_logits, value_target) * batch.value_mask
    reward = categorical_cross_entropy(reward_logits, reward_target) * batch.reward_mask
    policy = categorical_cross_entropy(policy_logits, batch.target_policies) * batch.policy_mask
    return {
        "value": (value * scale).sum(1),
        "reward": (reward * scale).sum(1),
        "policy": (policy * scale).sum(1),
    }


class MuZeroSearchModel:
    """The :class:`~mbwrap.planners.mcts.SearchModel` of MuZero's networks: roots by
    ``h`` then ``f``, steps by ``g`` then ``f``; the embedding is the hidden state.

    :param networks: the networks; :param discount: per-step discount of the search.
    """

    def __init__(
        self,
        networks: MuZeroNetworks,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        *,
        discount: float,
    ) -> None:
        self.networks = networks
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_actions = int(action_space.n)
        self.discount = float(discount)

    @property
    def device(self) -> torch.device:
        return self.networks.support.device

    def observations(self, obs: Any) -> torch.Tensor:
        """Env observations -> ``[B, *obs_shape]`` float tensor on the device (images /255)."""
        tensor, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        if tensor.dtype == torch.uint8:
            return tensor.float() / 255.0
        return tensor.float()

    def root(self, obs: Any) -> RootFnOutput:
        """``obs: [B, *obs_shape]`` (or one observation) -> ``B`` roots."""
        with torch.no_grad():
            self.networks.eval()
            state = self.networks.represent(self.observations(obs))
            logits, value = self.networks.predict(state)
            return RootFnOutput(logits, self.networks.to_scalar(value), state)

    def recurrent_fn(
        self, embedding: torch.Tensor, action: torch.Tensor
    ) -> tuple[RecurrentFnOutput, torch.Tensor]:
        """``(state [B, *state], action [B]) -> (step outputs, next state)``."""
        with torch.no_grad():
            state, reward = self.networks.dynamics(embedding, action)
            logits, value = self.networks.predict(state)
        out = RecurrentFnOutput(
            reward=self.networks.to_scalar(reward),
            discount=torch.full_like(action, self.discount, dtype=state.dtype),
            prior_logits=logits,
            value=self.networks.to_scalar(value),
        )
        return out, state


class MuZero(Algorithm):
    """MuZero: self-play by batched tree search over learned networks.

    ``learn(total_timesteps)`` repeats: search from every env's observation at once, step
    the ``VecEnv``, write the moves (with search values and policies) into trajectory
    segments, and, after ``learning_starts`` real steps, make ``train_ratio``
    gradient updates per real step on prioritised batches unrolled ``K`` steps.

    :param env: the real env, with ``Discrete`` actions; pass a ``VecEnv`` of several envs
        so that searches batch over them.
    :param search: ``"muzero"`` (pUCT with Dirichlet noise at the root, Schrittwieser et al.
        2020) or ``"gumbel"`` (Danihelka et al. 2022; good with few simulations).
    :param num_simulations: per move (MuZero Appendix C: 50 for Atari).
    :param eval_num_simulations: per move in :meth:`predict`; ``None``: as self-play, ``0``:
        the policy head's most likely action, no search.
    :param discount: MuZero: 0.997 for Atari.
    :param n_step: bootstrap horizon of value targets (MuZero Appendix G: 10 for Atari).
    :param num_unroll_steps: ``K`` (MuZero Appendix G: 5).
    :param network_kwargs: keywords of :class:`~mbwrap.models.MuZeroNetworks` (kind, hidden
        size, layers, support size).
    :param batch_size: MuZero Appendix G: 1024 for Atari.
    :param learning_rate, weight_decay: of Adam (MuZero trains with SGD and momentum; its L2
        regularisation is 1e-4, Appendix G).
    :param value_loss_coef: MuZero Appendix H (Reanalyze): the value loss counts 0.25.
    :param max_grad_norm: gradient clipping (EfficientZero, Ye et al. 2021: 5); ``None``: none.
    :param train_ratio: gradient updates per real env step.
    :param learning_starts: real steps before the first update.
    :param buffer_capacity: rows of replay (positions plus one per segment).
    :param segment_length: moves per stored segment (long episodes are cut).
    :param priority_alpha, priority_beta: prioritised replay exponents (Appendix G: 1, 1).
    :param reanalyse_fraction: rows reanalysed per update, as a fraction of ``batch_size``
        (MuZero Reanalyze, Appendix H); 0 turns it off.
    :param bootstrap_with_network: n-step targets bootstrap from the current network's
        value of the observation ``n`` steps ahead (as MuZero Reanalyze bootstraps from a
        recent network, Appendix H) instead of the search value stored when it was played.
    :param target_update_interval: with ``bootstrap_with_network``, bootstrap from a copy
        of the networks refreshed every this many updates (a target network; EfficientZero,
        Ye et al. 2021, refreshes it every 200); ``None``: from the networks being trained.
    :param dirichlet_alpha, dirichlet_fraction: pUCT root noise in self-play (Appendix C).
    :param max_num_considered_actions, c_visit, c_scale: Gumbel search (Danihelka et al.).
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "muzero"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        *,
        search: str = "gumbel",
        num_simulations: int = 50,
        eval_num_simulations: int | None = None,
        discount: float = 0.997,
        n_step: int = 10,
        num_unroll_steps: int = 5,
        network_kwargs: dict[str, Any] | None = None,
        batch_size: int = 1024,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        value_loss_coef: float = 0.25,
        max_grad_norm: float | None = 5.0,
        train_ratio: float = 0.25,
        learning_starts: int = 1000,
        buffer_capacity: int = 100_000,
        segment_length: int = 200,
        priority_alpha: float = 1.0,
        priority_beta: float = 1.0,
        reanalyse_fraction: float = 0.0,
        bootstrap_with_network: bool = False,
        target_update_interval: int | None = None,
        dirichlet_alpha: float = DIRICHLET_ALPHA,
        dirichlet_fraction: float = DIRICHLET_FRACTION,
        max_num_considered_actions: int = 16,
        c_visit: float = C_VISIT,
        c_scale: float = C_SCALE,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__(
            env, seed=seed, device=device, verbose=verbose, tensorboard_log=tensorboard_log,
            observation_space=observation_space, action_space=action_space,
        )
        if not isinstance(self.action_space, spaces.Discrete):
            raise UnsupportedSpaceError(
                f"env.action_space: MuZero needs Discrete actions, got {self.action_space!r}"
            )
        if not isinstance(self.observation_space, spaces.Box):
            raise UnsupportedSpaceError(
                f"env.observation_space: MuZero needs a Box, got {self.observation_space!r}"
            )
        if search not in ("muzero", "gumbel"):
            raise ValueError(f"search: expected 'muzero' or 'gumbel', got {search!r}")
        for name, value in (("num_simulations", num_simulations), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if eval_num_simulations is not None and (
            isinstance(eval_num_simulations, bool) or eval_num_simulations < 0
        ):
            raise ValueError(
                f"eval_num_simulations: expected None or an int >= 0, got {eval_num_simulations!r}"
            )
        if train_ratio <= 0:
            raise ValueError(f"train_ratio: expected a float > 0, got {train_ratio!r}")
        self.config = {
            "search": search, "num_simulations": num_simulations,
            "eval_num_simulations": eval_num_simulations, "discount": float(discount),
            "n_step": n_step, "num_unroll_steps": num_unroll_steps,
            "network_kwargs": dict(network_kwargs or {}), "batch_size": batch_size,
            "learning_rate": float(learning_rate), "weight_decay": float(weight_decay),
            "value_loss_coef": float(value_loss_coef), "max_grad_norm": max_grad_norm,
            "train_ratio": float(train_ratio), "learning_starts": int(learning_starts),
            "buffer_capacity": buffer_capacity, "segment_length": segment_length,
            "priority_alpha": float(priority_alpha), "priority_beta": float(priority_beta),
            "reanalyse_fraction": float(reanalyse_fraction),
            "bootstrap_with_network": bool(bootstrap_with_network),
            "target_update_interval": target_update_interval,
            "dirichlet_alpha": float(dirichlet_alpha),
            "dirichlet_fraction": float(dirichlet_fraction),
            "max_num_considered_actions": max_num_considered_actions,
            "c_visit": float(c_visit), "c_scale": float(c_scale),
        }
        num_actions = int(self.action_space.n)
        self.networks = MuZeroNetworks(
            tuple(self.observation_space.shape), num_actions, **self.config["network_kwargs"]
        ).to(self.device)
        self.search_model = MuZeroSearchModel(
            self.networks, self.observation_space, self.action_space, discount=discount
        )
        #: Values the n-step targets bootstrap from (``bootstrap_with_network``).
        self.target_model = MuZeroSearchModel(
            copy.deepcopy(self.networks) if target_update_interval else self.networks,
            self.observation_space, self.action_space, discount=discount,
        )
        common = {
            "num_simulations": num_simulations, "search": search,
            "max_num_considered_actions": min(max_num_considered_actions, num_actions),
            "c_visit": c_visit, "c_scale": c_scale, "dirichlet_alpha": dirichlet_alpha,
        }
        #: Acts in self-play: root noise (pUCT) or Gumbel noise, visit temperature.
        self.self_play_planner = MCTSPlanner(
            self.search_model, **common, temperature=1.0, dirichlet_fraction=dirichlet_fraction,
            gumbel_scale=1.0, seed=seed,
        )
        #: Acts in :meth:`predict` and reanalyses: no noise, the best action.
        self.planner = MCTSPlanner(
            self.search_model,
            **{**common, "num_simulations": eval_num_simulations or num_simulations},
            temperature=0.0, dirichlet_fraction=0.0, gumbel_scale=0.0,
            seed=None if seed is None else seed + 1,
        )
        self.optimizer = torch.optim.Adam(
            self.networks.parameters(), lr=learning_rate, weight_decay=weight_decay
        )
        obs_dtype = torch.uint8 if self.observation_space.dtype == np.uint8 else torch.float32
        self.buffer = PrioritizedTrajectoryBuffer(
            buffer_capacity, tuple(self.observation_space.shape), num_actions,
            discount=discount, n_step=n_step, num_unroll_steps=num_unroll_steps,
            alpha=priority_alpha, beta=priority_beta, obs_dtype=obs_dtype, device=self.device,
            generator=make_generator(self.device, seed),
        )
        self._writer: SegmentWriter | None = None
        #: Gradient updates made over every ``learn`` call.
        self.num_updates = 0
        self._update_credit = 0.0

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The networks' weights and the replay buffer's rows."""
        tensors = {f"networks.{k}": v for k, v in self.networks.state_dict().items()}
        tensors.update({f"buffer.{k}": v for k, v in self.buffer.state_dict().items()})
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        networks = {k[len("networks."):]: v for k, v in tensors.items()
                    if k.startswith("networks.")}
        self.networks.load_state_dict({k: v.to(self.device) for k, v in networks.items()})
        self.target_model.networks.load_state_dict(self.networks.state_dict())
        buffer = {k[len("buffer."):]: v for k, v in tensors.items() if k.startswith("buffer.")}
        if buffer:
            self.buffer.load_state_dict(buffer)

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
        if self.config["eval_num_simulations"] == 0:
            obs = np.asarray(observation)
            batched = obs.shape != self.observation_space.shape
            root = self.search_model.root(obs)
            actions = root.prior_logits.argmax(-1).cpu().numpy()
            return (actions if batched else actions[0]), None
        planner = self.planner if deterministic else self.self_play_planner
        return planner.predict(observation, state, episode_start, deterministic)

    def _reanalyse_fn(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.planner.search_policy(obs)
        return out.search_tree.summary().value, out.action_weights

    # ------------------------------------------------------------------ training
    def train_step(self) -> dict[str, torch.Tensor]:
        """One gradient update on a prioritised batch; returns the losses (0-d tensors)."""
        cfg = self.config
        if cfg["reanalyse_fraction"] > 0:
            count = max(1, int(cfg["reanalyse_fraction"] * cfg["batch_size"]))
            self.buffer.reanalyse(self._reanalyse_fn, self.buffer.uniform_rows(count))
        batch = self.buffer.sample(
            cfg["batch_size"],
            bootstrap_fn=self._target_values if cfg["bootstrap_with_network"] else None,
        )
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
        total = losses["policy"] + losses["reward"] + cfg["value_loss_coef"] * losses["value"]
        loss = (batch.weights * total).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["max_grad_norm"] is not None:
            torch.nn.utils.clip_grad_norm_(nets.parameters(), cfg["max_grad_norm"])
        self.optimizer.step()
        nets.eval()
        with torch.no_grad():
            predicted = nets.to_scalar(value_logits[:, 0])
            error = (predicted - batch.target_values[:, 0]).abs()
        self.buffer.update_priorities(batch.indices, error)
        self.num_updates += 1
        interval = cfg["target_update_interval"]
        if interval and self.num_updates % interval == 0:
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

    def _network_values(self, obs: Any) -> torch.Tensor:
        """``[n]`` value-head estimates of observations (no search)."""
        return self.search_model.root(obs).value

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "MuZero",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> MuZero:
        """Self-play and train for ``total_timesteps`` real env steps.

        :param log_interval: finished episodes between log dumps (0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        assert self.env is not None
        cfg = self.config
        if self._writer is None or self._last_obs is not self._collected_obs:
            self._writer = SegmentWriter(self.buffer, self.n_envs, cfg["segment_length"])
        callback.on_training_start(locals(), globals())
        callback.on_rollout_start()
        start, episodes_logged, metrics = self.num_timesteps, self._episode_num, {}
        while self.num_timesteps < total_timesteps:
            progress = (self.num_timesteps - start) / max(total_timesteps - start, 1)
            self.self_play_planner.temperature = visit_temperature(progress)
            obs = self._last_obs
            out = self.self_play_planner.search_policy(obs)
            actions = out.action.cpu().numpy()
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += self.n_envs
            _check_finite(new_obs, rewards, self.num_timesteps)
            self._writer.append(
                self._stored_obs(obs), out.action, torch.as_tensor(rewards),
                out.search_tree.summary().value, out.action_weights,
            )
            self._finish_episodes(dones, infos)
            self._last_obs = self._collected_obs = new_obs
            self._update_info_buffer(infos)
            callback.update_locals({"new_obs": new_obs, "rewards": rewards, "dones": dones,
                                    "infos": infos, "actions": actions})
            if not callback.on_step():
                break
            if self.num_timesteps >= cfg["learning_starts"] and self.buffer.added:
                self._update_credit += cfg["train_ratio"] * self.n_envs
                while self._update_credit >= 1:
                    metrics = self.train_step()
                    self._update_credit -= 1
            if log_interval and self._episode_num - episodes_logged >= log_interval:
                episodes_logged = self._episode_num
                self._record_metrics("train", {**metrics, "updates": self.num_updates,
                                               "buffer_positions": self.buffer.num_positions})
                self._dump_logs()
        callback.on_rollout_end()
        callback.on_training_end()
        return self

    def _stored_obs(self, obs: Any) -> torch.Tensor:
        """Observations as stored: ``[n, *obs_shape]`` in the env's dtype, on the device."""
        tensor, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        return tensor

    def _finish_episodes(self, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Close the segments of envs whose episode ended this step."""
        assert self._writer is not None
        ended = np.flatnonzero(dones)
        if ended.size == 0:
            return
        final = np.stack([infos[i]["terminal_observation"] for i in ended])
        truncated = np.array([infos[i].get("TimeLimit.truncated", False) for i in ended])
        values = self._network_values(final)
        values = torch.where(torch.as_tensor(truncated, device=values.device), values, 0.0)
        final_obs = self._stored_obs(final)
        for j, i in enumerate(ended):
            self._writer.finish(int(i), final_obs[j], values[j], terminated=not truncated[j])
