"""What the neural world models share: data, normalisation, training, propagation.

A :class:`NeuralWorldModel` models a continuous state. Its network reads the normalised
``[flat obs, flat action]`` and predicts the *change* of the state and the reward,
``target = [s' - s, r]`` (normalised per feature), so ``s' = s + f(s, a)`` (Nagabandi et al.
2018; Chua et al. 2018; Janner et al. 2019). An ensemble of ``E`` such networks is one
:class:`~mbwrap.models.layers.EnsembleMLP` evaluated in one batched call; a single network
is the ensemble of one.

Subclasses choose what the network's output (its *head*, ``H`` values per sample) means,
through five hooks: :meth:`NeuralWorldModel._loss` (the training loss),
:meth:`~NeuralWorldModel._holdout_loss`, :meth:`~NeuralWorldModel._mean`,
:meth:`~NeuralWorldModel._sample` and :meth:`~NeuralWorldModel._regularizer`; and they
call :meth:`~NeuralWorldModel._build_network` with the head's width.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from collections.abc import Sequence as SequenceOf
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from tqdm.auto import tqdm

from mbwrap.checkpoint import check_indices
from mbwrap.device import make_generator
from mbwrap.errors import ModelOutputError, UnsupportedSpaceError
from mbwrap.models.base import WorldModel
from mbwrap.models.layers import ACTIVATIONS, EnsembleMLP, layer_decays
from mbwrap.models.losses import mse
from mbwrap.models.neural_rollout import Draw, prepared_rollout
from mbwrap.models.normalizer import Normalizer
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import (
    as_batch,
    check_same_space,
    flat_dim,
    flatten,
    is_image,
    leaf_spaces,
    unflatten,
)
from mbwrap.tree import tree_map, tree_rows_finite
from mbwrap.types import ModelRollout, ModelStep

#: How an ensemble propagates a batch of trajectories (Chua et al. 2018, section 5):
#: ``"ts1"`` a random elite per row and step, ``"ts-inf"`` one elite per trajectory for its
#: whole length, ``"mean"`` the average of the elites' mean predictions.
Propagation = Literal["ts1", "ts-inf", "mean"]
PROPAGATIONS: tuple[str, ...] = ("ts1", "ts-inf", "mean")

# Rows evaluated at once when scoring held-out data, to bound memory on large buffers.
_EVAL_CHUNK = 4096


class _Data(NamedTuple):
    """Training data as sub-trajectories of ``k`` steps (``k = 1``: transitions).

    ``obs``, ``next_obs``: ``[N, k, obs_dim]``; ``action``: ``[N, k, flat action]``;
    ``reward``, ``terminated``: ``[N, k]`` float.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    def take(self, index: torch.Tensor) -> _Data:
        """Rows ``index`` (any shape ``[...]``) -> fields ``[..., k, ...]``."""
        return _Data(*(field[index] for field in self))


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name}: expected a finite float > 0, got {value!r}")
    return float(value)


