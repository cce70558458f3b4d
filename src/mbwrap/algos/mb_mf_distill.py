"""MB-MF's hand-over from the MPC expert to an SB3 agent (Nagabandi et al. 2018, Section V):
behaviour cloning of the expert's actions into the agent's policy network, the expert
labelling the states the policy visits (DAgger), the real data and critic the agent starts
model-free fine-tuning with, and the callback that keeps MB-MF's run while it fine-tunes."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import TrainFrequencyUnit

from mbwrap.algos.state import env_rng_states
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.planners import Planner
from mbwrap.spaces import action_bounds, scale_action
from mbwrap.types import Transition

#: Behaviour-cloning losses: the policy's deterministic action regressed on the expert's
#: (Nagabandi et al. 2018, Section V), or the expert action's log-likelihood.
BC_LOSSES: tuple[str, ...] = ("mse", "nll")


def _scaled(actions: torch.Tensor, space: gym.spaces.Box) -> torch.Tensor:
    """``[B, *act_shape]`` Box actions in env units -> ``[B, prod(act_shape)]`` in ``[-1, 1]``."""
    low, high = action_bounds(space, actions.device, flat=True)
    return scale_action(actions.reshape(actions.shape[0], -1).float(), low, high)


def deterministic_actions(policy: BasePolicy, obs: torch.Tensor) -> torch.Tensor:
    """The differentiable deterministic action of an SB3 policy, ``[B, *act_shape]``: the
    mean (mode) of an actor-critic policy's distribution, or an off-policy actor's output
    (SAC's with ``deterministic=True``). Squashing policies answer in ``[-1, 1]``, others in
    env units, unclipped."""
    if isinstance(policy, ActorCriticPolicy):
        return policy.get_distribution(obs).mode()
    actor = policy.actor  # type: ignore[attr-defined]
    if "deterministic" in inspect.signature(actor.forward).parameters:
        return actor(obs, deterministic=True)
    return actor(obs)


def imitation_loss(
    policy: BasePolicy, obs: torch.Tensor, expert_actions: torch.Tensor, *, loss: str
) -> torch.Tensor:
    """The behaviour-cloning loss of an SB3 policy on expert pairs, averaged over the batch.

    ``"mse"``: the squared error between the policy's deterministic action and the expert's,
    both scaled to ``[-1, 1]`` (Nagabandi et al. 2018, Section V); a Gaussian policy's
    standard deviation stays as it is. ``"nll"``: the negative log-likelihood of the
    expert's action, which fits the standard deviation too: an actor-critic policy's
    ``evaluate_actions`` (for Discrete actions, the cross-entropy), or a stochastic
    off-policy actor's squashed Gaussian (SAC's ``get_action_dist_params``).

    :param obs: ``[B, *obs_shape]``.
    :param expert_actions: ``[B, *act_shape]`` in env units (Discrete: ``[B]`` int64).
    :return: a scalar.
    """
    space = policy.action_space
    if loss == "nll" and isinstance(policy, ActorCriticPolicy):
        actions = expert_actions
        if isinstance(space, gym.spaces.Box) and policy.squash_output:
            actions = _scaled(expert_actions, space).reshape(expert_actions.shape)
        _, log_prob, _ = policy.evaluate_actions(obs, actions)
        return -log_prob.mean()
    if loss == "nll":
        actor = policy.actor  # type: ignore[attr-defined]
        mean, log_std, extra = actor.get_action_dist_params(obs)
        distribution = actor.action_dist.proba_distribution(mean, log_std, **extra)
        return -distribution.log_prob(_scaled(expert_actions, space)).mean()
    predicted = deterministic_actions(policy, obs)
    predicted = predicted.reshape(predicted.shape[0], -1)
    if not policy.squash_output:
        predicted = _scaled(predicted, space)
    return torch.mean((predicted - _scaled(expert_actions, space)) ** 2)


def action_gap(actions: torch.Tensor, expert_actions: torch.Tensor, space: gym.Space) -> float:
    """How far ``actions`` are from ``expert_actions`` (both ``[N, *act_shape]``, env units):
    the mean squared difference of Box actions scaled to ``[-1, 1]``, or the fraction of
    different Discrete actions."""
    if isinstance(space, gym.spaces.Discrete):
        return float((actions.reshape(-1) != expert_actions.reshape(-1)).float().mean())
    return float(torch.mean((_scaled(actions, space) - _scaled(expert_actions, space)) ** 2))


def expert_labels(planner: Planner, obs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The planner's actions for a batch of states of many episodes, ``batch_size`` per call:
    ``obs: [N, *obs_shape] -> [N, *act_shape]``. Its warm start is cleared after, so the
    next real step does not start from a labelled state's plan."""
    obs_np = obs.detach().cpu().numpy()
    labels = [
        planner.predict(obs_np[i : i + batch_size], deterministic=True)[0]
        for i in range(0, len(obs_np), batch_size)
    ]
    planner.reset()
    return torch.as_tensor(np.concatenate(labels))


