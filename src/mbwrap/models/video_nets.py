"""The network of SimPLe's stochastic video model (Kaiser et al. 2019, "Model-Based
Reinforcement Learning for Atari", Section 4; tensor2tensor's
``next_frame_basic_stochastic_discrete``).

- **Encoder.** The stacked input frames are embedded per pixel (a 1x1 convolution to
  ``hidden_size`` channels), then halved ``compress_steps`` times by stride-2 4x4
  convolutions with ReLU and layer normalisation over the channels; the widths double at
  each of the first ``filter_double_steps`` steps (:func:`stage_widths`).
- **Action.** The one-hot action is embedded and multiplies the bottleneck channel-wise
  (the paper's multiplicative action injection).
- **Latent.** ``K`` bits (:mod:`mbwrap.models.discrete_latent`) gate and shift the
  bottleneck: ``x * sigmoid(W_m z) + W_a z`` (tensor2tensor's ``complex_addn``). In
  training they come from an inference tower that also sees the target frame; at inference
  a :class:`~mbwrap.models.discrete_latent.BitPredictor` samples them from the flattened
  bottleneck.
- **Middle.** ``hidden_layers`` 3x3 convolutions with ReLU and dropout, residual from the
  second on.
- **Reward.** From the bottleneck after the middle layers, flattened (so that it keeps
  where things are; tensor2tensor averages over space maps that carry a timing signal):
  3 classes, the sign of the reward ``{-1, 0, +1}``.
- **Decoder.** Stride-2 4x4 transposed convolutions back up, each followed by the skip
  connection from the encoder map of the same size (U-Net style) and layer normalisation,
  then a 1x1 convolution to 256 logits per pixel: a softmax over the next frame's
  intensities.

**Any frame size.** As tensor2tensor's ``make_even_size``, each encoder step pads its input
at the bottom and right to an even size and each decoder step crops its output to the size
of the skip connection it adds, so an 84x84 frame runs through 42, 21 (padded to 22), 11,
6, 3 and 2 pixels, and back. Steps beyond the one that brings the shorter side to one pixel
are dropped (:func:`usable_compress_steps`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mbwrap.models.discrete_latent import BitPredictor, discretise_bits, draw
from mbwrap.models.images import crop_to, next_multiple, pad_to

#: Intensities of an 8-bit pixel: the classes of the per-pixel softmax.
PIXEL_VALUES = 256
#: Reward classes: the sign of the reward, ``{-1, 0, +1}`` (SimPLe clips rewards to it).
REWARD_CLASSES = 3
#: Width of the reward head's hidden layer: a choice of this implementation, the width of
#: the bit predictor's state.
REWARD_HIDDEN = 128


def stage_widths(hidden_size: int, steps: int, filter_double_steps: int) -> list[int]:
    """Channel widths of the encoder's maps, from the embedded frames to the bottleneck:
    ``steps + 1`` ints, doubling at each of the first ``filter_double_steps`` steps
    (tensor2tensor's ``next_frame_basic_deterministic``). The decoder runs them backwards."""
    widths = [int(hidden_size)]
    for step in range(steps):
        widths.append(widths[-1] * 2 if step < filter_double_steps else widths[-1])
    return widths


def usable_compress_steps(height: int, width: int, compress_steps: int) -> int:
    """At most ``compress_steps``, and no more halvings than take the shorter side of a
    ``height x width`` frame to one pixel (``ceil(log2(min side))``)."""
    return min(int(compress_steps), math.ceil(math.log2(min(height, width))))


def clipped_pixel_loss(logits: torch.Tensor, target: torch.Tensor, *, clip: float) -> torch.Tensor:
    """SimPLe's clipped loss: the per-pixel cross-entropy held below at ``clip``,
    ``max(loss, clip)``, averaged over pixels (Kaiser et al. 2019, Section 4, "Clipped
    loss"; tensor2tensor subtracts the constant, ``relu(loss - clip)``, the same gradient).

    Pixels already predicted within ``clip`` nats get no gradient, so the model spends its
    capacity on the pixels it still gets wrong rather than on sharpening the background.

    :param logits: ``[B, 256, H, W]``.
    :param target: ``[B, H, W]`` int64 intensities.
    :return: a scalar.
    """
    # Rows of 256 classes: contiguous when the logits are laid out channels-last
    # (VideoNet.pixel_logits), where the softmax over a strided dimension is slow.
    rows = logits.movedim(1, -1).reshape(-1, logits.shape[1])
    loss = F.cross_entropy(rows, target.reshape(-1), reduction="none")
    return loss.clamp_min(clip).mean()


class _ChannelNorm(nn.Module):
    """Layer normalisation over the channels of ``[N, C, H, W]`` maps, at each pixel
    (tensor2tensor's ``layer_norm`` of its channels-last maps)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _pad_even(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` zero-padded at the bottom and right to even ``H`` and ``W``."""
    return pad_to(x, next_multiple(x.shape[-2], 2), next_multiple(x.shape[-1], 2))


#: tensor2tensor's next_frame_basic_deterministic: initializer = "uniform_unit_scaling",
#: initializer_gain = 1.3.
INIT_GAIN = 1.3


def unit_scaling_init_(module: nn.Module, *, gain: float = INIT_GAIN) -> None:
    """Initialise every convolution, transposed convolution, linear layer and embedding in
    ``module`` as tensorflow's ``uniform_unit_scaling``: weights uniform with variance
    ``gain^2 / fan_in`` (``fan_in``: the inputs that sum into one output), biases zero.

    PyTorch's default is ``1.3 sqrt(3)``, about 2.25, times smaller; with it the decoder's
    upsampled path starts drowned by the skip connections it is added to, and the network
    learns to move objects only after a long plateau.
    """
    for layer in module.modules():
        if isinstance(layer, nn.ConvTranspose2d):
            # Each output sums over kernel / stride taps of each input map.
            taps = layer.kernel_size[0] * layer.kernel_size[1]
            fan_in = layer.in_channels * taps // (layer.stride[0] * layer.stride[1])
        elif isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = layer.weight[0].numel()
        elif isinstance(layer, nn.Embedding):
            fan_in = layer.num_embeddings  # as tensorflow's dense layer on a one-hot
        else:
            continue
        bound = gain * (3.0 / fan_in) ** 0.5
        nn.init.uniform_(layer.weight, -bound, bound)
        if getattr(layer, "bias", None) is not None:
            nn.init.zeros_(layer.bias)


@dataclass(frozen=True)
class VideoNetOutput:
    """One prediction of :class:`VideoNet`.

    :ivar pixel_logits: ``[B, 256, H, W]``, the next frame's intensities.
    :ivar reward_logits: ``[B, 3]``, for the rewards ``-1, 0, +1``.
    :ivar bits: ``[B, K]`` the latent the prediction used: inferred (in ``[-1, 1]``) when a
        target was given, else sampled (``{-1, +1}``).
    :ivar bit_loss: scalar, the bit predictor's cross-entropy per group of the inferred
        bits (``None`` without a target).
    """

    pixel_logits: torch.Tensor
    reward_logits: torch.Tensor
    bits: torch.Tensor
    bit_loss: torch.Tensor | None


class VideoNet(nn.Module):
    """SimPLe's next-frame network: stacked frames and an action to the next frame's pixel
    logits, the reward's class logits and the discrete latent. See the module docstring.

    :param in_channels: ``S``, channels of the stacked input (frames x colours).
    :param frame_size: ``(H, W)``.
    :param actions: number of discrete actions.
    :param hidden_size: width of the embedded frames; the encoder doubles it.
    :param compress_steps: stride-2 steps down (and up); see :func:`usable_compress_steps`.
    :param filter_double_steps: the first steps that double the width.
    :param hidden_layers: 3x3 convolutions at the bottleneck.
    :param dropout: after each of those.
    :param bits: ``K``, the latent's bits.
    :param bit_noise_std: noise on the inference logits in training.
    :param hard_bit_probability: chance of a hard bit in training.
    :param bit_predictor_size: the bit predictor's LSTM state.
    :param bits_at_once: bits per step of the bit predictor.
    :param bit_temperature: the bit predictor's sampling temperature.
    """

    def __init__(
        self,
        in_channels: int,
        frame_size: tuple[int, int],
        actions: int,
        *,
        hidden_size: int,
        compress_steps: int,
        filter_double_steps: int,
        hidden_layers: int,
        dropout: float,
        bits: int,
        bit_noise_std: float,
        hard_bit_probability: float,
        bit_predictor_size: int,
        bits_at_once: int,
        bit_temperature: float,
    ) -> None:
        super().__init__()
        height, width = frame_size
        steps = usable_compress_steps(height, width, compress_steps)
        widths = stage_widths(hidden_size, steps, filter_double_steps)
        top = widths[-1]
        self.bit_noise_std = float(bit_noise_std)
        self.hard_bit_probability = float(hard_bit_probability)
        self.bit_temperature = float(bit_temperature)

        self.embed = nn.Conv2d(in_channels, hidden_size, 1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), nn.ReLU(), _ChannelNorm(b))
            for a, b in itertools.pairwise(widths)
        )
        # The one-hot action through a dense layer: one row of factors per action.
        self.action = nn.Embedding(actions, top)
        self.bits_mul = nn.Linear(bits, top)
        self.bits_add = nn.Linear(bits, top)
        self.middle = nn.ModuleList(nn.Conv2d(top, top, 3, 1, 1) for _ in range(hidden_layers))
        self.middle_norms = nn.ModuleList(_ChannelNorm(top) for _ in range(hidden_layers - 1))
        self.dropout = nn.Dropout(dropout)
        bottom = (height, width)
        for _ in range(steps):
            bottom = (math.ceil(bottom[0] / 2), math.ceil(bottom[1] / 2))
        self.bottleneck_shape = (top, *bottom)
        bottleneck_size = top * bottom[0] * bottom[1]
        self.reward_head = nn.Sequential(
            nn.Linear(bottleneck_size, REWARD_HIDDEN),
            nn.ReLU(),
            nn.Linear(REWARD_HIDDEN, REWARD_CLASSES),
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in itertools.pairwise(widths[::-1])
        )
        self.up_norms = nn.ModuleList(_ChannelNorm(b) for b in widths[-2::-1])
        self.to_logits = nn.Conv2d(hidden_size, PIXEL_VALUES, 1)

        # The inference tower (tensor2tensor's latent tower): inputs and target stacked.
        self.posterior_embed = nn.Conv2d(in_channels + 1, hidden_size, 1)
        self.posterior_action = nn.Embedding(actions, hidden_size)
        self.posterior_down = nn.Sequential(
            *(
                layer
                for _ in range(steps)
                for layer in (
                    nn.Conv2d(hidden_size, hidden_size, 4, 2, 1),
                    nn.ReLU(),
                    _ChannelNorm(hidden_size),
                )
            )
        )
        # Mean and max over space, as tensor2tensor's double_discriminator pools its maps.
        self.posterior_bits = nn.Linear(2 * hidden_size, bits)

        self.predictor = BitPredictor(
            bottleneck_size,
            bits,
            hidden_size=bit_predictor_size,
            bits_at_once=bits_at_once,
        )
        unit_scaling_init_(self)

    # ------------------------------------------------------------------ pieces
    def encode(
        self, frames: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The bottleneck with the action injected, and the skip connections.

        :param frames: ``[B, S, H, W]`` float in ``[0, 1]``.
        :param action: ``[B]`` int64 in ``[0, actions)``.
        :return: ``(bottleneck [B, *bottleneck_shape], skips)``, the skips being the
            encoder's maps before each step, largest first.
        """
        x = self.embed(frames)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(_pad_even(x))
        return x * self.action(action)[:, :, None, None], skips

    def infer_bit_logits(
        self, frames: torch.Tensor, action: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """The inference network: logits of the bits, from the inputs and the target.

        :param frames: ``[B, S, H, W]`` float in ``[0, 1]``.
        :param action: ``[B]`` int64.
        :param target: ``[B, H, W]`` float in ``[0, 1]``, the next frame.
        :return: ``[B, K]``.
        """
        x = self.posterior_embed(torch.cat([frames, target.unsqueeze(1)], 1))
        x = self.posterior_down(x * self.posterior_action(action)[:, :, None, None])
        return self.posterior_bits(torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1))

    def decode(
        self,
        bottleneck: torch.Tensor,
        skips: list[torch.Tensor],
        bits: torch.Tensor,
        use_latent: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The next frame's pixel logits ``[B, 256, H, W]`` and the reward logits ``[B, 3]``.

        :param bottleneck: ``[B, *bottleneck_shape]`` from :meth:`encode`.
        :param skips: from :meth:`encode`.
        :param bits: ``[B, K]``.
        :param use_latent: ``[B]`` bool, the rows whose bottleneck gets the bits; ``None``:
            all.
        """
        x = bottleneck * torch.sigmoid(self.bits_mul(bits))[:, :, None, None]
        x = x + self.bits_add(bits)[:, :, None, None]
        if use_latent is not None:
            x = torch.where(use_latent[:, None, None, None], x, bottleneck)
        for i, conv in enumerate(self.middle):
            y = self.dropout(F.relu(conv(x)))
            x = y if i == 0 else self.middle_norms[i - 1](x + y)
        reward_logits = self.reward_head(x.flatten(1))
        for up, norm, skip in zip(self.up, self.up_norms, reversed(skips), strict=True):
            x = norm(crop_to(F.relu(up(x)), *skip.shape[-2:]) + skip)
        return self.pixel_logits(x), reward_logits

    def pixel_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``to_logits`` (a 1x1 convolution) as a dense layer over the channels of each
        pixel: ``[B, C, H, W]`` to ``[B, 256, H, W]`` laid out channels-last, so that the
        softmax over the 256 intensities and its loss read contiguous rows. On a CPU a
        training step of the small SimPLe model took 0.14 s this way against 0.24 s with
        the convolution, whose strided ``[B, 256, H, W]`` output dominated it
        (benchmarks/RESULTS.md, "SimPLe")."""
        weight = self.to_logits.weight.flatten(1)  # [256, C]
        return F.linear(x.permute(0, 2, 3, 1), weight, self.to_logits.bias).permute(0, 3, 1, 2)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        frames: torch.Tensor,
        action: torch.Tensor,
        target: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        predicted_bit_probability: float = 0.0,
        latent_probability: float = 1.0,
    ) -> VideoNetOutput:
        """Predict the next frame.

        With ``target`` the bits are inferred from it (with noise and soft values while the
        module is training) and the bit predictor's loss on them is returned; without it
        they are sampled from the bit predictor. Two mixes, for training, keep the decoder
        from relying on bits the bit predictor cannot reproduce (tensor2tensor's
        ``latent_rnn_max_sampling`` and ``latent_use_max_probability``): each inferred bit
        is replaced by a sampled one with probability ``predicted_bit_probability`` (its
        gradient still reaching the inference network), and each row gets the latent at all
        only with probability ``latent_probability``, so that the frame must also be
        predicted from the inputs alone.

        :param frames: ``[B, S, H, W]`` float in ``[0, 1]``.
        :param action: ``[B]`` int64.
        :param target: ``[B, H, W]`` float in ``[0, 1]``, or ``None``.
        :param generator: source of the bits' noise or samples and of the mixes.
        :param predicted_bit_probability: in ``[0, 1]``, with ``target`` only.
        :param latent_probability: in ``[0, 1]``, with ``target`` only.
        """
        bottleneck, skips = self.encode(frames, action)
        context = bottleneck.flatten(1)
        use_latent = None
        if target is None:
            bits = self.predictor.sample(context, generator, temperature=self.bit_temperature)
            bit_loss = None
        else:
            bits, hard = discretise_bits(
                self.infer_bit_logits(frames, action, target),
                noise_std=self.bit_noise_std,
                generator=generator,
                training=self.training,
                hard_probability=self.hard_bit_probability,
            )
            # `hard` carries no gradient: the predictor follows the inference network and
            # never pulls it towards bits that are easy to predict.
            bit_loss = -self.predictor.log_prob(context, hard).mean() / self.predictor.groups
            if predicted_bit_probability > 0:
                sampled = self.predictor.sample(
                    context.detach(), generator, temperature=self.bit_temperature
                )
                # Sampled bits forward, the inferred bits' gradient backward.
                sampled = bits + (sampled - bits).detach()
                pick = draw("uniform", bits.shape, generator, bits.device)
                bits = torch.where(pick < predicted_bit_probability, sampled, bits)
            if latent_probability < 1:
                rows = draw("uniform", bits.shape[:1], generator, bits.device)
                use_latent = rows < latent_probability
        pixel_logits, reward_logits = self.decode(bottleneck, skips, bits, use_latent)
        return VideoNetOutput(pixel_logits, reward_logits, bits, bit_loss)