def member_rows(
    n: int, ensemble_size: int, *, bootstrap: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The training rows each ensemble member learns from in one fit.

    With ``bootstrap``, each member gets its own ``n`` draws with replacement (a bootstrap
    resample, Chua et al. 2018); without, every member gets all ``n`` rows.
    Either way each member then visits its rows in its own order every epoch.

    :return: ``[ensemble_size, n]`` int64 indices in ``[0, n)``.
    """
    device = generator.device if generator is not None else None
    if bootstrap:
        return torch.randint(n, (ensemble_size, n), device=device, generator=generator)
    return torch.arange(n, device=device).expand(ensemble_size, n)


class NeuralWorldModel(WorldModel):
    """Base of the neural models of continuous-state environments.

    **Data.** :meth:`fit` takes every transition in a :class:`~mbwrap.ReplayBuffer` (or,
    with ``unroll_steps = k > 1``, as many ``k``-step sub-trajectories drawn from it),
    holds out a random ``holdout_ratio`` of them (at most ``max_holdout``), refits the
    input and target :class:`~mbwrap.models.normalizer.Normalizer` on the rest and keeps
    training the current weights (it does not restart from scratch, as in MBPO).

    **Training.** Minibatch Adam; each member sees its own shuffled (with ``bootstrap``,
    resampled with replacement) copy of the training rows (Chua et al. 2018). After each
    epoch every member is scored on the held-out rows; a member's weights are kept when its
    held-out loss improves by more than ``min_improvement`` (relative), and training stops
    once no member has improved for ``patience`` epochs, or after ``max_epochs``. Each
    member then gets back its best weights, and the ``num_elites`` members with the lowest
    held-out loss become the elites (Janner et al. 2019, MBPO). ``fit(epochs=n)`` trains
    exactly ``n`` epochs instead (best weights are still restored). With
    ``holdout_ratio=0`` the training rows stand in for the held-out ones.

    **Unrolled loss.** With ``unroll_steps = k > 1`` the model is trained open loop on
    ``k``-step sub-trajectories: step ``t + 1`` starts from the model's own mean
    prediction for step ``t``, and gradients flow through the whole unroll, which
    penalises compounding error (the multi-step loss of Talvitie 2014, "Model Regularization
    for Stable Sample Rollouts", and Nagabandi et al. 2018's ``H``-step validation error).
    The held-out sequences are drawn from the same buffer, so with ``k > 1`` they may share
    transitions with training sequences.

    **Prediction.** :meth:`step` evaluates every member in one batched call and picks a
    member per row as ``propagation`` says (unless ``member`` is given). The reward is a
    learned head; with ``learn_termination`` a termination logit is learned with binary
    cross-entropy and :meth:`step` returns its sigmoid, else ``terminated=None``.

    **Observations that are not a Box of floats** (integer or ``uint8`` vectors such as
    Atari's RAM, Discrete, MultiDiscrete, MultiBinary, and ``Dict``/``Tuple`` spaces of
    those) are modelled through their flat features (:func:`mbwrap.spaces.flatten`: one-hot
    for discrete parts): the model's state is that feature vector ``[B, obs_dim]``
    (:attr:`state_space`), :meth:`encode` flattens, :meth:`decode` maps a state back to the
    nearest observation (argmax of each one-hot block, rounding and clipping of integers)
    in the observation space's own structure, so a ``DreamEnv`` over the model returns
    ``Dict`` observations for a ``Dict`` space. After each step the discrete and integer
    parts of the state are snapped to the space, so they do not drift; every predicted
    state is clipped to the bounds of its Box (leaves), which a real env never leaves.
    Image leaves are
    refused: a feed-forward model of raw pixels is not a world model of them (use
    ``"rssm"`` or ``"vae-mdn-rnn"``).

    :param observation_space: a ``Box`` of floats, or any space of feature leaves as above.
    :param action_space: any space mbwrap supports; discrete actions enter one-hot.
    :param ensemble_size: number of networks ``E``.
    :param num_elites: members used for prediction (``None``: all).
    :param propagation: see :data:`Propagation`.
    :param bootstrap: give each member a resample (with replacement) of the training rows.
    :param hidden_sizes: hidden layer widths.
    :param activation: a name in :data:`mbwrap.models.layers.ACTIVATIONS`.
    :param weight_decay: L2 coefficient, one for all layers or one per layer.
    :param learning_rate: Adam's step size.
    :param batch_size: rows per minibatch (per member).
    :param holdout_ratio: fraction of rows held out for early stopping and elites.
    :param max_holdout: cap on the held-out rows.
    :param patience: epochs without improvement before training stops.
    :param min_improvement: relative decrease of a member's held-out loss that counts.
    :param max_epochs: cap on the epochs of one :meth:`fit`.
    :param max_grad_norm: clip the gradient's global norm to this (``None``: no clipping).
    :param unroll_steps: ``k`` of the open-loop training loss (1: one-step loss).
    :param learn_termination: learn a termination head.
    """

    accepts_dict_observations: ClassVar[bool] = True
    space_support = SpaceSupport(
        observations=("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple"),
        actions=("Box", "Discrete", "MultiDiscrete", "MultiBinary"),
    )

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        ensemble_size: int,
        num_elites: int | None,
        propagation: Propagation,
        bootstrap: bool,
        hidden_sizes: SequenceOf[int],
        activation: str,
        weight_decay: float | SequenceOf[float],
        learning_rate: float,
        batch_size: int,
        holdout_ratio: float,
        max_holdout: int,
        patience: int,
        min_improvement: float,
        max_epochs: int,
        max_grad_norm: float | None,
        unroll_steps: int,
        learn_termination: bool,
        env_id: str | None,
        device: str | torch.device,
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        name = type(self).__name__
        for path, leaf in leaf_spaces(observation_space, name="observation_space").items():
            if is_image(leaf):
                where = f"observation_space[{path!r}]" if path else "observation_space"
                raise UnsupportedSpaceError(
                    f"{where}: {name} is a feed-forward model of vector features and takes no "
                    f"images, got {leaf!r}; use the 'rssm' model (Dreamer, PlaNet) or "
                    "'vae-mdn-rnn' (World Models) for pixels"
                )
        #: Whether states are the flat features of the observations (every observation
        #: space but a Box of floats) rather than the observations themselves.
        self.feature_states = not (
            isinstance(observation_space, spaces.Box)
            and np.issubdtype(observation_space.dtype, np.floating)
        )
        self.ensemble_size = _positive_int(ensemble_size, "ensemble_size")
        self.num_elites = self.ensemble_size if num_elites is None else num_elites
        _positive_int(self.num_elites, "num_elites")
        if self.num_elites > self.ensemble_size:
            raise ValueError(
                f"num_elites: expected at most ensemble_size={self.ensemble_size}, "
                f"got {num_elites!r}"
            )
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation: expected one of {PROPAGATIONS}, got {propagation!r}")
        self.propagation = propagation
        self.bootstrap = bool(bootstrap)
        if isinstance(hidden_sizes, (int, str)):
            raise ValueError(f"hidden_sizes: expected a sequence of ints, got {hidden_sizes!r}")
        self.hidden_sizes = [_positive_int(h, "hidden_sizes") for h in hidden_sizes]
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        layer_decays(weight_decay, len(self.hidden_sizes) + 1)
        self.weight_decay: float | list[float] = (
            float(weight_decay)
            if isinstance(weight_decay, (int, float))
            else [float(d) for d in weight_decay]
        )
        self.learning_rate = _positive_float(learning_rate, "learning_rate")
        self.batch_size = _positive_int(batch_size, "batch_size")
        if (
            isinstance(holdout_ratio, bool)
            or not isinstance(holdout_ratio, (int, float))
            or not 0 <= holdout_ratio < 1
        ):
            raise ValueError(f"holdout_ratio: expected a float in [0, 1), got {holdout_ratio!r}")
        self.holdout_ratio = float(holdout_ratio)
        self.max_holdout = _positive_int(max_holdout, "max_holdout")
        self.patience = _positive_int(patience, "patience")
        if isinstance(min_improvement, bool) or not (
            isinstance(min_improvement, (int, float)) and 0 <= min_improvement < 1
        ):
            raise ValueError(
                f"min_improvement: expected a float in [0, 1), got {min_improvement!r}"
            )
        self.min_improvement = float(min_improvement)
        self.max_epochs = _positive_int(max_epochs, "max_epochs")
        self.max_grad_norm = (
            None if max_grad_norm is None else _positive_float(max_grad_norm, "max_grad_norm")
        )
        self.unroll_steps = _positive_int(unroll_steps, "unroll_steps")
        self.learn_termination = bool(learn_termination)

        self.obs_dim = flat_dim(observation_space)
        #: The space of the model's states: the observation space, or the flat features.
        self.state_space: spaces.Space = (
            spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
            if self.feature_states
            else observation_space
        )
        if not self.feature_states:
            bounds = [
                torch.as_tensor(b, dtype=torch.float32, device=self.device).reshape(-1)
                for b in (observation_space.low, observation_space.high)
            ]
            self.register_buffer("_low", bounds[0], persistent=False)
            self.register_buffer("_high", bounds[1], persistent=False)
        self.input_dim = self.obs_dim + flat_dim(action_space)
        #: Width of the regression target ``[delta (obs_dim), reward (1)]``.
        self.target_dim = self.obs_dim + 1
        self.input_normalizer = Normalizer(self.input_dim, device=self.device)
        self.target_normalizer = Normalizer(self.target_dim, device=self.device)
        self.register_buffer(
            "elite_indices", torch.arange(self.num_elites, device=self.device, dtype=torch.long)
        )
        self._optimizer: torch.optim.Optimizer | None = None
        self._optimizer_device: torch.device | None = None

    def _build_network(self, head_width: int) -> None:
        """Create the ensemble network; subclasses call this with their head's width ``H``
        (a termination logit is appended when ``learn_termination``)."""
        self.head_width = int(head_width)
        self.net = EnsembleMLP(
            self.ensemble_size,
            self.input_dim,
            self.hidden_sizes,
            self.head_width + int(self.learn_termination),
            activation=self.activation,
            weight_decay=self.weight_decay,
            device=self.device,
        )

    def _ensemble_config(self) -> dict[str, Any]:
        return {
            "ensemble_size": self.ensemble_size,
            "num_elites": self.num_elites,
            "propagation": self.propagation,
            "bootstrap": self.bootstrap,
        }

    def _training_config(self) -> dict[str, Any]:
        return {
            "hidden_sizes": list(self.hidden_sizes),
            "activation": self.activation,
            "weight_decay": self.weight_decay,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "holdout_ratio": self.holdout_ratio,
            "max_holdout": self.max_holdout,
            "patience": self.patience,
            "min_improvement": self.min_improvement,
            "max_epochs": self.max_epochs,
            "max_grad_norm": self.max_grad_norm,
            "unroll_steps": self.unroll_steps,
            "learn_termination": self.learn_termination,
        }

    # ------------------------------------------------------------------ subclass hooks
    def _loss(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training loss per sample: ``head: [..., H]``, normalised ``target: [..., T]``
        -> ``[...]``."""
        raise NotImplementedError

    def _holdout_loss(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Held-out score per sample, ``[..., H], [..., T] -> [...]``, for early stopping
        and elites: the mean prediction's squared error, as MBPO scores its members."""
        return mse(self._mean(head), target)

    def _mean(self, head: torch.Tensor) -> torch.Tensor:
        """The predicted mean of the normalised target: ``[..., H] -> [..., T]``."""
        raise NotImplementedError

    def _sample(self, head: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One draw of the normalised target: ``[B, H] -> [B, T]``."""
        raise NotImplementedError

    def _prepared_head(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        steps: int,
        rows: int,
        generator: torch.Generator | None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], Draw]:
        """The last layer (``weight [E, I, O]``, ``bias [E, 1, O]``) and the draw of each
        step for a prepared rollout of ``steps`` steps on ``rows`` rows
        (:func:`~mbwrap.models.neural_rollout.prepared_rollout`). Here: the layer as it
        is, and :meth:`_sample` denormalised. Subclasses fold what they can into the
        layer."""
        norm = self.target_normalizer
        return (weight, bias), lambda head, t: norm.denormalize(self._sample(head, generator))

    def _regularizer(self) -> torch.Tensor:
        """A scalar added once to the summed member losses: the layers' weight decay."""
        return self.net.decay_loss()

    # ------------------------------------------------------------------ states
    def encode(self, obs: Any) -> torch.Tensor:
        """Observations ``[B, *obs_shape]`` (a dict of leaves for Dict/Tuple spaces) to
        states: themselves for a Box of floats, else their flat features ``[B, obs_dim]``."""
        tensor, _ = as_batch(obs, self.observation_space, name="obs", device=self.device)
        return flatten(tensor, self.observation_space) if self.feature_states else tensor

    def decode(self, state: torch.Tensor) -> Any:
        """States back to observations: the nearest element of the observation space for
        feature states (see the class docstring), else the state itself (which
        :meth:`step` keeps within the space's bounds)."""
        return unflatten(state, self.observation_space) if self.feature_states else state

    def _into_space(self, next_state: torch.Tensor) -> torch.Tensor:
        """Predicted states moved to the nearest point of the observation space: clipped to
        a Box's bounds (a real env never leaves them), and for feature states projected
        onto the image of :func:`~mbwrap.spaces.flatten` (one-hot blocks, integers in
        bounds) so they do not drift. A row that was not finite becomes NaN, so callers
        still see it (clipping would turn infinity into a bound)."""
        bad = ~tree_rows_finite(next_state)
        if self.feature_states:
            inside = flatten(unflatten(next_state, self.observation_space), self.observation_space)
        else:
            flat = next_state.reshape(next_state.shape[0], -1)
            inside = torch.minimum(torch.maximum(flat, self._low), self._high)
            inside = inside.reshape(next_state.shape)
        return torch.where(bad.reshape(-1, *([1] * (inside.ndim - 1))), torch.nan, inside)

    # ------------------------------------------------------------------ network
    def _inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Normalised network input from ``obs: [..., obs_dim]`` and flat ``action``."""
        return self.input_normalizer.normalize(torch.cat([obs, action], dim=-1))

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x: [E, B, I]`` (or ``[B, I]``, shared) -> ``(head [E, B, H], logit [E, B] or
        None)``."""
        out = self.net(x)
        if self.learn_termination:
            return out[..., :-1], out[..., -1]
        return out, None

    def _flat_inputs(
        self, state: Any, action: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(state [B, *obs_shape] float, flat state [B, obs_dim], flat action [B, A])``."""
        state, _ = as_batch(state, self.state_space, name="state", device=self.device)
        action, _ = as_batch(action, self.action_space, name="action", device=self.device)
        if action.shape[0] != state.shape[0]:
            raise ValueError(
                f"action: batch of {action.shape[0]} does not match state batch of {state.shape[0]}"
            )
        batch = state.shape[0]
        return state, state.reshape(batch, -1), flatten(action, self.action_space)

    @torch.no_grad()
    def predict_mean(self, state: Any, action: Any) -> torch.Tensor:
        """Every member's mean prediction in environment units.

        :param state: ``[B, *obs_shape]``.
        :param action: ``[B, *act_shape]``.
        :return: ``[E, B, obs_dim + 1]``: the state change ``s' - s`` (flattened) and the
            reward.
        """
        _, flat, act = self._flat_inputs(state, action)
        head, _ = self._forward(self._inputs(flat, act))
        return self.target_normalizer.denormalize(self._mean(head))

    def mean_step(
        self, state: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The elites' average mean prediction, differentiable (for iLQR).

        :param state: ``[B, *obs_shape]`` float.
        :param action: ``[B, A]`` float (Box actions).
        :return: ``(next_state [B, *obs_shape], reward [B])``.
        """
        batch = state.shape[0]
        flat = state.reshape(batch, -1)
        act = action.reshape(batch, -1).to(flat.dtype)
        head, _ = self._forward(self._inputs(flat, act))
        out = self.target_normalizer.denormalize(self._mean(head[self.elite_indices]).mean(0))
        next_state = (flat + out[:, : self.obs_dim]).reshape(state.shape)
        return next_state, out[:, self.obs_dim]

    # ------------------------------------------------------------------ propagation
    def _random_elites(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        pick = torch.randint(self.num_elites, (n,), device=self.device, generator=generator)
        return self.elite_indices[pick]

    def _step_random_elites(
        self, inputs: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """TS1: each row follows a random elite, and only that elite is evaluated for it.

        Rows are shuffled and dealt to the ``K`` elites in turn, so every elite gets
        ``M = ceil(B / K)`` rows (the deal is padded with a few rows evaluated twice and
        dropped). Each row's member is still uniform over the elites, but the network runs
        on ``E x M`` rows instead of ``E x B``, with no host round trip.

        :param inputs: ``[B, I]`` normalised inputs.
        :return: ``(sampled normalised target [B, H], termination probability [B] or None)``.
        """
        batch, elites = inputs.shape[0], self.elite_indices
        k = elites.numel()
        m = -(-batch // k)
        order = torch.randperm(batch, device=self.device, generator=generator)
        # Position j deals row dealt[j] to elite j % k; the first B positions are `order`.
        dealt = order.repeat(-(-m * k // batch))[: m * k]
        grouped = dealt.reshape(m, k).T  # [K, M]: the rows of each elite
        x = inputs.new_zeros(self.ensemble_size, m, inputs.shape[-1])
        x[elites] = inputs[grouped]
        head, logit = self._forward(x)  # [E, M, H], [E, M]
        # Back to deal order (position j = row dealt[j]) and keep the first B positions.
        head = head[elites].transpose(0, 1).reshape(m * k, -1)[:batch]
        sampled = self._sample(head, generator)
        target = torch.empty_like(sampled)
        target[order] = sampled
        if logit is None:
            return target, None
        prob = torch.empty(batch, device=self.device)
        prob[order] = torch.sigmoid(logit[elites].T.reshape(m * k)[:batch])
        return target, prob

    def sample_members(
        self, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """``[n]`` random elites, one per new trajectory, under ``propagation="ts-inf"``
        with more than one member; else ``None``."""
        if self.propagation != "ts-inf" or self.ensemble_size == 1:
            return None
        return self._random_elites(n, generator)

    @torch.no_grad()
    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """Predict the next state, reward and (with a termination head) termination.

        All members are evaluated in one batched call. Row ``b`` then follows member
        ``member[b]`` when ``member`` is given; otherwise, by ``propagation``: a random
        elite per row (``"ts1"``, and ``"ts-inf"`` called without ``member``), or the mean
        of the elites' mean predictions (``"mean"``, no sampling).

        :param state: ``[B, *obs_shape]``.
        :param action: ``[B, *act_shape]``.
        :param generator: randomness of member choice and sampling.
        :param member: ``[B]`` int64 member indices (see :meth:`sample_members`).
        :return: next state ``[B, *obs_shape]``, reward ``[B]``, termination probability
            ``[B]`` (``None`` without a termination head).
        """
        state, flat, act = self._flat_inputs(state, action)
        batch = state.shape[0]
        inputs = self._inputs(flat, act)
        if member is None and self.propagation != "mean" and self.ensemble_size > 1:
            target, prob = self._step_random_elites(inputs, generator)
            out = self.target_normalizer.denormalize(target)
            next_state = self._into_space((flat + out[:, : self.obs_dim]).reshape(state.shape))
            return ModelStep(next_state=next_state, reward=out[:, self.obs_dim], terminated=prob)
        head, logit = self._forward(inputs)  # [E, B, H], [E, B]
        if member is None and self.propagation != "mean":
            member = torch.zeros(batch, dtype=torch.long, device=self.device)
        if member is None:
            elites = self.elite_indices
            target = self._mean(head[elites]).mean(0)
            prob = None if logit is None else torch.sigmoid(logit[elites]).mean(0)
        else:
            member = torch.as_tensor(member, device=self.device).long().reshape(-1)
            if member.shape[0] != batch:
                raise ValueError(
                    f"member: expected one member index per row ({batch}), got {member.shape[0]}"
                )
            rows = torch.arange(batch, device=self.device)
            target = self._sample(head[member, rows], generator)
            prob = None if logit is None else torch.sigmoid(logit[member, rows])
        out = self.target_normalizer.denormalize(target)
        next_state = self._into_space((flat + out[:, : self.obs_dim]).reshape(state.shape))
        return ModelStep(next_state=next_state, reward=out[:, self.obs_dim], terminated=prob)

    def rollout(
        self,
        state: torch.Tensor,
        actions: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelRollout:
        """:meth:`step` along action sequences (``state [R, *obs_shape]``, ``actions
        [R, H, *act_shape]``), prepared once for all ``H`` steps
        (:func:`~mbwrap.models.neural_rollout.prepared_rollout`): the same propagation
        and the same distribution of outcomes as stepping ``H`` times."""
        if self.feature_states:
            return super().rollout(state, actions, generator=generator, member=member)
        return prepared_rollout(self, state, actions, generator, member)

    @torch.no_grad()
    def step_blocks(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        members: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> ModelStep:
        """:meth:`step` for rows in ``M`` equal blocks, block ``m`` following member
        ``members[m]``: the same as ``step(..., member=members.repeat_interleave(B // M))``,
        but each member's network runs on its own block only (``M`` times fewer rows than
        evaluating every member for every row). STEVE imagines this way.

        :param state: ``[B, *obs_shape]``, ``B`` a multiple of ``M``.
        :param action: ``[B, *act_shape]``.
        :param members: ``[M]`` distinct member indices.
        """
        state, flat, act = self._flat_inputs(state, action)
        batch, count = state.shape[0], members.numel()
        if count < 1 or batch % count:
            raise ValueError(
                f"members: expected M >= 1 dividing the batch of {batch} rows, got {count}"
            )
        members = members.to(self.device).long()
        inputs = self._inputs(flat, act).reshape(count, batch // count, -1)
        x = inputs.new_zeros(self.ensemble_size, *inputs.shape[1:])
        x[members] = inputs
        head, logit = self._forward(x)  # [E, B / M, H]
        target = self._sample(head[members].reshape(batch, -1), generator)
        prob = None if logit is None else torch.sigmoid(logit[members].reshape(batch))
        out = self.target_normalizer.denormalize(target)
        next_state = self._into_space((flat + out[:, : self.obs_dim]).reshape(state.shape))
        return ModelStep(next_state=next_state, reward=out[:, self.obs_dim], terminated=prob)

    # ------------------------------------------------------------------ data
    def _load_data(self, buffer: Any, generator: torch.Generator) -> _Data:
        check_same_space(
            self.observation_space, buffer.observation_space, name="buffer.observation_space"
        )
        check_same_space(self.action_space, buffer.action_space, name="buffer.action_space")
        data = buffer.transitions()
        n = len(data)
        self._holdout_size(n)
        for field in ("obs", "next_obs", "reward", "action"):
            bad = ~tree_rows_finite(getattr(data, field))
            if bool(bad.any()):
                first = int(torch.nonzero(bad)[0])
                raise ValueError(
                    f"buffer: {int(bad.sum())} of {n} transitions hold NaN or infinite "
                    f"{field} (the first at index {first}); remove them before fit()"
                )
        steps = self.unroll_steps
        if steps > 1:
            # As many k-step pieces as there are transitions, drawn once per fit.
            seed = int(torch.randint(2**62, (1,), device=self.device, generator=generator))
            data = buffer.sample_sequences(
                n, steps, generator=make_generator(torch.device(buffer.device), seed)
            )

        def field(x: Any, space: spaces.Space | None = None) -> torch.Tensor:
            x = tree_map(
                lambda v: v.to(self.device).reshape(n, steps, *v.shape[1 if steps == 1 else 2 :]),
                x,
            )
            if space is None:
                return x.float()
            flat = tree_map(lambda v: v.flatten(0, 1), x)
            return flatten(flat, space).reshape(n, steps, -1)

        return _Data(
            obs=field(data.obs, self.observation_space),
            action=field(data.action, self.action_space),
            reward=field(data.reward),
            next_obs=field(data.next_obs, self.observation_space),
            terminated=field(data.terminated),
        )

    def _holdout_size(self, n: int) -> int:
        """Rows held out of ``n``; raises when too few remain on either side."""
        holdout = min(int(n * self.holdout_ratio), self.max_holdout)
        if n - holdout < 1 or (self.holdout_ratio > 0 and holdout < 1):
            need = max(2, math.ceil(1 / self.holdout_ratio)) if self.holdout_ratio > 0 else 1
            raise ValueError(
                f"buffer: {n} transitions are too few to fit with holdout_ratio="
                f"{self.holdout_ratio}; need at least {need}"
            )
        return holdout

    def _split(self, data: _Data, generator: torch.Generator) -> tuple[_Data, _Data]:
        n = len(data)
        holdout = self._holdout_size(n)
        order = torch.randperm(n, device=self.device, generator=generator)
        train = data.take(order[holdout:])
        return train, (data.take(order[:holdout]) if holdout else train)

    # ------------------------------------------------------------------ training
    def _unroll(self, batch: _Data) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, Any]]:
        """Open-loop pass over ``batch`` (fields ``[E, b, k, ...]``).

        Yields per step ``(head [E, b, H], logit [E, b] or None, (target [E, b, T],
        terminated [E, b]))``; the next step starts from the mean prediction.
        """
        state = batch.obs[:, :, 0]
        steps = batch.obs.shape[2]
        for t in range(steps):
            head, logit = self._forward(self._inputs(state, batch.action[:, :, t]))
            delta = torch.cat(
                [batch.next_obs[:, :, t] - state, batch.reward[:, :, t, None]], dim=-1
            )
            yield head, logit, (self.target_normalizer.normalize(delta), batch.terminated[:, :, t])
            if t + 1 < steps:
                mean = self.target_normalizer.denormalize(self._mean(head))
                state = state + mean[..., : self.obs_dim]

    def _termination_loss(self, logit: torch.Tensor | None, terminated: torch.Tensor) -> Any:
        if logit is None:
            return 0.0
        return F.binary_cross_entropy_with_logits(logit, terminated, reduction="none")

    def _train_loss(self, batch: _Data) -> torch.Tensor:
        """Training loss per member, averaged over rows and unrolled steps: ``[E]``."""
        total: Any = 0.0
        for head, logit, (target, terminated) in self._unroll(batch):
            total = total + self._loss(head, target) + self._termination_loss(logit, terminated)
        return total.mean(-1) / batch.obs.shape[2]

    @torch.no_grad()
    def _evaluate(self, data: _Data) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out loss and mean-prediction MSE per member on every row: ``([E], [E])``."""
        loss = torch.zeros(self.ensemble_size, device=self.device)
        error = torch.zeros(self.ensemble_size, device=self.device)
        for start in range(0, len(data), _EVAL_CHUNK):
            index = torch.arange(start, min(start + _EVAL_CHUNK, len(data)), device=self.device)
            batch = data.take(index.expand(self.ensemble_size, -1))
            for head, logit, (target, terminated) in self._unroll(batch):
                score = self._holdout_loss(head, target) + self._termination_loss(logit, terminated)
                loss += score.sum(-1)
                error += mse(self._mean(head), target).sum(-1)
        count = len(data) * self.unroll_steps
        return loss / count, error / count

    def _get_optimizer(self) -> torch.optim.Optimizer:
        # Kept across fits, as MBPO keeps training one network with one optimiser; rebuilt
        # when the model has moved to another device since.
        if self._optimizer is None or self._optimizer_device != self.device:
            self._optimizer = torch.optim.Adam(self.parameters(), lr=self.learning_rate)
            self._optimizer_device = self.device
        return self._optimizer

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # Checked before torch copies anything: an elite outside the ensemble would fail
        # (or read another member) only at the first prediction.
        elites = state_dict.get(f"{prefix}elite_indices")
        if elites is not None:
            check_indices(elites, name="elite_indices", size=self.ensemble_size)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def optimizer_state_dict(self) -> dict[str, Any] | None:
        return None if self._optimizer is None else self._optimizer.state_dict()

    def load_optimizer_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self._get_optimizer().load_state_dict(state)

    def fit(
        self,
        buffer: Any,
        *,
        epochs: int | None = None,
        progress_bar: bool = False,
        logger: Any = None,
    ) -> dict[str, Any]:
        """Train on the transitions in ``buffer`` (see the class docstring).

        Randomness (split, bootstrap, minibatch order) comes from torch's global
        generator, so ``torch.manual_seed`` makes a fit reproducible on CPU.

        :param buffer: a :class:`~mbwrap.ReplayBuffer` with the model's spaces.
        :param epochs: train exactly this many epochs (no early stopping).
        :param progress_bar: show a tqdm bar over epochs.
        :param logger: an SB3 ``Logger``; the final metrics are recorded under
            ``model/`` (the caller dumps).
        :return: ``train_loss`` and ``holdout_loss`` (lists, one per member: the last
            epoch's mean training loss, the best held-out loss), ``holdout_mse`` (the
            elites' mean held-out squared error per normalised target feature, averaged
            over the unrolled steps),
            ``elites``, ``epochs``, ``stopped_early``, ``transitions``, ``holdout_size``
            (held-out rows), ``fit_time``.
        :raises ValueError: for a buffer with NaN/infinite data or too few transitions.
        :raises SpaceMismatchError: when the buffer's spaces differ from the model's.
        """
        if epochs is not None:
            _positive_int(epochs, "epochs")
        start_time = time.perf_counter()
        seed = int(torch.randint(2**62, (1,)))
        generator = make_generator(self.device, seed)
        data = self._load_data(buffer, generator)
        train, holdout = self._split(data, generator)
        self.input_normalizer.fit(torch.cat([train.obs, train.action], -1).flatten(0, 1))
        self.target_normalizer.fit(
            torch.cat([train.next_obs - train.obs, train.reward[..., None]], -1).flatten(0, 1)
        )
        optimizer = self._get_optimizer()
        members, n = self.ensemble_size, len(train)
        rows = member_rows(n, members, bootstrap=self.bootstrap, generator=generator)

        best_loss = torch.full((members,), math.inf, device=self.device)
        best_mse = torch.full((members,), math.inf, device=self.device)
        best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        limit = self.max_epochs if epochs is None else epochs
        since_improved, epoch, stopped_early = 0, 0, False
        train_loss = torch.zeros(members, device=self.device)
        bar = tqdm(total=limit, desc=f"fit {type(self).__name__}", disable=not progress_bar)
        try:
            for epoch in range(1, limit + 1):
                order = torch.argsort(
                    torch.rand(members, n, device=self.device, generator=generator), dim=1
                )
                epoch_rows = rows.gather(1, order)
                train_loss = torch.zeros(members, device=self.device)
                for first in range(0, n, self.batch_size):
                    index = epoch_rows[:, first : first + self.batch_size]
                    member_loss = self._train_loss(train.take(index))
                    optimizer.zero_grad(set_to_none=True)
                    (member_loss.sum() + self._regularizer()).backward()
                    if self.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
                    optimizer.step()
                    train_loss += member_loss.detach() * index.shape[1]
                train_loss /= n
                if not bool(torch.isfinite(train_loss).all()):
                    self.net.load_state_dict(best_state)
                    raise ModelOutputError(
                        f"fit: the training loss became NaN or infinite in epoch {epoch} "
                        f"(per member: {train_loss.tolist()}); the best weights so far were "
                        "restored. Lower learning_rate or check the data's scale."
                    )
                loss, error = self._evaluate(holdout)
                improved = torch.isfinite(loss) & (
                    torch.isinf(best_loss)
                    | (best_loss - loss > self.min_improvement * best_loss.abs())
                )
                if bool(improved.any()):
                    since_improved = 0
                    for key, value in self.net.state_dict().items():
                        best_state[key][improved] = value[improved]
                    best_loss = torch.where(improved, loss, best_loss)
                    best_mse = torch.where(improved, error, best_mse)
                else:
                    since_improved += 1
                bar.update(1)
                bar.set_postfix(holdout_loss=float(best_loss.min()))
                if epochs is None and since_improved >= self.patience:
                    stopped_early = epoch < limit
                    break
        finally:
            bar.close()
        self.net.load_state_dict(best_state)
        elites = torch.argsort(best_loss)[: self.num_elites]
        self.elite_indices.copy_(elites)
        metrics = {
            "train_loss": train_loss.tolist(),
            "holdout_loss": best_loss.tolist(),
            "holdout_mse": float(best_mse[elites].mean()),
            "elites": elites.tolist(),
            "epochs": epoch,
            "stopped_early": stopped_early,
            "transitions": len(buffer),
            "holdout_size": len(holdout) if holdout is not train else 0,
            "fit_time": time.perf_counter() - start_time,
        }
        if logger is not None:
            logger.record("model/train_loss", float(train_loss[elites].mean()))
            logger.record("model/holdout_loss", float(best_loss[elites].mean()))
            logger.record("model/holdout_mse", metrics["holdout_mse"])
            logger.record("model/epochs", epoch)
            logger.record("model/fit_time", metrics["fit_time"])
        return metrics
