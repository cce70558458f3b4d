"""World Models (Ha & Schmidhuber 2018, "World Models"; arXiv:1803.10122).

V (a VAE) and M (an MDN-RNN) are one latent world model,
:class:`~mbwrap.models.VAEMDNRNN`; a linear controller C, ``a = W [z, h] + b``, is
evolved with CMA-ES entirely inside M's dream, as in the paper's Doom experiment (Section
4): every candidate's rollouts are the envs of one :class:`~mbwrap.DreamVecEnv`, stepped
together, with rewards and terminations from M's heads. C then acts in the real env, and
the paper's iterative procedure (Section 5) refits V and M on what it saw.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos import state as saved
from mbwrap.algos.base import Algorithm
from mbwrap.algos.world_models_config import WorldModelsConfig
from mbwrap.algos.world_models_controller import (
    Fitness,
    cma_es,
    controller_actions,
    controller_size,
    dream_returns,
    linear_controller,
    real_returns,
)
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.envs import DreamVecEnv
from mbwrap.envs.fns.base import BatchedFn
from mbwrap.envs.imagination import StartStates
from mbwrap.envs.sb3_vec_env import wrap_env
from mbwrap.models.vae import check_frames_space
from mbwrap.space_support import SpaceSupport


class WorldModels(Algorithm):
    """World Models: V and M (:class:`~mbwrap.models.VAEMDNRNN`) and C (linear, CMA-ES)
    trained in the dream.

    ``learn(total_timesteps)`` counts real env steps: ``learning_starts`` steps with
    uniformly random actions (the paper's random rollouts), then iterations of
    ``train_freq`` steps acting with C. After the random steps and after each iteration,
    V and M are refitted on every stored frame (``fit_kwargs``) and C is evolved for
    ``generations`` generations in the dream: ``population x rollouts`` dreamed episodes of
    up to ``imagination_horizon`` steps, all one :class:`~mbwrap.DreamVecEnv`, each from
    V's posterior of a stored first frame; a candidate's fitness is its mean dreamed
    return. CMA-ES restarts from the current C each iteration, and its mean after the
    last generation becomes C.

    :meth:`predict` acts with C on ``[z, h]`` in the real env (a recurrent policy: SB3's
    ``state`` is the LSTM's ``(h, c)``). :meth:`evolve_in_real_env` evolves C with the
    same CMA-ES budget on real episodes, for comparison. Actions: ``Discrete`` (argmax of
    one output per action) or a bounded 1-D ``Box`` (``tanh`` rescaled to the bounds).
    Settings: :class:`WorldModelsConfig`.

    :param reward_fn: a batched ``(features, action, next_features) -> [B]`` reward in
        the dream (features are ``[z, h]``) replacing M's reward head, which is then not
        built; code, so not saved: set :attr:`reward_fn` again after :meth:`load`.
    """

    registry_name = "world-models"
    space_support = SpaceSupport(
        observations=("image",), actions=("Box", "Discrete"), bounded_actions=True,
        observation_note="frames: wrap a state-based env in mbwrap.envs.PixelObservation",
        action_note="1-D Box actions",
    )
    Config = WorldModelsConfig
    saved_state = ("model", "controller", "generator", "es_rng", "dream_rng")
    saved_buffers = ("buffer",)
    config: WorldModelsConfig

    def __init__(self, env: Any, *args: Any, reward_fn: BatchedFn | None = None, **kwargs: Any):
        super().__init__(env, *args, **kwargs)
        config = self.config
        check_frames_space(self.observation_space, name="env.observation_space")
        if reward_fn is not None and isinstance(config.model, str):
            config.model_kwargs = {**config.model_kwargs, "predict_reward": False}
        self.reward_fn = reward_fn
        self.model = self._make_model()
        if config.imagination_horizon is None:
            config.imagination_horizon = self._time_limit() or 1000  # CarRacing's episodes
        space = self.action_space
        self.output_dim = int(space.n) if isinstance(space, spaces.Discrete) else space.shape[0]
        features = self.model.dream_observation_space.shape[0]
        #: The controller's flat parameters: ``[output_dim * (Z + H + 1)]``.
        self.controller = torch.zeros(
            controller_size(features, self.output_dim), device=self.device
        )
        # Frames are large: the buffer takes memory as steps come (see _reserve).
        self.buffer = self._new_buffer(self.n_envs)
        es_seed, dream_seed = np.random.SeedSequence(config.seed).spawn(2)
        #: Draws CMA-ES's seeds; the dream's generator seeds each dreamed generation.
        self.es_rng = np.random.default_rng(es_seed)
        self.dream_rng = np.random.default_rng(dream_seed)
        #: Samples ``z`` from V's posterior in :meth:`predict`.
        self.generator = make_generator(self.device, config.seed)

    def _time_limit(self) -> int | None:
        spec = self.env.get_attr("spec", indices=[0])[0] if self.env is not None else None
        return getattr(spec, "max_episode_steps", None)

    # ------------------------------------------------------------------ replay
    def _new_buffer(self, capacity: int) -> ReplayBuffer:
        return ReplayBuffer(
            self.observation_space,
            self.action_space,
            capacity,
            device=self.model.device,
            n_envs=self.n_envs,
        )

    def _reserve(self, steps: int) -> None:
        """Grow :attr:`buffer` to hold ``steps`` more transitions (up to ``buffer_size``),
        keeping what it holds; it is never full when it grows, so its order stays."""
        needed = min(len(self.buffer) + steps + self.n_envs, self.config.buffer_size)
        if self.buffer.capacity < needed:
            grown = self._new_buffer(needed)
            grown.load_state_dict(self.buffer.state_dict())
            self.buffer = grown

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        self._reserve(remaining)
        return super()._collect(callback, remaining)

    def set_tensors(
        self, tensors: dict[str, torch.Tensor], keep_random_state: bool = False
    ) -> None:
        """Restore a checkpoint, first growing the buffer to hold its replay."""
        tree = saved.join_tree(json.loads(bytes(tensors["__tree__"].tolist())), tensors)
        replay = tree["parts"].get("buffer")
        if replay is not None:
            self._reserve(replay["state"]["obs"].shape[0] * self.n_envs)
        super().set_tensors(tensors, keep_random_state)

    def _after_restore(self) -> None:
        self.controller = self.controller.to(self.device, torch.float32)

    # ------------------------------------------------------------------ the loop's hooks
    def _train(self) -> None:
        """Evolve C in the dream of the freshly fitted V and M."""
        self._record_metrics("dream", self.evolve_in_dream())

    def evolve_in_dream(self, generations: int | None = None) -> dict[str, float]:
        """Evolve :attr:`controller` with CMA-ES entirely inside the dream (World Models,
        Section 4.3): no real step is taken.

        :param generations: default ``config.generations``.
        :return: ``generations``, the best candidate's fitness and the last mean fitness.
        """
        dream = self.make_dream(self.config.population * self.config.rollouts)
        return self._evolve(
            lambda params: dream_returns(params, dream)[0].mean(-1), generations, "dream"
        )

    def evolve_in_real_env(self, env: Any = None, generations: int | None = None) -> dict:
        """Evolve :attr:`controller` with the same CMA-ES budget (``population``,
        ``rollouts``, ``generations``) on real episodes, acting as :meth:`predict` does.

        :param env: the real env (a ``VecEnv`` with several envs runs episodes side by
            side); default the algorithm's own.
        :return: as :meth:`evolve_in_dream`, plus ``real_steps`` taken.
        """
        venv = self.env if env is None else wrap_env(env)
        if venv is None:
            raise ValueError("env: this algorithm has no env; pass one")
        steps = 0

        def fitness(params: torch.Tensor) -> torch.Tensor:
            nonlocal steps
            returns, taken = real_returns(self, params, venv, self.config.rollouts)
            steps += taken
            return returns.mean(-1)

        return {**self._evolve(fitness, generations, "real"), "real_steps": steps}

    def _evolve(self, fitness: Fitness, generations: int | None, prefix: str) -> dict:
        """CMA-ES from the current controller; its final mean becomes the controller."""
        generations = self.config.generations if generations is None else generations

        def record(generation: int, scores: np.ndarray, sigma: float) -> None:
            self.logger.record(f"{prefix}/generation", generation)
            self.logger.record(f"{prefix}/fitness_mean", float(scores.mean()))
            self.logger.record(f"{prefix}/fitness_max", float(scores.max()))
            self.logger.record(f"{prefix}/sigma", sigma)
            if self.verbose and generation % 10 == 0:
                self._dump_logs()

        self.controller, metrics = cma_es(
            self.controller,
            fitness,
            population=self.config.population,
            sigma0=self.config.sigma0,
            generations=generations,
            seed=int(self.es_rng.integers(1, 2**31 - 1)),
            record=record,
        )
        return metrics

    # ------------------------------------------------------------------ the dream
    def make_dream(self, num_envs: int, start_states: StartStates | None = None) -> DreamVecEnv:
        """The dream: ``num_envs`` episodes of at most ``imagination_horizon`` steps over
        the model, observing ``[z, h]``, started from ``start_states`` (default the
        posterior of stored first frames), seeded from :attr:`dream_rng`."""
        dream = DreamVecEnv(
            self.model,
            num_envs,
            start_states=self.buffer if start_states is None else start_states,
            horizon=self.config.imagination_horizon,
            reward_fn=self.reward_fn,
            on_nonfinite="raise",
        )
        dream.np_random = self.dream_rng
        return dream

    @torch.no_grad()
    def act_real(
        self,
        params: torch.Tensor,
        frames: Any,
        hidden: tuple[torch.Tensor, torch.Tensor],
        noise: bool,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One real step of controllers ``params: [n, n_params]`` on frames ``[n, H, W,
        C]`` with LSTM states ``(h, c)``, each ``[n, H]``: ``(actions [n, ...], (h, c))``."""
        mean, logvar = self.model.vae.encode_frames(frames, name="observation")
        z = mean
        if noise:
            sample = torch.randn(mean.shape, generator=self.generator, device=self.device)
            z = mean + (0.5 * logvar).exp() * sample
        h, c = hidden
        outputs = linear_controller(params, torch.cat([z, h], -1)[:, None], self.output_dim)
        actions = controller_actions(outputs[:, 0], self.action_space)
        return actions, self.model.rnn.advance(h, c, z, self.model.action_features(actions))

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act in the real env and advance the LSTM.

        :param observation: ``[H, W, C]`` or ``[n, H, W, C]`` uint8 frames.
        :param state: ``(h, c)``, each ``[n, hidden_size]``, as returned by the last call;
            ``None`` starts from zeros.
        :param episode_start: ``[n]`` bool; rows where it is true restart from zeros.
        :param deterministic: encode with the posterior mean rather than a sample.
        :return: ``(actions, (h, c))``: ``[n, ...]`` actions (unbatched for one frame).
        """
        frames = observation if torch.is_tensor(observation) else np.asarray(observation)
        n, size = (1 if frames.ndim == 3 else frames.shape[0]), self.model.hidden_size
        if state is None:
            h = c = torch.zeros(n, size, device=self.device)
        else:
            h, c = (torch.as_tensor(np.asarray(s), device=self.device).float() for s in state)
            if h.shape != (n, size) or c.shape != h.shape:
                raise ValueError(
                    f"state: expected (h, c) of shape [{n}, {size}] each, got "
                    f"{list(h.shape)} and {list(c.shape)}"
                )
        if episode_start is not None:
            restart = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(-1, 1))
            h, c = (torch.where(restart.to(self.device), 0.0, x) for x in (h, c))
        params = self.controller[None].expand(n, -1)
        actions, (h, c) = self.act_real(params, frames, (h, c), noise=not deterministic)
        actions_np = actions.cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            actions_np = actions_np.astype(self.action_space.dtype)
        return (actions_np[0] if frames.ndim == 3 else actions_np), (
            h.cpu().numpy(),
            c.cpu().numpy(),
        )
