"""The posterior state of a recurrent latent model, kept for a batch of envs and advanced
with each new observation (Hafner et al. 2019, Section 2: "the filter").

One filter serves every place that acts from latent states: Dreamer's and PlaNet's
acting, :class:`~mbwrap.LatentFilterWrapper` (the real env seen through the model) and
:class:`~mbwrap.envs.latent_filter.LatentFilterPolicy` (an agent of latent features
acting on real observations).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from mbwrap.device import make_generator
from mbwrap.models.base import WorldModel
from mbwrap.models.encoders import Observation
from mbwrap.spaces import as_batch

#: What a model needs to be filtered: an observation encoder, the posterior of an
#: episode's first observation, one filtering step, and actions as model inputs.
FILTER_METHODS = ("embed", "first_posterior", "obs_step", "action_vector")


def missing_filter_methods(model: Any) -> list[str]:
    """The :data:`FILTER_METHODS` that ``model`` lacks (empty for a filtering model)."""
    return [name for name in FILTER_METHODS if not callable(getattr(model, name, None))]


def observation_batch(
    obs: Any, space: spaces.Space, device: torch.device | str, *, name: str = "observation"
) -> tuple[Observation, bool]:
    """``(obs as a batch [B, *obs_shape] on device, whether it came batched)``; a Dict
    space gives a dict of such batches.

    :raises SpaceMismatchError: naming ``name`` for a shape that is neither one
        observation nor a batch of them.
    """
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict):
            raise TypeError(f"{name}: expected a dict with keys {sorted(space.spaces)}")
        parts = {
            key: as_batch(obs[key], sub, name=f"{name}[{key!r}]", device=device)
            for key, sub in space.spaces.items()
        }
        batched = all(flag for _, flag in parts.values())
        return {key: tensor for key, (tensor, _) in parts.items()}, batched
    return as_batch(obs, space, name=name, device=device)


class LatentFilter:
    """Posterior states ``[B, F]`` of ``B`` envs, advanced by :meth:`observe`.

    Where an episode starts (or nothing was observed yet) the state is the posterior of
    the observation alone (``model.first_posterior``); elsewhere the model advances the
    state with the action taken and corrects it with the new observation
    (``model.obs_step``). Filtering never trains the model (``torch.no_grad``).

    A checkpoint keeps the states and the sampling generator (:meth:`state_dict`).

    :param model: a recurrent latent model with :data:`FILTER_METHODS` (e.g.
        :class:`~mbwrap.models.RSSM`).
    :param sample: sample the stochastic part of the state (as in training) or take its
        mode.
    :param seed: seed of :attr:`generator`.
    :raises TypeError: naming ``model`` when it cannot be filtered.
    """

    def __init__(self, model: WorldModel, *, sample: bool = True, seed: int | None = None) -> None:
        missing = missing_filter_methods(model)
        if missing:
            raise TypeError(
                f"model: {type(model).__name__} is not a latent filtering model (it lacks "
                f"{', '.join(missing)}); use a recurrent latent model such as 'rssm'"
            )
        self.model = model
        self.sample = bool(sample)
        #: Samples the stochastic states.
        self.generator = make_generator(model.device, seed)
        #: ``[B, F]`` posterior states after the last observations (``None``: none yet).
        self.state: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget every env's state: the next :meth:`observe` starts them all afresh."""
        self.state = None

    @torch.no_grad()
    def observe(
        self,
        obs: Observation,
        action: torch.Tensor | None = None,
        episode_start: Any = None,
    ) -> torch.Tensor:
        """Advance every env's state to its new observation.

        :param obs: ``[B, *obs_shape]`` on the model's device (a dict of such for Dict
            spaces; see :func:`observation_batch`).
        :param action: ``[B, A]`` model inputs (``model.action_vector``) of the actions
            taken since the previous observations; ``None``: every env starts afresh.
        :param episode_start: ``[B]`` bool, envs whose episode starts with ``obs``;
            ``None``: none does. Every env starts afresh when there is no state yet or
            its batch size differs.
        :return: ``[B, F]`` the new states, also kept in :attr:`state`.
        """
        model, generator = self.model, self.generator
        embed = model.embed(obs)
        batch = embed.shape[0]
        if episode_start is None:
            starts = torch.zeros(batch, dtype=torch.bool, device=embed.device)
        else:
            flags = np.asarray(episode_start, dtype=bool).reshape(-1)
            starts = torch.as_tensor(flags, device=embed.device)
        known = self.state is not None and action is not None and self.state.shape[0] == batch
        if not known or bool(starts.all()):
            # Samples are drawn only where they are used, so the stream of the generator
            # depends on the episode starts alone, whatever state was there before.
            self.state = model.first_posterior(embed, generator, self.sample)
            return self.state
        assert self.state is not None and action is not None
        after, _, _ = model.obs_step(self.state, action, embed, generator, self.sample)
        if bool(starts.any()):
            first = model.first_posterior(embed, generator, self.sample)
            after = torch.where(starts[:, None], first, after)
        self.state = after
        return after

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The states (``None`` before the first observation) and the generator's state."""
        return {"state": self.state, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["state"]
        self.state = None if saved is None else saved.to(self.model.device)
        self.generator.set_state(state["generator"].to(torch.uint8))
