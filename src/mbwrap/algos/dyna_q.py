"""Tabular Dyna-Q (Sutton & Barto 2018, section 8.2): Q-learning plus planning on a
table-lookup model of the real transitions seen so far."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.base import Algorithm
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import TabularModel
from mbwrap.spaces import as_batch


def q_learning_target(
    reward: np.ndarray, next_q: np.ndarray, terminated: np.ndarray, gamma: float
) -> np.ndarray:
    """One-step Q-learning target ``r + gamma * (1 - terminated) * max_a' Q(s', a')``.

    :param reward: ``[B]``.
    :param next_q: ``[B, A]``, the action values of the next states.
    :param terminated: ``[B]``, 1 where the next state is terminal (no bootstrap).
    :return: ``[B]``.
    """
    return reward + gamma * (1.0 - terminated) * next_q.max(-1)


def epsilon_greedy(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Epsilon-greedy actions with ties between greedy actions broken uniformly.

    Random tie-breaking matters in Dyna-Q: all values start at 0, and always taking the
    first maximal action would make the first episode a walk into a wall.

    :param q: ``[B, A]`` action values.
    :return: ``[B]`` actions.
    """
    batch, n_actions = q.shape
    is_max = q == q.max(-1, keepdims=True)
    noise = rng.random((batch, n_actions))
    greedy = np.where(is_max, noise, -1.0).argmax(-1)
    explore = rng.random(batch) < epsilon
    return np.where(explore, rng.integers(n_actions, size=batch), greedy)


