"""Tabular Dyna-Q (Sutton & Barto 2018, section 8.2): Q-learning plus planning on a
table-lookup model of the real transitions seen so far."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.base import Algorithm
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.buffers import ReplayBuffer
from mbwrap.checkpoint import check_indices
from mbwrap.errors import CheckpointError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models import TabularModel
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import as_batch

_BOOK = "Sutton & Barto 2018, section 8.2, Figure 8.2"


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


def flat_index(
    values: Any,
    space: gym.spaces.Discrete | gym.spaces.MultiDiscrete,
    *,
    name: str = "values",
) -> np.ndarray:
    """Number a batch of elements of a finite space on the host (where the Q table lives).

    :param values: ``[B, *space.shape]``, values of the space (``start`` included).
    :param name: the argument ``values`` came as, for errors.
    :return: ``[B]`` int64 in ``[0, number of elements)``.
    :raises SpaceMismatchError: naming ``name`` when an element lies outside ``space`` (it
        would read another state's row, or none).
    """
    if isinstance(space, gym.spaces.Discrete):
        sizes, starts = int(space.n), int(space.start)
        digits = np.asarray(values, dtype=np.int64).reshape(-1) - starts
        inside = (digits >= 0) & (digits < sizes)
    else:
        sizes, starts = space.nvec.reshape(-1), space.start.reshape(-1)
        digits = np.asarray(values, dtype=np.int64).reshape(-1, sizes.size) - starts
        inside = ((digits >= 0) & (digits < sizes)).all(-1)
    if not inside.all():
        row = int(np.flatnonzero(~inside)[0])
        element = (digits[row] + starts).reshape(np.shape(space)).tolist()
        raise SpaceMismatchError(f"{name}: row {row} holds {element}, which is outside {space!r}")
    if isinstance(sizes, int):
        return digits
    return np.ravel_multi_index(tuple(digits.T), sizes)


@dataclass(kw_only=True)
class DynaQConfig(AlgoConfig):
    """Settings of :class:`DynaQ`; the defaults are the book's Dyna maze experiment."""

    algo_name: ClassVar[str] = "dyna-q"

    planning_steps: int = setting(
        5,
        "n, Q-learning updates on model-imagined transitions per real step (0 is plain "
        "one-step Q-learning)",
        source=f"{_BOOK} (compares n = 0, 5, 50)",
        low=0,
    )
    learning_rate: float = setting(0.1, "step size alpha", source=_BOOK, low=0.0, high=1.0)
    gamma: float = setting(0.95, "discount", source=_BOOK, low=0.0, high=1.0)
    exploration_rate: float = setting(
        0.1, "epsilon of the epsilon-greedy behaviour policy", source=_BOOK, low=0.0, high=1.0
    )
    model: Any = setting(
        "tabular",
        "the table-lookup model: a registered name (built with model_kwargs) or a "
        "TabularModel instance",
        source=f"{_BOOK} (a deterministic table; 'tabular' also samples stochastic ones)",
    )
    model_kwargs: dict[str, Any] = setting(
        {}, "constructor keywords of a named model, e.g. {'mode': 'most-likely'}"
    )


class DynaQ(Algorithm):
    """Tabular Dyna-Q: after each real step, a Q-learning update on it (direct RL), an
    update of the table-lookup model (model learning), and ``planning_steps`` Q-learning
    updates on transitions the model imagines from previously visited state-action pairs
    (planning), as in the book's Figure 8.2 loop.

    Acts in exactly the env it is given: no time limit or other wrapper that changes
    episodes is added. Observation and action spaces must be ``Discrete`` or
    ``MultiDiscrete``. Each iteration of :meth:`learn` is one real (vector) step.

    Settings: :class:`DynaQConfig`.
    """

    registry_name = "dyna-q"
    space_support = SpaceSupport(
        observations=("Discrete", "MultiDiscrete"), actions=("Discrete", "MultiDiscrete"),
        observation_note="finite spaces: a Q-table row per state, a column per action",
        action_note="finite spaces: a Q-table row per state, a column per action",
    )
    Config = DynaQConfig
    saved_state = ("q_table", "visited", "model", "rng", "model_rng")
    config: DynaQConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        try:
            model = self._make_model()
        except UnsupportedSpaceError as err:
            raise UnsupportedSpaceError(f"env: Dyna-Q needs finite spaces: {err}") from err
        if not isinstance(model, TabularModel):
            # An UnsupportedSpaceError (a TypeError): the model is the wrong kind for this
            # algorithm's finite spaces.
            raise UnsupportedSpaceError(
                f"model: Dyna-Q plans with a table of the finite spaces and needs a "
                f"TabularModel, got {type(model).__name__}; use TabularModel ('tabular')"
            )
        self.model = model
        # Only the last real step: Dyna-Q learns from each real transition once, directly,
        # and afterwards only through the model.
        self.buffer = ReplayBuffer(
            self.observation_space, self.action_space, self.n_envs, device="cpu", n_envs=self.n_envs
        )
        self.q_table = np.zeros((model.n_states, model.n_actions))
        #: Visited (state, action) index pairs ``[K, 2]`` in first-visit order: planning
        #: samples them uniformly, as "a random previously observed state / action taken
        #: in it".
        self.visited = np.zeros((0, 2), dtype=np.int64)
        self._visited_mask = np.zeros((model.n_states, model.n_actions), dtype=bool)
        #: Exploration, tie-breaking and the pairs planning starts from.
        self.rng = np.random.default_rng(self.seed)
        #: Next states the model samples in planning.
        self.model_rng = torch.Generator(device=model.device)
        self.model_rng.manual_seed(int(self.rng.integers(2**62)))

    def _after_restore(self) -> None:
        """Check the restored table and visited pairs against the model's sizes.

        :raises CheckpointError: naming ``q_table`` or ``visited`` when they do not fit.
        """
        expected = (self.model.n_states, self.model.n_actions)
        if np.shape(self.q_table) != expected:
            raise CheckpointError(
                f"q_table: has shape {np.shape(self.q_table)}, expected {expected}"
            )
        visited = np.asarray(self.visited)
        if visited.ndim != 2 or visited.shape[1] != 2:
            raise CheckpointError(
                f"visited: expected (state, action) pairs of shape [K, 2], got {visited.shape}"
            )
        for column, (what, size) in enumerate(zip(("states", "actions"), expected, strict=True)):
            check_indices(visited[:, column], name=f"visited ({what})", size=size)
        self.visited = visited.astype(np.int64)
        self._visited_mask[:] = False
        self._visited_mask[self.visited[:, 0], self.visited[:, 1]] = True

    def _index_to_action(self, index: np.ndarray) -> np.ndarray:
        if isinstance(self.action_space, gym.spaces.Discrete):
            return index + int(self.action_space.start)
        nvec = self.action_space.nvec.reshape(-1)
        digits = np.stack(np.unravel_index(index, nvec), -1) + self.action_space.start.reshape(-1)
        return digits.reshape(index.shape[0], *self.action_space.shape)

    # ------------------------------------------------------------------ the loop's hooks
    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """One real step of every env with the epsilon-greedy policy (no random warm-up:
        the book's agent acts on its zero-initialised table from the start)."""
        return self._collect_real_steps(self.buffer, 1, callback, self)

    def _refit(self) -> None:
        """Model learning: add the last real step to the model's counts."""
        step = self.buffer.transitions()
        # Numbered once on the host, for the model and the Q table (_train): state, action,
        # next state [B] int64, reward, terminated [B] float64.
        self._last_step = (
            flat_index(step.obs.numpy(), self.observation_space),
            flat_index(step.action.numpy(), self.action_space),
            flat_index(step.next_obs.numpy(), self.observation_space),
            step.reward.numpy().astype(np.float64),
            step.terminated.numpy().astype(np.float64),
        )
        device = self.model.device
        self.model.update_indices(*(torch.as_tensor(x, device=device) for x in self._last_step))

    def _train(self) -> None:
        """Direct RL on the last real step (numbered by :meth:`_refit`), then planning."""
        states, actions, next_states, reward, terminated = self._last_step
        target = q_learning_target(
            reward, self.q_table[next_states], terminated, self.config.gamma
        )
        self.q_table[states, actions] += self.config.learning_rate * (
            target - self.q_table[states, actions]
        )
        new = ~self._visited_mask[states, actions]
        if new.any():
            self._visited_mask[states[new], actions[new]] = True
            self.visited = np.concatenate([self.visited, np.stack([states[new], actions[new]], -1)])
        self._plan()
        self.logger.record("train/visited_pairs", len(self.visited))

    def _plan(self) -> None:
        """``planning_steps`` sequential Q-learning updates on model-imagined transitions."""
        n = self.config.planning_steps
        if n == 0 or len(self.visited) == 0:
            return
        pairs = self.visited[self.rng.integers(len(self.visited), size=n)]
        device = self.model.device
        next_s, reward, term = self.model.step_indices(
            torch.as_tensor(pairs[:, 0], device=device),
            torch.as_tensor(pairs[:, 1], device=device),
            generator=self.model_rng,
        )
        next_s = next_s.cpu().numpy()
        reward = reward.cpu().numpy().astype(np.float64)
        term = term.cpu().numpy().astype(np.float64)
        q, alpha, gamma = self.q_table, self.config.learning_rate, self.config.gamma
        # Sequential, as in the book: a later update may bootstrap from an earlier one.
        for (si, ai), s2, r, t in zip(pairs, next_s, reward, term, strict=True):
            q[si, ai] += alpha * (r + gamma * (1.0 - t) * q[s2].max() - q[si, ai])

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
        :raises SpaceMismatchError: naming ``observation`` for a shape, a dtype or a value
            that does not fit the observation space.
        """
        tensor, batched = as_batch(
            observation, self.observation_space, name="observation", device="cpu"
        )
        q = self.q_table[flat_index(tensor.numpy(), self.observation_space, name="observation")]
        epsilon = 0.0 if deterministic else self.config.exploration_rate
        actions = self._index_to_action(epsilon_greedy(q, epsilon, self.rng))
        return (actions if batched else actions[0]), None
