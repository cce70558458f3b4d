"""The world-model contract every model (built-in or plugin) implements."""

from __future__ import annotations

import abc
import os
from typing import Any, ClassVar

import torch
from gymnasium import spaces

from mbwrap.checkpoint import load_checkpoint, save_checkpoint
from mbwrap.device import resolve_device
from mbwrap.errors import CheckpointError
from mbwrap.spaces import as_batch, check_space, space_from_json, space_to_json
from mbwrap.types import ModelRollout, ModelStep

_CHECKPOINT_KIND = "mbwrap.model"


class WorldModel(torch.nn.Module, abc.ABC):
    """A learned (or known) model of an environment, batched and on one device.

    The protocol, for a batch of ``B``:

    - ``encode(obs: [B, *obs_shape]) -> state: [B, *state_shape]`` (identity for models of
      the state itself, a latent for latent models),
    - ``step(state, action: [B, *act_shape]) -> ModelStep`` with the next state, the
      reward ``[B]`` and the termination probability ``[B]``,
    - ``decode(state) -> obs`` back in the observation space,
    - ``fit(buffer) -> metrics`` from real experience,
    - ``save(path)`` / ``load(path)`` as tensors plus JSON, never pickle.

    Subclasses implement :meth:`fit`, :meth:`step` and :meth:`get_config` (the JSON-able
    constructor keywords :meth:`load` rebuilds the model with).

    :param observation_space: the real env's observation space.
    :param action_space: the real env's action space.
    :param env_id: the Gymnasium id of the modelled env, used to find registered
        reward/termination functions (group ``mbwrap.fns``).
    :param device: ``"auto"`` picks CUDA when present.
    """

    #: The registry name this class is registered under, stored in checkpoints so that
    #: ``WorldModel.load(path)`` can rebuild the right class.
    registry_name: ClassVar[str | None] = None
    #: Whether the model takes ``Dict`` and ``Tuple`` observation spaces (its encoder
    #: routes their leaves).
    accepts_dict_observations: ClassVar[bool] = False

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__()
        self.observation_space = check_space(
            observation_space,
            name="observation_space",
            structured=self.accepts_dict_observations,
        )
        self.action_space = check_space(action_space, name="action_space")
        self.env_id = env_id
        # An empty tensor that follows the module through .to()/.cuda(), so `device`
        # stays right however the model is moved.
        self.register_buffer(
            "_anchor", torch.empty(0, device=resolve_device(device)), persistent=False
        )

    @property
    def device(self) -> torch.device:
        """The device the model's tensors and outputs live on."""
        # _buffers, not the attribute: nn.Module's attribute lookup is slow on hot paths.
        return self._buffers["_anchor"].device

    # ------------------------------------------------------------------ protocol
    @abc.abstractmethod
    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        """Fit the model to the real transitions in ``buffer``; return metrics."""

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Map observations ``[B, *obs_shape]`` to model states (identity by default)."""
        tensor, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        return tensor

    @abc.abstractmethod
    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """Predict one step for a batch.

        :param state: ``[B, *state_shape]`` on :attr:`device`.
        :param action: ``[B, *act_shape]`` on :attr:`device`.
        :param generator: source of randomness for stochastic models.
        :param member: ``[B]`` int64, the ensemble member each trajectory follows (from
            :meth:`sample_members`); ``None`` lets the model propagate as configured.
            Models without members ignore it.
        """

    @torch.no_grad()
    def rollout(
        self,
        state: torch.Tensor,
        actions: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelRollout:
        """:meth:`step` along action sequences: ``H`` steps of ``R`` rows at once.

        The shooting planners score candidates with it. By default it calls :meth:`step`
        ``H`` times; a model may prepare the loop once instead (validation, normalisation,
        the random choices of all steps), with the same distribution of outcomes.

        :param state: ``[R, *state_shape]`` on :attr:`device`.
        :param actions: ``[R, H, *act_shape]``.
        :param generator: source of randomness for stochastic models.
        :param member: ``[R]``, as for :meth:`step`.
        """
        states, rewards, terminated = [state], [], []
        for t in range(actions.shape[1]):
            pred = self.step(states[-1], actions[:, t], generator=generator, member=member)
            states.append(pred.next_state)
            rewards.append(pred.reward)
            terminated.append(pred.terminated)

        def stacked(values: list[torch.Tensor | None]) -> torch.Tensor | None:
            return None if not values or values[0] is None else torch.stack(values)  # type: ignore[arg-type]

        return ModelRollout(torch.stack(states), stacked(rewards), stacked(terminated))

    def sample_members(
        self, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """Ensemble members for ``n`` new trajectories: ``[n]`` int64, or ``None``.

        An ensemble that propagates one fixed member per trajectory (TS-inf, Chua et al.
        2018) returns one member per trajectory; every other model returns ``None``.
        Imagination environments and planners call this when a trajectory starts and pass
        the result to :meth:`step`.
        """
        return None

    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """Map model states back to observations (identity by default)."""
        return state

    def mean_step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The expected next state and reward, differentiable with respect to both inputs.

        Gradient-based planners (iLQR) linearise this; it never samples and must not run
        under ``torch.no_grad``. Models that cannot offer it raise ``NotImplementedError``.

        :param state: ``[B, *state_shape]`` float.
        :param action: ``[B, *act_shape]`` float (Box actions only).
        :return: ``(next_state [B, *state_shape], reward [B] or None without a reward head)``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no differentiable mean prediction (mean_step); "
            "gradient-based planners such as iLQR need one"
        )

    # ------------------------------------------------------------------ imagination
    @property
    def dream_observation_space(self) -> spaces.Space:
        """What imagination environments over this model observe.

        The real observation space by default (their observations are
        :meth:`decode` of the state); latent models return the space of their latent
        features instead, so that an agent trained in imagination acts on those.
        """
        return self.observation_space

    def dream_observation(self, state: torch.Tensor) -> torch.Tensor:
        """The observation an imagination environment emits for ``state: [B, ...]``."""
        return self.decode(state)

    def dream_start_states(
        self, buffer: Any, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[n, *state_shape]`` model states to start imagined episodes from real data.

        By default the encoding of ``n`` stored observations drawn uniformly; latent models
        filter replayed sequences instead.
        """
        return self.encode(buffer.sample(n, generator=generator).obs)

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor keywords (besides spaces, ``env_id`` and ``device``)."""

    # ------------------------------------------------------------------ persistence
    def optimizer_state_dict(self) -> dict[str, Any] | None:
        """The state of the optimizer the model keeps across fits (``None`` when it keeps
        none, or has not built it yet), so that an algorithm resumes training exactly."""
        return None

    def load_optimizer_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`optimizer_state_dict`'s output (``None``: nothing to restore)."""
        if state is not None:
            raise ValueError(
                f"state: {type(self).__name__} keeps no optimizer, but optimizer state was given"
            )

    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically as tensors plus JSON metadata."""
        save_checkpoint(
            path,
            kind=_CHECKPOINT_KIND,
            metadata=self.checkpoint_metadata(),
            tensors=self.state_dict(),
        )

    def checkpoint_metadata(self) -> dict[str, Any]:
        """The JSON-able description :meth:`from_checkpoint` rebuilds the model from."""
        cls = type(self)
        return {
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "registry_name": cls.registry_name,
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "env_id": self.env_id,
            "config": self.get_config(),
        }

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> WorldModel:
        """Rebuild a model saved by :meth:`save`, without executing code from the file.

        Called on a subclass, the file must hold that class. Called on ``WorldModel``
        itself, the class is found through the registry name stored in the file.

        :raises CheckpointError: for a corrupt file, one of another model class, or
            tensors that do not fit the model.
        """
        metadata, tensors = load_checkpoint(path, kind=_CHECKPOINT_KIND)
        return cls.from_checkpoint(metadata, tensors, device=device, source=str(path))

    @classmethod
    def from_checkpoint(
        cls,
        metadata: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        *,
        device: str | torch.device = "auto",
        source: str = "checkpoint",
    ) -> WorldModel:
        """Rebuild a model from :meth:`checkpoint_metadata` and its ``state_dict``.

        :param source: names the file in error messages.
        :raises CheckpointError: as :meth:`load`.
        """
        from mbwrap.registry import checkpoint_class

        target: type[WorldModel] = checkpoint_class(cls, WorldModel, "model", metadata, source)
        try:
            model = target(
                space_from_json(metadata["observation_space"]),
                space_from_json(metadata["action_space"]),
                env_id=metadata.get("env_id"),
                device=device,
                **metadata.get("config", {}),
            )
            model.load_state_dict({k: v.to(model.device) for k, v in tensors.items()})
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{source!r}: model checkpoint does not fit: {err}") from err
        return model