class DynaQ(Algorithm):
    """Tabular Dyna-Q: after each real step, a Q-learning update on it, an update of the
    table-lookup model, and ``planning_steps`` Q-learning updates on transitions the model
    imagines from previously visited state-action pairs.

    Acts in exactly the env it is given: no time limit or other wrapper that changes
    episodes is added. Observation and action spaces must be ``Discrete`` or
    ``MultiDiscrete``.

    :param env: the real env.
    :param planning_steps: ``n``, model-based updates per real step (0 is Q-learning).
    :param learning_rate: step size alpha.
    :param gamma: discount.
    :param exploration_rate: epsilon of the epsilon-greedy behaviour policy.
    :param model: the table-lookup model (default: a :class:`TabularModel` sampling
        next states from its counts).
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "dyna-q"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        planning_steps: int = 5,
        # Sutton & Barto 2018, section 8.2, Figure 8.2: alpha 0.1, gamma 0.95, epsilon 0.1.
        learning_rate: float = 0.1,
        gamma: float = 0.95,
        exploration_rate: float = 0.1,
        model: TabularModel | None = None,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__(
            env,
            seed=seed,
            device=device,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            observation_space=observation_space,
            action_space=action_space,
        )
        if not isinstance(planning_steps, (int, np.integer)) or planning_steps < 0:
            raise ValueError(f"planning_steps: expected an int >= 0, got {planning_steps!r}")
        for name, value in (
            ("learning_rate", learning_rate),
            ("gamma", gamma),
            ("exploration_rate", exploration_rate),
        ):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        if model is None:
            env_id = None
            if env is not None and not isinstance(env, VecEnv) and env.spec is not None:
                env_id = env.spec.id
            try:
                model = TabularModel(
                    self.observation_space, self.action_space, env_id=env_id, device=self.device
                )
            except UnsupportedSpaceError as err:
                raise UnsupportedSpaceError(f"env: Dyna-Q needs finite spaces: {err}") from err
        if (
            model.observation_space != self.observation_space
            or model.action_space != self.action_space
        ):
            raise SpaceMismatchError(
                f"model: has spaces {model.observation_space!r} / {model.action_space!r}, the env "
                f"{self.observation_space!r} / {self.action_space!r}"
            )
        self.model = model
        self.planning_steps = int(planning_steps)
        self.learning_rate = float(learning_rate)
        self.gamma = float(gamma)
        self.exploration_rate = float(exploration_rate)
        self.q_table = np.zeros((model.n_states, model.n_actions))
        # Visited (state, action) index pairs in first-visit order: planning samples them
        # uniformly, as "a random previously observed state / action taken in it".
        self._visited = np.zeros((0, 2), dtype=np.int64)
        self._visited_mask = np.zeros((model.n_states, model.n_actions), dtype=bool)
        self.rng = np.random.default_rng(seed)
        self._generator = torch.Generator(device=model.device)
        self._generator.manual_seed(int(self.rng.integers(2**62)))

    def get_config(self) -> dict[str, Any]:
        return {
            "planning_steps": self.planning_steps,
            "learning_rate": self.learning_rate,
            "gamma": self.gamma,
            "exploration_rate": self.exploration_rate,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {
            "q_table": torch.as_tensor(self.q_table),
            "visited": torch.as_tensor(self._visited),
        }
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        q_table = tensors["q_table"].numpy()
        if q_table.shape != self.q_table.shape:
            raise ValueError(f"q_table has shape {q_table.shape}, expected {self.q_table.shape}")
        self.q_table = q_table.astype(np.float64)
        self._visited = tensors["visited"].numpy().astype(np.int64).reshape(-1, 2)
        self._visited_mask[:] = False
        self._visited_mask[self._visited[:, 0], self._visited[:, 1]] = True
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in model_state.items()})

    # ------------------------------------------------------------------ indexing
    def _state_index(self, obs: Any) -> np.ndarray:
        """Number a batch of observations on the host (the table lives there)."""
        space = self.observation_space
        if isinstance(space, gym.spaces.Discrete):
            return np.asarray(obs, dtype=np.int64).reshape(-1) - int(space.start)
        digits = np.asarray(obs, dtype=np.int64).reshape(-1, space.nvec.size) - space.start.reshape(
            -1
        )
        return np.ravel_multi_index(tuple(digits.T), space.nvec.reshape(-1))

    def _index_to_action(self, index: np.ndarray) -> np.ndarray:
        if isinstance(self.action_space, gym.spaces.Discrete):
            return index + int(self.action_space.start)
        nvec = self.action_space.nvec.reshape(-1)
        digits = np.stack(np.unravel_index(index, nvec), -1) + self.action_space.start.reshape(-1)
        return digits.reshape(index.shape[0], *self.action_space.shape)

    # ------------------------------------------------------------------ updates
    def _plan(self) -> None:
        """``planning_steps`` sequential Q-learning updates on model-imagined transitions."""
        if self.planning_steps == 0 or len(self._visited) == 0:
            return
        pairs = self._visited[self.rng.integers(len(self._visited), size=self.planning_steps)]
        device = self.model.device
        next_s, reward, term = self.model.step_indices(
            torch.as_tensor(pairs[:, 0], device=device),
            torch.as_tensor(pairs[:, 1], device=device),
            generator=self._generator,
        )
        next_s = next_s.cpu().numpy()
        reward = reward.cpu().numpy().astype(np.float64)
        term = term.cpu().numpy().astype(np.float64)
        q, alpha, gamma = self.q_table, self.learning_rate, self.gamma
        # Sequential, as in the book: a later update may bootstrap from an earlier one.
        for (si, ai), s2, r, t in zip(pairs, next_s, reward, term, strict=True):
            q[si, ai] += alpha * (r + gamma * (1.0 - t) * q[s2].max() - q[si, ai])

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 10,
        tb_log_name: str = "DynaQ",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> DynaQ:
        """Act and learn for ``total_timesteps`` real steps (or until a callback stops it).

        :param log_interval: episodes between log dumps.
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        assert self.env is not None
        callback.on_training_start(locals(), globals())
        callback.on_rollout_start()
        episodes_logged = self._episode_num
        while self.num_timesteps < total_timesteps:
            states = self._state_index(self._last_obs)
            action_index = epsilon_greedy(self.q_table[states], self.exploration_rate, self.rng)
            actions = self._index_to_action(action_index)
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += self.env.num_envs
            next_obs = np.array(new_obs, copy=True)
            terminated = np.zeros(self.env.num_envs)
            for i, done in enumerate(dones):
                if done:
                    next_obs[i] = infos[i]["terminal_observation"]
                    terminated[i] = not infos[i].get("TimeLimit.truncated", False)
            next_states = self._state_index(next_obs)
            target = q_learning_target(
                rewards.astype(np.float64), self.q_table[next_states], terminated, self.gamma
            )
            self.q_table[states, action_index] += self.learning_rate * (
                target - self.q_table[states, action_index]
            )
            device = self.model.device
            self.model.update_indices(
                torch.as_tensor(states, device=device),
                torch.as_tensor(action_index, device=device),
                torch.as_tensor(next_states, device=device),
                torch.as_tensor(rewards, device=device),
                torch.as_tensor(terminated, device=device),
            )
            new = ~self._visited_mask[states, action_index]
            if new.any():
                self._visited_mask[states[new], action_index[new]] = True
                self._visited = np.concatenate(
                    [self._visited, np.stack([states[new], action_index[new]], -1)]
                )
            self._plan()
            self._last_obs = new_obs
            self._update_info_buffer(infos)
            callback.update_locals(locals())
            if not callback.on_step():
                break
            if log_interval and self._episode_num - episodes_logged >= log_interval:
                episodes_logged = self._episode_num
                self.logger.record("train/visited_pairs", len(self._visited))
                self._dump_logs()
        callback.on_rollout_end()
        callback.on_training_end()
        return self

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Greedy (``deterministic``) or epsilon-greedy actions from the Q table.

        :param observation: one observation or a batch ``[B, *obs_shape]``.
        :return: ``(actions, None)``, batched like ``observation``.
        """
        tensor, batched = as_batch(
            observation, self.observation_space, name="observation", device="cpu"
        )
        q = self.q_table[self._state_index(tensor.numpy())]
        epsilon = 0.0 if deterministic else self.exploration_rate
        actions = self._index_to_action(epsilon_greedy(q, epsilon, self.rng))
        return (actions if batched else actions[0]), None
