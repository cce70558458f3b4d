"""World Models (Ha & Schmidhuber 2018, "World Models"; arXiv:1803.10122).

A VAE ("V") compresses each 64x64 frame into a latent ``z``; an MDN-RNN ("M") learns to
predict the next ``z`` from ``z``, the action and its LSTM state ``h``; a linear
controller ("C") ``a = W [z, h] + b`` is evolved with CMA-ES. Here, as in the paper's
Doom experiment (Section 4), the controller is evolved entirely inside the dream: every
candidate's rollouts are stepped together as one batch through the MDN-RNN, with rewards
and terminations from its heads, and only then acts in the real env.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.base import Algorithm, buffer_tensors, restore_buffer, wrap_env
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.errors import ModelOutputError, SpaceMismatchError, UnsupportedSpaceError
from mbwrap.models.mdn_rnn import MDNRNN
from mbwrap.models.vae import FRAME_SIZE, ConvVAE

#: A reward in latent space: ``(z [B, Z], action features [B, A], next_z [B, Z]) -> [B]``.
LatentRewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def controller_size(feature_dim: int, output_dim: int) -> int:
    """Parameters of the linear controller ``W [z, h] + b``: ``output_dim * (feature_dim +
    1)`` (World Models' CarRacing controller: ``3 * (32 + 256 + 1) = 867``)."""
    return output_dim * (feature_dim + 1)


def linear_controller(
    params: torch.Tensor, features: torch.Tensor, output_dim: int
) -> torch.Tensor:
    """Every candidate controller on its own rows: ``W_p f + b_p``.

    A flat parameter vector holds ``W`` (``[output_dim, F]``, row-major) then ``b``.

    :param params: ``[P, output_dim * (F + 1)]``, one controller per candidate.
    :param features: ``[P, R, F]``, ``R`` rows (rollouts) per candidate.
    :return: ``[P, R, output_dim]``.
    """
    p, _, f = features.shape
    weights = params[:, : output_dim * f].reshape(p, output_dim, f)
    bias = params[:, output_dim * f :]
    return torch.einsum("prf,pof->pro", features, weights) + bias[:, None]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _check_frames_space(space: spaces.Space) -> int:
    """The channel count of a 64x64 uint8 image space, or a clear error."""
    if (
        not isinstance(space, spaces.Box)
        or space.dtype != np.uint8
        or len(space.shape) != 3
        or space.shape[:2] != (FRAME_SIZE, FRAME_SIZE)
        or space.shape[2] not in (1, 3)
    ):
        raise SpaceMismatchError(
            f"env.observation_space: World Models reads uint8 frames of shape "
            f"({FRAME_SIZE}, {FRAME_SIZE}, 3) or ({FRAME_SIZE}, {FRAME_SIZE}, 1) (wrap the env "
            f"in mbwrap.envs.pixels.PixelObservation), got {space!r}"
        )
    return int(space.shape[2])


class WorldModels(Algorithm):
    """World Models: V (ConvVAE), M (MDN-RNN) and C (linear, CMA-ES) trained in the dream.

    ``learn(total_timesteps)`` counts real env steps:

    1. ``total_timesteps`` steps with uniformly random actions (the paper's random
       rollouts), stored with their frames;
    2. the VAE is fitted on every stored frame, the frames are encoded, and the MDN-RNN is
       fitted on the episodes of posterior samples ``z`` (with reward and termination
       heads);
    3. the controller is evolved by CMA-ES for ``generations`` generations entirely in
       the dream: ``popsize x rollouts`` dreamed episodes of up to ``dream_horizon`` steps,
       all stepped as one batch, each from the posterior of a real first frame; the
       candidate's fitness is its mean dreamed return. The distribution's mean after the
       last generation becomes the controller.

    :meth:`predict` acts in the real env: encode the frame (posterior mean when
    ``deterministic``, a sample otherwise), act with ``C`` on ``[z, h]``, advance the LSTM
    with ``(z, a)``. The LSTM state is SB3's recurrent ``state`` (``(h, c)``, each
    ``[n_envs, hidden_size]``), reset where ``episode_start`` is true.

    :meth:`evolve_in_real_env` evolves the same controller with the same CMA-ES budget
    on real episodes instead, for comparison.

    Actions: ``Discrete`` (one output per action, argmax) or a 1-D ``Box`` (``tanh``
    outputs, rescaled to the bounds).

    :param env: the real env, with uint8 ``[64, 64, C]`` observations
        (:class:`~mbwrap.envs.pixels.PixelObservation`).
    :param latent_dim: size of ``z`` (World Models: 32).
    :param vae_channels: the VAE encoder's widths (World Models: 32, 64, 128, 256).
    :param reconstruction_loss: the VAE's ``"mse"`` (World Models) or ``"bernoulli"``
        (better on frames mostly of one flat colour; see :func:`~mbwrap.models.vae.vae_loss`).
    :param hidden_size: LSTM units (World Models: 256).
    :param num_components: Gaussians per latent dimension (World Models: 5).
    :param temperature: ``τ`` of the dream (World Models, Table 2: 1.15 transferred best in
        Doom); above 0 terminations are also sampled from the predicted probability.
    :param popsize: CMA-ES population (World Models: 64).
    :param rollouts: dreamed episodes per candidate (World Models: 16).
    :param generations: CMA-ES generations per :meth:`learn`.
    :param sigma0: CMA-ES initial step size (the paper's estool default, 0.1).
    :param dream_horizon: longest dreamed episode; ``None``: the env's time limit, else
        1000 (CarRacing's episode length).
    :param vae_kwargs: passed to :meth:`ConvVAE.fit` (``epochs``, ``batch_size``,
        ``learning_rate``).
    :param rnn_kwargs: passed to :meth:`MDNRNN.fit`.
    :param sequence_length: longest training sequence of the MDN-RNN; longer episodes are
        cut into pieces.
    :param reward_fn: a reward on latents overriding the MDN-RNN's reward head; code, so
        not saved.
    :param buffer_capacity: real transitions kept (each stores two 64x64x3 frames, about
        24 KiB); the checkpoint keeps the networks, not the frames.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "world-models"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        *,
        latent_dim: int = 32,  # World Models, Appendix A.1
        vae_channels: tuple[int, ...] | list[int] = (32, 64, 128, 256),  # Appendix A.1
        reconstruction_loss: str = "mse",  # World Models, Section 2.1: L2 distance
        hidden_size: int = 256,  # World Models, Appendix A.2 (CarRacing)
        num_components: int = 5,  # World Models, Appendix A.2
        temperature: float = 1.15,  # World Models, Section 4 (Doom), Table 2
        popsize: int = 64,  # World Models, Section 3.3
        rollouts: int = 16,  # World Models, Section 3.3: 16 random rollouts per agent
        generations: int = 100,
        sigma0: float = 0.1,  # estool's CMA-ES sigma_init, used by World Models
        dream_horizon: int | None = None,
        vae_kwargs: dict[str, Any] | None = None,
        rnn_kwargs: dict[str, Any] | None = None,
        sequence_length: int = 1000,  # World Models' rnn training: max_seq_len = 1000
        reward_fn: LatentRewardFn | None = None,
        buffer_capacity: int = 100_000,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__(
            env,
            seed=seed,
            device=device,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            observation_space=observation_space,
            action_space=action_space,
        )
        image_channels = _check_frames_space(self.observation_space)
        if isinstance(self.action_space, spaces.Discrete):
            self.output_dim = int(self.action_space.n)
            action_dim = self.output_dim
        elif isinstance(self.action_space, spaces.Box) and len(self.action_space.shape) == 1:
            self.output_dim = action_dim = int(self.action_space.shape[0])
        else:
            raise UnsupportedSpaceError(
                "env.action_space: World Models' controller supports Discrete or a 1-D Box, "
                f"got {self.action_space!r}"
            )
        if not temperature >= 0:
            raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
        if not sigma0 > 0:
            raise ValueError(f"sigma0: expected > 0, got {sigma0!r}")
        self.temperature = float(temperature)
        self.popsize = _positive_int(popsize, "popsize")
        self.rollouts = _positive_int(rollouts, "rollouts")
        self.generations = _positive_int(generations, "generations")
        self.sigma0 = float(sigma0)
        if dream_horizon is None:
            limit = self._time_limit()
            dream_horizon = limit if limit is not None else 1000  # CarRacing's 1000 steps
        self.dream_horizon = _positive_int(dream_horizon, "dream_horizon")
        self.sequence_length = _positive_int(sequence_length, "sequence_length")
        self.vae_kwargs = dict(vae_kwargs or {})
        self.rnn_kwargs = dict(rnn_kwargs or {})
        self.reward_fn = reward_fn
        self.buffer_capacity = _positive_int(buffer_capacity, "buffer_capacity")
        self.vae = ConvVAE(
            latent_dim,
            vae_channels,
            image_channels=image_channels,
            reconstruction=reconstruction_loss,
            device=self.device,
        )
        self.rnn = MDNRNN(
            latent_dim,
            action_dim,
            hidden_size,
            num_components,
            predict_reward=reward_fn is None,
            predict_done=True,
            device=self.device,
        )
        self.feature_dim = latent_dim + hidden_size
        #: The controller's flat parameters: ``[output_dim * (latent_dim + hidden_size + 1)]``.
        self.controller = torch.zeros(
            controller_size(self.feature_dim, self.output_dim), device=self.device
        )
        self.buffer: ReplayBuffer | None = None
        # Posteriors of real first frames, where dreamed episodes start: [S, Z] each.
        self.start_mean = torch.zeros(0, latent_dim, device=self.device)
        self.start_logvar = torch.zeros(0, latent_dim, device=self.device)
        self.generator = make_generator(self.device, seed)
        self._np_rng = np.random.default_rng(seed)

    def _time_limit(self) -> int | None:
        if self.env is None:
            return None
        try:
            spec = self.env.get_attr("spec", indices=[0])[0]
        except (AttributeError, IndexError):
            return None
        return getattr(spec, "max_episode_steps", None)

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {
            "latent_dim": self.vae.latent_dim,
            "vae_channels": list(self.vae.channels),
            "reconstruction_loss": self.vae.reconstruction,
            "hidden_size": self.rnn.hidden_size,
            "num_components": self.rnn.num_components,
            "temperature": self.temperature,
            "popsize": self.popsize,
            "rollouts": self.rollouts,
            "generations": self.generations,
            "sigma0": self.sigma0,
            "dream_horizon": self.dream_horizon,
            "vae_kwargs": self.vae_kwargs,
            "rnn_kwargs": self.rnn_kwargs,
            "sequence_length": self.sequence_length,
            "buffer_capacity": self.buffer_capacity,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The VAE, the MDN-RNN, the controller and the dream's start posteriors."""
        tensors = {f"vae.{k}": v for k, v in self.vae.state_dict().items()}
        tensors.update({f"rnn.{k}": v for k, v in self.rnn.state_dict().items()})
        tensors["controller"] = self.controller
        tensors["start_mean"] = self.start_mean
        tensors["start_logvar"] = self.start_logvar
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for prefix, module in (("vae.", self.vae), ("rnn.", self.rnn)):
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            module.load_state_dict({k: v.to(self.device) for k, v in state.items()})
        controller = tensors["controller"]
        if controller.shape != self.controller.shape:
            raise ValueError(
                f"controller: expected {tuple(self.controller.shape)} parameters, got "
                f"{tuple(controller.shape)}"
            )
        self.controller = controller.to(self.device, torch.float32)
        self.start_mean = tensors["start_mean"].to(self.device)
        self.start_logvar = tensors["start_logvar"].to(self.device)

    # ------------------------------------------------------------------ actions
    def action_features(self, actions: torch.Tensor) -> torch.Tensor:
        """What the MDN-RNN reads of env actions: a one-hot for ``Discrete``, the action
        scaled to ``[-1, 1]`` for a bounded ``Box``.

        :param actions: ``[B]`` (Discrete) or ``[B, A]`` (Box).
        :return: ``[B, A']`` float32.
        """
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            index = actions.long().reshape(-1) - int(space.start)
            return F.one_hot(index, int(space.n)).float()
        actions = actions.float().reshape(actions.shape[0], -1)
        low, high = (torch.as_tensor(b, device=actions.device) for b in (space.low, space.high))
        bounded = torch.isfinite(low) & torch.isfinite(high)
        scaled = 2.0 * (actions - low) / torch.where(bounded, high - low, 1.0) - 1.0
        return torch.where(bounded, scaled.clamp(-1.0, 1.0), actions)

    def _act(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Controller outputs ``[..., output_dim]`` to ``(env actions, action features)``:
        argmax for ``Discrete``; ``tanh`` rescaled to the bounds for ``Box``."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            index = outputs.argmax(-1)
            return index + int(space.start), F.one_hot(index, int(space.n)).float()
        squashed = torch.tanh(outputs)
        low, high = (torch.as_tensor(b, device=outputs.device) for b in (space.low, space.high))
        bounded = torch.isfinite(low) & torch.isfinite(high)
        rescaled = low + (squashed + 1.0) * 0.5 * torch.where(bounded, high - low, 0.0)
        return torch.where(bounded, rescaled, squashed), squashed

    # ------------------------------------------------------------------ the dream
    @torch.no_grad()
    def dream_returns(
        self,
        params: torch.Tensor,
        start_z: torch.Tensor,
        *,
        horizon: int | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Dreamed returns of every candidate controller on every start, as one batch.

        All ``P x R`` episodes are stepped together through the MDN-RNN; an episode ends
        with the predicted termination probability (at temperature 0: when it exceeds one
        half), or at ``horizon``. Rewards come from ``reward_fn`` if given, else the reward
        head.

        :param params: ``[P, n_params]`` candidate controllers.
        :param start_z: ``[P, R, Z]`` first latents of each candidate's ``R`` episodes.
        :param horizon: longest episode; default :attr:`dream_horizon`.
        :param temperature: default :attr:`temperature`.
        :return: ``(returns [P, R], lengths [P, R])``.
        """
        p, r, _ = start_z.shape
        if params.shape != (p, self.controller.numel()):
            raise ValueError(
                f"params: expected [{p}, {self.controller.numel()}] to match start_z's {p} "
                f"candidates, got {list(params.shape)}"
            )
        horizon = self.dream_horizon if horizon is None else horizon
        temperature = self.temperature if temperature is None else temperature
        generator = self.generator if generator is None else generator
        z = start_z.reshape(p * r, -1)
        h, c = self.rnn.initial_state(p * r)
        returns = torch.zeros(p * r, device=z.device)
        lengths = torch.zeros(p * r, device=z.device)
        alive = torch.ones(p * r, dtype=torch.bool, device=z.device)
        for t in range(horizon):
            features = torch.cat([z, h], -1).reshape(p, r, -1)
            _, action = self._act(linear_controller(params, features, self.output_dim))
            action = action.reshape(p * r, -1)
            next_z, reward, done, h, c = self.rnn.step(
                h, c, z, action, temperature=temperature, generator=generator
            )
            if self.reward_fn is not None:
                reward = self.reward_fn(z, action, next_z)
            assert reward is not None and done is not None
            returns += torch.where(alive, reward, 0.0)
            lengths += alive.float()
            if temperature > 0:
                done = torch.rand(done.shape, generator=generator, device=done.device) < done
            else:
                done = done > 0.5
            alive &= ~done
            z = next_z
            # Ending early saves most of the work once a population dies quickly; checking
            # costs a host sync, so only every few steps.
            if t % 8 == 7 and not bool(alive.any()):
                break
        return returns.reshape(p, r), lengths.reshape(p, r)

    def sample_starts(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` first latents drawn from the posteriors of stored real first frames.

        :return: ``[count, Z]``.
        """
        if self.start_mean.shape[0] == 0:
            raise ValueError("learn: no real first frames encoded yet; call learn() first")
        generator = self.generator if generator is None else generator
        pick = torch.randint(
            self.start_mean.shape[0], (count,), generator=generator, device=self.device
        )
        noise = torch.randn(
            count, self.start_mean.shape[1], generator=generator, device=self.device
        )
        return self.start_mean[pick] + (0.5 * self.start_logvar[pick]).exp() * noise

    # ------------------------------------------------------------------ evolution
    def _evolve(
        self, fitness: Callable[[torch.Tensor], torch.Tensor], generations: int, prefix: str
    ) -> dict[str, float]:
        """CMA-ES from the current controller: ``generations`` of ``popsize`` candidates,
        each scored by ``fitness([P, n_params]) -> [P]`` (higher is better)."""
        try:
            import cma
        except ImportError as err:
            raise ImportError(
                "world-models evolves its controller with CMA-ES from the `cma` package; "
                "install it with `pip install cma` (or `pip install mbwrap[world-models]`)"
            ) from err
        seed = int(self._np_rng.integers(1, 2**31 - 1))
        es = cma.CMAEvolutionStrategy(
            self.controller.double().cpu().numpy(),
            self.sigma0,
            {"popsize": self.popsize, "seed": seed, "verbose": -9},
        )
        best = -np.inf
        for generation in range(generations):
            solutions = es.ask()
            params = torch.as_tensor(np.stack(solutions), dtype=torch.float32, device=self.device)
            scores = fitness(params).double().cpu().numpy()
            es.tell(solutions, (-scores).tolist())  # CMA-ES minimises
            best = max(best, float(scores.max()))
            self.logger.record(f"{prefix}/generation", generation + 1)
            self.logger.record(f"{prefix}/fitness_mean", float(scores.mean()))
            self.logger.record(f"{prefix}/fitness_max", float(scores.max()))
            self.logger.record(f"{prefix}/sigma", float(es.sigma))
            if self.verbose and (generation + 1) % 10 == 0:
                self._dump_logs()
        self.controller = torch.as_tensor(
            es.result.xfavorite, dtype=torch.float32, device=self.device
        )
        return {"generations": generations, "fitness_max": best, "last_mean": float(scores.mean())}

    def evolve_in_dream(self, generations: int | None = None) -> dict[str, float]:
        """Evolve :attr:`controller` with CMA-ES entirely inside the dream (World Models,
        Section 4.3): no real step is taken.

        :param generations: default :attr:`generations`.
        :return: ``generations``, the best candidate's fitness and the last mean fitness.
        """
        generations = self.generations if generations is None else generations

        def fitness(params: torch.Tensor) -> torch.Tensor:
            starts = self.sample_starts(params.shape[0] * self.rollouts)
            returns, _ = self.dream_returns(
                params, starts.reshape(params.shape[0], self.rollouts, -1)
            )
            if not bool(torch.isfinite(returns).all()):
                raise ModelOutputError(
                    "rnn: the MDN-RNN dreamed NaN or infinite rewards; refit it (lower "
                    "rnn_kwargs['learning_rate']) or pass a reward_fn"
                )
            return returns.mean(-1)

        return self._evolve(fitness, _positive_int(generations, "generations"), "dream")

    def evolve_in_real_env(
        self, env: gym.Env | VecEnv | None = None, generations: int | None = None
    ) -> dict[str, float]:
        """Evolve :attr:`controller` with the same CMA-ES budget (``popsize``,
        ``rollouts``, ``generations``) on real episodes, acting as :meth:`predict` does.

        The ``popsize x rollouts`` episodes of a generation are shared out over the envs
        of ``env`` and stepped together; an episode ends when the env ends it.

        :param env: the real env (a ``VecEnv`` with several envs runs episodes side by
            side); default the algorithm's own.
        :param generations: default :attr:`generations`.
        :return: as :meth:`evolve_in_dream`, plus ``real_steps`` taken.
        """
        venv = self.env if env is None else wrap_env(env)
        if venv is None:
            raise ValueError("env: this algorithm has no env; pass one")
        generations = self.generations if generations is None else generations
        steps = 0

        def fitness(params: torch.Tensor) -> torch.Tensor:
            nonlocal steps
            returns, taken = self._real_returns(params, venv)
            steps += taken
            return returns.mean(-1)

        metrics = self._evolve(fitness, _positive_int(generations, "generations"), "real")
        return {**metrics, "real_steps": steps}

    @torch.no_grad()
    def _real_returns(self, params: torch.Tensor, venv: VecEnv) -> tuple[torch.Tensor, int]:
        """Real returns ``[P, R]`` of each candidate's ``R`` episodes, and the steps taken."""
        p, r, n = params.shape[0], self.rollouts, venv.num_envs
        returns = np.zeros(p * r)
        job = np.full(n, -1)  # episode index (candidate * R + rollout) each env is playing
        queued = iter(range(p * r))
        for i in range(n):
            job[i] = next(queued, -1)
        obs = venv.reset()
        h, c = self.rnn.initial_state(n)
        steps = 0
        while (job >= 0).any():
            z, _ = self.vae.encode_frames(obs, name="observation")
            candidate = torch.as_tensor(np.maximum(job, 0) // r, device=self.device)
            features = torch.cat([z, h], -1)[:, None]
            actions, action_features = self._act(
                linear_controller(params[candidate], features, self.output_dim)[:, 0]
            )
            h, c = self.rnn.advance(h, c, z, action_features)
            obs, rewards, dones, _ = venv.step(actions.cpu().numpy())
            active = job >= 0
            returns[job[active]] += rewards[active]
            steps += int(active.sum())
            for i in np.flatnonzero(dones):
                h[i] = 0.0
                c[i] = 0.0
                if job[i] >= 0:
                    job[i] = next(queued, -1)
        return torch.as_tensor(returns, dtype=torch.float32).reshape(p, r), steps

    # ------------------------------------------------------------------ learning
    def _ensure_buffer(self, extra: int) -> ReplayBuffer:
        """A buffer with room for ``extra`` more steps (up to ``buffer_capacity``),
        keeping what the current one holds."""
        held = 0 if self.buffer is None else len(self.buffer)
        needed = min(held + extra + self.n_envs, self.buffer_capacity)
        if self.buffer is None or self.buffer.capacity < needed:
            grown = ReplayBuffer(
                self.observation_space,
                self.action_space,
                needed,
                device=self.device,
                n_envs=self.n_envs,
            )
            if self.buffer is not None:
                restore_buffer(grown, buffer_tensors(self.buffer, "b"), "b")
            self.buffer = grown
        return self.buffer

    def _pieces(self, ends: np.ndarray, wrapped: bool) -> list[tuple[int, int, int, bool]]:
        """Split each stream of ``ends`` (``[rows, n_envs]`` bool) into episodes of at most
        ``sequence_length`` steps: ``(env, start, stop, starts an episode)``. When the
        buffer has ``wrapped`` round, its oldest pieces start mid-episode."""
        rows = ends.shape[0]
        pieces = []
        for env in range(ends.shape[1]):
            start, first = 0, not wrapped
            for t in range(rows):
                if ends[t, env] or t == rows - 1 or t + 1 - start == self.sequence_length:
                    pieces.append((env, start, t + 1, first))
                    first, start = bool(ends[t, env]), t + 1
        return pieces

    def fit_world_model(self) -> dict[str, float]:
        """Fit the VAE on every stored frame, then the MDN-RNN on the encoded episodes,
        and record the posteriors of first frames as the dream's starts."""
        assert self.buffer is not None
        data = self.buffer.transitions()
        rows = len(data) // self.n_envs

        def grid(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(rows, self.n_envs, *x.shape[1:])

        ends = (grid(data.terminated) | grid(data.truncated)).cpu().numpy()
        pieces = self._pieces(ends, wrapped=len(self.buffer) == self.buffer.capacity)
        env = torch.tensor([piece[0] for piece in pieces], device=self.device)
        last = torch.tensor([piece[2] - 1 for piece in pieces], device=self.device)
        # Every frame once: each step's observation, and the frame that ends each piece.
        frames = torch.cat([data.obs, grid(data.next_obs)[last, env]])
        vae_metrics = self.vae.fit(frames, generator=self.generator, **self.vae_kwargs)
        mean, logvar = self.vae.encode_frames(frames)
        steps = rows * self.n_envs
        n, length = len(pieces), max(stop - start for _, start, stop, _ in pieces)
        latent = mean.shape[-1]
        z_mean = torch.zeros(n, length + 1, latent, device=self.device)
        z_logvar = torch.zeros_like(z_mean)
        action = torch.zeros(n, length, self.rnn.action_dim, device=self.device)
        reward = torch.zeros(n, length, device=self.device)
        terminated = torch.zeros(n, length, dtype=torch.bool, device=self.device)
        mask = torch.zeros(n, length, dtype=torch.bool, device=self.device)
        grid_mean, grid_logvar = grid(mean[:steps]), grid(logvar[:steps])
        features = grid(self.action_features(data.action))
        for i, (column, start, stop, _) in enumerate(pieces):
            k = stop - start
            z_mean[i, :k], z_mean[i, k] = grid_mean[start:stop, column], mean[steps + i]
            z_logvar[i, :k], z_logvar[i, k] = grid_logvar[start:stop, column], logvar[steps + i]
            action[i, :k] = features[start:stop, column]
            reward[i, :k] = grid(data.reward)[start:stop, column]
            terminated[i, :k] = grid(data.terminated)[start:stop, column]
            mask[i, :k] = True
        rnn_metrics = self.rnn.fit(
            z_mean,
            action,
            mask,
            z_logvar=z_logvar,
            reward=reward,
            terminated=terminated,
            generator=self.generator,
            **self.rnn_kwargs,
        )
        first = torch.tensor([piece[3] for piece in pieces], device=self.device)
        self.start_mean, self.start_logvar = z_mean[first, 0], z_logvar[first, 0]
        return {
            **{f"vae_{k}": v for k, v in vae_metrics.items()},
            **{f"rnn_{k}": v for k, v in rnn_metrics.items()},
            "frames": float(frames.shape[0]),
            "sequences": float(n),
        }

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "WorldModels",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> WorldModels:
        """Collect ``total_timesteps`` random real steps, fit V and M on every stored step,
        then evolve C in the dream (a callback stopping collection skips the rest).

        :param log_interval: unused beyond SB3's signature; metrics are dumped once at the
            end.
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        buffer = self._ensure_buffer(total_timesteps - self.num_timesteps)
        steps = total_timesteps - self.num_timesteps
        if self._collect_real_steps(buffer, steps, callback) and len(buffer):
            self._record_metrics("world_model", self.fit_world_model())
            self._record_metrics("dream", self.evolve_in_dream())
            if log_interval:
                self._dump_logs()
        callback.on_training_end()
        return self

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act in the real env and advance the LSTM.

        :param observation: ``[64, 64, C]`` or ``[n, 64, 64, C]`` uint8 frames.
        :param state: ``(h, c)``, each ``[n, hidden_size]``, as returned by the last call;
            ``None`` starts from zeros.
        :param episode_start: ``[n]`` bool; rows where it is true restart from zeros.
        :param deterministic: encode with the posterior mean rather than a sample.
        :return: ``(actions, (h, c))``: ``[n, ...]`` actions (unbatched for one frame).
        """
        frames = observation if torch.is_tensor(observation) else np.asarray(observation)
        single = frames.ndim == 3
        mean, logvar = self.vae.encode_frames(frames, name="observation")
        z = mean
        if not deterministic:
            noise = torch.randn(mean.shape, generator=self.generator, device=self.device)
            z = mean + (0.5 * logvar).exp() * noise
        n = z.shape[0]
        if state is None:
            h, c = self.rnn.initial_state(n)
        else:
            h, c = (
                torch.as_tensor(np.asarray(s), dtype=torch.float32, device=self.device)
                for s in state
            )
            if h.shape != (n, self.rnn.hidden_size) or c.shape != h.shape:
                raise ValueError(
                    f"state: expected (h, c) of shape [{n}, {self.rnn.hidden_size}] each, got "
                    f"{list(h.shape)} and {list(c.shape)}"
                )
        if episode_start is not None:
            restart = torch.as_tensor(
                np.asarray(episode_start, dtype=bool).reshape(-1), device=self.device
            )
            h = torch.where(restart[:, None], 0.0, h)
            c = torch.where(restart[:, None], 0.0, c)
        features = torch.cat([z, h], -1)[None]
        actions, action_features = self._act(
            linear_controller(self.controller[None], features, self.output_dim)[0]
        )
        h, c = self.rnn.advance(h, c, z, action_features)
        actions_np = actions.cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            actions_np = actions_np.astype(self.action_space.dtype)
        return (actions_np[0] if single else actions_np), (h.cpu().numpy(), c.cpu().numpy())
