"""The planner contract: model-predictive control as an SB3 policy."""

from __future__ import annotations

import abc
import math
import os
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.device import make_generator, resolve_device
from mbwrap.envs.fns import BatchedFn, resolve_fns
from mbwrap.errors import CheckpointError, ModelOutputError, UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.planners.objective import NONFINITE_RETURN, predicted_returns
from mbwrap.registry import checkpoint_class
from mbwrap.spaces import action_bounds, as_batch

_CHECKPOINT_KIND = "mbwrap.planner"

#: ``candidates -> returns``: ``[B, N, H, *act_shape] -> [B, N]`` from fixed start states.
Objective = Callable[[torch.Tensor], torch.Tensor]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def _unit_float(value: Any, name: str, *, low_open: bool = True) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name}: expected a float in {interval}, got {value!r}")
    return float(value)


class Planner(BasePolicy, abc.ABC):
    """A policy that acts by model-predictive control over a :class:`WorldModel`.

    At every call it optimises an action sequence of ``horizon`` steps for each of the
    ``B`` observations, in one batched optimisation on the model's device, executes the
    first action and keeps the rest: the solution shifted one step seeds the next plan
    (warm start), per env; ``episode_start`` (as SB3's ``evaluate_policy`` passes it)
    clears it for the envs that start a new episode.

    Being an SB3 ``BasePolicy``, ``planner.predict(obs, state, episode_start,
    deterministic)`` and ``evaluate_policy(planner, env)`` work unchanged.

    **Solutions** are ``[B, H, D]`` float tensors: for a Box action space, the flattened
    actions (``D = prod(shape)``); for a Discrete one, a probability per action
    (``D = n``), so that shifting and blending work alike. A fresh step is the middle of
    the Box (as in PETS) or the uniform distribution. Discrete candidates are drawn as
    indices ``0..n-1``; the model, the reward and termination functions and the caller
    of :meth:`predict` get the space's own values, ``index + start`` for
    ``Discrete(n, start)`` (:meth:`to_actions`).

    **Objective.** The predicted return of a sequence (:func:`predicted_returns`): the
    reward comes from ``reward_fn`` if given, else the function registered for the
    model's ``env_id`` (group ``mbwrap.fns``), else the model's reward head; likewise the
    termination. Assign :attr:`reward_fn` at any time to pursue a new goal with the same
    model, without retraining.

    Subclasses implement :meth:`optimize`, declare their settings in :meth:`get_config`,
    and set :attr:`supports_discrete`.

    :param model: the world model planned over.
    :param horizon: ``H``, steps planned ahead.
    :param particles: rollouts per candidate (trajectory sampling, Chua et al. 2018).
    :param reward_fn: batched ``(obs, action, next_obs) -> [n]``.
    :param termination_fn: batched ``(obs, action, next_obs) -> [n]`` bool.
    :param gamma: per-step discount of the planned return.
    :param warm_start: seed each plan with the previous solution, shifted.
    :param seed: seed of the planner's random generator (``None``: fresh entropy).
    :param device: must be the model's device when given (``None``, ``"auto"``: the
        model's); the planner never moves the model.
    """

    #: Whether the optimiser handles Discrete action spaces.
    supports_discrete: ClassVar[bool] = False
    #: The registry name (``mbwrap.planners`` group) stored in checkpoints.
    registry_name: ClassVar[str | None] = None

    def __init__(
        self,
        model: WorldModel,
        *,
        horizon: int,
        particles: int = 1,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        gamma: float = 1.0,
        warm_start: bool = True,
        seed: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, WorldModel):
            raise TypeError(
                f"model: expected an mbwrap.models.WorldModel, got {type(model).__name__}"
            )
        if device is not None and device != "auto":
            wanted = resolve_device(device)
            if wanted.type != model.device.type or (
                wanted.index is not None and wanted.index != model.device.index
            ):
                raise ValueError(
                    f"device: the planner was asked to run on {wanted}, but the model lives "
                    f"on {model.device}; move the model first (model.to({str(wanted)!r}))"
                )
        space = model.action_space
        if isinstance(space, spaces.Discrete):
            if not self.supports_discrete:
                raise UnsupportedSpaceError(
                    f"model.action_space: {type(self).__name__} plans over Box actions only, "
                    f"got {space!r}; use 'cem' or 'random-shooting' for Discrete actions"
                )
        elif isinstance(space, spaces.Box):
            if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                raise UnsupportedSpaceError(
                    f"model.action_space: planners sample within the bounds, so they need a "
                    f"bounded Box; got {space!r}"
                )
        else:
            raise UnsupportedSpaceError(
                f"model.action_space: planners support Box and Discrete actions, got {space!r}"
            )
        super().__init__(model.observation_space, space)
        self.model = model
        self.horizon = _positive_int(horizon, "horizon")
        self.particles = _positive_int(particles, "particles")
        self.gamma = _unit_float(gamma, "gamma")
        self.warm_start = bool(warm_start)
        self.seed = None if seed is None else int(seed)
        self._given_reward_fn = reward_fn is not None
        self._given_termination_fn = termination_fn is not None
        fns = resolve_fns(model, reward_fn, termination_fn)
        self.reward_fn, self.termination_fn = fns.reward_fn, fns.termination_fn
        self.discrete = isinstance(space, spaces.Discrete)
        self.action_dim = int(space.n) if self.discrete else int(np.prod(space.shape))
        #: ``start`` of a Discrete space: action values are ``index + start``.
        self.action_start = int(space.start) if self.discrete else 0
        if self.discrete:
            self.lower = torch.zeros(self.action_dim, device=model.device)
            self.upper = torch.ones(self.action_dim, device=model.device)
        else:
            self.lower, self.upper = action_bounds(space, model.device, flat=True)
        self.generator = make_generator(model.device, self.seed)
        self._solution: torch.Tensor | None = None  # [B, H, D]
        #: ``[B]`` bool: every candidate's return was non-finite (set by :meth:`objective`).
        self._broken: torch.Tensor | None = None

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:  # type: ignore[override]
        """The model's device, where all planning happens."""
        return self.model.device

    # ------------------------------------------------------------------ contract
    @abc.abstractmethod
    def optimize(self, state: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """Improve the solutions for a batch of start states.

        :param state: ``[B, *state_shape]`` model states.
        :param init: ``[B, H, D]`` warm-start solutions (see the class docstring).
        :return: ``[B, H, D]`` solutions; the first step of each is executed.
        """

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor keywords (besides the model, functions and device)."""
        return {
            "horizon": self.horizon,
            "particles": self.particles,
            "gamma": self.gamma,
            "warm_start": self.warm_start,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ helpers
    def fresh_solution(self, batch: int) -> torch.Tensor:
        """``[batch, H, D]``: the middle of the Box, or uniform action probabilities."""
        middle = (self.lower + self.upper) / 2
        if self.discrete:
            middle = torch.full_like(self.lower, 1.0 / self.action_dim)
        return middle.expand(batch, self.horizon, self.action_dim).clone()

    def to_actions(self, sequences: torch.Tensor) -> torch.Tensor:
        """Map flat Box sequences ``[..., D]`` to ``[..., *act_shape]``, or Discrete
        candidates ``[...]`` of int64 indices ``0..n-1`` to the space's values
        ``index + start``."""
        if self.discrete:
            return sequences + self.action_start
        return sequences.reshape(*sequences.shape[:-1], *self.action_space.shape)

    def objective(self, state: torch.Tensor) -> Objective:
        """The predicted return of candidates from ``state``: ``[B, N, H, *]`` -> ``[B, N]``.

        Box candidates are flat ``[B, N, H, D]``; Discrete ones are ``[B, N, H]`` int64
        indices ``0..n-1`` (the model gets ``index + start``).
        """

        def returns(candidates: torch.Tensor) -> torch.Tensor:
            out = predicted_returns(
                self.model,
                state,
                self.to_actions(candidates),
                particles=self.particles,
                reward_fn=self.reward_fn,
                termination_fn=self.termination_fn,
                discount=self.gamma,
                generator=self.generator,
            )
            # A flag on the device, checked once per decision by plan(): no sync here.
            broken = (out <= NONFINITE_RETURN).all(dim=1)
            self._broken = broken if self._broken is None else self._broken | broken
            return out

        return returns

    def first_action(self, solution: torch.Tensor) -> torch.Tensor:
        """``[B, H, D]`` solutions -> ``[B, *act_shape]`` actions to execute (for Discrete,
        the most probable index plus ``start``)."""
        first = solution[:, 0]
        if self.discrete:
            return first.argmax(-1) + self.action_start
        return torch.clamp(first, self.lower, self.upper).reshape(-1, *self.action_space.shape)

    # ------------------------------------------------------------------ acting
    def reset(self, episode_start: Any = None) -> None:
        """Forget the warm start: for every env (``None``), or where ``episode_start``
        (``[B]`` bool) is true."""
        if episode_start is None or self._solution is None:
            self._solution = None
            return
        done = torch.as_tensor(np.asarray(episode_start, dtype=bool), device=self.device)
        if done.shape != (self._solution.shape[0],):
            self._solution = None
            return
        self._solution[done] = self.fresh_solution(int(done.sum()))

    def plan(self, obs: Any) -> torch.Tensor:
        """Choose actions for a batch: ``obs: [B, *obs_shape] -> actions: [B, *act_shape]``.

        Encodes the observations (``model.encode``) and plans from those states
        (:meth:`plan_states`).

        :raises ModelOutputError: when every candidate of some start state has a
            non-finite predicted return (the model broke down).
        """
        obs, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        with torch.no_grad():
            state = self.model.encode(obs)
        return self.plan_states(state)

    def plan_states(self, state: torch.Tensor) -> torch.Tensor:
        """Choose actions for a batch of model states: ``state: [B, *state_shape] ->
        actions: [B, *act_shape]``.

        For states the caller inferred itself, e.g. a recurrent model's filtered belief
        (PlaNet plans from the posterior after the whole history, not from the last
        observation alone). The warm start, its reset by ``episode_start`` and the shift
        work as in :meth:`plan`: row ``b`` is env ``b``.

        :raises TypeError: when ``state`` is not a tensor with a batch dimension.
        :raises ModelOutputError: when every candidate of some start state has a
            non-finite predicted return (the model broke down).
        """
        if not isinstance(state, torch.Tensor) or state.ndim < 1 or state.shape[0] < 1:
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise TypeError(
                f"state: expected a tensor [B, *state_shape] of model states with B >= 1, got {got}"
            )
        state = state.to(self.device)
        batch = state.shape[0]
        if not self.warm_start or self._solution is None or self._solution.shape[0] != batch:
            self._solution = self.fresh_solution(batch)
        self._broken = None
        solution = self.optimize(state, self._solution)
        # One check per decision, outside the optimisation loop.
        broken = self._broken is not None and bool(self._broken.any())
        if broken or not bool(torch.isfinite(solution).all()):
            raise ModelOutputError(
                f"{type(self).__name__}: the model predicted NaN or infinite values for "
                "every candidate of some observation, so no plan could be chosen"
            )
        fresh = self.fresh_solution(batch)[:, :1]
        self._solution = torch.cat([solution[:, 1:], fresh], dim=1).detach()
        return self.first_action(solution)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict``; ``episode_start`` clears the warm start of those envs."""
        if episode_start is not None:
            self.reset(episode_start)
        return super().predict(observation, state, episode_start, deterministic)

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.plan(observation)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.plan(obs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the settings (JSON) and the model (tensors) atomically; never pickle.

        Reward and termination functions are code, so they are not saved: a planner that
        was given its own must be given them again at :meth:`load`.
        """
        metadata = {
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "registry_name": type(self).registry_name,
            "config": self.get_config(),
            "given_reward_fn": self._given_reward_fn,
            "given_termination_fn": self._given_termination_fn,
            "model": self.model.checkpoint_metadata(),
        }
        save_checkpoint(
            path, kind=_CHECKPOINT_KIND, metadata=metadata, tensors=self.model.state_dict()
        )

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "auto",
        *,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
    ) -> Planner:
        """Rebuild a planner saved by :meth:`save`, without executing code from the file.

        Called on ``Planner`` itself, the class is found through the stored registry name.

        :raises CheckpointError: for a corrupt or foreign file, or settings that do not fit.
        """
        metadata, tensors = load_checkpoint(path, kind=_CHECKPOINT_KIND)
        target: type[Planner] = checkpoint_class(cls, Planner, "planner", metadata, str(path))
        for kind, given, fn in (
            ("reward_fn", metadata.get("given_reward_fn"), reward_fn),
            ("termination_fn", metadata.get("given_termination_fn"), termination_fn),
        ):
            if given and fn is None:
                warnings.warn(
                    f"{str(path)!r} was saved with its own {kind}, which is code and was not "
                    f"saved; pass {kind}= to load() to plan for the same objective",
                    stacklevel=2,
                )
        model = WorldModel.from_checkpoint(
            metadata.get("model", {}), tensors, device=device, source=str(path)
        )
        try:
            return target(
                model,
                reward_fn=reward_fn,
                termination_fn=termination_fn,
                **metadata.get("config", {}),
            )
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{str(path)!r}: planner settings do not fit: {err}") from err


__all__ = ["NONFINITE_RETURN", "Objective", "Planner"]
