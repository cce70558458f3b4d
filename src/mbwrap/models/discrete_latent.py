"""The discrete latent of SimPLe's stochastic video model (Kaiser et al. 2019, "Model-Based
Reinforcement Learning for Atari", Section 4).

In training an inference network reads the input frames and the target frame and emits
logits for ``K`` bits; :func:`discretise_bits` turns them into bits the way improved
semantic hashing does (Kaiser & Bengio 2018, "Discrete Autoencoders for Sequence Models";
tensor2tensor's ``isemhash_bottleneck``): Gaussian noise on the logits, a
saturating sigmoid, hard bits in the forward pass for a random half of the values and the
soft ones for the rest, the gradient passed straight through the hard ones. At inference no
target is seen: :class:`BitPredictor`, an LSTM conditioned on the encoded input frames,
samples the bits a group at a time (tensor2tensor's ``predict_bits_with_lstm``).

**Bits** are ``+1`` / ``-1`` floats, tensor2tensor's convention: a bit of ``0`` would
silence its column of the layer that embeds the bits. Soft bits lie in ``[-1, 1]``. A group
of ``g`` bits reads as the integer ``sum_i [bit_i > 0] 2^i`` (least significant first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def saturating_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``max(0, min(1, 1.2 sigmoid(x) - 0.1))`` elementwise (Kaiser & Bengio 2018;
    tensor2tensor's ``saturating_sigmoid``).

    Unlike the sigmoid it reaches 0 and 1 at finite ``x`` (``|x| > ln 11 ~ 2.40``), so
    soft values and hard bits agree once the logits saturate, and it is above one half
    exactly where ``x > 0``.

    :param x: any shape.
    :return: the same shape, in ``[0, 1]``.
    """
    return (1.2 * torch.sigmoid(x) - 0.1).clamp(0.0, 1.0)


