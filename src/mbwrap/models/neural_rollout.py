"""A neural ensemble's rollout along action sequences, prepared once for all its steps.

Stepping a small ensemble ``H`` times costs mostly work that does not depend on the data:
checking the inputs, normalising them, drawing a fresh random deal of rows to elites, and
dozens of small operations around the network. :func:`prepared_rollout` does that work
once per rollout: the inputs are checked once, the input normaliser is folded into the
first layer's weights, the target's denormalisation (and, for a Gaussian head, half of the
log-variance bound and its noise) into the last layer's (the model's
:meth:`~mbwrap.models.neural.NeuralWorldModel._prepared_head`), and under TS1 the deals of
all ``H`` steps are drawn at once. Each step is then the concatenation of state and
action, one gather, the network, one gather back, the model's draw, and the state update
(a clamp into the bounds; rows that broke down are set to NaN once, at the end).

Why: at the sizes of small tasks (PETS's Pendulum preset: 400 rows through 3 x 64) each
of these operations costs about as much as a layer of the network, so their number, not
the arithmetic, sets the time of a step (``benchmarks/planning_speed.py --preset
pendulum``, RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mbwrap.device import accelerator_paths
from mbwrap.spaces import as_batch, flatten
from mbwrap.types import ModelRollout

if TYPE_CHECKING:
    from mbwrap.models.neural import NeuralWorldModel


def folded_first_layer(
    weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first layer with the input normaliser folded in:
    ``((x - mean) / std) @ W + b == x @ W' + b'``.

    :param weight: ``[E, I, O]``; :param bias: ``[E, 1, O]``; :param mean, std: ``[I]``.
    :return: ``(W' [E, I, O], b' [E, 1, O])``.
    """
    scaled = weight / std[None, :, None]
    return scaled, bias - (mean / std)[None, None, :] @ weight


