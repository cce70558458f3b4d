"""A least-squares linear dynamics model, the *linear expectation model*.

A linear model predicts the expected next state and the expected reward as linear
functions of features of the state and action, which is all that Dyna-style planning with
linear function approximation needs (Sutton, Szepesvári, Geramifard & Bowling 2008,
"Dyna-Style Planning with Linear Function Approximation and Prioritized Sweeping";
Wan et al. 2019, "Planning with Expectation Models"). Here the features are the
observation and the action themselves::

    x        = [obs, flatten(action), 1]      # [B, F], F = obs_dim + flat_dim(action_space) + 1
    next_obs = obs + x @ W_d                  # W_d: [F, obs_dim], the state delta
    reward   = x @ w_r                        # w_r: [F]

both fitted in closed form by ridge regression on every stored transition.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.grad import no_grad
from mbwrap.models import WorldModel
from mbwrap.spaces import (
    as_batch,
    check_same_space,
    element_shape,
    flat_dim,
    flatten,
    torch_dtype,
)
from mbwrap.types import ModelStep


def linear_features(
    obs: torch.Tensor,
    action: torch.Tensor,
    action_space: spaces.Space,
    *,
    ones: torch.Tensor | None = None,
) -> torch.Tensor:
    """The regression features ``[obs, flatten(action), 1]`` of a batch.

    :param obs: ``[B, *obs_shape]``.
    :param action: ``[B, *act_shape]``, elements of ``action_space``.
    :param ones: ``[B, 1]`` float32 ones on ``obs``'s device for the bias column, kept by a
        caller that steps batches of one size (else made here).
    :return: ``[B, obs_dim + flat_dim(action_space) + 1]`` float32; Discrete and
        MultiDiscrete actions are one-hot (:func:`mbwrap.spaces.flatten`).
    """
    batch = obs.shape[0]
    bias = torch.ones(batch, 1, device=obs.device) if ones is None else ones
    flat_obs = obs if obs.ndim == 2 else obs.reshape(batch, -1)
    if flat_obs.dtype != torch.float32:
        flat_obs = flat_obs.float()
    return torch.cat([flat_obs, flatten(action, action_space), bias], dim=1)


def ridge_regression(x: torch.Tensor, y: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """Closed-form ridge regression: ``argmin_W ||x W - y||^2 + sum_f penalty[f] ||W[f]||^2``.

    Solves the normal equations ``(x^T x + diag(penalty)) W = x^T y`` in float64, since
    forming ``x^T x`` squares the condition number of ``x``.

    :param x: ``[N, F]`` features.
    :param y: ``[N, K]`` targets.
    :param penalty: ``[F]`` non-negative weight of each feature's penalty (0 leaves a
        feature, such as the bias, unregularised).
    :return: ``W: [F, K]`` in ``x``'s dtype.
    :raises ValueError: when the system is singular (collinear features and no penalty).
    """
    x64, y64 = x.double(), y.double()
    gram = x64.T @ x64 + torch.diag(penalty.to(x64))
    try:
        weights = torch.linalg.solve(gram, x64.T @ y64)
    except torch.linalg.LinAlgError as err:
        raise ValueError(
            f"the normal equations are singular ({err}); the features are collinear, e.g. a "
            "one-hot action next to the bias column. Use a ridge > 0."
        ) from err
    return weights.to(x.dtype)


class LinearModel(WorldModel):
    """Linear expectation model of a continuous-state environment.

    Predicts ``next_obs = obs + x @ W_d`` and ``reward = x @ w_r`` from the features
    ``x = [obs, flatten(action), 1]`` (see :func:`linear_features`), deterministically: it
    models the expected next observation, not its distribution, and has no termination
    head (:meth:`step` returns ``terminated=None``, so imagined episodes end only through
    a registered or given termination function, or the horizon). Predictions are not
    clipped to the observation space's bounds.

    Before :meth:`fit`, every weight is zero: the model predicts no change and reward 0.

    :param observation_space: a ``Box`` of floats.
    :param action_space: any space mbwrap supports (Box, Discrete, MultiDiscrete,
        MultiBinary); discrete actions enter the features one-hot.
    :param ridge: penalty per transition on every weight but the bias; scaled by the
        number of transitions so its strength relative to the data does not change as the
        buffer grows.
    """

    registry_name = "linear"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        # Small enough not to bias a well-posed fit, large enough to make the one-hot
        # action + bias collinearity of a Discrete action space solvable.
        ridge: float = 1e-6,
        env_id: str | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        if not isinstance(observation_space, spaces.Box) or not np.issubdtype(
            observation_space.dtype, np.floating
        ):
            raise UnsupportedSpaceError(
                f"observation_space: LinearModel needs a Box of floats, got {observation_space!r}"
            )
        if (
            isinstance(ridge, bool)
            or not isinstance(ridge, (int, float))
            or not (math.isfinite(ridge) and ridge >= 0)
        ):
            raise ValueError(f"ridge: expected a finite float >= 0, got {ridge!r}")
        self.ridge = float(ridge)
        self._action_dtype = torch_dtype(action_space)
        self._ones: torch.Tensor | None = None
        self._action_shape = element_shape(action_space)
        self.obs_dim = flat_dim(observation_space)
        self.feature_dim = self.obs_dim + flat_dim(action_space) + 1
        self.register_buffer(
            "delta_weight", torch.zeros(self.feature_dim, self.obs_dim, device=self.device)
        )
        self.register_buffer("reward_weight", torch.zeros(self.feature_dim, device=self.device))

    def get_config(self) -> dict[str, Any]:
        return {"ridge": self.ridge}

    def fit(self, buffer: Any, **kwargs: Any) -> dict[str, Any]:
        """Refit ``W_d`` and ``w_r`` in closed form on every transition in ``buffer``.

        :param buffer: a :class:`mbwrap.ReplayBuffer` with the model's spaces.
        :return: ``{"transitions", "train_mse", "reward_mse", "no_change_mse",
            "fit_time"}``: the mean squared errors of the fitted next observation (per
            dimension) and reward on the training data, and the next-observation error of
            predicting no change, for comparison.
        :raises ValueError: when ``buffer`` is empty.
        """
        if kwargs:
            raise TypeError(f"LinearModel.fit() takes no options, got {sorted(kwargs)}")
        check_same_space(
            self.observation_space, buffer.observation_space, name="buffer.observation_space"
        )
        check_same_space(self.action_space, buffer.action_space, name="buffer.action_space")
        start = time.perf_counter()
        data = buffer.transitions()
        n = len(data)
        if n == 0:
            raise ValueError("buffer: is empty; collect real transitions before fit()")
        data = data.to(self.device)
        x = linear_features(data.obs, data.action, self.action_space)  # [N, F]
        delta = (data.next_obs.float() - data.obs.float()).reshape(n, -1)  # [N, obs_dim]
        y = torch.cat([delta, data.reward.float().unsqueeze(1)], dim=1)  # [N, obs_dim + 1]
        penalty = torch.full((self.feature_dim,), self.ridge * n, device=self.device)
        penalty[-1] = 0.0  # the bias is not shrunk towards "no change"
        weights = ridge_regression(x, y, penalty)  # [F, obs_dim + 1]
        self.delta_weight.copy_(weights[:, :-1])
        self.reward_weight.copy_(weights[:, -1])
        error = x @ weights - y
        return {
            "transitions": n,
            "train_mse": float(error[:, :-1].square().mean()),
            "reward_mse": float(error[:, -1].square().mean()),
            "no_change_mse": float(delta.square().mean()),
            "fit_time": time.perf_counter() - start,
        }

    @no_grad
    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """``state: [B, *obs_shape]``, ``action: [B, *act_shape]`` -> expected next state
        ``[B, *obs_shape]`` and expected reward ``[B]``; ``generator`` is unused (the
        prediction is deterministic)."""
        device = self.device
        if state.dtype != torch.float32 or state.device != device:
            state = state.to(device).float()
        if not (
            isinstance(action, torch.Tensor)
            and action.dtype == self._action_dtype
            and action.device == device
            and action.ndim == len(self._action_shape) + 1
            and action.shape[1:] == self._action_shape
        ):
            # Imagination passes a batch already converted; anything else is checked here.
            action, _ = as_batch(action, self.action_space, name="action", device=device)
        # The bias column kept across steps: at small batches making it costs more than
        # the arithmetic. torch.cat copies it, so it is never written to.
        ones = self._ones
        if ones is None or ones.shape[0] != state.shape[0] or ones.device != device:
            ones = self._ones = torch.ones(state.shape[0], 1, device=device)
        x = linear_features(state, action, self.action_space, ones=ones)
        # _buffers, not the attributes: nn.Module's attribute lookup is slow on this hot path.
        weights = self._buffers
        delta = x @ weights["delta_weight"]  # [B, obs_dim]
        next_state = state + (delta if state.ndim == 2 else delta.reshape(state.shape))
        return ModelStep(
            next_state=next_state, reward=x @ weights["reward_weight"], terminated=None
        )

    def mean_step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`step` without ``no_grad``: differentiable, for gradient-based planners.

        :param state: ``[B, *obs_shape]`` float.
        :param action: ``[B, *act_shape]`` float (Box actions).
        :return: ``(next_state [B, *obs_shape], reward [B])``.
        """
        x = linear_features(state.float(), action, self.action_space)
        next_state = state + (x @ self.delta_weight).reshape(state.shape)
        return next_state, x @ self.reward_weight