def draw(
    kind: str, shape: torch.Size, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Standard normal (``"normal"``) or uniform ``[0, 1)`` (``"uniform"``) numbers of
    ``shape``, drawn on the generator's device (where torch requires them) and moved to
    ``device``, so that a CPU generator drives a model on the GPU."""
    where = generator.device if generator is not None else device
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=generator, device=where).to(device)


def discretise_bits(
    logits: torch.Tensor,
    *,
    noise_std: float,
    generator: torch.Generator | None = None,
    training: bool,
    hard_probability: float = 0.5,  # Kaiser & Bengio 2018: hard half of the time
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits of the inference network's logits, with a straight-through gradient.

    In training: ``soft = saturating_sigmoid(logits + noise_std * n)``, ``n ~ N(0, 1)``;
    ``hard = [soft > 1/2]``; each value is ``hard`` (forward) with gradient of ``soft``
    (backward) with probability ``hard_probability``, else ``soft``; mapped to ``[-1, 1]``.
    Out of training the noise and the soft values are left out: the bits are the signs of
    the logits.

    :param logits: ``[B, K]``.
    :param noise_std: standard deviation of the noise added to the logits in training.
    :param generator: source of the noise and of the hard/soft choice.
    :param training: whether to add noise and mix in soft values.
    :param hard_probability: the chance that a value is the hard bit in training.
    :return: ``(bits, hard)``, each ``[B, K]``: ``bits`` in ``[-1, 1]``, what the decoder
        reads, differentiable with respect to ``logits``; ``hard`` in ``{-1, +1}``, without
        gradient, the bits ``bits`` stand for (what :class:`BitPredictor` learns to
        predict).
    """
    if not training:
        hard = torch.where(logits > 0, 1.0, -1.0)
        return hard, hard
    noise = draw("normal", logits.shape, generator, logits.device)
    soft = saturating_sigmoid(logits + noise_std * noise)
    hard = (soft > 0.5).float()
    # Exactly `hard` forward (the zero added first), the gradient of `soft` backward.
    straight_through = hard + (soft - soft.detach())
    use_hard = draw("uniform", logits.shape, generator, logits.device) < hard_probability
    value = torch.where(use_hard, straight_through, soft)
    return 2.0 * value - 1.0, 2.0 * hard - 1.0


def bits_to_int(bits: torch.Tensor) -> torch.Tensor:
    """Groups of bits ``[..., g]`` (``+1`` / ``-1``, least significant first) -> ``[...]``
    int64 in ``[0, 2^g)``."""
    powers = 2 ** torch.arange(bits.shape[-1], device=bits.device)
    return ((bits > 0).long() * powers).sum(-1)


def int_to_bits(ints: torch.Tensor, group_bits: int) -> torch.Tensor:
    """Integers ``[...]`` in ``[0, 2^g)`` -> bits ``[..., g]`` float, ``+1`` / ``-1``, least
    significant first: the inverse of :func:`bits_to_int`."""
    shifts = torch.arange(group_bits, device=ints.device)
    return ((ints.unsqueeze(-1) >> shifts) & 1).float() * 2.0 - 1.0


class BitPredictor(nn.Module):
    """An LSTM that predicts ``K`` bits a group of ``g`` at a time, each group a
    ``2^g``-way softmax conditioned on the groups before it (tensor2tensor's
    ``predict_bits_with_lstm``).

    The context (the encoded input frames) sets the LSTM's first input and its initial
    state; each later input embeds the group before.

    :param context_size: ``C``, the width of the context vectors.
    :param bits: ``K``.
    :param hidden_size: the LSTM's state size.
    :param bits_at_once: ``g``; fewer when ``K`` is smaller. Must divide ``K``.
    :param dropout: on the embedded groups and the LSTM's outputs in training.
    """

    def __init__(
        self,
        context_size: int,
        bits: int,
        *,
        hidden_size: int = 128,  # tensor2tensor: latent_predictor_state_size = 128
        bits_at_once: int = 8,  # tensor2tensor's predict_bits_with_lstm: bits_at_once=8
        dropout: float = 0.1,  # tensor2tensor's predict_bits_with_lstm: dropout=0.1
    ) -> None:
        super().__init__()
        group = min(int(bits_at_once), int(bits))
        if group < 1 or bits % group:
            raise ValueError(
                f"bits_at_once: must divide bits={bits} (or exceed it), got {bits_at_once!r}"
            )
        self.bits, self.group_bits, self.groups = int(bits), group, int(bits) // group
        self.start = nn.Linear(context_size, 3 * hidden_size)  # first input, h0, c0
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.embed = nn.Embedding(2**group, hidden_size)
        self.head = nn.Linear(hidden_size, 2**group)
        self.dropout = nn.Dropout(dropout)

    def _start(
        self, context: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``context: [B, C]`` -> (first input ``[B, 1, H]``, state ``([1, B, H], [1, B, H])``)."""
        first, h, c = self.start(context).chunk(3, -1)
        return first.unsqueeze(1), (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous())

    def log_prob(self, context: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """The teacher-forced log-likelihood of given bits.

        :param context: ``[B, C]``.
        :param bits: ``[B, K]``, read by sign; no gradient flows into them.
        :return: ``[B]``, in nats, summed over the ``K / g`` groups.
        """
        target = bits_to_int(bits.detach().reshape(-1, self.groups, self.group_bits))  # [B, G]
        first, state = self._start(context)
        previous = self.dropout(self.embed(target[:, :-1]))
        out, _ = self.lstm(torch.cat([first, previous], 1), state)  # [B, G, H]
        logits = self.head(self.dropout(out))  # [B, G, 2^g]
        return -F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(-1)

    def sample(
        self,
        context: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        temperature: float = 1.0,  # tensor2tensor: latent_predictor_temperature = 1.0
    ) -> torch.Tensor:
        """Bits sampled group by group, each group from the softmax of its logits divided by
        ``temperature`` (its most likely value at 0).

        :param context: ``[B, C]``.
        :param generator: source of the samples.
        :return: ``[B, K]`` in ``{-1, +1}``.
        """
        x, state = self._start(context)
        groups = []
        for _ in range(self.groups):
            out, state = self.lstm(x, state)
            logits = self.head(out[:, 0])  # [B, 2^g]
            if temperature > 0:
                # Gumbel-max: a sample of softmax(logits / T), drawn with `generator`.
                uniform = draw("uniform", logits.shape, generator, logits.device)
                gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
                logits = logits / temperature + gumbel
            group = logits.argmax(-1)
            groups.append(group)
            x = self.embed(group).unsqueeze(1)
        return int_to_bits(torch.stack(groups, 1), self.group_bits).flatten(1)
