"""A neural ensemble's rollout along action sequences, prepared once for all its steps.

Stepping a small ensemble ``H`` times costs mostly work that does not depend on the data:
checking the inputs, normalising them, drawing a fresh random deal of rows to elites, and
dozens of small operations around the network. :func:`prepared_rollout` does that work
once per rollout: the inputs are checked once, the input normaliser is folded into the
first layer's weights, and under TS1 the deals of all ``H`` steps are drawn in one call.
Each step is then the concatenation of state and action, one gather, the network, one
gather back, the model's own sampling, and the state update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

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


def random_deals(
    steps: int, rows: int, groups: int, generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of ``steps`` steps, a uniformly random deal of ``rows`` rows to ``groups``
    groups of ``M = ceil(rows / groups)`` (the deal padded with rows dealt twice).

    :return: ``(dealt [steps, groups, M]``, the rows of each group; ``position [steps,
        rows]``, where each row's first deal is in ``dealt[t].T.reshape(-1)``).
    """
    per_group = -(-rows // groups)
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
    layers = model.net.layers
    w1, b1 = folded_first_layer(layers[0].weight, layers[0].bias, norm.mean, norm.std)
    activation = model.net.activation
    rest = [(layer.weight, layer.bias) for layer in list(layers)[1:]]

    def forward(x: torch.Tensor) -> torch.Tensor:
        """``x: [E, n, I]`` raw inputs -> ``[E, n, out]``."""
        h = torch.baddbmm(b1, x, w1)
        for weight, bias in rest:
            h = torch.baddbmm(bias, activation(h), weight)
        return h

    ensemble, elites = model.ensemble_size, model.elite_indices
    dealing = member is None and model.propagation != "mean" and ensemble > 1
    if dealing:
        k = elites.numel()
        dealt, position = random_deals(horizon, rows, k, generator, model.device)
        # Position p of a deal is slot p // k of group p % k: its row in the network's
        # output [K, M, out] viewed as [K * M, out], read without transposing it.
        output_row = (position % k) * dealt.shape[-1] + position // k
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
    states, rewards, terminated = [state], [], []
    for t in range(horizon):
        x = torch.cat([flat, act[t]], -1)
        if dealing:
            grouped = x[dealt[t]]  # [K, M, I]
            if not all_elites:
                grouped = x.new_zeros(ensemble, *grouped.shape[1:]).index_copy_(0, elites, grouped)
            out = forward(grouped)
            if not all_elites:
                out = out[elites]
            out = out.reshape(-1, out.shape[-1])[output_row[t]]  # [R, out]
            target = model._sample(out[:, :-1] if terminates else out, generator)
            logit = out[:, -1]
        else:
            out = forward(x.expand(ensemble, -1, -1))  # [E, R, out]
            head = out[..., :-1] if terminates else out
            if member is None:  # "mean": the elites' mean prediction, no sampling
                target = model._mean(head[elites]).mean(0)
                logit = out[elites, :, -1]
            else:
                target = model._sample(head[member, row_index], generator)
                logit = out[member, row_index, -1]
        delta = model.target_normalizer.denormalize(target)
        moved = flat + delta[:, : model.obs_dim]
        # Into the observation space's bounds, as step() does; a non-finite entry stays
        # NaN rather than clipped to a bound, so the model's breakdown still shows.
        flat = torch.where(torch.isfinite(moved), moved.clamp(low, high), torch.nan)
        states.append(flat.reshape(state.shape))
        rewards.append(delta[:, model.obs_dim])
        if terminates:
            prob = torch.sigmoid(logit)
            terminated.append(prob if prob.ndim == 1 else prob.mean(0))
    return ModelRollout(
        torch.stack(states),
        torch.stack(rewards),
        torch.stack(terminated) if terminates else None,
    )
