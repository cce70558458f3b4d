"""Dreamer with the DreamerV3 recipe (Hafner et al. 2023, "Mastering Diverse Domains
through World Models").

Each real step the agent filters its latent state with the RSSM's posterior and samples
an action from the actor. Every ``train_freq`` real steps it takes ``gradient_steps``
gradient steps, each:

1. **World model**: a batch of replayed sequences (across episode boundaries), the RSSM
   loss (reconstruction, symlog two-hot reward, continuation, balanced KL with free
   bits); the posterior states become imagination starts.
2. **Imagination**: ``imagination_horizon`` (15) steps of the prior from every posterior
   state with actions from the actor.
3. **Critic**: two-hot symlog regression on lambda-returns (``gae_lambda`` 0.95,
   ``gamma`` 0.997), regularised towards its slow EMA copy.
4. **Actor**: advantages ``(R - v) / max(1, S)`` with ``S`` the EMA of the 5th-95th
   percentile range of the returns, entropy bonus ``ent_coef``; REINFORCE for Discrete
   actions, backpropagation through the model's dynamics for Box actions.

DreamerV3's *train ratio* (replayed steps per env step) is ``gradient_steps / train_freq
x batch_size x sequence_length``: its 512 over batches of 16 x 64 is one gradient step
every two env steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from mbwrap.algos.base import Algorithm
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import host_scalars, make_generator
from mbwrap.envs.sb3_vec_env import env_id
from mbwrap.errors import ModelOutputError
from mbwrap.models.latent_filter import LatentFilter, observation_batch
from mbwrap.models.rssm import RSSM
from mbwrap.networks import LatentActor, LatentCritic
from mbwrap.returns import lambda_returns, percentile_range
from mbwrap.space_support import SpaceSupport

_V3 = "Hafner et al. 2023 (DreamerV3), Appendix, hyperparameter table"


@dataclass(kw_only=True)
class DreamerConfig(AlgoConfig):
    """Settings of :class:`Dreamer`: DreamerV3's defaults (model size S). Smaller
    settings for small budgets are in :data:`mbwrap.algos.presets.PRESETS`."""

    algo_name: ClassVar[str] = "dreamer"

    model_kwargs: dict[str, Any] = setting(
        {},
        "keywords of the RSSM world model (sizes, learning_rate, batch_size, "
        "sequence_length...); its own defaults are DreamerV3's size S",
        source="Hafner et al. 2023, Table B.1",
    )
    hidden: int = setting(512, "width of the actor's and critic's hidden layers", source=_V3, low=1)
    layers: int = setting(2, "hidden layers of the actor and the critic", source=_V3, low=1)
    imagination_horizon: int = setting(
        15, "imagined steps from each replayed posterior state", source=_V3, low=1
    )
    gamma: float = setting(0.997, "discount of the imagined returns", source=_V3, low=0, high=1)
    gae_lambda: float = setting(0.95, "lambda of the lambda-returns", source=_V3, low=0, high=1)
    actor_learning_rate: float = setting(
        3e-5, "actor's Adam learning rate (epsilon 1e-5)", source=_V3, low=0
    )
    critic_learning_rate: float = setting(
        3e-5, "critic's Adam learning rate (epsilon 1e-5)", source=_V3, low=0
    )
    ent_coef: float = setting(3e-4, "entropy bonus of the actor (eta)", source=_V3, low=0)
    train_freq: int = setting(
        2,
        "real steps between rounds of gradient_steps updates (world model, actor, critic)",
        source="DreamerV3's train ratio 512 over batches of 16 x 64 replayed steps",
        low=1,
    )
    gradient_steps: int = setting(1, "gradient steps every train_freq real steps", low=1)
    learning_starts: int = setting(
        1024,
        "real steps of uniformly random actions before training",
        source="one batch of DreamerV3's 16 x 64 replayed steps",
        low=0,
    )
    buffer_size: int = setting(
        100_000,
        "real transitions kept; preallocated, so smaller than DreamerV3's",
        source="DreamerV3 keeps 10^6",
        low=1,
    )
    max_grad_norm: float = setting(
        100.0, "global gradient norm clip of the actor and the critic", source=_V3, low=0
    )
    return_decay: float = setting(
        0.99, "EMA decay of the return scale S", source=_V3, low=0, high=1
    )

    def validate(self) -> None:
        super().validate()
        if self.gamma <= 0:
            raise ValueError(f"gamma: expected a value in (0, 1], got {self.gamma!r}")
        for name in ("actor_learning_rate", "critic_learning_rate", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a value > 0, got {getattr(self, name)!r}")


class Dreamer(Algorithm):
    """DreamerV3-style agent: an RSSM world model and an actor-critic trained in it.

    The loop is :class:`~mbwrap.algos.Algorithm`'s: ``learning_starts`` uniformly random
    real steps, then rounds of ``train_freq`` real steps acting with the actor on the
    filtered latent state, each followed by ``gradient_steps`` updates of the world
    model, actor and critic (as SB3, training starts once more than ``learning_starts``
    real steps are in).

    Checkpoints hold the world model and its optimizer, the actor, the critic with its
    slow copy, their optimizers, the return scale, the replay, the generators and the
    filter's state: a run saved where its episodes end resumes exactly.

    Settings: :class:`DreamerConfig`.
    """

    registry_name: ClassVar[str | None] = "dreamer"
    space_support = SpaceSupport(
        observations=("Box", "image", "Discrete", "Dict"),
        actions=("Box", "Discrete"),
        bounded_actions=True,
    )
    Config = DreamerConfig
    saved_state = (
        "model",
        "actor",
        "critic",
        "actor_optimizer",
        "critic_optimizer",
        "return_scale",
        "n_updates",
        "generator",
        "data_generator",
        "filter",
    )
    saved_buffers = ("buffer",)
    acting_state = ("filter",)
    config: DreamerConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        self.model = RSSM(
            self.observation_space,
            self.action_space,
            env_id=env_id(self.env),
            device=self.device,
            **config.model_kwargs,
        )
        config.model_kwargs = self.model.get_config()
        features = self.model.feature_size
        self.actor = LatentActor(features, self.action_space, config.hidden, config.layers)
        self.actor.to(self.device)
        self.critic = LatentCritic(features, config.hidden, config.layers).to(self.device)
        # DreamerV3: Adam with epsilon 1e-5 for the actor and critic.
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=config.actor_learning_rate, eps=1e-5
        )
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(), lr=config.critic_learning_rate, eps=1e-5
        )
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            config.buffer_size,
            device=self.device,
            n_envs=self.n_envs,
        )
        self.return_scale = torch.zeros((), device=self.device)
        #: Gradient steps taken (world model, actor and critic together).
        self.n_updates = 0
        seed = config.seed
        self.generator = make_generator(self.device, seed)
        self.data_generator = make_generator(self.buffer.device, None if seed is None else seed + 1)
        #: The posterior states :meth:`predict` acts from.
        self.filter = LatentFilter(self.model, seed=None if seed is None else seed + 2)

    def gradient_steps_per_env_step(self) -> float:
        """``gradient_steps / train_freq`` (times ``batch_size x sequence_length``:
        DreamerV3's train ratio)."""
        return self.config.gradient_steps / self.config.train_freq

    def _after_restore(self) -> None:
        self.return_scale = self.return_scale.to(self.device)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Act from the filtered latent state, SB3's recurrent-policy way.

        :param state: ``(latent [n, F], previous action vector [n, A])`` as returned by
            the previous call (``None`` at the start); ``evaluate_policy`` and the
            training loop pass it back.
        :param episode_start: ``[n]`` bool, envs whose observation starts an episode.
        :return: ``(actions, next state)``.
        """
        obs, batched = observation_batch(observation, self.observation_space, self.device)
        action = None
        if state is not None and len(state) == 2:
            self.filter.state = torch.as_tensor(state[0], device=self.device)
            action = torch.as_tensor(state[1], device=self.device)
        latent = self.filter.observe(obs, action, episode_start)
        raw, vector, _ = self.actor.sample(latent, deterministic)
        actions = self.actor.env_action(raw).cpu().numpy()
        next_state = (latent.cpu().numpy(), vector.cpu().numpy())
        return (actions if batched else actions[0]), next_state

    # ------------------------------------------------------------------ the loop's hooks
    def _refit_due(self) -> bool:
        # The world model learns in _train, one replayed batch per gradient step.
        return False

    def _train(self) -> None:
        """``gradient_steps`` updates, once more than ``learning_starts`` real steps are in
        and the replay holds a whole sequence."""
        if self.real_steps <= self.config.learning_starts:
            return
        if self.buffer.stored_rows < self.model.config["sequence_length"]:
            return
        metrics: dict[str, float] = {}
        for _ in range(self.config.gradient_steps):
            metrics = self.train_step()
        self._record_metrics("train", {**metrics, "n_updates": self.n_updates})

    # ------------------------------------------------------------------ training
    def train_step(self) -> dict[str, float]:
        """One world-model step and one actor-critic step on a replayed batch."""
        cfg = self.model.config
        sequence = self.buffer.sample_sequences(
            cfg["batch_size"],
            cfg["sequence_length"],
            generator=self.data_generator,
            cross_episodes=True,
        )
        metrics, posterior = self.model.train_step(sequence, self.generator)
        metrics.update(self._imagine_and_learn(posterior.reshape(-1, posterior.shape[-1])))
        self.n_updates += 1
        return metrics

    def _imagine_and_learn(self, starts: torch.Tensor) -> dict[str, float]:
        """Actor and critic updates on imagined rollouts from ``starts [N, F]``."""
        cfg = self.config
        model, critic = self.model, self.critic
        dists: list[torch.distributions.Distribution] = []
        raws: list[torch.Tensor] = []

        def policy(features: torch.Tensor) -> torch.Tensor:
            # The rollout's own action distributions serve the actor loss below, so the
            # actor runs once per imagined state.
            raw, vector, dist = self.actor.sample(features)
            dists.append(dist)
            raws.append(raw)
            return vector

        # The world model does not learn from the actor's loss; with its parameters frozen,
        # no gradient is computed for them.
        model.requires_grad_(False)
        try:
            states, _ = model.imagine(
                policy, starts.detach(), cfg.imagination_horizon, self.generator
            )
            reward = model.predict_reward(states[1:])  # [H, N]
            continues = model.continue_prob(states[1:])  # [H, N]
        finally:
            model.requires_grad_(True)
        critic_logits = None
        if self.actor.discrete:
            # REINFORCE: no gradient flows through the states, so one critic pass gives
            # the values for the returns and the logits of its own loss.
            critic_logits = critic.logits(states[:-1])
            value = critic.expected(
                torch.cat([critic_logits.detach(), critic.logits(states[-1:]).detach()])
            )
        else:
            # Dynamics backpropagation: the return's gradient reaches the actor through the
            # imagined states, the rewards and the bootstrapped values (critic frozen).
            critic.net.requires_grad_(False)
            try:
                value = critic.value(states)  # [H + 1, N]
            finally:
                critic.net.requires_grad_(True)
        returns = lambda_returns(
            reward, value, continues, discount=cfg.gamma, lambda_=cfg.gae_lambda
        )
        # The chance of still being in the episode at each step (DreamerV3 weights every
        # loss term of step t by it).
        alive = torch.cumprod(
            torch.cat([torch.ones_like(continues[:1]), cfg.gamma * continues[:-1]]), 0
        ).detach()
        decay = cfg.return_decay
        self.return_scale = decay * self.return_scale + (1 - decay) * percentile_range(returns)
        advantage = (returns - value[:-1]) / torch.clamp(self.return_scale, min=1.0)
        entropy = torch.stack([self.actor.entropy(d) for d in dists])  # [H, N]
        if self.actor.discrete:
            log_prob = torch.stack(
                [self.actor.log_prob(d, r) for d, r in zip(dists, raws, strict=True)]
            )
            objective = log_prob * advantage.detach()
        else:
            objective = advantage
        actor_loss = -(alive * (objective + cfg.ent_coef * entropy)).mean()
        self._step(self.actor_optimizer, self.actor, actor_loss)

        features = states[:-1].detach()
        if critic_logits is None:
            critic_logits = critic.logits(features)
        critic_loss = critic.loss(critic_logits, features, returns, alive)
        self._step(self.critic_optimizer, critic, critic_loss)
        critic.update_slow()
        # The critic's value and the imagined chance to continue show whether the critic
        # has learned the returns' scale.
        metrics = host_scalars(
            {
                "actor_loss": actor_loss,
                "critic_loss": critic_loss,
                "imagined_return": returns.mean(),
                "imagined_value": value.mean(),
                "imagined_continue": continues.mean(),
                "return_scale": self.return_scale,
                "entropy": entropy.mean(),
            }
        )
        if not np.isfinite([metrics["actor_loss"], metrics["critic_loss"]]).all():
            raise ModelOutputError(
                f"Dreamer: actor loss {metrics['actor_loss']}, critic loss "
                f"{metrics['critic_loss']}; imagined rollouts produced NaN or infinite values"
            )
        return metrics

    def _step(
        self, optimizer: torch.optim.Optimizer, module: torch.nn.Module, loss: torch.Tensor
    ) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.max_grad_norm)
        optimizer.step()
