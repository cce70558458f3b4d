"""The recurrent state-space model of PlaNet and the Dreamer family, as a WorldModel.

The state of the model (Hafner et al. 2019, "Learning Latent Dynamics for Planning from
Pixels") has a deterministic part ``h``, a GRU state, and a stochastic part ``z``:

- prior (imagination): ``h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])``, ``z_t ~ p(z_t | h_t)``;
- posterior (filtering): ``z_t ~ q(z_t | h_t, embed(o_t))``;
- heads on the features ``[h_t, z_t]``: observation decoder, reward (two-hot over 255
  bins of symlog space, output layer zero-initialised) and continuation (Bernoulli).

The latent is 32 categoricals of 32 classes with 1% uniform mixing and straight-through
samples (DreamerV2/V3), or a diagonal Gaussian (PlaNet, Dreamer v1). Training minimises
DreamerV3's loss (Hafner et al. 2023, eq. 5): prediction loss + 0.5 KL(sg(post) || prior)
+ 0.1 KL(post || sg(prior)), each KL clipped below 1 nat (free bits).

**States** are flat tensors ``[B, F]`` with ``F = deter + stoch * classes`` (categorical)
or ``deter + stoch`` (Gaussian): exactly the features the heads and agents read, so one
tensor moves through imagination environments, planners and searches unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from mbwrap.device import make_generator
from mbwrap.errors import ModelOutputError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models.base import WorldModel
from mbwrap.models.encoders import Observation, ObservationDecoder, ObservationEncoder, mlp
from mbwrap.models.stochastic import (
    MIN_STD,
    UNIMIX,
    balanced_kl,
    gaussian_stats,
    mode_one_hot,
    sample_gaussian,
    sample_one_hot,
    unimix_logits,
)
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import as_batch
from mbwrap.transforms import symexp, symlog, symlog_bins, two_hot_log_likelihood, two_hot_to_scalar
from mbwrap.types import ModelStep, Sequence

#: ``features: [N, F] -> action: [N, A]`` (a one-hot or a float vector), as the RSSM
#: consumes actions; see :meth:`RSSM.action_vector`.
LatentPolicy = Callable[[torch.Tensor], torch.Tensor]


class NormGRUCell(nn.Module):
    """DreamerV2/V3's GRU cell: one linear map on ``[x, h]``, layer-normalised, with the
    update gate biased by -1 so that the state is kept by default early in training.

    :param in_features: width of ``x``.
    :param size: width of the state ``h``.
    """

    def __init__(self, in_features: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.linear = nn.Linear(in_features + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``x: [N, in], h: [N, size] -> [N, size]``."""
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, candidate, update = parts.split(self.size, -1)
        candidate = torch.tanh(torch.sigmoid(reset) * candidate)
        update = torch.sigmoid(update - 1.0)
        return update * candidate + (1.0 - update) * h


