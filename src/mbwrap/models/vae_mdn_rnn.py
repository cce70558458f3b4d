"""World Models' V and M as one latent :class:`WorldModel` (Ha & Schmidhuber 2018, "World
Models", Section 2; arXiv:1803.10122).

V, a convolutional VAE (:class:`~mbwrap.models.vae.ConvVAE`), compresses each frame (the
paper's are 64x64; any size of at least 4 pixels a side is padded and cropped back) into
``z``; M, an MDN-RNN (:class:`~mbwrap.models.mdn_rnn.MDNRNN`), predicts the next
``z`` from ``z``, the action and its LSTM state ``(h, c)``, with reward and termination
heads. Over this model a :class:`~mbwrap.DreamVecEnv` is the paper's dream: its episodes
start from the posterior of real first frames, its observations are the controller's
features ``[z, h]`` and its reward and termination come from M's heads.

**States** are flat tensors ``[B, Z + 2 H]``: ``[z, h, c]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from mbwrap.device import make_generator
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models.base import WorldModel
from mbwrap.models.mdn_rnn import MDNRNN
from mbwrap.models.vae import ConvVAE, check_frames_space
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import action_bounds, scale_action
from mbwrap.types import ModelStep


def episode_pieces(
    ends: torch.Tensor, length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each stream of a replay grid into episodes, and those into pieces of at most
    ``length`` steps, laid out for a batch of padded sequences.

    A piece ends where ``ends`` is true, after ``length`` steps, or at the newest step.

    :param ends: ``[T, E]`` bool, oldest row first: whether step ``t`` of stream ``e``
        ends its episode.
    :return: ``(rows, cols, mask)``, each ``[N, L]`` with ``L`` the longest piece's
        length: the grid position of each piece's steps (0 where ``mask`` is false, the
        padding).
    """
    steps = ends.shape[0]
    ends = ends.clone()
    ends[-1] = True
    flat = ends.T.reshape(-1)  # stream-major: a stream's steps are consecutive
    index = torch.arange(flat.numel(), device=ends.device)
    starts_episode = torch.cat([flat.new_ones(1), flat[:-1]])
    episode_start = index[starts_episode][torch.cumsum(starts_episode.long(), 0) - 1]
    offset = index - episode_start
    position = offset % length
    piece = torch.cumsum((position == 0).long(), 0) - 1
    # As wide as the longest piece: padding costs M's LSTM as much as real steps.
    shape = (int(piece[-1]) + 1, int(position.max()) + 1)
    rows = torch.zeros(shape, dtype=torch.long, device=ends.device)
    cols = torch.zeros_like(rows)
    mask = torch.zeros(shape, dtype=torch.bool, device=ends.device)
    rows[piece, position] = index % steps
    cols[piece, position] = index // steps
    mask[piece, position] = True
    return rows, cols, mask


def _logical_rows(buffer: Any) -> tuple[dict[str, Any], torch.Tensor]:
    """The stored grids of ``buffer`` (``[stored_rows, n_envs, ...]`` in storage order)
    and ``order``, the storage row of each logical row, oldest first."""
    data = buffer.state_dict()
    rows = data["obs"].shape[0]
    first = data["pos"] if data["full"] else 0
    return data, (first + torch.arange(rows, device=data["obs"].device)) % rows