def policy_gap(agent: BaseAlgorithm, obs: torch.Tensor, expert_actions: torch.Tensor) -> float:
    """:func:`action_gap` of ``agent``'s deterministic actions on ``obs`` (``[N,
    *obs_shape]``) from ``expert_actions`` (``[N, *act_shape]``)."""
    actions, _ = agent.predict(obs.detach().cpu().numpy(), deterministic=True)
    actions = torch.as_tensor(actions, device=expert_actions.device)
    return action_gap(actions, expert_actions, agent.action_space)


def clone(
    agent: BaseAlgorithm,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    *,
    loss: str,
    epochs: int,
    batch_size: int,
) -> dict[str, float]:
    """Behaviour cloning: ``epochs`` passes of ``optimizer`` on :func:`imitation_loss` over
    the pairs, in shuffled minibatches (the global torch generator shuffles).

    :param obs: ``[N, *obs_shape]``.
    :param actions: ``[N, *act_shape]``, the expert's, in env units.
    :return: the loss of the first and last epochs, and :func:`policy_gap` before and after.
    """
    n, policy = len(obs), agent.policy
    gap_before = policy_gap(agent, obs, actions)
    policy.set_training_mode(True)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, device=obs.device)
        total = torch.zeros((), device=obs.device)
        for first in range(0, n, batch_size):
            index = order[first : first + batch_size]
            value = imitation_loss(policy, obs[index], actions[index], loss=loss)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += value.detach() * len(index)
        losses.append(float(total) / n)
    policy.set_training_mode(False)
    if hasattr(policy, "actor_target"):  # TD3's target actor follows the cloned actor
        policy.actor_target.load_state_dict(policy.actor.state_dict())
    gap = policy_gap(agent, obs, actions)
    return {"bc_loss_first_epoch": losses[0], "bc_loss": losses[-1], "pairs": n,
            "expert_gap_before": gap_before, "expert_gap": gap}


def check_distillable(
    cls: type[BaseAlgorithm], action_space: gym.Space, *, bc_loss: str, critic_warmup_steps: int
) -> None:
    """Raise unless MB-MF can clone an expert into ``cls``'s policy with ``bc_loss`` (and
    warm up its critic for ``critic_warmup_steps``)."""
    name = cls.__name__
    if bc_loss == "mse" and isinstance(action_space, gym.spaces.Discrete):
        raise ValueError("bc_loss: Discrete actions are cloned with 'nll' (cross-entropy)")
    off_policy = issubclass(cls, OffPolicyAlgorithm)
    if critic_warmup_steps and not off_policy:
        raise ValueError(
            f"critic_warmup_steps: only off-policy agents have a critic trained from a "
            f"replay buffer; {name} needs 0"
        )
    policies = list(cls.policy_aliases.values())
    if issubclass(cls, OnPolicyAlgorithm) and policies:
        # A recurrent policy's evaluate_actions also needs its LSTM states.
        recurrent = any(
            "lstm_states" in inspect.signature(p.evaluate_actions).parameters for p in policies
        )
        if not recurrent:
            return
    if off_policy and any(hasattr(p, "make_actor") for p in policies):
        if not isinstance(action_space, gym.spaces.Box):
            raise UnsupportedSpaceError(
                f"env.action_space: {name} is distilled through its actor, which needs a Box "
                f"action space; got {action_space!r}. Use PPO, A2C or TRPO for Discrete actions"
            )
        return
    raise TypeError(
        "agent: MB-MF distils the MPC expert into the agent's policy network; expected an "
        "on-policy actor-critic (PPO, A2C, TRPO) or an off-policy algorithm with an actor "
        f"(SAC, TD3, TQC), got {name}"
    )


def cloning_optimizer(
    agent: BaseAlgorithm, *, loss: str, learning_rate: float
) -> torch.optim.Optimizer:
    """Adam over the parameters :func:`imitation_loss` reaches in ``agent``'s policy: an
    off-policy agent's actor, an actor-critic's whole policy (Adam skips the value head,
    which gets no gradient).

    :raises ValueError: for ``"nll"`` with a deterministic actor (TD3's).
    """
    policy = agent.policy
    if not isinstance(agent, OffPolicyAlgorithm):
        return torch.optim.Adam(policy.parameters(), lr=learning_rate)
    if loss == "nll" and not hasattr(policy.actor, "get_action_dist_params"):
        raise ValueError(
            f"bc_loss: 'nll' needs a stochastic policy; {type(agent).__name__}'s actor is "
            "deterministic, clone it with 'mse'"
        )
    return torch.optim.Adam(policy.actor.parameters(), lr=learning_rate)


