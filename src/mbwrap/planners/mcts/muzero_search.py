"""Tree search over MuZero's learned networks."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

from mbwrap.models.muzero_nets import MuZeroNetworks
from mbwrap.planners.mcts.types import RecurrentFnOutput, RootFnOutput
from mbwrap.spaces import as_batch


class MuZeroSearchModel:
    """The :class:`~mbwrap.planners.mcts.SearchModel` of MuZero's networks (Schrittwieser
    et al. 2020): roots by the representation ``h`` then the prediction ``f``, steps by the
    dynamics ``g`` then ``f``; the embedding is the hidden state.

    :param networks: the networks searched over.
    :param observation_space: of the env (``uint8`` images are scaled to ``[0, 1]``).
    :param action_space: ``Discrete``.
    :param gamma: per-step discount of the searched return.
    """

    def __init__(
        self,
        networks: MuZeroNetworks,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        *,
        gamma: float,
    ) -> None:
        self.networks = networks
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_actions = int(action_space.n)
        self.gamma = float(gamma)

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
        """``(state [B, *state], action [B]) -> (step outputs, next state [B, *state])``."""
        with torch.no_grad():
            state, reward = self.networks.dynamics(embedding, action)
            logits, value = self.networks.predict(state)
            # Both heads share the support: one conversion for the two (a search calls
            # this once per simulation, where each small operation counts).
            reward, value = self.networks.to_scalar(torch.stack([reward, value])).unbind(0)
        out = RecurrentFnOutput(
            reward=reward,
            discount=torch.full_like(action, self.gamma, dtype=state.dtype),
            prior_logits=logits,
            value=value,
        )
        return out, state
