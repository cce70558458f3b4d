"""PILCO's controller: a radial-basis-function network squashed into the action bounds
by a sine (Deisenroth & Rasmussen 2011, Section 2.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from gymnasium import spaces

from mbwrap.models.gp_moments import KernelExpansion, expansion_mean


class RBFController(torch.nn.Module):
    """``u = mid + half * sin(sum_i w_i exp(-1/2 (x - c_i)^T Lambda^-1 (x - c_i)))``, one
    weight row per action dimension, the centres ``c_i`` and lengthscales shared; float64.

    :param state_dim: ``D``.
    :param action_space: a bounded ``Box`` (``mid`` and ``half`` of its bounds).
    :param num_basis: the number of centres.
    :param center_mean: ``[D]``, :param center_std: ``[D]``: the centres start drawn from
        ``N(center_mean, diag(center_std^2))`` (PILCO draws them from the start state's
        distribution); the weights from ``N(0, 0.1^2)``, the lengthscales at 1.
    :param generator: for those draws.
    :param mirror: ``[D]`` signs (each 1 or -1) of a reflection ``R = diag(mirror)`` of
        the state under which the task is symmetric with the action's sign flipped about
        ``mid`` (a pendulum: ``theta -> -theta``, ``theta_dot -> -theta_dot``). The
        network is then odd under it, ``m(R x) = -m(x)``: each centre ``c_i`` has a
        mirror image ``R c_i`` of weight ``-w_i``, so ``u(R x) - mid = -(u(x) - mid)``
        and the controller treats both sides of the task alike. ``None``: no symmetry.
    """

    def __init__(
        self,
        state_dim: int,
        action_space: spaces.Box,
        num_basis: int,
        center_mean: torch.Tensor,
        center_std: torch.Tensor,
        generator: torch.Generator | None = None,
        mirror: torch.Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        kw = {"dtype": torch.float64}
        if mirror is not None:
            mirror = torch.as_tensor(mirror, **kw).reshape(-1)
            if mirror.shape != (state_dim,) or not bool(((mirror == 1) | (mirror == -1)).all()):
                raise ValueError(
                    f"mirror: expected {state_dim} signs, each 1 or -1, got "
                    f"{mirror.tolist()}"
                )
        self.mirror: torch.Tensor | None
        self.register_buffer("mirror", mirror)
        low = torch.as_tensor(action_space.low, **kw).reshape(-1)
        high = torch.as_tensor(action_space.high, **kw).reshape(-1)
        self.register_buffer("action_mid", (high + low) / 2)
        self.register_buffer("action_half", (high - low) / 2)
        noise = torch.randn(num_basis, state_dim, generator=generator, **kw)
        self.centers = torch.nn.Parameter(center_mean.to(**kw) + noise * center_std.to(**kw))
        weights = 0.1 * torch.randn(low.shape[0], num_basis, generator=generator, **kw)
        self.weights = torch.nn.Parameter(weights)
        self.log_lengthscales = torch.nn.Parameter(torch.zeros(state_dim, **kw))

    def expansion(self) -> KernelExpansion:
        """The network before squashing, for :func:`~mbwrap.models.gp_moments.moment_match`."""
        actions = self.weights.shape[0]
        ell = self.log_lengthscales.exp().expand(actions, -1)
        points, beta = self.centers, self.weights
        if self.mirror is not None:
            # k(R x, c) = k(x, R c) for an ARD kernel and a sign flip R, so adding each
            # centre's image with the opposite weight makes the sum odd under R.
            points = torch.cat([points, points * self.mirror], 0)
            beta = torch.cat([beta, -beta], 1)
        return KernelExpansion(points, beta, ell, torch.ones_like(self.action_mid))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Actions ``[B, U]`` for states ``[B, D]``."""
        return self.action_mid + self.action_half * torch.sin(
            expansion_mean(self.expansion(), state.double())
        )
