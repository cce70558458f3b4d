"""MB-MF (Nagabandi, Kahn, Fearing & Levine 2018, "Neural Network Dynamics for Model-Based
Deep Reinforcement Learning with Model-Free Fine-Tuning", ICRA; arXiv 1708.02596): a learned
dynamics model and MPC reach good behaviour in few real steps, the MPC controller is distilled
into a neural network policy by DAgger, and a model-free algorithm fine-tunes that policy.

Three phases inside one ``learn()``, all counted in real env steps::

    model-based (Algorithm 1)  random steps; fit the model; repeat: act with random-shooting
                               MPC, aggregate the data, refit on all of it
    distill (Section V)        behaviour cloning on (state, MPC action) pairs of the expert's
                               own visits; then DAgger: roll out the policy, label the states
                               it visits with the MPC expert, aggregate, retrain
    finetune (Section V)       the SB3 agent learns model-free on the real env for the rest
                               of the budget (the paper uses TRPO)

Defaults follow the authors' released code (github.com/anagabandi/nn_dynamics):
``yaml_files/cheetah_forward.yaml`` for the model-based phase and ``mbmf.py`` for the
distillation.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agents import (
    agent_config,
    agent_name,
    build_agent,
    check_agent,
    decode_kwargs,
    encode_kwargs,
)
from mbwrap.algos.base import (
    Algorithm,
    buffer_tensors,
    env_id,
    model_config,
    resolve_model,
    restore_buffer,
    wrap_env,
)
from mbwrap.buffers import ReplayBuffer
from mbwrap.envs import DreamVecEnv, as_vec_env
from mbwrap.errors import UnsupportedSpaceError
from mbwrap.models import WorldModel
from mbwrap.registry import make_planner
from mbwrap.spaces import check_same_space

#: The phases, in the order :meth:`MBMF.learn` goes through them.
PHASES: tuple[str, ...] = ("model-based", "distill", "finetune")

#: Behaviour-cloning losses: the policy's deterministic action regressed on the expert's
#: (Nagabandi et al. 2018, Section V), or the expert action's log-likelihood.
BC_LOSSES: tuple[str, ...] = ("mse", "nll")

def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive float, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------- behaviour cloning
def scale_actions(actions: torch.Tensor, space: gym.spaces.Box) -> torch.Tensor:
    """Box actions from ``[low, high]`` to ``[-1, 1]`` (SB3's ``scale_action``, in torch).

    :param actions: ``[B, *act_shape]``.
    :return: ``[B, prod(act_shape)]``.
    """
    low = torch.as_tensor(space.low, dtype=torch.float32, device=actions.device).reshape(-1)
    high = torch.as_tensor(space.high, dtype=torch.float32, device=actions.device).reshape(-1)
    return 2.0 * (actions.reshape(actions.shape[0], -1) - low) / (high - low) - 1.0


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
            actions = scale_actions(expert_actions, space).reshape(expert_actions.shape)
        _, log_prob, _ = policy.evaluate_actions(obs, actions)
        return -log_prob.mean()
    if loss == "nll":
        actor = policy.actor  # type: ignore[attr-defined]
        mean, log_std, extra = actor.get_action_dist_params(obs)
        distribution = actor.action_dist.proba_distribution(mean, log_std, **extra)
        return -distribution.log_prob(scale_actions(expert_actions, space)).mean()
    predicted = deterministic_actions(policy, obs)
    predicted = predicted.reshape(predicted.shape[0], -1)
    if not policy.squash_output:
        predicted = scale_actions(predicted, space)
    return torch.mean((predicted - scale_actions(expert_actions, space)) ** 2)


def _check_distillable(cls: type[BaseAlgorithm], action_space: gym.Space) -> None:
    """Raise unless MB-MF can clone an expert into ``cls``'s policy."""
    name = cls.__name__
    policies = list(cls.policy_aliases.values())
    if issubclass(cls, OnPolicyAlgorithm) and policies:
        # A recurrent policy's evaluate_actions also needs its LSTM states.
        recurrent = any(
            "lstm_states" in inspect.signature(p.evaluate_actions).parameters for p in policies
        )
        if not recurrent:
            return
    if issubclass(cls, OffPolicyAlgorithm) and any(hasattr(p, "make_actor") for p in policies):
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


# ---------------------------------------------------------------------- fine-tuning callback
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


class _FinetuneRelay(BaseCallback):
    """The callback the agent's ``learn`` gets during fine-tuning.

    It keeps the MB-MF algorithm's real-step count and episode statistics, relays every
    step (with SB3's locals) to the callback given to :meth:`MBMF.learn`, whose model stays
    the MB-MF algorithm (so ``EvalCallback`` evaluates and saves it), and stops the agent at
    the real-step budget.
    """

    def __init__(self, algo: MBMF, callback: BaseCallback, total_timesteps: int) -> None:
        super().__init__()
        self.algo, self.callback, self.total_timesteps = algo, callback, total_timesteps
        self.continue_training = True

    def _on_rollout_start(self) -> None:
        self.callback.on_rollout_start()

    def _on_rollout_end(self) -> None:
        self.callback.on_rollout_end()

    def _on_step(self) -> bool:
        self.algo.num_timesteps = self.model.num_timesteps
        self.algo._update_info_buffer(self.locals.get("infos", []))
        self.callback.update_locals(self.locals)
        if not self.callback.on_step():
            self.continue_training = False
            return False
        return self.algo.num_timesteps < self.total_timesteps or _ends_rollout(self.locals)


# ---------------------------------------------------------------------- the algorithm
class MBMF(Algorithm):
    """MB-MF: model-based RL with MPC, distilled into an SB3 agent, fine-tuned model-free.

    ``learn(total_timesteps)`` goes through :data:`PHASES` in order (attribute
    :attr:`phase`), resuming where the previous call stopped; every phase's real steps
    count in :attr:`num_timesteps`, fire the callbacks and are the budget:

    1. **model-based** (``model_based_steps`` real steps): ``initial_random_steps`` uniformly
       random steps, a fit of the model, then iterations of ``mpc_steps_per_iteration``
       steps acting with the MPC planner (``planner``, built on the model), each followed
       by a refit on every real transition (on-policy data aggregation);
    2. **distill** (``dagger_iterations * dagger_steps`` real steps): the agent's policy is
       trained by behaviour cloning (:func:`imitation_loss`, ``bc_epochs`` epochs of Adam)
       on the states the MPC expert visited in phase 1 with the actions it took; then each
       DAgger iteration rolls out the agent's deterministic policy for ``dagger_steps`` real
       steps, labels every visited state with the expert's action (the planner plans for
       ``label_batch_size`` states per batched call), aggregates and retrains. The model
       stays as phase 1 left it, so the expert does too;
    3. **finetune** (the rest): ``agent.learn(..., reset_num_timesteps=False)`` on the real
       env. An off-policy agent's replay buffer first gets every real transition so far,
       and its critic ``critic_warmup_steps`` gradient steps with the actor frozen.

    :meth:`predict` is the MPC expert's during phase 1 and the agent's afterwards. Logs:
    ``model/`` (fits), ``mpc/`` (phase 1), ``distill/`` (behaviour cloning and DAgger),
    ``finetune/`` and the agent's own ``train/`` and ``rollout/``.

    :param env: the real env.
    :param agent: the SB3 algorithm distilled into and fine-tuned: an on-policy
        actor-critic (``"PPO"``, the stand-in for the paper's TRPO; ``"A2C"``; sb3-contrib's
        ``"TRPO"``) or an off-policy algorithm with an actor (``"SAC"``, ``"TD3"``...), as a
        name, class or instance (with the env's number of envs). A name or class is built on
        the real env with ``agent_kwargs``.
    :param model: a registered model name (built with ``model_kwargs``) or a
        :class:`~mbwrap.models.WorldModel`; the default ``"mlp"`` is the paper's network.
    :param planner: a registered planner name, built on the model with ``planner_kwargs``
        (and ``seed``); for ``"random-shooting"`` they default to the released code's 1000
        candidates over 20 steps.
    :param initial_random_steps: uniformly random real steps before the first fit.
    :param model_based_steps: real steps of phase 1, the random ones included.
    :param mpc_steps_per_iteration: MPC real steps between refits.
    :param dagger_iterations: DAgger iterations (0: behaviour cloning only).
    :param dagger_steps: real steps the policy takes per DAgger iteration.
    :param bc_loss: one of :data:`BC_LOSSES` (see :func:`imitation_loss`). ``"mse"``, the
        paper's, fits the policy's mean only: a random-shooting expert's actions are noisy,
        and the likelihood would also shrink the policy's standard deviation to that noise,
        which then sets the fine-tuning agent's exploration (the paper sets it apart, to 0.5
        for TRPO). ``"nll"`` needs a stochastic policy (not TD3's) and is the only choice
        for Discrete actions.
    :param bc_epochs: passes over the aggregated pairs per behaviour-cloning fit.
    :param bc_batch_size: pairs per Adam step.
    :param bc_learning_rate: Adam's step size for behaviour cloning.
    :param label_batch_size: states the expert labels per planner call (bounds the memory
        of ``label_batch_size * population`` model rollouts).
    :param critic_warmup_steps: critic-only gradient steps before off-policy fine-tuning
        (0 for on-policy agents).
    :param buffer_capacity: real transitions kept; at least ``model_based_steps``.
    :param fit_kwargs: passed to ``model.fit``.
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name: ClassVar[str] = "mb-mf"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        agent: str | type[BaseAlgorithm] | BaseAlgorithm = "PPO",
        model: str | WorldModel = "mlp",
        planner: str = "random-shooting",
        *,
        agent_kwargs: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        planner_kwargs: dict[str, Any] | None = None,
        # cheetah_forward.yaml: 10 random rollouts of 1000 steps, then 7 aggregation
        # iterations of 10 MPC rollouts each, refitting after each.
        initial_random_steps: int = 10_000,
        model_based_steps: int = 80_000,
        mpc_steps_per_iteration: int = 10_000,
        # mbmf.py (cheetah): 3 DAgger iterations of 2 rollouts of 1000 steps; Adam with
        # learning rate 1e-3, batches of 512, 300 epochs per fit; the loss is the squared
        # error of the policy's mean.
        dagger_iterations: int = 3,
        dagger_steps: int = 2_000,
        bc_loss: str = "mse",
        bc_epochs: int = 300,
        bc_batch_size: int = 512,
        bc_learning_rate: float = 1e-3,
        label_batch_size: int = 256,
        critic_warmup_steps: int = 0,
        buffer_capacity: int = 1_000_000,
        fit_kwargs: dict[str, Any] | None = None,
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
        agent = check_agent(agent)
        agent_cls = agent if isinstance(agent, type) else type(agent)
        _check_distillable(agent_cls, self.action_space)
        self.initial_random_steps = _positive_int(initial_random_steps, "initial_random_steps")
        self.model_based_steps = _positive_int(
            model_based_steps, "model_based_steps", self.initial_random_steps
        )
        self.mpc_steps_per_iteration = _positive_int(
            mpc_steps_per_iteration, "mpc_steps_per_iteration"
        )
        self.dagger_iterations = _positive_int(dagger_iterations, "dagger_iterations", 0)
        self.dagger_steps = _positive_int(dagger_steps, "dagger_steps")
        if bc_loss not in BC_LOSSES:
            raise ValueError(f"bc_loss: expected one of {BC_LOSSES}, got {bc_loss!r}")
        self.off_policy = issubclass(agent_cls, OffPolicyAlgorithm)
        if bc_loss == "mse" and isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError("bc_loss: Discrete actions are cloned with 'nll' (cross-entropy)")
        self.bc_loss = bc_loss
        self.bc_epochs = _positive_int(bc_epochs, "bc_epochs")
        self.bc_batch_size = _positive_int(bc_batch_size, "bc_batch_size")
        self.bc_learning_rate = _positive_float(bc_learning_rate, "bc_learning_rate")
        self.label_batch_size = _positive_int(label_batch_size, "label_batch_size")
        self.critic_warmup_steps = _positive_int(critic_warmup_steps, "critic_warmup_steps", 0)
        if self.critic_warmup_steps and not self.off_policy:
            raise ValueError(
                f"critic_warmup_steps: only off-policy agents have a critic trained from a "
                f"replay buffer; {agent_cls.__name__} needs 0"
            )
        buffer_capacity = _positive_int(buffer_capacity, "buffer_capacity")
        if buffer_capacity < self.model_based_steps:
            raise ValueError(
                f"buffer_capacity: {buffer_capacity} cannot hold the {self.model_based_steps} "
                "model-based steps every refit uses"
            )
        self.fit_kwargs = dict(fit_kwargs or {})
        self.model = resolve_model(
            model,
            model_kwargs,
            self.observation_space,
            self.action_space,
            env_id=env_id(env),
            device=self.device,
        )
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            buffer_capacity,
            device=self.model.device,
            n_envs=self.n_envs,
        )
        if not isinstance(planner, str):
            raise TypeError(f"planner: expected a registered planner name, got {planner!r}")
        if planner_kwargs is None and planner == "random-shooting":
            # cheetah_forward.yaml: 1000 candidate sequences over a horizon of 20.
            planner_kwargs = {"population": 1000, "horizon": 20}
        self.planner_kwargs = dict(planner_kwargs or {})
        self.planner = make_planner(planner, self.model, **{"seed": seed, **self.planner_kwargs})
        self.agent = self._make_agent(agent, agent_kwargs, seed)
        actor = getattr(self.agent.policy, "actor", None)
        if bc_loss == "nll" and self.off_policy and not hasattr(actor, "get_action_dist_params"):
            raise ValueError(
                f"bc_loss: 'nll' needs a stochastic policy; {agent_cls.__name__}'s actor is "
                "deterministic, clone it with 'mse'"
            )
        self.agent_kwargs: dict[str, Any] | None = (
            None if isinstance(agent, BaseAlgorithm) else decode_kwargs(agent_kwargs or {})
        )
        #: The phase :meth:`learn` is in, one of :data:`PHASES`.
        self.phase = PHASES[0]
        #: Real steps taken in the current phase.
        self.phase_steps = 0
        #: Behaviour-cloning pairs aggregated so far: states ``[N, *obs_shape]`` and the
        #: expert's actions ``[N, *act_shape]`` (env units), on the agent's device.
        self.demo_obs = torch.empty(0)
        self.demo_actions = torch.empty(0)
        self._bc_optimizer: torch.optim.Optimizer | None = None

    def _make_agent(
        self,
        agent: type[BaseAlgorithm] | BaseAlgorithm,
        agent_kwargs: dict[str, Any] | None,
        seed: int | None,
    ) -> BaseAlgorithm:
        if isinstance(agent, BaseAlgorithm):
            if agent_kwargs:
                raise ValueError("agent_kwargs: only used when agent is a name or class")
            check_same_space(
                self.observation_space, agent.observation_space, name="agent.observation_space"
            )
            check_same_space(self.action_space, agent.action_space, name="agent.action_space")
            if self.env is not None:
                if agent.n_envs != self.n_envs:
                    raise ValueError(
                        f"agent: has {agent.n_envs} envs, the real env {self.n_envs}; "
                        "fine-tuning acts in the real env"
                    )
                agent.set_env(self.env)
            return agent
        # Without a real env (loading for prediction), one imagined env gives the spaces.
        env = self.env
        if env is None:
            env = as_vec_env(DreamVecEnv(self.model, 1, start_states=self.buffer, horizon=1))
        return build_agent(
            agent,
            env,
            decode_kwargs(agent_kwargs or {}),
            seed=seed,
            device=self.device,
            verbose=max(self.verbose - 1, 0),
        )

    def set_env(self, env: gym.Env | VecEnv) -> None:
        """Use another real env with the same spaces (and number of envs, for the agent)."""
        wrapped = wrap_env(env)
        if wrapped.num_envs != self.agent.n_envs:
            raise ValueError(
                f"env: has {wrapped.num_envs} envs, the agent {self.agent.n_envs}; SB3 agents "
                "keep their number of envs"
            )
        super().set_env(wrapped)
        self.agent.set_env(wrapped)

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        model_name, model_kwargs = model_config(self.model)
        if self.agent_kwargs is None:
            agent_kwargs = agent_config(self.agent)
        else:
            agent_kwargs = encode_kwargs(self.agent_kwargs, name="agent_kwargs")
        return {
            "agent": agent_name(type(self.agent)),
            "model": model_name,
            "planner": type(self.planner).registry_name,
            "agent_kwargs": agent_kwargs,
            "model_kwargs": model_kwargs,
            "planner_kwargs": encode_kwargs(self.planner_kwargs, name="planner_kwargs"),
            "initial_random_steps": self.initial_random_steps,
            "model_based_steps": self.model_based_steps,
            "mpc_steps_per_iteration": self.mpc_steps_per_iteration,
            "dagger_iterations": self.dagger_iterations,
            "dagger_steps": self.dagger_steps,
            "bc_loss": self.bc_loss,
            "bc_epochs": self.bc_epochs,
            "bc_batch_size": self.bc_batch_size,
            "bc_learning_rate": self.bc_learning_rate,
            "label_batch_size": self.label_batch_size,
            "critic_warmup_steps": self.critic_warmup_steps,
            "buffer_capacity": self.buffer.capacity,
            "fit_kwargs": self.fit_kwargs,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The agent's policy weights, the model's tensors, the real transitions, the
        behaviour-cloning pairs, and the phase with its step count.

        The agent's optimizers and its own buffers are not kept: an off-policy agent's
        replay buffer is refilled from the real transitions when fine-tuning resumes.
        """
        tensors = {f"agent.{k}": v for k, v in self.agent.policy.state_dict().items()}
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors.update(buffer_tensors(self.buffer, "buffer"))
        if len(self.demo_obs):
            tensors["demo.obs"] = self.demo_obs
            tensors["demo.actions"] = self.demo_actions
        tensors["progress"] = torch.tensor([PHASES.index(self.phase), self.phase_steps])
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.agent.policy.load_state_dict(part("agent."))
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in part("model.").items()})
        restore_buffer(self.buffer, tensors, "buffer")
        if "demo.obs" in tensors:
            self.demo_obs = tensors["demo.obs"].to(self.agent.device)
            self.demo_actions = tensors["demo.actions"].to(self.agent.device)
        phase, self.phase_steps = (int(v) for v in tensors["progress"].tolist())
        self.phase = PHASES[phase]

    # ------------------------------------------------------------------ the expert
    def _newest(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The states and actions of the ``count`` newest real transitions."""
        data = self.buffer.transitions()
        return data.obs[-count:], data.action[-count:]

    def expert_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """The MPC expert's actions for a batch of states, ``label_batch_size`` per planner
        call: ``obs: [N, *obs_shape] -> [N, *act_shape]`` on the agent's device."""
        obs_np = obs.detach().cpu().numpy()
        labels = [
            self.planner.predict(obs_np[i : i + self.label_batch_size], deterministic=True)[0]
            for i in range(0, len(obs_np), self.label_batch_size)
        ]
        # Labelling plans for states of many episodes: no warm start for the next real step.
        self.planner.reset()
        return torch.as_tensor(np.concatenate(labels), device=self.agent.device)

    def _aggregate(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        obs, actions = obs.to(self.agent.device), actions.to(self.agent.device)
        if len(self.demo_obs):
            obs = torch.cat([self.demo_obs, obs])
            actions = torch.cat([self.demo_actions, actions.to(self.demo_actions.dtype)])
        self.demo_obs, self.demo_actions = obs, actions

    # ------------------------------------------------------------------ behaviour cloning
    def expert_gap(self, obs: torch.Tensor, expert_actions: torch.Tensor) -> float:
        """How far the agent's deterministic actions are from the expert's on ``obs``: the
        mean squared difference of Box actions scaled to ``[-1, 1]``, or the fraction of
        different Discrete actions.

        :param obs: ``[N, *obs_shape]``.
        :param expert_actions: ``[N, *act_shape]`` in env units.
        """
        actions, _ = self.agent.predict(obs.detach().cpu().numpy(), deterministic=True)
        actions = torch.as_tensor(actions, device=expert_actions.device)
        if isinstance(self.action_space, gym.spaces.Discrete):
            return float((actions.reshape(-1) != expert_actions.reshape(-1)).float().mean())
        space = self.action_space
        gap = scale_actions(actions.float(), space) - scale_actions(expert_actions, space)
        return float(torch.mean(gap**2))

    def _clone_expert(self) -> dict[str, float]:
        """``bc_epochs`` epochs of Adam on :func:`imitation_loss` over every aggregated pair."""
        policy = self.agent.policy
        if self._bc_optimizer is None:
            # Only the parameters the loss reaches move (Adam skips those without gradient).
            params = policy.actor.parameters() if self.off_policy else policy.parameters()
            self._bc_optimizer = torch.optim.Adam(params, lr=self.bc_learning_rate)
        obs, actions, n = self.demo_obs, self.demo_actions, len(self.demo_obs)
        gap_before = self.expert_gap(obs, actions)
        policy.set_training_mode(True)
        losses = []
        for _ in range(self.bc_epochs):
            order = torch.randperm(n, device=obs.device)
            total = torch.zeros((), device=obs.device)
            for first in range(0, n, self.bc_batch_size):
                index = order[first : first + self.bc_batch_size]
                loss = imitation_loss(policy, obs[index], actions[index], loss=self.bc_loss)
                self._bc_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self._bc_optimizer.step()
                total += loss.detach() * len(index)
            losses.append(float(total) / n)
        policy.set_training_mode(False)
        if hasattr(policy, "actor_target"):  # TD3's target actor follows the cloned actor
            policy.actor_target.load_state_dict(policy.actor.state_dict())
        return {
            "bc_loss_first_epoch": losses[0],
            "bc_loss": losses[-1],
            "expert_gap_before": gap_before,
            "expert_gap": self.expert_gap(obs, actions),
            "pairs": n,
        }

    # ------------------------------------------------------------------ phases
    def _episode_returns_since(self, episodes_before: int) -> list[float]:
        finished = min(self._episode_num - episodes_before, len(self.ep_info_buffer))
        return [e["r"] for e in list(self.ep_info_buffer)[len(self.ep_info_buffer) - finished :]]

    def _model_based_chunk(self, total_timesteps: int, callback: BaseCallback) -> bool:
        """Random steps, or one MPC iteration (or what the budget leaves of it); refit the
        model when it is complete."""
        done = self.phase_steps
        if done < self.initial_random_steps:
            end, policy = self.initial_random_steps, None
        else:
            iteration = (done - self.initial_random_steps) // self.mpc_steps_per_iteration + 1
            end = min(
                self.initial_random_steps + iteration * self.mpc_steps_per_iteration,
                self.model_based_steps,
            )
            policy = self.planner
        before, episodes = self.num_timesteps, self._episode_num
        steps = min(end - done, total_timesteps - self.num_timesteps)
        running = self._collect_real_steps(self.buffer, steps, callback, policy)
        taken = self.num_timesteps - before
        self.phase_steps += taken
        if policy is not None and taken:
            self._aggregate(*self._newest(taken))
            self.logger.record("mpc/steps", self.phase_steps - self.initial_random_steps)
            returns = self._episode_returns_since(episodes)
            if returns:
                self.logger.record("mpc/ep_rew_mean", float(np.mean(returns)))
        if self.phase_steps >= end:
            self._record_metrics("model", self.model.fit(self.buffer, **self.fit_kwargs))
            if self.phase_steps >= self.model_based_steps:
                self._start_distillation()
            self._dump_logs()
        return running

    def _start_distillation(self) -> None:
        self.phase, self.phase_steps = "distill", 0
        if len(self.demo_obs):
            self._record_metrics("distill", self._clone_expert())
        if self.dagger_iterations == 0:
            self._start_finetuning()

    def _dagger_chunk(self, total_timesteps: int, callback: BaseCallback) -> bool:
        """One DAgger iteration (or what the budget leaves of it): roll out the policy, label
        the visited states with the expert, aggregate; retrain when it is complete."""
        end = (self.phase_steps // self.dagger_steps + 1) * self.dagger_steps
        before, episodes = self.num_timesteps, self._episode_num
        steps = min(end - self.phase_steps, total_timesteps - self.num_timesteps)
        running = self._collect_real_steps(
            self.buffer, steps, callback, self.agent, deterministic=True
        )
        taken = self.num_timesteps - before
        self.phase_steps += taken
        if taken:
            obs, _ = self._newest(taken)
            labels = self.expert_actions(obs)
            self.logger.record("distill/visited_expert_gap", self.expert_gap(obs, labels))
            self._aggregate(obs, labels)
            returns = self._episode_returns_since(episodes)
            if returns:
                self.logger.record("distill/ep_rew_mean", float(np.mean(returns)))
        if self.phase_steps >= end:
            self.logger.record("distill/iteration", self.phase_steps // self.dagger_steps)
            self._record_metrics("distill", self._clone_expert())
            if self.phase_steps >= self.dagger_iterations * self.dagger_steps:
                self._start_finetuning()
            self._dump_logs()
        return running

    def _fill_replay_buffer(self) -> None:
        """Every real transition into the off-policy agent's replay buffer (actions scaled
        as SB3 stores them; time-limit truncations do not end the bootstrap)."""
        replay = self.agent.replay_buffer  # type: ignore[attr-defined]
        data = self.buffer.transitions()
        width = replay.n_envs
        rows = len(data) - len(data) % width
        fields = [
            getattr(data, name)[:rows].cpu().numpy()
            for name in ("obs", "next_obs", "action", "reward", "terminated")
        ]
        obs, next_obs, action, reward, terminated = (
            f.reshape(rows // width, width, *f.shape[1:]) for f in fields
        )
        action = self.agent.policy.scale_action(action.reshape(*action.shape[:2], -1))
        infos = [{} for _ in range(width)]
        for i in range(rows // width):
            replay.add(obs[i], next_obs[i], action[i], reward[i], terminated[i], infos)

    def _warm_up_critic(self) -> None:
        """Fit the off-policy agent's critic to its current (cloned) actor: the agent's own
        updates, with the actor's parameters frozen."""
        actor = self.agent.policy.actor  # type: ignore[attr-defined]
        actor.requires_grad_(False)
        try:
            self.agent.train(  # type: ignore[attr-defined]
                gradient_steps=self.critic_warmup_steps,
                batch_size=self.agent.batch_size,  # type: ignore[attr-defined]
            )
        finally:
            actor.requires_grad_(True)
        self.logger.record("finetune/critic_warmup_steps", self.critic_warmup_steps)

    def _start_finetuning(self) -> None:
        self.phase, self.phase_steps = "finetune", 0
        if self.off_policy:
            self._fill_replay_buffer()
            if self.critic_warmup_steps:
                self._warm_up_critic()

    def _finetune(self, total_timesteps: int, callback: BaseCallback, log_interval: int) -> bool:
        """The agent learns model-free in the real env for the rest of the budget."""
        if self.off_policy and self.agent.replay_buffer.size() == 0:  # type: ignore[attr-defined]
            self._fill_replay_buffer()  # after load(): the agent's buffer was not saved
        # The agent counts real steps too, so that learning_starts, schedules and its log
        # steps refer to the whole run.
        self.agent.num_timesteps = before = self.num_timesteps
        relay = _FinetuneRelay(self, callback, total_timesteps)
        self.agent.learn(
            total_timesteps - self.num_timesteps,
            callback=relay,
            log_interval=log_interval,
            reset_num_timesteps=False,
        )
        self.num_timesteps = self.agent.num_timesteps
        self.phase_steps += self.num_timesteps - before
        self.logger.record("finetune/steps", self.phase_steps)
        self._dump_logs()
        return relay.continue_training

    # ------------------------------------------------------------------ public surface
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MBMF",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> MBMF:
        """Run for ``total_timesteps`` real env steps (or until a callback stops it),
        continuing the phases where the previous call left them.

        :param log_interval: passed to the agent's ``learn`` while fine-tuning (SB3's
            meaning for that agent); the other phases dump their logs after every fit.
        """
        env_reset = reset_num_timesteps or self._last_obs is None
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        self.agent.set_logger(self.logger)
        if env_reset and self.phase == "finetune":
            # The agent's last observation is from before the reset: it resets again.
            self.agent.set_env(self.env)
        running = True
        while running and self.num_timesteps < total_timesteps:
            if self.phase == "model-based":
                running = self._model_based_chunk(total_timesteps, callback)
            elif self.phase == "distill":
                running = self._dagger_chunk(total_timesteps, callback)
            else:
                running = self._finetune(total_timesteps, callback, log_interval)
                break
        callback.on_training_end()
        return self

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The MPC expert's ``predict`` during the model-based phase, the agent's after."""
        actor = self.planner if self.phase == "model-based" else self.agent
        return actor.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
