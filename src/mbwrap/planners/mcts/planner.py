"""Tree search as an SB3 policy: the ``"mcts"`` planner."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.device import make_generator
from mbwrap.envs.fns import BatchedFn
from mbwrap.errors import CheckpointError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.planners.mcts.compiled_search import BACKENDS
from mbwrap.planners.mcts.policies import (
    C_SCALE,
    C_VISIT,
    DIRICHLET_ALPHA,
    MAX_NUM_CONSIDERED_ACTIONS,
    gumbel_muzero_policy,
    muzero_policy,
)
from mbwrap.planners.mcts.search import check_num_simulations
from mbwrap.planners.mcts.types import PolicyOutput, SearchModel
from mbwrap.planners.mcts.world_model import ValueFn, WorldModelSearch
from mbwrap.space_support import SpaceSupport

_CHECKPOINT_KIND = "mbwrap.mcts"


class MCTSPlanner(BasePolicy):
    """A policy that acts by a batched tree search at every step.

    It searches over any :class:`SearchModel` (MuZero's networks, a game's rules with a
    policy-value network, a real simulator) or over any :class:`WorldModel` with
    discrete actions (through :class:`WorldModelSearch`). All ``B`` observations of a
    call are searched together on the model's device. Being an SB3 ``BasePolicy``,
    ``predict`` and ``evaluate_policy(planner, env)`` work unchanged.

    The search works on action indices ``0..n-1`` (:meth:`search_policy`'s actions and
    policies); :meth:`predict` returns the action space's own values, ``index + start``
    for ``Discrete(n, start)`` (:meth:`action_values`).

    :param model: a :class:`SearchModel` or a :class:`WorldModel`.
    :param num_simulations: simulations per decision.
    :param search: ``"muzero"`` (pUCT, Schrittwieser et al. 2020) or ``"gumbel"``
        (Danihelka et al. 2022).
    :param temperature: pUCT only: act by visit counts ``** (1 / temperature)``; ``0``
        plays the most visited action.
    :param dirichlet_fraction: pUCT only: weight of root noise (0 when acting for
        evaluation; MuZero uses 0.25 in self-play).
    :param gumbel_scale: Gumbel only: 0 acts deterministically.
    :param gamma: :class:`WorldModel` only: discount of the searched return.
    :param value_fn: :class:`WorldModel` only: ``states [B, ...] -> [B]`` leaf values.
    :param rollout_horizon: :class:`WorldModel` only: value new nodes by a random rollout
        of this many model steps (when there is no ``value_fn``).
    :param reward_fn, termination_fn: :class:`WorldModel` only (see
        :class:`WorldModelSearch`).
    :param observation_space, action_space: needed when the model has none.
    :param backend: how the tree is searched: ``"torch"``, ``"compiled"`` (numba kernels
        on the CPU) or ``"auto"`` (compiled on the CPU for small batches when numba is
        installed); see :func:`muzero_policy`. The trees are the same.
    """

    registry_name: ClassVar[str] = "mcts"
    space_support = SpaceSupport(observations=None, actions=("Discrete",))

    def __init__(
        self,
        model: SearchModel | WorldModel,
        *,
        num_simulations: int = 50,
        search: str = "muzero",
        temperature: float = 0.0,
        dirichlet_fraction: float = 0.0,
        dirichlet_alpha: float = DIRICHLET_ALPHA,
        max_num_considered_actions: int = MAX_NUM_CONSIDERED_ACTIONS,
        gumbel_scale: float = 0.0,
        c_visit: float = C_VISIT,
        c_scale: float = C_SCALE,
        max_depth: int | None = None,
        gamma: float = 0.997,
        value_fn: ValueFn | None = None,
        rollout_horizon: int = 0,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        seed: int | None = None,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        backend: str = "auto",
    ) -> None:
        generator = make_generator(
            model.device if isinstance(model, WorldModel)
            else torch.device(getattr(model, "device", "cpu")), seed,
        )
        if isinstance(model, WorldModel):
            search_model: SearchModel = WorldModelSearch(
                model, gamma=gamma, value_fn=value_fn, reward_fn=reward_fn,
                termination_fn=termination_fn, rollout_horizon=rollout_horizon,
                generator=generator,
            )
        elif isinstance(model, SearchModel):
            search_model = model
        else:
            raise TypeError(
                "model: expected an mbwrap SearchModel (num_actions, root(), recurrent_fn()) "
                f"or a WorldModel with Discrete actions, got {type(model).__name__}"
            )
        observation_space = observation_space or getattr(search_model, "observation_space", None)
        action_space = action_space or getattr(search_model, "action_space", None)
        if observation_space is None or action_space is None:
            raise ValueError(
                f"observation_space, action_space: {type(model).__name__} has none; pass them"
            )
        if not isinstance(action_space, spaces.Discrete) or (
            int(action_space.n) != search_model.num_actions
        ):
            raise UnsupportedSpaceError(
                f"action_space: tree search needs Discrete({search_model.num_actions}) to "
                f"match the model's num_actions, got {action_space!r}"
            )
        if search not in ("muzero", "gumbel"):
            raise ValueError(f"search: expected 'muzero' or 'gumbel', got {search!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected 'auto', 'torch' or 'compiled', got {backend!r}")
        super().__init__(observation_space, action_space)
        self.model = model
        self.search_model = search_model
        self.num_simulations = check_num_simulations(num_simulations)
        self.search = search
        self.temperature = float(temperature)
        self.dirichlet_fraction = float(dirichlet_fraction)
        self.dirichlet_alpha = float(dirichlet_alpha)
        self.max_num_considered_actions = int(max_num_considered_actions)
        self.gumbel_scale = float(gumbel_scale)
        self.c_visit = float(c_visit)
        self.c_scale = float(c_scale)
        self.max_depth = None if max_depth is None else int(max_depth)
        self.gamma = float(gamma)
        self.rollout_horizon = int(rollout_horizon)
        self.seed = None if seed is None else int(seed)
        self.backend = backend
        self._given_fns = {"value_fn": value_fn is not None, "reward_fn": reward_fn is not None,
                           "termination_fn": termination_fn is not None}
        self.generator = generator
        #: The last search (for inspection: visit counts, values, the tree).
        self.last_search: PolicyOutput | None = None
        self._action_start = int(action_space.start)

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        """The model's device, where the search runs."""
        return torch.device(getattr(self.search_model, "device", "cpu"))

    def get_config(self) -> dict[str, Any]:
        """The JSON-able settings (what :meth:`save` stores)."""
        return {
            "num_simulations": self.num_simulations, "search": self.search,
            "temperature": self.temperature, "dirichlet_fraction": self.dirichlet_fraction,
            "dirichlet_alpha": self.dirichlet_alpha,
            "max_num_considered_actions": self.max_num_considered_actions,
            "gumbel_scale": self.gumbel_scale, "c_visit": self.c_visit, "c_scale": self.c_scale,
            "max_depth": self.max_depth, "gamma": self.gamma,
            "rollout_horizon": self.rollout_horizon, "seed": self.seed, "backend": self.backend,
        }

    # ------------------------------------------------------------------ acting
    def search_policy(self, obs: Any) -> PolicyOutput:
        """Search from a batch of observations; the result holds the action indices
        (:meth:`action_values` turns them into actions of the space), the search policy
        and the tree."""
        root = self.search_model.root(obs)
        if self.search == "gumbel":
            out = gumbel_muzero_policy(
                root, self.search_model.recurrent_fn, self.num_simulations,
                max_num_considered_actions=self.max_num_considered_actions,
                gumbel_scale=self.gumbel_scale, c_visit=self.c_visit, c_scale=self.c_scale,
                max_depth=self.max_depth, generator=self.generator, backend=self.backend,
            )
        else:
            out = muzero_policy(
                root, self.search_model.recurrent_fn, self.num_simulations,
                dirichlet_alpha=self.dirichlet_alpha,
                dirichlet_fraction=self.dirichlet_fraction, temperature=self.temperature,
                max_depth=self.max_depth, generator=self.generator, backend=self.backend,
            )
        self.last_search = out
        return out

    def action_values(self, index: torch.Tensor) -> torch.Tensor:
        """Action indices of a search ``[B]`` (``0..n-1``) -> the action space's values
        ``[B]`` (``index + start``), as an env takes them."""
        return index + self._action_start

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.action_values(self.search_policy(observation).action)

    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``: ``[B]`` actions (or one, for an unbatched observation)."""
        with torch.no_grad():
            return super().predict(observation, state, episode_start, deterministic)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the settings (JSON), and a :class:`WorldModel` searched over (tensors).

        Other search models (networks of an algorithm, game rules, simulators) are saved by
        their owner and given again to :meth:`load`; functions are code and not saved.
        """
        world_model = self.model if isinstance(self.model, WorldModel) else None
        metadata = {
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "config": self.get_config(),
            "given_fns": self._given_fns,
            "model": None if world_model is None else world_model.checkpoint_metadata(),
        }
        tensors = {} if world_model is None else world_model.state_dict()
        save_checkpoint(path, kind=_CHECKPOINT_KIND, metadata=metadata, tensors=tensors)

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "auto",
        *,
        model: SearchModel | WorldModel | None = None,
        **kwargs: Any,
    ) -> MCTSPlanner:
        """Rebuild a planner saved by :meth:`save`, without executing code from the file.

        :param model: the model to search over; needed unless a :class:`WorldModel` was
            saved with the planner.
        :param kwargs: functions (``value_fn``, ``reward_fn``, ``termination_fn``) and
            spaces, which are not saved.
        :raises CheckpointError: for a corrupt or foreign file, or settings that do not fit.
        """
        metadata, tensors = load_checkpoint(path, kind=_CHECKPOINT_KIND)
        if model is None:
            if not metadata.get("model"):
                raise CheckpointError(
                    f"{str(path)!r} holds the settings of a search over a model that is not a "
                    "WorldModel; pass that model to load(model=...)"
                )
            model = WorldModel.from_checkpoint(
                metadata["model"], tensors, device=device, source=str(path)
            )
        try:
            return cls(model, **metadata.get("config", {}), **kwargs)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{str(path)!r}: planner settings do not fit: {err}") from err