def folded_output_layer(
    weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer with the target's denormaliser folded into its first ``T`` columns:
    ``(x @ W + b)[..., :T] * std + mean == (x @ W' + b')[..., :T]``; the other columns as
    they were.

    :param weight: ``[E, I, O]``; :param bias: ``[E, 1, O]``; :param mean, std: ``[T]``,
        ``T <= O``.
    :return: ``(W' [E, I, O], b' [E, 1, O])``, new tensors.
    """
    dim = mean.shape[0]
    weight, bias = weight.clone(), bias.clone()
    weight[..., :dim] *= std
    bias[..., :dim] = bias[..., :dim] * std + mean
    return weight, bias


def folded_gaussian_layer(
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    max_logvar: torch.Tensor,
    min_logvar: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer of a Gaussian head (columns ``[mean T | logvar T | rest]``) folded
    for :func:`folded_gaussian_draw`: its mean columns give the denormalised mean, its
    log-variance columns ``u = (max_logvar - logvar) / 2``, the rest as they were.

    :param weight: ``[E, I, O]``; :param bias: ``[E, 1, O]``; :param mean, std: ``[T]``,
        the target's normaliser; :param max_logvar, min_logvar: ``[T]``, the bounds of
        :func:`~mbwrap.models.losses.soft_clamp_logvar`.
    :return: ``(W' [E, I, O], b' [E, 1, O])``, new tensors.
    """
    dim = mean.shape[0]
    weight, bias = folded_output_layer(weight, bias, mean, std)
    logvar = slice(dim, 2 * dim)
    weight[..., logvar] *= -0.5
    bias[..., logvar] = 0.5 * (max_logvar - bias[..., logvar])
    return weight, bias


def folded_gaussian_draw(
    head: torch.Tensor, noise: torch.Tensor, half_span: torch.Tensor
) -> torch.Tensor:
    """One draw of the denormalised target from a head folded by
    :func:`folded_gaussian_layer`: ``mean + std * exp(logvar / 2) * eps`` with ``logvar``
    bounded by ``soft_clamp_logvar``, in five operations instead of fourteen.

    With ``u = (max - x) / 2`` and ``0.5 * softplus(2 w) == softplus(w, beta=2)`` (also
    where softplus turns linear: ``beta * w > 20`` there exactly when ``2 w > 20``),
    ``logvar / 2 == min / 2 + softplus(half_span - softplus(u, beta=2), beta=2)``; the
    constant ``std * exp(min / 2)`` is in ``noise``.

    :param head: ``[R, >= 2T]`` the folded layer's output; :param noise: ``[R, T]``,
        ``std * exp(min_logvar / 2) * eps``; :param half_span: ``[T]``,
        ``(max_logvar - min_logvar) / 2``.
    :return: ``[R, T]``.
    """
    dim = noise.shape[-1]
    # softplus on a strided view is about 7x slower than a copy and softplus (CPU).
    u = head[:, dim : 2 * dim].contiguous()
    half = F.softplus(half_span - F.softplus(u, beta=2), beta=2)
    return torch.addcmul(head[:, :dim], half.exp_(), noise)


#: ``(head [R, out], step t) -> the denormalised target's draw [R, T]``: what a model's
#: ``_prepared_head`` gives :func:`prepared_rollout` for each step.
Draw = Callable[[torch.Tensor, int], torch.Tensor]


def random_deals(
    steps: int, rows: int, groups: int, generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``steps`` steps, a uniformly random deal of ``rows`` rows to ``groups``
    groups of ``M = ceil(rows / groups)`` (the deal padded with rows dealt twice).

    :return: ``(dealt [steps, groups, M]``, the rows of each group; ``position [steps,
        rows]``, where each row's first deal is in ``dealt[t].T.reshape(-1)``).
    """
    per_group = -(-rows // groups)
    if not accelerator_paths(device):
        # A CPU sort of random keys costs about 1 µs per row (450 µs for 25 x 400 rows);
        # one randperm per step, the same distribution, a fifth of that.
        order = torch.stack([torch.randperm(rows, generator=generator) for _ in range(steps)])
    else:
        order = torch.rand(steps, rows, device=device, generator=generator).argsort(-1)
    # Position j of the deal goes to group j % groups; the first `rows` positions are
    # `order`, the padding repeats it.
    padded = order.repeat(1, -(-per_group * groups // rows))[:, : per_group * groups]
    dealt = padded.reshape(steps, per_group, groups).transpose(1, 2)
    position = torch.empty_like(order)
    arange = torch.arange(rows, device=device).expand(steps, rows)
    position.scatter_(1, order, arange)
    return dealt, position


@torch.no_grad()
def prepared_rollout(
    model: NeuralWorldModel,
    state: torch.Tensor,
    actions: torch.Tensor,
    generator: torch.Generator | None,
    member: torch.Tensor | None,
) -> ModelRollout:
    """:meth:`~mbwrap.models.base.WorldModel.rollout` of a neural ensemble whose states
    are flat observations (not feature states).

    :param state: ``[R, *obs_shape]``; :param actions: ``[R, H, *act_shape]``.
    """
    state, _ = as_batch(state, model.state_space, name="state", device=model.device)
    rows, horizon = state.shape[0], actions.shape[1]
    if actions.shape[0] != rows:
        raise ValueError(
            f"actions: batch of {actions.shape[0]} does not match state batch of {rows}"
        )
    steps_first, _ = as_batch(
        actions.transpose(0, 1).flatten(0, 1),
        model.action_space,
        name="actions",
        device=model.device,
    )
    act = flatten(steps_first, model.action_space).reshape(horizon, rows, -1)
    flat = state.reshape(rows, -1)
    norm = model.input_normalizer
    layers = list(model.net.layers)
    w1, b1 = folded_first_layer(layers[0].weight, layers[0].bias, norm.mean, norm.std)
    # The activation's forward, without nn.Module's call machinery (hooks) on every layer.
    activation = model.net.activation.forward
    rest = [(layer.weight, layer.bias) for layer in layers[1:]]
    ensemble, elites = model.ensemble_size, model.elite_indices
    dealing = member is None and model.propagation != "mean" and ensemble > 1
    if member is None and model.propagation != "mean" and ensemble == 1:
        member = torch.zeros(rows, dtype=torch.long, device=model.device)  # as step() does
    sampling = dealing or member is not None
    draw: Draw | None = None
    if sampling:  # "mean" propagation reads the unfolded head
        last, draw = model._prepared_head(*rest[-1], horizon, rows, generator)
        rest[-1] = last

    hidden, (w_out, b_out) = rest[:-1], rest[-1]
    # The output layer is narrow (a few columns): a CPU's matrix kernels are several times
    # faster on its transpose, out^T = W^T h^T (a view of h), than on h W itself.
    w_out_t, b_out_t = w_out.transpose(1, 2).contiguous(), b_out.transpose(1, 2)

    def forward(x: torch.Tensor) -> torch.Tensor:
        """``x: [E, n, I]`` raw inputs -> ``[E, n, out]`` (a transposed view)."""
        h = torch.baddbmm(b1, x, w1)
        for weight, bias in hidden:
            h = torch.baddbmm(bias, activation(h), weight)
        return torch.baddbmm(b_out_t, w_out_t, activation(h).transpose(1, 2)).transpose(1, 2)

    if dealing:
        k = elites.numel()
        dealt, position = random_deals(horizon, rows, k, generator, model.device)
        per_group = dealt.shape[-1]
        dealt = dealt.reshape(horizon, -1)  # [H, K * M], group-major
        # Position p of a deal is slot p // k of group p % k: its row in the network's
        # output [K, M, out] viewed as [K * M, out], read without transposing it.
        output_row = (position % k) * per_group + position // k
        all_elites = k == ensemble
    elif member is not None:
        member = torch.as_tensor(member, device=model.device).long().reshape(-1)
        if member.shape[0] != rows:
            raise ValueError(
                f"member: expected one member index per row ({rows}), got {member.shape[0]}"
            )
    row_index = torch.arange(rows, device=model.device)
    low, high = model._low, model._high
    terminates = model.learn_termination
    states, deltas, terminated = [flat], [], []
    for t in range(horizon):
        x = torch.cat([flat, act[t]], -1)
        if dealing:
            grouped = x.index_select(0, dealt[t]).view(k, per_group, -1)  # [K, M, I]
            if not all_elites:
                grouped = x.new_zeros(ensemble, *grouped.shape[1:]).index_copy_(0, elites, grouped)
            out = forward(grouped)
            if not all_elites:
                out = out[elites]
            out = out.reshape(-1, out.shape[-1]).index_select(0, output_row[t])  # [R, out]
            delta = draw(out[:, :-1] if terminates else out, t)
            logit = out[:, -1]
        else:
            out = forward(x.expand(ensemble, -1, -1))  # [E, R, out]
            head = out[..., :-1] if terminates else out
            if member is None:  # "mean": the elites' mean prediction, no sampling
                delta = model.target_normalizer.denormalize(model._mean(head[elites]).mean(0))
                logit = out[elites, :, -1]
            else:
                delta = draw(head[member, row_index], t)
                logit = out[member, row_index, -1]
        # Into the observation space's bounds, as step() does (a clamp keeps NaN).
        flat = (flat + delta[:, : model.obs_dim]).clamp(low, high)
        states.append(flat)
        deltas.append(delta)
        if terminates:
            prob = torch.sigmoid(logit)
            terminated.append(prob if prob.ndim == 1 else prob.mean(0))
    return broken_rows_to_nan(
        torch.stack(states).reshape(horizon + 1, *state.shape),
        torch.stack(deltas),
        model.obs_dim,
        torch.stack(terminated) if terminates else None,
    )


def broken_rows_to_nan(
    states: torch.Tensor, deltas: torch.Tensor, obs_dim: int, terminated: torch.Tensor | None
) -> ModelRollout:
    """The rollout, with every row NaN from the step after its model output its first
    non-finite change on: a clamp into the bounds would turn an infinite state into a
    bound and hide that the model broke down, and checking once here costs less than
    checking every step.

    :param states: ``[H + 1, R, *obs_shape]``; :param deltas: ``[H, R, >= obs_dim + 1]``,
        the denormalised changes, the reward in column ``obs_dim``; :param terminated:
        ``[H, R]`` or None.
    :return: ``ModelRollout(states, rewards [H, R], terminated)``.
    """
    rewards = deltas[..., obs_dim]
    broken = ~torch.isfinite(deltas[..., :obs_dim]).all(-1)  # [H, R]
    # The usual case, on the CPU (an accelerator would wait for this read: it masks).
    if not accelerator_paths(states.device) and not broken.any():
        return ModelRollout(states, rewards, terminated)
    after = broken.cummax(0).values  # [H, R]: broken at this step or before
    flat = states.flatten(2)
    flat = torch.cat([flat[:1], flat[1:].masked_fill(after[..., None], torch.nan)])
    later = torch.cat([torch.zeros_like(after[:1]), after[:-1]])  # steps after the break
    rewards = rewards.masked_fill(later, torch.nan)
    if terminated is not None:
        terminated = terminated.masked_fill(later, torch.nan)
    return ModelRollout(flat.reshape(states.shape), rewards, terminated)
