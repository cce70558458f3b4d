"""The MDN-RNN of World Models (Ha & Schmidhuber 2018, "World Models", Section 2.2 and
Appendix A.2): an LSTM over ``[z_t, a_t]`` whose output is a mixture of Gaussians over
each dimension of ``z_{t+1}``, with optional reward and termination heads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mbwrap.device import resolve_device
from mbwrap.models.losses import mixture_nll, soft_clamp_logvar

# Soft bounds on the components' log-variance: a component that fits a deterministic
# transition exactly would otherwise drive its variance, and the NLL, to minus infinity.
_MAX_LOGVAR = 2.0
_MIN_LOGVAR = -10.0


@dataclass(frozen=True)
class MDNOutput:
    """The MDN-RNN's prediction of ``z_{t+1}`` (a mixture per latent dimension), reward
    and termination.

    :ivar logits: ``[..., Z, K]`` unnormalised mixture weights.
    :ivar means: ``[..., Z, K]``.
    :ivar logvars: ``[..., Z, K]``.
    :ivar reward: ``[...]``, or ``None`` without a reward head.
    :ivar done_logit: ``[...]`` logit of termination, or ``None`` without a done head.
    """

    logits: torch.Tensor
    means: torch.Tensor
    logvars: torch.Tensor
    reward: torch.Tensor | None
    done_logit: torch.Tensor | None


def sample_mixture(
    logits: torch.Tensor,
    means: torch.Tensor,
    logvars: torch.Tensor,
    *,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample each dimension from its own mixture of 1-D Gaussians at temperature ``τ``.

    As World Models' sampling: the component is drawn from ``softmax(logits / τ)`` and the
    value from that component with its standard deviation scaled by ``sqrt(τ)``. ``τ = 0``
    is deterministic: the mean of the most likely component.

    :param logits: ``[..., Z, K]``.
    :param means: ``[..., Z, K]``.
    :param logvars: ``[..., Z, K]``.
    :return: ``[..., Z]``.
    """
    if temperature < 0:
        raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
    if temperature == 0:
        pick = logits.argmax(-1, keepdim=True)
        return means.gather(-1, pick).squeeze(-1)
    uniform = torch.rand(logits.shape, device=logits.device, generator=generator)
    gumbel = -torch.log((-torch.log(uniform.clamp_min(1e-20))).clamp_min(1e-20))
    pick = (logits / temperature + gumbel).argmax(-1, keepdim=True)  # Gumbel-max sampling
    mean = means.gather(-1, pick).squeeze(-1)
    std = (0.5 * logvars.gather(-1, pick).squeeze(-1)).exp()
    noise = torch.randn(mean.shape, device=mean.device, generator=generator)
    return mean + std * math.sqrt(temperature) * noise


