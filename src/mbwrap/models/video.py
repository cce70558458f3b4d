"""SimPLe's stochastic video-prediction world model (Kaiser et al. 2019, "Model-Based
Reinforcement Learning for Atari", ICLR 2020, Section 4; tensor2tensor's
``next_frame_basic_stochastic_discrete``) as a :class:`WorldModel`.

The network (:class:`~mbwrap.models.video_nets.VideoNet`) reads the last ``S`` frames and
an action and predicts the next frame as a 256-way softmax per pixel and the sign of the
reward; a discrete latent of ``bits`` bits
(:mod:`mbwrap.models.discrete_latent`) carries what the inputs do not determine. Over this
model a :class:`~mbwrap.DreamVecEnv` is SimPLe's simulated environment, in which SB3's PPO
trains on the frames it imagines.

**States** are the frame stacks themselves, ``[B, S, H, W]`` uint8, exactly the
observations (:meth:`encode` and :meth:`decode` check and pass them through). :meth:`step`
predicts one frame, drops the oldest and appends it.

**Inference** (:meth:`step`): the bits are *sampled* from the bit predictor with the
``generator`` (the latent is where the randomness lives), each pixel is the *mode* of its
softmax (tensor2tensor's ``pixel_sampling_temperature = 0.0``: argmax), and the reward is
the most likely class (tensor2tensor's ``infer`` takes the argmax), or with
``reward_estimate="mean"`` its expectation ``p(+1) - p(-1)``. The same generator
state gives the same frame. Episodes never terminate (``terminated=None``): SimPLe's
simulated episodes are cut at 50 steps by the caller (the ``horizon`` of the imagination
env).

**Training** (:meth:`fit`): Adam on replayed sub-trajectories of ``sequence_length``
steps within one episode. The first input is the stored stack; each later input appends,
per sequence, either the real next frame or, with the scheduled-sampling probability, the
model's own prediction (its mode; tensor2tensor's ``prob_inverse_lin`` schedule, rising
linearly from 0 to 1 over ``scheduled_sampling_decay_steps`` gradient steps). The loss at
each step is the clipped pixel loss, the reward's cross-entropy and the bit predictor's
cross-entropy on the inferred bits. As in tensor2tensor, two mixes that ramp up over
``latent_warmup_steps`` keep the decoder from leaning on bits the predictor cannot
reproduce (:meth:`~mbwrap.models.video_nets.VideoNet.forward`): inferred bits replaced by
sampled ones (up to ``predicted_bit_probability``), and rows trained without the latent
(down to ``latent_probability`` with it). All weights start as tensorflow's
``uniform_unit_scaling`` (:func:`~mbwrap.models.video_nets.unit_scaling_init_`).

**Simplifications** with respect to tensor2tensor's model: no recurrent internal state
carried across frames (``concat_internal_states``); no timing signal added to the maps
(the reward head reads the flattened bottleneck instead of its spatial mean, so it still
sees where things are); no random bit flips (``bottleneck_noise``) and no annealing of the
hard/soft mix (``discretize_warmup_steps``: one half from the start); Adam at a constant
learning rate with gradient-norm clipping instead of tensor2tensor's optimizer with a
warm-up; the predicted frame is one grey channel (the input stack may hold any number of
channels, but the observation space is read as ``S`` grey frames).
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from mbwrap.device import make_generator
from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models.base import WorldModel
from mbwrap.models.discrete_latent import draw
from mbwrap.models.images import find_image_layout
from mbwrap.models.video_nets import VideoNet, clipped_pixel_loss
from mbwrap.space_support import SpaceSupport
from mbwrap.types import ModelStep

#: Order of the losses and metrics :meth:`VideoModel._unroll` returns.
_METRICS = ("loss", "pixel_loss", "pixel_accuracy", "reward_loss", "reward_accuracy", "bit_loss")


def _setting(default: Any, *, low: float, high: float | None = None) -> Any:
    """A config field with the range its value must lie in (inclusive)."""
    return dataclasses.field(default=default, metadata={"low": low, "high": high})


def _choice(default: str, *choices: str) -> Any:
    """A config field whose value is one of ``choices``."""
    return dataclasses.field(default=default, metadata={"choices": (default, *choices)})


@dataclass(frozen=True, kw_only=True)
class VideoModelConfig:
    """The hyperparameters of :class:`VideoModel`, each with its source.

    ``tensor2tensor`` below is its ``next_frame_basic_stochastic_discrete`` hparams set
    (SimPLe's model), or the sets it builds on where named.
    """

    # tensor2tensor's next_frame_basic_deterministic: hidden_size = 64 (the discrete set
    # itself takes 96).
    hidden_size: int = _setting(64, low=1)
    # tensor2tensor: num_compress_steps = 6 (the paper's 6 downsampling steps).
    compress_steps: int = _setting(6, low=1)
    # tensor2tensor's next_frame_basic_deterministic: filter_double_steps = 2 (the width
    # doubles at each of the first 2 steps; the discrete set takes 3).
    filter_double_steps: int = _setting(2, low=0)
    # tensor2tensor: num_hidden_layers = 2 (3x3 convolutions at the bottleneck).
    hidden_layers: int = _setting(2, low=1)
    # tensor2tensor: dropout = 0.15.
    dropout: float = _setting(0.15, low=0.0, high=0.99)
    # tensor2tensor: bottleneck_bits = 128.
    bits: int = _setting(128, low=1)
    # tensor2tensor's isemhash_bottleneck: isemhash_noise_dev = 0.5 (Gaussian noise on the
    # pre-activation, Kaiser & Bengio 2018).
    bit_noise_std: float = _setting(0.5, low=0.0)
    # Kaiser & Bengio 2018 (improved semantic hashing): hard bits half of the time
    # (tensor2tensor: isemhash_mix_prob = 0.5).
    hard_bit_probability: float = _setting(0.5, low=0.0, high=1.0)
    # tensor2tensor: latent_predictor_state_size = 128.
    bit_predictor_size: int = _setting(128, low=1)
    # tensor2tensor's predict_bits_with_lstm: bits_at_once = 8 (a 256-way softmax a step).
    bits_at_once: int = _setting(8, low=1)
    # tensor2tensor: latent_predictor_temperature = 1.0.
    bit_temperature: float = _setting(1.0, low=0.0)
    # SimPLe, Section 4, clipped loss max(loss, C); tensor2tensor:
    # video_modality_loss_cutoff = 0.03 nats per pixel.
    loss_clip: float = _setting(0.03, low=0.0)
    # tensor2tensor: learning_rate_constant = 0.002 (here for Adam, without its warm-up).
    learning_rate: float = _setting(2e-3, low=0.0)
    # tensor2tensor: batch_size = 4 (sequences per step).
    batch_size: int = _setting(4, low=1)
    # tensor2tensor: video_num_target_frames = 6 (frames predicted per training sequence).
    sequence_length: int = _setting(6, low=1)
    # tensor2tensor: scheduled_sampling_decay_steps = 40000, max probability 1.0.
    scheduled_sampling_decay_steps: int = _setting(40_000, low=1)
    # tensor2tensor: latent_rnn_max_sampling = 0.5, the share of inferred bits replaced by
    # sampled ones in training, reached after latent_warmup_steps.
    predicted_bit_probability: float = _setting(0.5, low=0.0, high=1.0)
    # tensor2tensor: latent_use_max_probability = 0.8, the share of training rows that get
    # the latent at all, reached after half of latent_warmup_steps.
    latent_probability: float = _setting(0.8, low=0.0, high=1.0)
    # tensor2tensor: latent_rnn_warmup_steps = 40000.
    latent_warmup_steps: int = _setting(40_000, low=1)
    # tensor2tensor's next_frame_basic_deterministic: clip_grad_norm = 1.0.
    max_grad_norm: float = _setting(1.0, low=0.0)
    # The imagined reward: "mode", the most likely sign (tensor2tensor's infer takes the
    # argmax), or "mean", its expectation p(+1) - p(-1). A model that is not yet sure of
    # any reward (rewards in a few percent of frames, a short fit) gives 0 everywhere under
    # "mode", and the agent then learns nothing; "mean" keeps the model's graded belief,
    # which the agent then also exploits where it is wrong (benchmarks/RESULTS.md).
    reward_estimate: str = _choice("mode", "mean")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata:
                if value not in f.metadata["choices"]:
                    expected = " or ".join(repr(c) for c in f.metadata["choices"])
                    raise ValueError(f"{f.name}: expected {expected}, got {value!r}")
                continue
            integral = isinstance(f.default, int)
            kind = numbers.Integral if integral else numbers.Real
            if isinstance(value, bool) or not isinstance(value, kind):
                what = "an int" if integral else "a number"
                raise TypeError(f"{f.name}: expected {what}, got {value!r}")
            low, high = f.metadata["low"], f.metadata["high"]
            if value < low or (high is not None and value > high):
                bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"{f.name}: expected a value {bounds}, got {value!r}")
            if not integral:
                object.__setattr__(self, f.name, float(value))  # JSON keeps it a float

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> VideoModelConfig:
        """The config of ``kwargs`` over the defaults.

        :raises TypeError: naming a keyword that is not a setting.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for key in kwargs:
            if key not in names:
                raise TypeError(
                    f"{key}: not a setting of VideoModel; valid: {', '.join(sorted(names))}"
                )
        return cls(**kwargs)


def reward_of_logits(logits: torch.Tensor, estimate: str) -> torch.Tensor:
    """The imagined reward of the reward head's logits ``[B, 3]`` (classes -1, 0, +1).

    :param estimate: ``"mode"``: the most likely class, in ``{-1, 0, 1}``; ``"mean"``: the
        expectation ``p(+1) - p(-1)``, in ``[-1, 1]``.
    :return: ``[B]`` float32.
    """
    if estimate == "mean":
        probs = logits.float().softmax(-1)
        return probs[:, 2] - probs[:, 0]
    return logits.argmax(-1).float() - 1.0


def ramp(step: int, *, steps: float, final: float) -> float:
    """A probability rising linearly from 0 at ``step = 0`` to ``final`` at ``steps`` and
    staying there (tensor2tensor's ``inverse_lin_decay`` schedules, without their floor of
    0.01)."""
    return final * min(1.0, step / steps)


def frame_stack_shape(space: spaces.Space, *, name: str) -> tuple[int, int, int]:
    """``(S, H, W)`` of a space of uint8 frame stacks, channels first.

    :raises UnsupportedSpaceError: naming ``name`` for any other space.
    """
    layout = (
        find_image_layout(space.shape)
        if isinstance(space, spaces.Box) and space.dtype == np.uint8
        else None
    )
    if layout is None or layout.channels_last:
        raise UnsupportedSpaceError(
            f"{name}: SimPLe's video model reads uint8 frame stacks [S, H, W], channels first "
            "(e.g. (4, 84, 84) from mbwrap.envs.make_atari_env), at least 4 pixels a side, "
            f"got {space!r}"
        )
    return layout.channels, layout.height, layout.width


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in evaluation mode (no dropout, no bit noise), then restore its mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class VideoModel(WorldModel):
    """SimPLe's stochastic discrete video model over uint8 frame stacks and discrete
    actions. See the module docstring for states, inference and training.

    :param observation_space: uint8 ``Box`` of shape ``[S, H, W]`` (channels first).
    :param action_space: ``Discrete``.
    :param config: keywords of :class:`VideoModelConfig` (``hidden_size``,
        ``compress_steps``, ``bits``, ``dropout``, ``learning_rate``, ``batch_size``,
        ``loss_clip``, ...), defaults from the paper and tensor2tensor.
    """

    registry_name: ClassVar[str | None] = "video"
    space_support = SpaceSupport(
        observations=("image",),
        actions=("Discrete",),
        observation_note=(
            "uint8 frame stacks [S, H, W], channels first (mbwrap.envs.make_atari_env)"
        ),
    )

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        env_id: str | None = None,
        device: str | torch.device = "auto",
        **config: Any,
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        stack, height, width = frame_stack_shape(observation_space, name="observation_space")
        if not isinstance(action_space, spaces.Discrete):
            raise UnsupportedSpaceError(
                f"action_space: SimPLe's video model takes Discrete actions, got {action_space!r}"
            )
        self.config = VideoModelConfig.from_kwargs(config)
        c = self.config
        self.net = VideoNet(
            stack,
            (height, width),
            int(action_space.n),
            hidden_size=c.hidden_size,
            compress_steps=c.compress_steps,
            filter_double_steps=c.filter_double_steps,
            hidden_layers=c.hidden_layers,
            dropout=c.dropout,
            bits=c.bits,
            bit_noise_std=c.bit_noise_std,
            hard_bit_probability=c.hard_bit_probability,
            bit_predictor_size=c.bit_predictor_size,
            bits_at_once=c.bits_at_once,
            bit_temperature=c.bit_temperature,
        ).to(self.device)
        #: Gradient steps taken over all fits: the clock of scheduled sampling and of the
        #: latent mixes, saved with the weights so that a loaded model resumes them.
        self.register_buffer(
            "gradient_steps_done", torch.zeros((), dtype=torch.long, device=self.device)
        )
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=c.learning_rate)
        self.eval()

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    # ------------------------------------------------------------------ WorldModel
    def action_index(self, action: torch.Tensor) -> torch.Tensor:
        """Env actions ``[B]`` (or ``[B, 1]``) -> ``[B]`` int64 in ``[0, n)``."""
        return action.long().reshape(-1) - int(self.action_space.start)

    @torch.no_grad()
    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """One imagined step.

        :param state: ``[B, S, H, W]`` uint8 frame stacks.
        :param action: ``[B]`` env actions.
        :param generator: source of the latent's bits.
        :return: the next stack ``[B, S, H, W]`` uint8 (the oldest frame dropped, the
            predicted one last), the reward ``[B]`` float32 (in ``{-1, 0, 1}``, or in
            ``[-1, 1]`` with ``reward_estimate="mean"``) and ``terminated=None``.
        """
        frames = state.to(torch.uint8)
        with _evaluating(self.net):
            out = self.net(frames.float() / 255.0, self.action_index(action), generator=generator)
        next_frame = out.pixel_logits.argmax(1).to(torch.uint8)
        reward = reward_of_logits(out.reward_logits, self.config.reward_estimate)
        next_state = torch.cat([frames[:, 1:], next_frame.unsqueeze(1)], 1)
        return ModelStep(next_state=next_state, reward=reward, terminated=None)

    # ------------------------------------------------------------------ training
    def optimizer_state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_optimizer_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.optimizer.load_state_dict(state)

    def _unroll(self, batch: Any, generator: torch.Generator, step: int) -> torch.Tensor:
        """The losses and metrics of one batch of sequences, in the order of ``_METRICS``:
        ``[6]``, the first (the summed loss) differentiable.

        :param batch: a :class:`~mbwrap.types.Sequence` with ``obs: [B, L, S, H, W]``,
            ``action: [B, L]``, ``next_obs`` like ``obs`` and ``reward: [B, L]``.
        :param step: gradient steps taken before, the clock of the schedules.
        """
        c, device = self.config, self.device
        frames = batch.obs[:, 0].to(device).float() / 255.0  # [B, S, H, W]
        actions = self.action_index(batch.action.to(device)).reshape(batch.reward.shape)
        targets = batch.next_obs[:, :, -1].to(device).long()  # [B, L, H, W]
        rewards = batch.reward.to(device).sign().long() + 1  # [B, L], classes of -1, 0, +1
        feed_back = ramp(step, steps=c.scheduled_sampling_decay_steps, final=1.0)
        mixes = {
            "predicted_bit_probability": ramp(
                step, steps=c.latent_warmup_steps, final=c.predicted_bit_probability
            ),
            "latent_probability": ramp(
                step, steps=c.latent_warmup_steps / 2, final=c.latent_probability
            ),
        }
        steps = targets.shape[1]
        totals = torch.zeros(len(_METRICS), device=device)
        for t in range(steps):
            target = targets[:, t]
            out = self.net(
                frames, actions[:, t], target.float() / 255.0, generator=generator, **mixes
            )
            assert out.bit_loss is not None
            pixel_loss = clipped_pixel_loss(out.pixel_logits, target, clip=c.loss_clip)
            reward_loss = F.cross_entropy(out.reward_logits, rewards[:, t])
            loss = pixel_loss + reward_loss + out.bit_loss
            predicted = out.pixel_logits.detach().argmax(1)
            totals = totals + torch.stack(
                [
                    loss,
                    pixel_loss.detach(),
                    (predicted == target).float().mean(),
                    reward_loss.detach(),
                    (out.reward_logits.detach().argmax(-1) == rewards[:, t]).float().mean(),
                    out.bit_loss.detach(),
                ]
            )
            if t + 1 < steps:
                pick = draw("uniform", target.shape[:1], generator, device)
                use_prediction = (pick < feed_back)[:, None, None]
                fed = torch.where(use_prediction, predicted, target).float() / 255.0
                frames = torch.cat([frames[:, 1:], fed.unsqueeze(1)], 1)
        return totals / steps

    def fit(self, buffer: Any, *, gradient_steps: int = 15_000) -> dict[str, Any]:
        """Train on sub-trajectories replayed from ``buffer`` with Adam.

        Each gradient step draws ``batch_size`` sequences of ``sequence_length`` steps
        within one episode (the buffer's ``sample_sequences``); see the module docstring
        for the losses. Randomness (sampling, the bits' noise, dropout) comes from torch's
        global generator, so ``torch.manual_seed`` makes a fit reproducible on CPU.

        :param buffer: a :class:`~mbwrap.ReplayBuffer` of frame stacks.
        :param gradient_steps: SimPLe trains the model 15K steps per iteration
            (tensor2tensor's rlmb_base: model_train_steps = 15000; three times as many in
            the first iteration).
        :return: means over this fit's steps of ``loss``, ``pixel_loss`` (clipped),
            ``pixel_accuracy`` (share of pixels whose mode is right, inferred bits),
            ``reward_loss``, ``reward_accuracy`` and ``bit_loss``; ``scheduled_sampling``
            (the probability at the end), ``steps`` and ``fit_time``.
        :raises ValueError: for an empty buffer, ``gradient_steps`` below 1, or no stored
            sub-trajectory of ``sequence_length`` steps.
        """
        if (
            isinstance(gradient_steps, bool)
            or not isinstance(gradient_steps, (int, np.integer))
            or gradient_steps < 1
        ):
            raise ValueError(f"gradient_steps: expected a positive int, got {gradient_steps!r}")
        if buffer.observation_space != self.observation_space:
            raise SpaceMismatchError(
                f"buffer: holds observations of {buffer.observation_space!r}, the model "
                f"expects {self.observation_space!r}"
            )
        if len(buffer) == 0:
            raise ValueError("buffer: empty; collect real frames before fitting")
        start_time = time.perf_counter()
        seed = int(torch.randint(2**62, (1,)))
        generator = make_generator(self.device, seed)
        replay_generator = make_generator(buffer.device, seed)
        c = self.config
        parameters = list(self.net.parameters())
        totals = torch.zeros(len(_METRICS), device=self.device)
        done = int(self.gradient_steps_done)  # one read; the schedules count on the host
        self.net.train()
        try:
            for step in range(done, done + int(gradient_steps)):
                batch = buffer.sample_sequences(
                    c.batch_size, c.sequence_length, generator=replay_generator
                )
                metrics = self._unroll(batch, generator, step)
                self.optimizer.zero_grad(set_to_none=True)
                metrics[0].backward()
                nn.utils.clip_grad_norm_(parameters, c.max_grad_norm)
                self.optimizer.step()
                self.gradient_steps_done += 1
                totals += metrics.detach()
        finally:
            self.net.eval()
        means = (totals / int(gradient_steps)).tolist()
        done += int(gradient_steps)
        return {
            **dict(zip(_METRICS, means, strict=True)),
            "scheduled_sampling": ramp(done, steps=c.scheduled_sampling_decay_steps, final=1.0),
            "steps": int(gradient_steps),
            "fit_time": time.perf_counter() - start_time,
        }
