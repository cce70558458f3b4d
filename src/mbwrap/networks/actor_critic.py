"""DreamerV3's actor and critic heads on latent features.

- The actor (Hafner et al. 2023, Appendix) is a categorical with 1% uniform mixing for
  Discrete actions, and for Box actions a normal with mean ``tanh(mu)`` and standard
  deviation ``(max - min) sigmoid(s + 2) + min`` in ``[0.1, 1]``, on ``[-1, 1]`` scaled to
  the action bounds.
- The critic predicts a two-hot distribution over 255 bins of symlog space, output layer
  zero-initialised, and keeps a slow copy (exponential moving average, fraction 0.02 per
  update) whose predictions regularise it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models.encoders import mlp
from mbwrap.models.stochastic import UNIMIX, unimix_logits
from mbwrap.spaces import unscale_action
from mbwrap.transforms import symexp, symlog, symlog_bins, two_hot_log_likelihood, two_hot_to_scalar

#: DreamerV3's bounds of the actor's standard deviation.
MIN_STD, MAX_STD = 0.1, 1.0


class LatentActor(nn.Module):
    """A policy on latent features ``[N, F]``.

    :param features: ``F``.
    :param action_space: Discrete or a bounded float Box.
    :param hidden: width of the hidden layers.
    :param layers: hidden layers.
    """

    def __init__(self, features: int, action_space: spaces.Space, hidden: int, layers: int) -> None:
        super().__init__()
        self.action_space = action_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        if self.discrete:
            self.action_dim = int(action_space.n)
            out = self.action_dim
        elif (
            isinstance(action_space, spaces.Box)
            and np.all(np.isfinite(action_space.low))
            and (np.all(np.isfinite(action_space.high)))
        ):
            self.action_dim = int(np.prod(action_space.shape))
            out = 2 * self.action_dim
            low = torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1)
            high = torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1)
            self.register_buffer("low", low, persistent=False)
            self.register_buffer("high", high, persistent=False)
        else:
            raise UnsupportedSpaceError(
                f"action_space: the actor takes Discrete or bounded float Box actions, got "
                f"{action_space!r}"
            )
        self.net = mlp(features, hidden, layers, out)

    def distribution(self, features: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution (on ``[-1, 1]`` for Box; class indices for Discrete)."""
        raw = self.net(features)
        if self.discrete:
            return torch.distributions.Categorical(
                logits=unimix_logits(raw, UNIMIX), validate_args=False
            )
        mean, std = raw.chunk(2, -1)
        std = (MAX_STD - MIN_STD) * torch.sigmoid(std + 2.0) + MIN_STD
        return torch.distributions.Normal(torch.tanh(mean), std, validate_args=False)

    def sample(
        self, features: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.distributions.Distribution]:
        """``(raw sample, action vector [N, A] for the model, distribution)``.

        Discrete samples carry no gradient (REINFORCE); Box samples are reparameterised
        (gradients flow back through the model, Dreamer's dynamics backpropagation).
        """
        dist = self.distribution(features)
        if self.discrete:
            raw = dist.probs.argmax(-1) if deterministic else dist.sample()
            return raw, F.one_hot(raw, self.action_dim).float(), dist
        raw = dist.mean if deterministic else dist.rsample()
        return raw, self.to_env(raw), dist

    def to_env(self, raw: torch.Tensor) -> torch.Tensor:
        """Box samples on ``[-1, 1]`` (clipped) -> actions within the bounds ``[N, A]``."""
        return unscale_action(raw.clamp(-1.0, 1.0), self.low, self.high)

    def env_action(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw samples -> elements of the action space (indices or bounded vectors)."""
        if self.discrete:
            return raw + int(self.action_space.start)
        return self.to_env(raw).reshape(*raw.shape[:-1], *self.action_space.shape)

    def log_prob(self, dist: torch.distributions.Distribution, raw: torch.Tensor) -> torch.Tensor:
        """``[N]`` log-probability of raw samples (summed over Box dimensions)."""
        out = dist.log_prob(raw)
        return out if self.discrete else out.sum(-1)

    def entropy(self, dist: torch.distributions.Distribution) -> torch.Tensor:
        """``[N]`` entropy (summed over Box dimensions)."""
        out = dist.entropy()
        return out if self.discrete else out.sum(-1)


class LatentCritic(nn.Module):
    """A two-hot symlog value head with a slow copy.

    :param features: ``F``.
    :param hidden: width of the hidden layers.
    :param layers: hidden layers.
    :param bins: two-hot bins (DreamerV3: 255).
    :param slow_fraction: EMA fraction of each :meth:`update_slow` (DreamerV3: 0.02).
    """

    def __init__(
        self, features: int, hidden: int, layers: int, bins: int = 255, slow_fraction: float = 0.02
    ) -> None:
        super().__init__()
        self.net = mlp(features, hidden, layers, bins)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.slow = copy.deepcopy(self.net)
        self.slow.requires_grad_(False)
        self.slow_fraction = float(slow_fraction)
        self.register_buffer("bins", symlog_bins(bins), persistent=False)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., F] -> [..., bins]``."""
        return self.net(features)

    def value(self, features: torch.Tensor, slow: bool = False) -> torch.Tensor:
        """Expected value ``[...]``: symexp of the two-hot expectation."""
        return self.expected((self.slow if slow else self.net)(features))

    def expected(self, logits: torch.Tensor) -> torch.Tensor:
        """``[..., bins]`` logits -> expected value ``[...]`` (symexp of the expectation)."""
        return symexp(two_hot_to_scalar(torch.softmax(logits, -1), self.bins))

    def slow_probs(self, features: torch.Tensor) -> torch.Tensor:
        """The slow copy's distribution ``[..., bins]`` (a regularisation target)."""
        with torch.no_grad():
            return torch.softmax(self.slow(features), -1)

    def loss(
        self,
        logits: torch.Tensor,
        features: torch.Tensor,
        returns: torch.Tensor,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        """DreamerV3's critic loss, a scalar: the cross-entropy of ``logits [..., bins]``
        (of ``features [..., F]``) to the symlog two-hot encoding of ``returns [...]``,
        plus the cross-entropy to the slow copy's distribution (weight 1), each element
        weighted by ``weight [...]``, then averaged."""
        log_probs = torch.log_softmax(logits, -1)
        fit = two_hot_log_likelihood(log_probs, symlog(returns.detach()), self.bins)
        regulariser = (self.slow_probs(features) * log_probs).sum(-1)
        return (weight * -(fit + regulariser)).mean()

    @torch.no_grad()
    def update_slow(self) -> None:
        """``slow <- (1 - fraction) slow + fraction net``."""
        for slow, fast in zip(self.slow.parameters(), self.net.parameters(), strict=True):
            slow.lerp_(fast, self.slow_fraction)
