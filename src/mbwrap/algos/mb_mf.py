"""MB-MF (Nagabandi, Kahn, Fearing & Levine 2018, "Neural Network Dynamics for Model-Based
Deep Reinforcement Learning with Model-Free Fine-Tuning", ICRA; arXiv 1708.02596): a learned
dynamics model and MPC reach good behaviour in few real steps, the MPC controller is distilled
into a neural network policy by DAgger, and a model-free algorithm fine-tunes that policy.

Three phases, all counted in real env steps, one after the other across ``learn()`` calls::

    model-based (Algorithm 1)  random steps; fit the model; repeat: act with random-shooting
                               MPC, aggregate the data, refit on all of it
    distill (Section V)        behaviour cloning on (state, MPC action) pairs of the expert's
                               own visits; then DAgger: roll out the policy, label the states
                               it visits with the MPC expert, aggregate, retrain
    finetune (Section V)       the SB3 agent learns model-free on the real env for the rest
                               of the budget (the paper uses TRPO)

Defaults: the authors' code (github.com/anagabandi/nn_dynamics), for HalfCheetah.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agents import check_agent, resolve_agent
from mbwrap.algos.base import Algorithm
from mbwrap.algos.mb_mf_config import MBMFConfig
from mbwrap.algos.mb_mf_distill import (
    BC_LOSSES,
    FinetuneRelay,
    check_distillable,
    clone,
    cloning_optimizer,
    expert_labels,
    imitation_loss,
    policy_gap,
    prepare_finetuning,
)
from mbwrap.envs import DreamVecEnv, as_vec_env
from mbwrap.envs.sb3_vec_env import wrap_env
from mbwrap.registry import make_planner
from mbwrap.space_support import SpaceSupport

__all__ = ["BC_LOSSES", "MBMF", "PHASES", "MBMFConfig", "imitation_loss"]

#: The phases, in the order :class:`MBMF` goes through them.
PHASES: tuple[str, ...] = ("model-based", "distill", "finetune")

class MBMF(Algorithm):
    """MB-MF: model-based RL with MPC, distilled into an SB3 agent, fine-tuned model-free.

    The run goes through :data:`PHASES` in order (:attr:`phase`, :attr:`phase_steps` real
    steps into it); every phase's real steps count, fire the callbacks and are the budget:

    1. **model-based** (``model_based_steps``): ``learning_starts`` random steps and a fit,
       then iterations of ``model_train_freq`` steps acting with the MPC ``planner``, each
       followed by a refit on every real transition (on-policy data aggregation);
    2. **distill** (``dagger_iterations * dagger_steps``): the agent's policy is cloned
       (:func:`imitation_loss`) on the MPC expert's own (state, action) pairs; then each
       DAgger iteration rolls out its deterministic policy, labels the visited states with
       the expert (``label_batch_size`` per planner call), aggregates and retrains;
    3. **finetune** (the rest): ``agent.learn`` on the real env, continuing its episodes;
       an off-policy agent first gets every real transition and ``critic_warmup_steps``
       critic updates with the actor frozen.

    :meth:`predict` is the MPC expert's in phase 1, the agent's after. Logs: ``model/``,
    ``mpc/``, ``distill/``, ``finetune/`` and the agent's own.

    Settings: :class:`MBMFConfig`; ``agent``, ``model`` and ``planner`` may also be passed
    by position.
    """

    registry_name: ClassVar[str] = "mb-mf"
    space_support = SpaceSupport(
        observations=("Box",), actions=("Box", "Discrete"), bounded_actions=True,
        action_note="Discrete actions with an on-policy agent (PPO, A2C, TRPO)",
    )
    Config = MBMFConfig
    positional_settings = ("agent", "model", "planner")
    saved_state = ("agent", "model", "planner_rng", "bc_optimizer", "phase", "phase_steps")
    saved_buffers = ("buffer", "demo_obs", "demo_actions")
    config: MBMFConfig

    def __init__(self, env: gym.Env | VecEnv | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        agent = check_agent(config.agent)
        agent_cls = agent if isinstance(agent, type) else type(agent)
        check_distillable(agent_cls, self.action_space, bc_loss=config.bc_loss,
                          critic_warmup_steps=config.critic_warmup_steps)
        self.model = self._make_model()
        self.buffer = self._make_buffer()
        planner_kwargs = {"seed": config.seed, **config.planner_kwargs}
        self.planner = make_planner(config.planner, self.model, **planner_kwargs)
        # Without a real env (loading for prediction), one imagined env gives the spaces.
        env = self.env
        if env is None:
            env = as_vec_env(DreamVecEnv(self.model, 1, self.buffer, horizon=1))
        self.agent, config.agent, config.agent_kwargs = resolve_agent(
            agent, config.agent_kwargs, env, seed=config.seed, device=self.device,
            verbose=max(self.verbose - 1, 0),
        )
        if self.env is not None and self.agent.get_env() is not self.env:
            if self.agent.n_envs != self.n_envs:
                raise ValueError(f"agent: has {self.agent.n_envs} envs, the real env "
                                 f"{self.n_envs}; fine-tuning acts in the real env")
            self.agent.set_env(self.env)
        self.bc_optimizer = cloning_optimizer(self.agent, loss=config.bc_loss,
                                              learning_rate=config.bc_learning_rate)
        #: The phase the run is in (one of :data:`PHASES`) and the real steps taken in it.
        self.phase, self.phase_steps = PHASES[0], 0
        #: Behaviour-cloning pairs aggregated so far: states ``[N, *obs_shape]`` and the
        #: expert's actions ``[N, *act_shape]`` (env units), on the agent's device.
        self.demo_obs = torch.empty(0)
        self.demo_actions = torch.empty(0)
        #: Real steps at which the current iteration of the phase ends (set by _collect).
        self._iteration_end = 0

    @property
    def planner_rng(self) -> torch.Generator:
        """The generator the planner samples its candidates from."""
        return self.planner.generator

    def _after_restore(self) -> None:
        self.demo_obs = self.demo_obs.to(self.agent.device)
        self.demo_actions = self.demo_actions.to(self.agent.device)

    def set_env(self, env: gym.Env | VecEnv) -> None:
        """Use another real env with the same spaces (and number of envs, for the agent)."""
        wrapped = wrap_env(env)
        if wrapped.num_envs != self.agent.n_envs:
            raise ValueError(f"env: has {wrapped.num_envs} envs, the agent {self.agent.n_envs}; "
                             "SB3 agents keep their number of envs")
        super().set_env(wrapped)
        self.agent.set_env(wrapped)

    # ------------------------------------------------------------------ the expert
    def expert_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """The MPC expert's actions (:func:`expert_labels`, ``label_batch_size`` states per
        planner call): ``obs: [N, *obs_shape] -> [N, *act_shape]`` on the agent's device."""
        labels = expert_labels(self.planner, obs, self.config.label_batch_size)
        return labels.to(self.agent.device)

    def expert_gap(self, obs: torch.Tensor, expert_actions: torch.Tensor) -> float:
        """How far the agent's deterministic actions on ``obs`` are from the expert's
        (:func:`policy_gap`): ``obs: [N, *obs_shape]``, ``expert_actions: [N, *act_shape]``."""
        return policy_gap(self.agent, obs, expert_actions)

    def _aggregate(self, obs: torch.Tensor, actions: torch.Tensor) -> None:
        obs, actions = obs.to(self.agent.device), actions.to(self.agent.device)
        if len(self.demo_obs):
            obs = torch.cat([self.demo_obs, obs])
            actions = torch.cat([self.demo_actions, actions.to(self.demo_actions.dtype)])
        self.demo_obs, self.demo_actions = obs, actions

    def _clone_expert(self) -> None:
        """Behaviour cloning on every aggregated pair; logs ``distill/...``."""
        config = self.config
        metrics = clone(self.agent, self.bc_optimizer, self.demo_obs, self.demo_actions,
                        loss=config.bc_loss, epochs=config.bc_epochs,
                        batch_size=config.bc_batch_size)
        self._record_metrics("distill", metrics)

    # ------------------------------------------------------------------ the loop's hooks
    def _on_training_start(self) -> None:
        self.agent.set_logger(self.logger)

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """Real steps up to the end of the phase's current iteration (random, MPC or
        DAgger), aggregating expert pairs; all the rest of the budget when fine-tuning."""
        if self.phase == "finetune":
            return self._finetune(callback, remaining)
        config, done = self.config, self.phase_steps
        policy: Any = self.agent
        if self.phase == "distill":
            end = (done // config.dagger_steps + 1) * config.dagger_steps
        elif done < config.learning_starts:
            end, policy = config.learning_starts, None
        else:
            iteration = (done - config.learning_starts) // config.model_train_freq + 1
            end = min(config.learning_starts + iteration * config.model_train_freq,
                      config.model_based_steps)
            policy = self.planner
        self._iteration_end = end
        before, episodes = self.real_steps, self._episode_num
        running = self._collect_real_steps(self.buffer, min(end - done, remaining), callback,
                                           policy, deterministic=policy is self.agent)
        taken = self.real_steps - before
        self.phase_steps += taken
        if not taken or policy is None:
            return running
        data = self.buffer.transitions()
        obs, actions = data.obs[-taken:], data.action[-taken:]
        if policy is self.agent:
            actions = self.expert_actions(obs)
            self.logger.record("distill/visited_expert_gap", self.expert_gap(obs, actions))
        else:
            self.logger.record("mpc/steps", self.phase_steps - config.learning_starts)
        self._aggregate(obs, actions)
        finished = min(self._episode_num - episodes, len(self.ep_info_buffer))
        returns = [e["r"] for e in list(self.ep_info_buffer)[len(self.ep_info_buffer) - finished :]]
        if returns:
            prefix = "distill" if policy is self.agent else "mpc"
            self.logger.record(f"{prefix}/ep_rew_mean", float(np.mean(returns)))
        return running

    def _refit_due(self) -> bool:
        """After the random steps and after each MPC iteration (the last one may be short)."""
        return self.phase == "model-based" and (
            super()._refit_due() or self.phase_steps >= self.config.model_based_steps
        )

    def _train(self) -> None:
        """Move on when a phase or a DAgger iteration is complete: clone, hand over."""
        config = self.config
        if self.phase == "model-based" and self.phase_steps >= config.model_based_steps:
            self.phase, self.phase_steps = "distill", 0
            if len(self.demo_obs):
                self._clone_expert()
            if config.dagger_iterations == 0:
                self._start_finetuning()
        elif self.phase == "distill" and self.phase_steps >= self._iteration_end:
            self.logger.record("distill/iteration", self.phase_steps // config.dagger_steps)
            self._clone_expert()
            if self.phase_steps >= config.dagger_iterations * config.dagger_steps:
                self._start_finetuning()
        elif self.phase == "finetune":
            self.logger.record("finetune/steps", self.phase_steps)

    def _start_finetuning(self) -> None:
        self.phase, self.phase_steps = "finetune", 0
        warmup = self.config.critic_warmup_steps
        prepare_finetuning(self.agent, self.buffer.transitions(), warmup)
        self.logger.record("finetune/critic_warmup_steps", warmup)

    def _finetune(self, callback: BaseCallback, remaining: int) -> bool:
        """The agent learns model-free in the real env for the rest of the budget,
        continuing the real episodes where they are."""
        agent = self.agent
        reset = self._last_obs is not self._collected_obs or self._episode_starts is None
        agent._last_obs = self._last_obs
        agent._last_episode_starts = np.ones(self.n_envs, bool) if reset else self._episode_starts
        # The agent counts real steps too, so that its learning_starts, schedules and log
        # steps refer to the whole run.
        agent.num_timesteps = before = self.num_timesteps
        relay = FinetuneRelay(self, callback, self.num_timesteps + remaining)
        agent.learn(remaining, callback=relay, reset_num_timesteps=False)
        self.phase_steps += self.num_timesteps - before
        return relay.continue_training

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """The MPC expert's ``predict`` during the model-based phase, the agent's after."""
        actor = self.planner if self.phase == "model-based" else self.agent
        return actor.predict(observation, state, episode_start, deterministic)