def fill_replay_buffer(agent: OffPolicyAlgorithm, data: Transition) -> None:
    """``data`` (transitions, ``n_envs`` per vector step, oldest first) into an off-policy
    agent's replay buffer: actions scaled as SB3 stores them, and time-limit truncations do
    not end the bootstrap."""
    replay = agent.replay_buffer
    width = replay.n_envs
    rows = len(data) - len(data) % width
    fields = [
        getattr(data, name)[:rows].cpu().numpy()
        for name in ("obs", "next_obs", "action", "reward", "terminated")
    ]
    obs, next_obs, action, reward, terminated = (
        f.reshape(rows // width, width, *f.shape[1:]) for f in fields
    )
    action = agent.policy.scale_action(action.reshape(*action.shape[:2], -1))
    infos: list[dict[str, Any]] = [{} for _ in range(width)]
    for i in range(rows // width):
        replay.add(obs[i], next_obs[i], action[i], reward[i], terminated[i], infos)


def prepare_finetuning(agent: BaseAlgorithm, data: Transition, critic_warmup_steps: int) -> None:
    """An off-policy agent gets ``data`` in its replay buffer (:func:`fill_replay_buffer`)
    and its critic is fit to its current (cloned) actor for ``critic_warmup_steps`` of the
    agent's own updates, the actor's parameters frozen; an on-policy agent needs nothing."""
    if not isinstance(agent, OffPolicyAlgorithm):
        return
    fill_replay_buffer(agent, data)
    if not critic_warmup_steps:
        return
    actor = agent.policy.actor  # type: ignore[attr-defined]
    actor.requires_grad_(False)
    try:
        agent.train(gradient_steps=critic_warmup_steps, batch_size=agent.batch_size)
    finally:
        actor.requires_grad_(True)


def _ends_rollout(local_vars: dict[str, Any]) -> bool:
    """Whether the agent step a callback sees completes the agent's rollout, from SB3's
    ``collect_rollouts`` locals; after it SB3 trains, then ends ``learn`` at its total."""
    if "n_rollout_steps" in local_vars:  # on-policy; n_steps counts the earlier steps
        return local_vars["n_steps"] + 1 >= local_vars["n_rollout_steps"]
    train_freq = local_vars.get("train_freq")  # off-policy
    return (
        train_freq is not None
        and train_freq.unit == TrainFrequencyUnit.STEP
        and local_vars.get("num_collected_steps", 0) >= train_freq.frequency
    )


class FinetuneRelay(BaseCallback):
    """The callback the agent's ``learn`` gets during fine-tuning: it keeps the MB-MF
    algorithm's real-step counts, episode statistics and env random states (for exact
    resume), relays every step to the callback given to ``MBMF.learn`` (whose model
    stays the MB-MF algorithm, so ``EvalCallback`` evaluates and saves it), and stops the
    agent at the real-step budget."""

    def __init__(self, algo: Any, callback: BaseCallback, total_timesteps: int) -> None:
        super().__init__()
        self.algo, self.callback, self.total_timesteps = algo, callback, total_timesteps
        self.continue_training = True
        self._env_rngs = env_rng_states(algo.env)

    def _on_rollout_start(self) -> None:
        self.callback.on_rollout_start()

    def _on_rollout_end(self) -> None:
        self.callback.on_rollout_end()

    def _on_step(self) -> bool:
        algo = self.algo
        algo.real_steps += self.model.num_timesteps - algo.num_timesteps
        algo.num_timesteps = self.model.num_timesteps
        # Nothing draws from the env's generators between steps but the step's own reset.
        algo._env_rngs_before_step, self._env_rngs = self._env_rngs, env_rng_states(algo.env)
        # Where the real env is now: SB3 leaves its own _last_obs behind when a callback
        # stops it, and MB-MF hands this one to the agent's next learn().
        algo._last_obs = algo._collected_obs = self.locals["new_obs"]
        algo._episode_starts = self.locals["dones"]
        algo._update_info_buffer(self.locals.get("infos", []))
        self.callback.update_locals(self.locals)
        if not self.callback.on_step():
            self.continue_training = False
            return False
        return algo.num_timesteps < self.total_timesteps or _ends_rollout(self.locals)