class MDNRNN(nn.Module):
    """World Models' "M": ``P(z_{t+1} | a_t, z_t, h_t)`` as an LSTM and a mixture density
    head, each latent dimension with its own mixture of ``K`` Gaussians.

    :param latent_dim: size of ``z`` (World Models: 32).
    :param action_dim: size of the action features fed with ``z`` (a one-hot for discrete
        actions).
    :param hidden_size: LSTM units (World Models: 256 for CarRacing).
    :param num_components: Gaussians per latent dimension (World Models: 5).
    :param predict_reward: add a reward head (trained by squared error).
    :param predict_done: add a termination head (trained by binary cross-entropy; World
        Models' Doom model predicts death this way).
    :param device: ``"auto"`` picks CUDA when present.
    """

    def __init__(
        self,
        latent_dim: int = 32,  # World Models, Appendix A.1
        action_dim: int = 3,  # CarRacing's steering, gas and brake
        hidden_size: int = 256,  # World Models, Appendix A.2 (CarRacing)
        num_components: int = 5,  # World Models, Appendix A.2
        *,
        predict_reward: bool = True,
        predict_done: bool = True,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__()
        for name, value in (
            ("latent_dim", latent_dim),
            ("action_dim", action_dim),
            ("hidden_size", hidden_size),
            ("num_components", num_components),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.latent_dim = latent_dim
        self.action_dim = action_dim
        self.hidden_size = hidden_size
        self.num_components = num_components
        self.predict_reward = bool(predict_reward)
        self.predict_done = bool(predict_done)
        self.lstm = nn.LSTM(latent_dim + action_dim, hidden_size, batch_first=True)
        mixture = 3 * latent_dim * num_components
        self.head = nn.Linear(hidden_size, mixture + int(predict_reward) + int(predict_done))
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor keywords."""
        return {
            "latent_dim": self.latent_dim,
            "action_dim": self.action_dim,
            "hidden_size": self.hidden_size,
            "num_components": self.num_components,
            "predict_reward": self.predict_reward,
            "predict_done": self.predict_done,
        }

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(h, c)``, each ``[batch_size, hidden_size]``."""
        zeros = torch.zeros(batch_size, self.hidden_size, device=self.device)
        return zeros, zeros.clone()

    def _split(self, out: torch.Tensor) -> MDNOutput:
        z, k = self.latent_dim, self.num_components
        mixture = out[..., : 3 * z * k].unflatten(-1, (z, 3 * k))
        logits, means, logvars = mixture.split(k, dim=-1)
        logvars = soft_clamp_logvar(logvars, _MAX_LOGVAR, _MIN_LOGVAR)
        extra = out[..., 3 * z * k :]
        reward = extra[..., 0] if self.predict_reward else None
        done_logit = extra[..., -1] if self.predict_done else None
        return MDNOutput(logits, means, logvars, reward, done_logit)

    def forward(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[MDNOutput, tuple[torch.Tensor, torch.Tensor]]:
        """Run the LSTM over a batch of sequences.

        :param z: ``[B, T, Z]``.
        :param actions: ``[B, T, A]`` action features.
        :param state: ``(h, c)``, each ``[B, hidden_size]``; zeros when ``None``.
        :return: the prediction of every next step (fields ``[B, T, ...]``) and the final
            ``(h, c)``.
        """
        if state is None:
            state = self.initial_state(z.shape[0])
        h, c = state
        out, (h_n, c_n) = self.lstm(torch.cat([z, actions], -1), (h[None], c[None]))
        return self._split(self.head(out)), (h_n[0], c_n[0])

    def loss(
        self,
        z: torch.Tensor,
        actions: torch.Tensor,
        next_z: torch.Tensor,
        mask: torch.Tensor,
        reward: torch.Tensor | None = None,
        terminated: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Masked training losses over padded sequences (zero initial state).

        ``nll`` is the mixture negative log-likelihood of ``next_z`` averaged over latent
        dimensions and valid steps (World Models' MDN loss); ``loss`` adds the reward's
        squared error and the termination's cross-entropy when those heads exist.

        :param z: ``[B, T, Z]``; ``actions``: ``[B, T, A]``; ``next_z``: ``[B, T, Z]``.
        :param mask: ``[B, T]`` bool, the steps that are real (not padding).
        :param reward: ``[B, T]`` float.
        :param terminated: ``[B, T]`` bool.
        :return: ``{"loss", "nll", "reward", "done"}`` scalars (the last two when used).
        """
        out, _ = self(z, actions)
        weight = mask.float()
        count = weight.sum().clamp_min(1.0)
        nll = mixture_nll(
            out.logits, out.means.unsqueeze(-1), out.logvars.unsqueeze(-1), next_z.unsqueeze(-1)
        ).mean(-1)
        losses = {"nll": (nll * weight).sum() / count}
        total = losses["nll"]
        if out.reward is not None and reward is not None:
            losses["reward"] = ((out.reward - reward).square() * weight).sum() / count
            total = total + losses["reward"]
        if out.done_logit is not None and terminated is not None:
            bce = F.binary_cross_entropy_with_logits(
                out.done_logit, terminated.float(), reduction="none"
            )
            losses["done"] = (bce * weight).sum() / count
            total = total + losses["done"]
        losses["loss"] = total
        return losses

    @torch.no_grad()
    def step(
        self,
        h: torch.Tensor,
        c: torch.Tensor,
        z: torch.Tensor,
        actions: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """One dreamed step for a batch: consume ``(z_t, a_t)``, sample ``z_{t+1}``.

        :param h: ``[B, hidden_size]``; ``c``: ``[B, hidden_size]``.
        :param z: ``[B, Z]``.
        :param actions: ``[B, A]`` action features.
        :param temperature: World Models' ``τ`` (see :func:`sample_mixture`).
        :return: ``(next_z [B, Z], reward [B] or None, done probability [B] or None,
            h [B, hidden_size], c [B, hidden_size])``.
        """
        out, (h, c) = self(z[:, None], actions[:, None], (h, c))
        next_z = sample_mixture(
            out.logits[:, 0],
            out.means[:, 0],
            out.logvars[:, 0],
            temperature=temperature,
            generator=generator,
        )
        reward = None if out.reward is None else out.reward[:, 0]
        done = None if out.done_logit is None else torch.sigmoid(out.done_logit[:, 0])
        return next_z, reward, done, h, c

    @torch.no_grad()
    def advance(
        self,
        h: torch.Tensor,
        c: torch.Tensor,
        z: torch.Tensor,
        actions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the recurrent update ``h_{t+1} = LSTM([z_t, a_t], h_t)``, for acting in the
        real env where ``z_{t+1}`` comes from the next frame.

        :param h: ``[B, hidden_size]``; ``c``: ``[B, hidden_size]``; ``z``: ``[B, Z]``;
            ``actions``: ``[B, A]``.
        :return: ``(h, c)``, each ``[B, hidden_size]``.
        """
        _, (h_n, c_n) = self.lstm(torch.cat([z, actions], -1)[:, None], (h[None], c[None]))
        return h_n[0], c_n[0]

    def fit(
        self,
        z_mean: torch.Tensor,
        actions: torch.Tensor,
        mask: torch.Tensor,
        *,
        z_logvar: torch.Tensor | None = None,
        reward: torch.Tensor | None = None,
        terminated: torch.Tensor | None = None,
        epochs: int = 20,
        batch_size: int = 100,  # World Models' rnn training: batch_size = 100
        learning_rate: float = 1e-3,  # World Models, Appendix A.2
        max_grad_norm: float = 1.0,  # World Models clips gradients at 1.0
        generator: torch.Generator | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[str, float]:
        """Train on padded episodes with Adam.

        Every epoch draws fresh ``z ~ N(z_mean, exp(z_logvar))`` for every frame, as World
        Models trains on samples of the VAE's posterior rather than its mean.

        :param z_mean: ``[N, T + 1, Z]``, the posterior means of frames ``0 .. T``.
        :param actions: ``[N, T, A]`` action features.
        :param mask: ``[N, T]`` bool, the real (not padded) transitions.
        :param z_logvar: ``[N, T + 1, Z]``; ``None`` trains on the means.
        :param reward: ``[N, T]``.
        :param terminated: ``[N, T]`` bool.
        :param optimizer: one kept across fits (its own learning rate applies); ``None``:
            a fresh Adam with ``learning_rate``.
        :return: the last epoch's mean losses and ``epochs``.
        """
        n, t = actions.shape[:2]
        if z_mean.shape[:2] != (n, t + 1):
            raise ValueError(
                f"z_mean: expected [N, T + 1, Z] = [{n}, {t + 1}, Z] to match actions "
                f"[{n}, {t}, A], got {list(z_mean.shape)}"
            )
        if tuple(mask.shape) != (n, t):
            raise ValueError(f"mask: expected shape [{n}, {t}], got {list(mask.shape)}")
        if optimizer is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)
        self.train()
        sums: dict[str, float] = {}
        for _ in range(epochs):
            sums = {}
            z_all = z_mean
            if z_logvar is not None:
                noise = torch.randn(z_mean.shape, device=z_mean.device, generator=generator)
                z_all = z_mean + (0.5 * z_logvar).exp() * noise
            order = torch.randperm(n, generator=generator, device=z_mean.device)
            for index in order.split(batch_size):
                losses = self.loss(
                    z_all[index, :-1],
                    actions[index],
                    z_all[index, 1:],
                    mask[index],
                    None if reward is None else reward[index],
                    None if terminated is None else terminated[index],
                )
                optimizer.zero_grad()
                losses["loss"].backward()
                nn.utils.clip_grad_norm_(self.parameters(), max_grad_norm)
                optimizer.step()
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + value.item() * index.numel() / n
        self.eval()
        if not math.isfinite(sums.get("loss", 0.0)):
            raise FloatingPointError(
                f"z_mean: the MDN-RNN loss became {sums['loss']} while fitting"
            )
        return {**sums, "epochs": epochs}
