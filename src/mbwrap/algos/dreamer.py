"""Dreamer with the DreamerV3 recipe (Hafner et al. 2023, "Mastering Diverse Domains
through World Models").

Each real step the agent filters its latent state with the RSSM's posterior and samples
an action from the actor. Every so often (``train_ratio``) it takes a gradient step:

1. **World model**: a batch of replayed sequences (across episode boundaries), the RSSM
   loss (reconstruction, symlog two-hot reward, continuation, balanced KL with free
   bits); the posterior states become imagination starts.
2. **Imagination**: ``horizon`` (15) steps of the prior from every posterior state with
   actions from the actor.
3. **Critic**: two-hot symlog regression on lambda-returns (lambda 0.95, discount 0.997),
   regularised towards its slow EMA copy.
4. **Actor**: advantages ``(R - v) / max(1, S)`` with ``S`` the EMA of the 5th-95th
   percentile range of the returns, entropy bonus 3e-4; REINFORCE for Discrete actions,
   backpropagation through the model's dynamics for Box actions.

``train_ratio`` is DreamerV3's: replayed steps per env step. One gradient step replays
``batch_size x sequence_length`` steps, so the agent takes
``train_ratio / (batch_size * sequence_length)`` gradient steps per env step (e.g. 512 /
(16 x 64) = one every two env steps).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.base import Algorithm, buffer_tensors, env_id, restore_buffer
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.errors import ModelOutputError
from mbwrap.models.actor_critic import LatentActor, LatentCritic
from mbwrap.models.rssm import RSSM
from mbwrap.returns import lambda_returns, percentile_range
from mbwrap.spaces import as_batch
from mbwrap.transforms import scalar_to_two_hot, symlog


def _positive(value: Any, name: str, kind: type = int) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value <= 0:
        raise ValueError(f"{name}: expected a positive {kind.__name__}, got {value!r}")
    return kind(value)


class Dreamer(Algorithm):
    """DreamerV3-style agent: an RSSM world model and an actor-critic trained in it.

    Defaults are DreamerV3's (Appendix, Table of hyperparameters): imagination horizon
    15, discount 0.997, lambda 0.95, actor and critic learning rate 3e-5 (Adam, epsilon
    1e-5, gradient norm clipped at 100), entropy 3e-4, return normalisation decay 0.99,
    slow critic fraction 0.02, batches of 16 sequences of 64 steps, train ratio 512, and
    the RSSM's size S. Smaller settings for small budgets live in
    :data:`mbwrap.algos.presets.PRESETS`.

    :param env: the real env (``gymnasium.Env`` or SB3 ``VecEnv``).
    :param model_kwargs: keywords of :class:`~mbwrap.models.RSSM` (sizes, learning rate,
        ``batch_size``, ``sequence_length``...).
    :param hidden: width of the actor's and critic's hidden layers.
    :param layers: their hidden layers.
    :param horizon: imagination horizon.
    :param discount: ``gamma``.
    :param lambda_: of the lambda-returns.
    :param actor_lr: actor learning rate.
    :param critic_lr: critic learning rate.
    :param entropy_coef: ``eta``, the entropy bonus.
    :param train_ratio: replayed steps per env step (see the module docstring).
    :param learning_starts: real steps of uniformly random actions before training.
    :param buffer_capacity: real transitions kept (DreamerV3 keeps 10^6; the buffer is
        preallocated, so the default is smaller).
    :param grad_clip: the actor's and critic's global gradient norm clip.
    """

    registry_name: ClassVar[str | None] = "dreamer"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        *,
        model_kwargs: dict[str, Any] | None = None,
        hidden: int = 512,
        layers: int = 2,
        horizon: int = 15,
        discount: float = 0.997,
        lambda_: float = 0.95,
        actor_lr: float = 3e-5,
        critic_lr: float = 3e-5,
        entropy_coef: float = 3e-4,
        train_ratio: float = 512.0,
        learning_starts: int = 1024,
        buffer_capacity: int = 100_000,
        grad_clip: float = 100.0,
        return_decay: float = 0.99,
        seed: int | None = None,
        device: str | torch.device = "auto",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        stats_window_size: int = 100,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__(
            env,
            seed=seed,
            device=device,
            verbose=verbose,
            tensorboard_log=tensorboard_log,
            stats_window_size=stats_window_size,
            observation_space=observation_space,
            action_space=action_space,
        )
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount: expected a value in (0, 1], got {discount!r}")
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError(f"lambda_: expected a value in [0, 1], got {lambda_!r}")
        if entropy_coef < 0:
            raise ValueError(f"entropy_coef: expected a value >= 0, got {entropy_coef!r}")
        if not isinstance(learning_starts, (int, np.integer)) or learning_starts < 0:
            raise ValueError(f"learning_starts: expected an int >= 0, got {learning_starts!r}")
        self.model_kwargs = dict(model_kwargs or {})
        self.model = RSSM(
            self.observation_space,
            self.action_space,
            env_id=env_id(self.env),
            device=self.device,
            **self.model_kwargs,
        )
        hidden, layers = _positive(hidden, "hidden"), _positive(layers, "layers")
        self.actor = LatentActor(self.model.feature_size, self.action_space, hidden, layers).to(
            self.device
        )
        self.critic = LatentCritic(self.model.feature_size, hidden, layers).to(self.device)
        self.settings = {
            "hidden": hidden,
            "layers": layers,
            "horizon": _positive(horizon, "horizon"),
            "discount": float(discount),
            "lambda_": float(lambda_),
            "actor_lr": _positive(actor_lr, "actor_lr", float),
            "critic_lr": _positive(critic_lr, "critic_lr", float),
            "entropy_coef": float(entropy_coef),
            "train_ratio": _positive(train_ratio, "train_ratio", float),
            "learning_starts": int(learning_starts),
            "buffer_capacity": _positive(buffer_capacity, "buffer_capacity"),
            "grad_clip": _positive(grad_clip, "grad_clip", float),
            "return_decay": float(return_decay),
        }
        # DreamerV3: Adam with epsilon 1e-5 for the actor and critic.
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=actor_lr, eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=critic_lr, eps=1e-5)
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            self.settings["buffer_capacity"],
            device=self.device,
            n_envs=self.n_envs,
        )
        self.return_scale = torch.zeros((), device=self.device)
        self.gradient_steps = 0
        self._update_credit = 0.0
        self._generator = make_generator(self.device, seed)
        self._data_generator = make_generator(
            self.buffer.device, None if seed is None else seed + 1
        )

    # ------------------------------------------------------------------ acting
    def _filter(
        self, obs: Any, state: tuple[np.ndarray, ...] | None, episode_start: np.ndarray | None
    ) -> tuple[torch.Tensor, bool]:
        """The posterior states ``[n, F]`` after ``obs``, continuing ``state`` where no
        episode starts."""
        if isinstance(self.observation_space, spaces.Dict):
            raise NotImplementedError("Dreamer.predict: Dict observations are not supported yet")
        tensor, batched = as_batch(
            obs, self.observation_space, name="observation", device=self.device
        )
        n = tensor.shape[0]
        embed = self.model.embed(tensor)
        fresh = self.model.first_posterior(embed, self._generator)
        if state is None or len(state) != 2 or state[0].shape[0] != n:
            return fresh, batched
        latent = torch.as_tensor(state[0], device=self.device)
        action = torch.as_tensor(state[1], device=self.device)
        filtered, _, _ = self.model.obs_step(latent, action, embed, self._generator)
        if episode_start is None:
            return filtered, batched
        starts = torch.as_tensor(np.asarray(episode_start, dtype=bool), device=self.device)
        return torch.where(starts.reshape(n, 1), fresh, filtered), batched

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
        latent, batched = self._filter(observation, state, episode_start)
        raw, vector, _ = self.actor.sample(latent, deterministic)
        actions = self.actor.env_action(raw).cpu().numpy()
        next_state = (latent.cpu().numpy(), vector.cpu().numpy())
        return (actions if batched else actions[0]), next_state

    # ------------------------------------------------------------------ training
    def _imagine_and_learn(self, starts: torch.Tensor) -> dict[str, float]:
        """Actor and critic updates on imagined rollouts from ``starts [N, F]``."""
        cfg = self.settings
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
            states, _ = model.imagine(policy, starts.detach(), cfg["horizon"], self._generator)
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
            reward, value, continues, discount=cfg["discount"], lambda_=cfg["lambda_"]
        )
        # The chance of still being in the episode at each step (DreamerV3 weights every
        # loss term of step t by it).
        alive = torch.cumprod(
            torch.cat([torch.ones_like(continues[:1]), cfg["discount"] * continues[:-1]]), 0
        ).detach()
        decay = cfg["return_decay"]
        self.return_scale = decay * self.return_scale + (1 - decay) * percentile_range(returns)
        scale = torch.clamp(self.return_scale, min=1.0)
        advantage = (returns - value[:-1]) / scale
        entropy = torch.stack([self.actor.entropy(d) for d in dists])  # [H, N]
        if self.actor.discrete:
            log_prob = torch.stack(
                [self.actor.log_prob(d, r) for d, r in zip(dists, raws, strict=True)]
            )
            objective = log_prob * advantage.detach()
        else:
            objective = advantage
        actor_loss = -(alive * (objective + cfg["entropy_coef"] * entropy)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg["grad_clip"])
        self.actor_optimizer.step()

        features = states[:-1].detach()
        if critic_logits is None:
            critic_logits = critic.logits(features)
        logits = torch.log_softmax(critic_logits, -1)
        target = scalar_to_two_hot(symlog(returns.detach()), critic.bins)
        critic_loss = -(target * logits).sum(-1)
        # DreamerV3: regularise towards the slow critic's predictions (weight 1).
        critic_loss = critic_loss - (critic.slow_probs(features) * logits).sum(-1)
        critic_loss = (alive * critic_loss).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg["grad_clip"])
        self.critic_optimizer.step()
        critic.update_slow()
        if not (torch.isfinite(actor_loss) and torch.isfinite(critic_loss)):
            raise ModelOutputError(
                f"Dreamer: actor loss {float(actor_loss)}, critic loss {float(critic_loss)}; "
                "imagined rollouts produced NaN or infinite values"
            )
        return {
            "actor_loss": float(actor_loss.detach()),
            "critic_loss": float(critic_loss.detach()),
            "imagined_return": float(returns.mean().detach()),
            "return_scale": float(self.return_scale),
            "entropy": float(entropy.mean().detach()),
        }

    def train_step(self) -> dict[str, float]:
        """One world-model step and one actor-critic step on a replayed batch."""
        cfg = self.model.config
        sequence = self.buffer.sample_sequences(
            cfg["batch_size"],
            cfg["sequence_length"],
            generator=self._data_generator,
            cross_episodes=True,
        )
        metrics, posterior = self.model.train_step(sequence, self._generator)
        metrics.update(self._imagine_and_learn(posterior.reshape(-1, posterior.shape[-1])))
        self.gradient_steps += 1
        return metrics

    def gradient_steps_per_env_step(self) -> float:
        """``train_ratio / (batch_size * sequence_length)``."""
        cfg = self.model.config
        return self.settings["train_ratio"] / (cfg["batch_size"] * cfg["sequence_length"])

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "Dreamer",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Dreamer:
        """Act and train for ``total_timesteps`` real env steps.

        :param log_interval: finished episodes between log dumps (0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        per_step = self.gradient_steps_per_env_step()
        episodes_logged, metrics = self._episode_num, {}
        while self.num_timesteps < total_timesteps:
            random = self.num_timesteps < self.settings["learning_starts"]
            if not self._collect_real_steps(
                self.buffer, self.n_envs, callback, policy=None if random else self
            ):
                break
            if random:
                # The random phase keeps no latent state; filtering starts afresh.
                self._policy_state = None
                continue
            ready = self.buffer.stored_rows >= self.model.config["sequence_length"]
            if ready:
                self._update_credit += per_step * self.n_envs
                while self._update_credit >= 1.0:
                    metrics = self.train_step()
                    self._update_credit -= 1.0
            if log_interval and self._episode_num - episodes_logged >= log_interval:
                episodes_logged = self._episode_num
                self._record_metrics("train", {**metrics, "gradient_steps": self.gradient_steps})
                self._dump_logs()
        callback.on_training_end()
        return self

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        return {"model_kwargs": self.model.get_config(), **self.settings}

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """World model, actor, critic (with its slow copy), return scale and the buffer."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"actor.{k}": v for k, v in self.actor.state_dict().items()})
        tensors.update({f"critic.{k}": v for k, v in self.critic.state_dict().items()})
        tensors["return_scale"] = self.return_scale.detach().clone()
        tensors.update(buffer_tensors(self.buffer, "buffer"))
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for prefix, module in (
            ("model.", self.model),
            ("actor.", self.actor),
            ("critic.", self.critic),
        ):
            part = {
                k[len(prefix) :]: v.to(self.device)
                for k, v in tensors.items()
                if k.startswith(prefix)
            }
            module.load_state_dict(part)
        self.return_scale = tensors["return_scale"].to(self.device)
        restore_buffer(self.buffer, tensors, "buffer")
