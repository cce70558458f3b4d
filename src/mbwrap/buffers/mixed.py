"""A replay buffer that mixes real and model-generated transitions in every batch, as SB3's
off-policy agents sample them (MBPO, Janner et al. 2019)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from mbwrap.buffers.replay import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.spaces import action_bounds, scale_action
from mbwrap.types import Transition


def split_batch(batch_size: int, real_ratio: float) -> tuple[int, int]:
    """How many of ``batch_size`` samples come from real data and how many from the model.

    ``int(batch_size * real_ratio)`` real, the rest model, as MBPO's ``_training_batch``
    (github.com/jannerm/mbpo, ``mbpo/algorithms/mbpo.py``) splits it.

    :return: ``(real, model)``, summing to ``batch_size``.
    """
    if not 0.0 <= real_ratio <= 1.0:
        raise ValueError(f"real_ratio: expected a number in [0, 1], got {real_ratio!r}")
    real = int(batch_size * real_ratio)
    return real, batch_size - real


class MixedReplayBuffer:
    """Samples SB3 ``ReplayBufferSamples`` with a fixed share of real transitions.

    Stands in for an SB3 off-policy agent's ``replay_buffer``: its ``train(gradient_steps,
    batch_size)`` calls :meth:`sample`, and each batch holds
    :func:`split_batch` ``(batch_size, real_ratio)`` real transitions followed by model
    ones, both drawn uniformly with replacement. Until the model buffer holds anything,
    batches are all real.

    ``dones`` are the ``terminated`` flags only: a transition cut by a time limit still
    bootstraps, as SB3's ``handle_timeout_termination`` does. Box actions are scaled to
    ``[-1, 1]`` as SB3 stores them; VecNormalize statistics are not applied.

    The sampling generators are its whole state (:meth:`state_dict`): the transitions
    belong to the two buffers it reads.

    :param real: real transitions (an :class:`~mbwrap.ReplayBuffer`).
    :param model: model-generated transitions; may be swapped later (:attr:`model`).
    :param real_ratio: share of each batch drawn from ``real``.
    :param device: where the samples are returned (the agent's device).
    :param seed: seeds the sampling.
    """

    def __init__(
        self,
        real: ReplayBuffer,
        model: ReplayBuffer | None,
        real_ratio: float,
        *,
        device: torch.device | str,
        seed: int | None = None,
    ) -> None:
        split_batch(0, real_ratio)
        self.real = real
        self.model = model
        self.real_ratio = float(real_ratio)
        self.device = torch.device(device)
        space = real.action_space
        self._bounds = action_bounds(space, self.device) if isinstance(space, spaces.Box) else None
        seeds = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64) >> np.uint64(1)
        self._seeds = [int(s) for s in seeds]
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, which: str, device: torch.device) -> torch.Generator:
        key = f"{which}@{device}"
        if key not in self._generators:
            index = 0 if which == "real" else 1
            self._generators[key] = make_generator(device, self._seeds[index])
        return self._generators[key]

    def size(self) -> int:
        """Stored transitions, real and model (SB3 buffers report ``size()``)."""
        return len(self.real) + (len(self.model) if self.model is not None else 0)

    def sample(self, batch_size: int, env: object = None) -> ReplayBufferSamples:
        """Draw a mixed batch.

        :param batch_size: ``B``.
        :param env: SB3 passes its ``VecNormalize`` here; it is not supported and ignored.
        :return: ``ReplayBufferSamples`` with ``observations: [B, *obs_shape]``,
            ``actions: [B, *act_shape]``, ``next_observations``, ``dones: [B, 1]``,
            ``rewards: [B, 1]``, on :attr:`device`; the real rows first.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        n_real, n_model = split_batch(batch_size, self.real_ratio)
        if self.model is None or len(self.model) == 0:
            n_real, n_model = batch_size, 0
        parts = []
        if n_real:
            parts.append(self._draw(self.real, "real", n_real))
        if n_model:
            assert self.model is not None
            parts.append(self._draw(self.model, "model", n_model))
        obs, action, next_obs, done, reward = (
            torch.cat(field) for field in zip(*parts, strict=True)
        )
        if self._bounds is not None:
            action = scale_action(action.float(), *self._bounds)
        elif action.ndim == 1:
            action = action.unsqueeze(1)  # SB3 stores a Discrete action with shape (1,)
        return ReplayBufferSamples(
            observations=obs,
            actions=action,
            next_observations=next_obs,
            dones=done.unsqueeze(1),
            rewards=reward.unsqueeze(1),
        )

    def _draw(self, buffer: ReplayBuffer, which: str, n: int) -> tuple[torch.Tensor, ...]:
        batch: Transition = buffer.sample(n, generator=self._generator(which, buffer.device))
        batch = batch.to(self.device)
        return (
            batch.obs,
            batch.action,
            batch.next_obs,
            batch.terminated.float(),
            batch.reward.float(),
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """The states of the sampling generators used so far, keyed ``"real@cpu"`` etc."""
        return {key: generator.get_state() for key, generator in self._generators.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output: sampling continues where it stopped."""
        for key, value in state.items():
            which, _, device = key.partition("@")
            self._generator(which, torch.device(device)).set_state(value.to(torch.uint8).cpu())