class VAEMDNRNN(WorldModel):
    """World Models' V and M: a ConvVAE and an MDN-RNN, fitted one after the other.

    :meth:`encode` gives the posterior mean of a first frame with a zero LSTM state;
    :meth:`step` samples the next ``z`` from M's mixture at :attr:`temperature`;
    :meth:`dream_start_states` samples ``z`` from the posterior of stored first frames
    (the paper's dream starts). Sizes default to the paper's CarRacing model.

    :param latent_dim: size of ``z``.
    :param vae_channels: the VAE encoder's four widths.
    :param reconstruction: the VAE's ``"mse"`` (the paper's L2) or ``"bernoulli"`` (for
        frames mostly of one flat colour; see :func:`~mbwrap.models.vae.vae_loss`).
    :param kl_tolerance: the VAE's free nats per latent dimension.
    :param hidden_size: LSTM units.
    :param num_components: Gaussians per latent dimension.
    :param predict_reward: give M a reward head (``False`` when a reward function is
        passed to the dream instead).
    :param temperature: ``τ`` of :meth:`step`; at 0 the mixture's most likely mean and a
        hard termination (probability above one half).
    :param vae_learning_rate: Adam's, for V.
    :param rnn_learning_rate: Adam's, for M.
    :param batch_size: frames per VAE step and sequences per MDN-RNN step.
    :param sequence_length: longest MDN-RNN training sequence; longer episodes are cut.
    :param max_grad_norm: M's gradient clipping.
    """

    registry_name: ClassVar[str | None] = "vae-mdn-rnn"
    space_support = SpaceSupport(
        observations=("image",), actions=("Box", "Discrete"), bounded_actions=True,
        observation_note="frames: wrap a state-based env in mbwrap.envs.PixelObservation",
        action_note="1-D Box actions",
    )

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        env_id: str | None = None,
        device: str | torch.device = "auto",
        latent_dim: int = 32,  # World Models, Appendix A.1
        vae_channels: Sequence[int] = (32, 64, 128, 256),  # World Models, Appendix A.1
        reconstruction: str = "mse",  # World Models, Section 2.1: L2 distance
        kl_tolerance: float = 0.5,  # World Models' vae.py: kl_tolerance = 0.5
        hidden_size: int = 256,  # World Models, Appendix A.2 (CarRacing)
        num_components: int = 5,  # World Models, Appendix A.2
        predict_reward: bool = True,
        temperature: float = 1.15,  # World Models, Section 4, Table 2 (Doom)
        vae_learning_rate: float = 1e-4,  # World Models' vae_train.py
        rnn_learning_rate: float = 1e-3,  # World Models, Appendix A.2
        batch_size: int = 100,  # World Models' vae_train.py and rnn training
        sequence_length: int = 1000,  # World Models' rnn training: max_seq_len = 1000
        max_grad_norm: float = 1.0,  # World Models clips M's gradients at 1.0
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        channels = check_frames_space(observation_space, name="observation_space")
        if isinstance(action_space, spaces.Discrete):
            action_dim = int(action_space.n)
        elif (
            isinstance(action_space, spaces.Box)
            and len(action_space.shape) == 1
            and action_space.is_bounded()
        ):
            action_dim = int(action_space.shape[0])
        else:
            raise UnsupportedSpaceError(
                "action_space: World Models takes Discrete or a bounded 1-D Box, got "
                f"{action_space!r}"
            )
        for name, value in (("batch_size", batch_size), ("sequence_length", sequence_length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.config = {
            "latent_dim": int(latent_dim),
            "vae_channels": [int(c) for c in vae_channels],
            "reconstruction": reconstruction,
            "kl_tolerance": float(kl_tolerance),
            "hidden_size": int(hidden_size),
            "num_components": int(num_components),
            "predict_reward": bool(predict_reward),
            "vae_learning_rate": float(vae_learning_rate),
            "rnn_learning_rate": float(rnn_learning_rate),
            "batch_size": int(batch_size),
            "sequence_length": int(sequence_length),
            "max_grad_norm": float(max_grad_norm),
        }
        self.vae = ConvVAE(
            latent_dim,
            vae_channels,
            image_channels=channels,
            frame_size=tuple(int(d) for d in observation_space.shape[:2]),
            kl_tolerance=kl_tolerance,
            reconstruction=reconstruction,
            device=self.device,
        )
        self.rnn = MDNRNN(
            latent_dim,
            action_dim,
            hidden_size,
            num_components,
            predict_reward=predict_reward,
            predict_done=True,
            device=self.device,
        )
        self.latent_dim, self.hidden_size = int(latent_dim), int(hidden_size)
        self.vae_optimizer = torch.optim.Adam(self.vae.parameters(), lr=vae_learning_rate)
        self.rnn_optimizer = torch.optim.Adam(self.rnn.parameters(), lr=rnn_learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**self.config, "temperature": self.temperature}

    # ------------------------------------------------------------------ pieces
    def action_features(self, action: torch.Tensor) -> torch.Tensor:
        """What M reads of env actions ``[B]`` (Discrete) or ``[B, A]`` (Box): a one-hot, or
        the action scaled to ``[-1, 1]``. Returns ``[B, A']`` float32."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            index = action.long().reshape(-1) - int(space.start)
            return F.one_hot(index, int(space.n)).float()
        low, high = action_bounds(space, action.device)
        return scale_action(action.float().reshape(-1, low.shape[0]), low, high).clamp(-1, 1)

    def _split(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``[B, Z + 2 H] -> (z [B, Z], h [B, H], c [B, H])``."""
        return state.split([self.latent_dim, self.hidden_size, self.hidden_size], -1)

    def _start(self, z: torch.Tensor) -> torch.Tensor:
        """States ``[B, Z + 2 H]`` of ``z: [B, Z]`` with a zero LSTM state."""
        return torch.cat([z, z.new_zeros(z.shape[0], 2 * self.hidden_size)], -1)

    # ------------------------------------------------------------------ WorldModel
    @property
    def dream_observation_space(self) -> spaces.Box:
        """The controller's features ``[z, h]``: ``[Z + H]`` float32 (World Models, 2.3)."""
        return spaces.Box(-np.inf, np.inf, (self.latent_dim + self.hidden_size,), np.float32)

    def dream_observation(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, : self.latent_dim + self.hidden_size]

    @torch.no_grad()
    def encode(self, obs: Any) -> torch.Tensor:
        """First frames ``[B, H, W, C]`` uint8 -> states ``[B, Z + 2 H]``: the posterior
        mean and a zero LSTM state."""
        mean, _ = self.vae.encode_frames(obs, name="obs")
        return self._start(mean)

    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """One dreamed step for ``state: [B, Z + 2 H]`` and env actions ``[B, ...]``:
        ``z`` sampled at :attr:`temperature`, M's reward and termination probability."""
        z, h, c = self._split(state)
        next_z, reward, done, h, c = self.rnn.step(
            h,
            c,
            z,
            self.action_features(action),
            temperature=self.temperature,
            generator=generator,
        )
        assert done is not None
        if self.temperature == 0:
            done = (done > 0.5).float()
        return ModelStep(next_state=torch.cat([next_z, h, c], -1), reward=reward, terminated=done)

    @torch.no_grad()
    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, H, W, C]`` uint8 that V reconstructs from ``state``'s ``z``."""
        frames = self.vae.decode(self._split(state)[0])
        return frames.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)

    @torch.no_grad()
    def dream_start_states(
        self, buffer: Any, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[n, Z + 2 H]``: ``z`` drawn from V's posterior of stored first frames of
        episodes (any stored frame while the buffer holds none), zero LSTM state."""
        data, order = _logical_rows(buffer)
        ends = data["episode_end"][order]
        first = torch.zeros_like(ends)
        first[1:] = ends[:-1]
        first[0] = not data["full"]  # the oldest row of a wrapped buffer is mid-episode
        where = torch.nonzero(first) if bool(first.any()) else torch.nonzero(~first)
        device = where.device if generator is None else generator.device
        pick = where[torch.randint(where.shape[0], (n,), generator=generator, device=device)]
        mean, logvar = self.vae.encode_frames(data["obs"][order[pick[:, 0]], pick[:, 1]])
        noise = torch.randn(mean.shape, generator=generator, device=device).to(self.device)
        return self._start(mean + (0.5 * logvar).exp() * noise)

    # ------------------------------------------------------------------ training
    def optimizer_state_dict(self) -> dict[str, Any]:
        return {"vae": self.vae_optimizer.state_dict(), "rnn": self.rnn_optimizer.state_dict()}

    def load_optimizer_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.vae_optimizer.load_state_dict(state["vae"])
            self.rnn_optimizer.load_state_dict(state["rnn"])

    def fit(
        self,
        buffer: Any,
        *,
        vae_epochs: int = 10,  # World Models, Appendix A.1 (CarRacing)
        rnn_epochs: int = 20,
    ) -> dict[str, Any]:
        """Fit V on every stored frame, then M on the episodes of V's posterior samples.

        M trains on whole episodes (cut into pieces of at most ``sequence_length`` steps),
        each from a zero LSTM state, on fresh samples of ``z`` every epoch (World Models,
        Section 2.2). Randomness comes from torch's global generator, so
        ``torch.manual_seed`` makes a fit reproducible on CPU.

        :param buffer: a :class:`~mbwrap.ReplayBuffer` of frames.
        :return: ``vae_*`` and ``rnn_*`` metrics of the last epochs, ``frames``,
            ``sequences`` and ``fit_time``.
        """
        start_time = time.perf_counter()
        if len(buffer) == 0:
            raise ValueError("buffer: empty; collect real frames before fitting")
        generator = make_generator(self.device, int(torch.randint(2**62, (1,))))
        data, order = _logical_rows(buffer)
        grid = {k: data[k][order].to(self.device) for k in data if k not in ("pos", "full")}
        ends = grid["episode_end"].clone()
        ends[-1] = True
        # Every frame once: each step's observation, and the frame that ends each piece.
        frames = torch.cat([grid["obs"].flatten(0, 1), grid["next_obs"][ends]])
        vae_metrics = self.vae.fit(
            frames,
            epochs=vae_epochs,
            batch_size=self.config["batch_size"],
            generator=generator,
            optimizer=self.vae_optimizer,
        )
        rows, cols, mask = episode_pieces(ends, self.config["sequence_length"])
        (obs_mean, obs_logvar), (next_mean, next_logvar) = (
            (x.unflatten(0, ends.shape) for x in self.vae.encode_frames(grid[key].flatten(0, 1)))
            for key in ("obs", "next_obs")
        )  # [T, E, Z] each
        # z of frames 0 .. L of each piece: its first observation, then each step's next one.
        first = rows[:, :1], cols[:, :1]
        z_mean = torch.cat([obs_mean[first], next_mean[rows, cols]], 1)
        z_logvar = torch.cat([obs_logvar[first], next_logvar[rows, cols]], 1)
        actions = self.action_features(grid["action"][rows, cols].flatten(0, 1))
        rnn_metrics = self.rnn.fit(
            z_mean,
            actions.unflatten(0, rows.shape),
            mask,
            z_logvar=z_logvar,
            reward=grid["reward"][rows, cols],
            terminated=grid["terminated"][rows, cols],
            epochs=rnn_epochs,
            batch_size=self.config["batch_size"],
            max_grad_norm=self.config["max_grad_norm"],
            generator=generator,
            optimizer=self.rnn_optimizer,
        )
        return {
            **{f"vae_{k}": v for k, v in vae_metrics.items()},
            **{f"rnn_{k}": v for k, v in rnn_metrics.items()},
            "frames": int(frames.shape[0]),
            "sequences": int(rows.shape[0]),
            "fit_time": time.perf_counter() - start_time,
        }