class RSSM(WorldModel):
    """Recurrent state-space model with observation, reward and continuation heads.

    Sizes default to DreamerV3's model size S (Hafner et al. 2023, Table B.1: GRU 512,
    hidden 512, 2 layers, CNN depth 32, latent 32 x 32); training settings to its
    Appendix (Adam, learning rate 1e-4, epsilon 1e-8, gradient norm clipped at 1000,
    batches of 16 sequences of 64 steps).

    :param deter: GRU state size.
    :param hidden: width of the hidden layers.
    :param layers: hidden layers of the encoder, decoder and heads.
    :param stoch: number of latent variables.
    :param classes: classes per categorical latent (ignored for ``latent="gaussian"``).
    :param latent: ``"categorical"`` (DreamerV2/V3) or ``"gaussian"`` (PlaNet, Dreamer v1).
    :param cnn_depth: channels of the first image convolution.
    :param reward_bins: two-hot bins of the reward head.
    :param unimix: uniform mixture of the categoricals.
    :param free_nats: free bits of each KL term.
    :param dynamics_scale: weight of ``KL(sg(post) || prior)``.
    :param representation_scale: weight of ``KL(post || sg(prior))``.
    :param learning_rate: Adam's.
    :param max_grad_norm: global gradient norm clip.
    :param batch_size: sequences per gradient step in :meth:`fit`.
    :param sequence_length: steps per sequence in :meth:`fit`.
    :param start_context: real steps filtered to get an imagination start state
        (:meth:`dream_start_states`).
    """

    registry_name: ClassVar[str | None] = "rssm"
    space_support = SpaceSupport(
        observations=("Box", "image", "Discrete", "Dict"), actions=("Box", "Discrete")
    )
    accepts_dict_observations: ClassVar[bool] = True

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        env_id: str | None = None,
        device: str | torch.device = "auto",
        deter: int = 512,
        hidden: int = 512,
        layers: int = 2,
        stoch: int = 32,
        classes: int = 32,
        latent: str = "categorical",
        cnn_depth: int = 32,
        reward_bins: int = 255,
        unimix: float = UNIMIX,
        free_nats: float = 1.0,
        dynamics_scale: float = 0.5,
        representation_scale: float = 0.1,
        learning_rate: float = 1e-4,
        max_grad_norm: float = 1000.0,
        batch_size: int = 16,
        sequence_length: int = 64,
        start_context: int = 16,
    ) -> None:
        super().__init__(observation_space, action_space, env_id=env_id, device=device)
        if latent not in ("categorical", "gaussian"):
            raise ValueError(f"latent: expected 'categorical' or 'gaussian', got {latent!r}")
        for name, value in (
            ("deter", deter),
            ("hidden", hidden),
            ("layers", layers),
            ("stoch", stoch),
            ("classes", classes),
            ("cnn_depth", cnn_depth),
            ("batch_size", batch_size),
            ("sequence_length", sequence_length),
            ("start_context", start_context),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(action_space, spaces.Discrete):
            self.action_dim = int(action_space.n)
        elif isinstance(action_space, spaces.Box) and np.issubdtype(
            action_space.dtype, np.floating
        ):
            self.action_dim = int(np.prod(action_space.shape))
        else:
            raise UnsupportedSpaceError(
                f"action_space: the RSSM takes Discrete or float Box actions, got {action_space!r}"
            )
        self.config = {
            "deter": int(deter),
            "hidden": int(hidden),
            "layers": int(layers),
            "stoch": int(stoch),
            "classes": int(classes),
            "latent": latent,
            "cnn_depth": int(cnn_depth),
            "reward_bins": int(reward_bins),
            "unimix": float(unimix),
            "free_nats": float(free_nats),
            "dynamics_scale": float(dynamics_scale),
            "representation_scale": float(representation_scale),
            "learning_rate": float(learning_rate),
            "max_grad_norm": float(max_grad_norm),
            "batch_size": int(batch_size),
            "sequence_length": int(sequence_length),
            "start_context": int(start_context),
        }
        self.deter, self.stoch, self.latent = int(deter), int(stoch), latent
        self.classes = int(classes) if latent == "categorical" else 1
        self.stoch_size = self.stoch * self.classes
        self.feature_size = self.deter + self.stoch_size
        stat_size = self.stoch_size if latent == "categorical" else 2 * self.stoch

        self.encoder = ObservationEncoder(observation_space, hidden, layers, cnn_depth)
        self.img_in = mlp(self.stoch_size + self.action_dim, hidden, 1)
        self.gru = NormGRUCell(hidden, self.deter)
        self.prior_net = mlp(self.deter, hidden, 1, stat_size)
        self.post_net = mlp(self.deter + self.encoder.out_features, hidden, 1, stat_size)
        self.decoder = ObservationDecoder(
            observation_space, self.feature_size, hidden, layers, cnn_depth
        )
        self.reward_head = mlp(self.feature_size, hidden, layers, int(reward_bins))
        self.continue_head = mlp(self.feature_size, hidden, layers, 1)
        # DreamerV3: zero-initialised output layers of the reward head (and critic) keep
        # early predictions at 0 instead of large random values.
        nn.init.zeros_(self.reward_head[-1].weight)
        nn.init.zeros_(self.reward_head[-1].bias)
        self.register_buffer("bins", symlog_bins(int(reward_bins)), persistent=False)
        self.to(self.device)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=float(learning_rate), eps=1e-8)
        self.gradient_steps = 0

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    @property
    def dream_observation_space(self) -> spaces.Box:
        """Latent features ``[F]`` float32: the GRU state and the flattened stochastic one."""
        return spaces.Box(-np.inf, np.inf, (self.feature_size,), np.float32)

    def dream_observation(self, state: torch.Tensor) -> torch.Tensor:
        return state

    # ------------------------------------------------------------------ pieces
    def action_vector(self, action: torch.Tensor) -> torch.Tensor:
        """Actions of the action space ``[..., *act_shape]`` -> ``[..., A]`` float inputs
        (one-hot for Discrete)."""
        if isinstance(self.action_space, spaces.Discrete):
            index = action.long() - int(self.action_space.start)
            return F.one_hot(index, self.action_dim).float()
        lead = action.shape[: action.ndim - len(self.action_space.shape)]
        return action.float().reshape(*lead, self.action_dim)

    def _stats(self, raw: torch.Tensor) -> torch.Tensor:
        """Head outputs -> distribution parameters (``[..., S, K]`` log-probabilities or
        ``[..., 2 S]`` mean and std)."""
        if self.latent == "categorical":
            return unimix_logits(
                raw.reshape(*raw.shape[:-1], self.stoch, self.classes), self.config["unimix"]
            )
        return gaussian_stats(raw, MIN_STD)

    def _sample(
        self, stats: torch.Tensor, generator: torch.Generator | None, sample: bool = True
    ) -> torch.Tensor:
        """A flat stochastic state ``[..., stoch_size]`` from distribution parameters."""
        if self.latent == "categorical":
            z = (sample_one_hot(stats, generator, normalised=True) if sample
                 else mode_one_hot(stats))
            return z.flatten(-2)
        return sample_gaussian(stats, generator) if sample else stats.chunk(2, -1)[0]

    def initial_state(self, batch: int) -> torch.Tensor:
        """``[batch, F]`` zeros: the state before the first observation (PlaNet's)."""
        return torch.zeros(batch, self.feature_size, device=self.device)

    def _recurrent(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``h_t`` from ``state [N, F]`` and the action vector ``[N, A]``."""
        deter, stoch = state.split([self.deter, self.stoch_size], -1)
        return self.gru(self.img_in(torch.cat([stoch, action], -1)), deter)

    def img_step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One prior step: ``(state [N, F], action vector [N, A]) -> (state, prior stats)``."""
        deter = self._recurrent(state, action)
        prior = self._stats(self.prior_net(deter))
        return torch.cat([deter, self._sample(prior, generator, sample)], -1), prior

    def obs_step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        embed: torch.Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One filtering step with the embedding ``[N, E]`` of the new observation.

        :return: ``(posterior state [N, F], posterior stats, prior stats)``.
        """
        deter = self._recurrent(state, action)
        prior = self._stats(self.prior_net(deter))
        post = self._stats(self.post_net(torch.cat([deter, embed], -1)))
        return torch.cat([deter, self._sample(post, generator, sample)], -1), post, prior

    def _first_deter(self, batch: int) -> torch.Tensor:
        """``h`` after the initial state and a zero action: the same for every episode."""
        zeros = torch.zeros(1, self.stoch_size + self.action_dim, device=self.device)
        deter = self.gru(self.img_in(zeros), torch.zeros(1, self.deter, device=self.device))
        return deter.expand(batch, -1)

    def first_posterior(
        self,
        embed: torch.Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
        deter: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The state after an episode's first observation, from its embedding ``[N, E]``.

        :param deter: ``_first_deter`` when the caller already has it (it is the same for
            every episode).
        """
        deter = self._first_deter(embed.shape[0]) if deter is None else deter
        post = self._stats(self.post_net(torch.cat([deter, embed], -1)))
        return torch.cat([deter, self._sample(post, generator, sample)], -1)

    def embed(self, obs: Observation, lead: int = 1) -> torch.Tensor:
        """Encoder embeddings of observations with ``lead`` leading dims: ``[*lead, E]``."""
        return self.encoder(obs, lead)

    # ------------------------------------------------------------------ sequences
    def _sequence_parts(self, sequence: Sequence) -> tuple[Any, Any, torch.Tensor]:
        """``(obs [B, L, ...], next_obs [B, L, ...], episode_end [B, L])`` checked."""
        if sequence.reward.ndim != 2 or sequence.reward.shape[1] < 1:
            raise ValueError(
                "sequence: expected a Sequence of shape [B, L] with L >= 1, got reward of shape "
                f"{tuple(sequence.reward.shape)}"
            )
        end = sequence.episode_end
        if end is None:
            end = torch.zeros_like(sequence.terminated, dtype=torch.bool)
        return sequence.obs, sequence.next_obs, end.to(self.device)

    def observe(
        self,
        sequence: Sequence,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> dict[str, Any]:
        """Filter real sequences: the posterior state after every step.

        Each sequence starts from :meth:`initial_state`. Where ``episode_end[b, t]``, the
        state restarts at step ``t + 1`` from that episode's first observation.

        :param sequence: a :class:`~mbwrap.Sequence` of ``B`` sequences of ``L`` steps
            (from :meth:`ReplayBuffer.sample_sequences`; ``cross_episodes=True`` is
            welcome).
        :return: ``start: [B, F]`` the state after ``obs[:, 0]``; ``states: [B, L, F]``
            the posterior after each step's ``next_obs``; ``post``/``prior``: their
            distribution parameters ``[B, L, ...]``; ``last_obs: [B, F]``, the state
            after ``obs[:, L - 1]``, before the last action (the last live state of
            sequences whose final step ends their episode).
        """
        obs, next_obs, end = self._sequence_parts(sequence)
        length = sequence.reward.shape[1]
        actions = self.action_vector(sequence.action.to(self.device))
        obs_embed = self.embed(obs, lead=2)
        next_embed = self.embed(next_obs, lead=2)
        first_deter = self._first_deter(obs_embed.shape[0])
        state = self.first_posterior(obs_embed[:, 0], generator, sample, first_deter)
        start = state
        # Which steps end some sequence's episode: one host copy per call, so that the
        # restart below runs only at those steps.
        restarts = end[:, : length - 1].any(0).tolist()
        states, posts, deters = [], [], []
        # A loop over time, inherent to filtering; every op in it covers the whole batch.
        # Only the recurrence and the posterior are sequential: the priors are computed
        # after the loop, in one batched call over all steps.
        for t in range(length):
            before = state
            deter = self._recurrent(state, actions[:, t])
            post = self._stats(self.post_net(torch.cat([deter, next_embed[:, t]], -1)))
            state = torch.cat([deter, self._sample(post, generator, sample)], -1)
            states.append(state)
            posts.append(post)
            deters.append(deter)
            if t + 1 < length and restarts[t]:
                fresh = self.first_posterior(obs_embed[:, t + 1], generator, sample, first_deter)
                state = torch.where(end[:, t, None], fresh, state)
        return {
            "start": start,
            "states": torch.stack(states, 1),
            "post": torch.stack(posts, 1),
            "prior": self._stats(self.prior_net(torch.stack(deters, 1))),
            "last_obs": before,
        }

    def imagine(
        self,
        policy: LatentPolicy,
        start: torch.Tensor,
        horizon: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll the prior forward from ``start [N, F]`` with actions from ``policy``.

        Gradients flow through the states and the policy's actions (Dreamer's dynamics
        backpropagation); detach what should not learn.

        :param policy: ``features [N, F] -> action vector [N, A]``.
        :return: ``(states [horizon + 1, N, F], action vectors [horizon, N, A])``; the
            first state is ``start``.
        """
        if not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon: expected a positive int, got {horizon!r}")
        states, actions = [start], []
        state = start
        for _ in range(int(horizon)):
            action = policy(state)
            state, _ = self.img_step(state, action, generator)
            states.append(state)
            actions.append(action)
        return torch.stack(states), torch.stack(actions)

    # ------------------------------------------------------------------ heads
    def reward_logits(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., F] -> [..., bins]``."""
        return self.reward_head(features)

    def predict_reward(self, features: torch.Tensor) -> torch.Tensor:
        """Expected reward ``[...]``: symexp of the two-hot expectation in symlog space."""
        probs = torch.softmax(self.reward_logits(features), -1)
        return symexp(two_hot_to_scalar(probs, self.bins))

    def continue_prob(self, features: torch.Tensor) -> torch.Tensor:
        """Probability ``[...]`` that the episode continues after reaching ``features``."""
        return torch.sigmoid(self.continue_head(features).squeeze(-1))

    # ------------------------------------------------------------------ WorldModel
    def encode(self, obs: Any) -> torch.Tensor:
        """The state after a first observation ``[B, *obs_shape] -> [B, F]`` (sampled)."""
        if isinstance(self.observation_space, spaces.Dict):
            if not isinstance(obs, dict):
                raise SpaceMismatchError(
                    f"obs: expected a dict with keys {sorted(self.observation_space.spaces)}, "
                    f"got {type(obs).__name__}"
                )
            tensors = {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}
            return self.first_posterior(self.embed(tensors))
        tensor = self._as_obs_batch(obs)
        return self.first_posterior(self.embed(tensor))

    def _as_obs_batch(self, obs: Any) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs)
        space = self.observation_space
        if (
            isinstance(space, spaces.Box)
            and space.dtype == np.uint8
            and tensor.dtype != torch.uint8
        ):
            raise SpaceMismatchError(
                f"obs: expected uint8 values in [0, 255] for {space}, got dtype {tensor.dtype}"
            )
        batch, _ = as_batch(tensor, space, name="obs", device=self.device)
        return batch

    def step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        member: torch.Tensor | None = None,
    ) -> ModelStep:
        """One imagined step: the prior's next state, the reward head's expectation and
        the termination probability ``1 - continue``."""
        next_state, _ = self.img_step(state, self.action_vector(action), generator)
        return ModelStep(
            next_state=next_state,
            reward=self.predict_reward(next_state),
            terminated=1.0 - self.continue_prob(next_state),
        )

    def decode(self, state: torch.Tensor) -> Any:
        """Reconstructed observations (the decoder's mean) of states ``[B, F]``."""
        return self.decoder.decode(state)

    def dream_start_states(
        self, buffer: Any, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Posterior states after ``start_context`` replayed real steps (fewer when the
        buffer holds fewer), one per imagined episode: ``[n, F]``.

        Where the last replayed step ends its episode, the episode starts from the state
        before it instead, so that no imagined episode starts in a terminal state.
        """
        length = min(self.config["start_context"], buffer.stored_rows)
        sequence = buffer.sample_sequences(n, length, generator=generator, cross_episodes=True)
        model_gen = None
        if generator is not None:
            seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
            model_gen = make_generator(self.device, seed)
        out = self.observe(sequence, model_gen)
        ended = sequence.terminated[:, -1].to(self.device).reshape(-1, 1)
        return torch.where(ended, out["last_obs"], out["states"][:, -1])

    # ------------------------------------------------------------------ training
    def loss(
        self, sequence: Sequence, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """DreamerV3's world-model loss on a batch of sequences.

        :return: ``(loss scalar, metrics, posterior states [B, L + 1, F] detached)``: the
            states after ``obs[:, 0]`` and after every step, the start states of
            Dreamer's imagination.
        """
        out = self.observe(sequence, generator)
        states = out["states"]
        obs, next_obs, _ = self._sequence_parts(sequence)
        next_target = self.encoder.split(next_obs, 2)
        first_target = self.encoder.split(
            obs[:, 0] if not isinstance(obs, dict) else {k: v[:, 0] for k, v in obs.items()}, 1
        )
        recon = self.decoder.loss(states, next_target).mean()
        recon = recon + self.decoder.loss(out["start"], first_target).mean() / states.shape[1]
        reward_loss = -two_hot_log_likelihood(
            torch.log_softmax(self.reward_logits(states), -1),
            symlog(sequence.reward.to(self.device).float()), self.bins,
        ).mean()
        alive = 1.0 - sequence.terminated.to(self.device).float()
        continue_loss = F.binary_cross_entropy_with_logits(
            self.continue_head(states).squeeze(-1), alive
        )
        kl_loss, kl = balanced_kl(
            out["post"],
            out["prior"],
            kind=self.latent,
            dynamics_scale=self.config["dynamics_scale"],
            representation_scale=self.config["representation_scale"],
            free_nats=self.config["free_nats"],
        )
        loss = recon + reward_loss + continue_loss + kl_loss.mean()
        metrics = {
            "loss": float(loss.detach()),
            "reconstruction_loss": float(recon.detach()),
            "reward_loss": float(reward_loss.detach()),
            "continue_loss": float(continue_loss.detach()),
            "kl": float(kl["kl"].mean()),
        }
        all_states = torch.cat([out["start"][:, None], states], 1).detach()
        return loss, metrics, all_states

    def optimizer_state_dict(self) -> dict[str, Any] | None:
        return self.optimizer.state_dict()

    def load_optimizer_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.optimizer.load_state_dict(state)

    def train_step(
        self, sequence: Sequence, generator: torch.Generator | None = None
    ) -> tuple[dict[str, float], torch.Tensor]:
        """One gradient step on ``sequence``; returns ``(metrics, posterior states)``.

        :raises ModelOutputError: when the loss is NaN or infinite (nothing is updated).
        """
        loss, metrics, states = self.loss(sequence, generator)
        if not torch.isfinite(loss):
            raise ModelOutputError(
                f"RSSM: the world-model loss is {float(loss)} (NaN or infinite); check the "
                "data for non-finite values or lower learning_rate"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.parameters(), self.config["max_grad_norm"])
        self.optimizer.step()
        self.gradient_steps += 1
        metrics["grad_norm"] = float(norm)
        return metrics, states

    def fit(
        self,
        buffer: Any,
        *,
        steps: int = 100,
        progress_bar: bool = False,
        logger: Any = None,
    ) -> dict[str, Any]:
        """``steps`` gradient steps on sequences replayed from ``buffer``.

        Sequences of ``sequence_length`` steps are drawn across episode boundaries (the
        state restarts where an episode ends), ``batch_size`` per step. Randomness comes
        from torch's global generator, so ``torch.manual_seed`` makes a fit reproducible
        on CPU.

        :return: the last step's metrics (``loss``, ``reconstruction_loss``,
            ``reward_loss``, ``continue_loss``, ``kl``, ``grad_norm``), ``steps`` and
            ``fit_time``.
        :raises ValueError: when the buffer holds fewer than ``sequence_length`` steps
            per stream.
        """
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps: expected a positive int, got {steps!r}")
        if buffer.observation_space != self.observation_space:
            raise SpaceMismatchError(
                f"buffer: holds observations of {buffer.observation_space!r}, the model "
                f"expects {self.observation_space!r}"
            )
        start_time = time.perf_counter()
        seed = int(torch.randint(2**62, (1,)))
        generator = make_generator(self.device, seed)
        data_generator = make_generator(buffer.device, seed + 1)
        metrics: dict[str, Any] = {}
        iterator: Any = range(int(steps))
        if progress_bar:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="RSSM fit", unit="step")
        self.train()
        for _ in iterator:
            sequence = buffer.sample_sequences(
                self.config["batch_size"],
                self.config["sequence_length"],
                generator=data_generator,
                cross_episodes=True,
            )
            metrics, _ = self.train_step(sequence, generator)
        metrics.update(steps=int(steps), fit_time=time.perf_counter() - start_time)
        if logger is not None:
            for key, value in metrics.items():
                logger.record(f"model/{key}", value)
        return metrics
