"""ME-TRPO (Kurutach, Clavera, Duan, Tamar & Abbeel 2018, "Model-Ensemble Trust-Region Policy
Optimization", ICLR): TRPO trained only on rollouts a model ensemble imagines, stopped as soon
as the policy stops improving under most members of the ensemble.

One iteration of the paper's Algorithm 1::

    collect real samples with the current policy (the first time: random actions)
    fit every ensemble member on all real data
    repeat
        TRPO on imagined rollouts, a randomly chosen member predicting each step
        every `validation_interval` TRPO iterations: the policy's imagined return under each
        member; the policy improved if the return rose under >= `improvement_threshold`
        of them (section 4.3, "policy validation")
    until no improvement for `patience` TRPO iterations; keep the last improved policy
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agents import build_agent, decode_kwargs, encode_kwargs
from mbwrap.algos.base import (
    Algorithm,
    buffer_tensors,
    env_id,
    model_config,
    resolve_model,
    restore_buffer,
)
from mbwrap.buffers import ReplayBuffer
from mbwrap.device import make_generator
from mbwrap.envs import DreamVecEnv
from mbwrap.models import WorldModel
from mbwrap.sb3 import as_vec_env
from mbwrap.spaces import element_shape, torch_dtype


# ---------------------------------------------------------------------------- the stop rule
def improvement_ratio(old_returns: Any, new_returns: Any) -> float:
    """The fraction of ensemble members under which the policy's return strictly rose:
    ``(1/K) sum_k 1[new_returns[k] > old_returns[k]]`` (Kurutach et al. 2018, section 4.3).

    :param old_returns: ``[K]``, the imagined return of the reference policy under member k.
    :param new_returns: ``[K]``, the same for the updated policy.
    :return: a float in ``[0, 1]``.
    """
    old = np.asarray(old_returns, dtype=np.float64).reshape(-1)
    new = np.asarray(new_returns, dtype=np.float64).reshape(-1)
    if old.shape != new.shape or old.size == 0:
        raise ValueError(
            f"old_returns, new_returns: expected two non-empty [K] arrays of one size, got "
            f"shapes {old.shape} and {new.shape}"
        )
    return float(np.mean(new > old))


def should_stop(
    iteration: int, last_improvement: int, *, patience: int, max_iterations: int
) -> bool:
    """Whether policy improvement on the current models ends after TRPO ``iteration``.

    It ends when the last validation that counted as an improvement is ``patience`` or more
    TRPO iterations back (the paper "tolerates a small number of updates in case the
    performance improves"), or after ``max_iterations``.

    :param iteration: TRPO iterations run in this policy-improvement phase.
    :param last_improvement: the iteration of the last improving validation (0 before any).
    """
    return iteration - last_improvement >= patience or iteration >= max_iterations


# ---------------------------------------------------------------------------- validation
def ensemble_members(model: WorldModel) -> list[int | None]:
    """The members a policy is validated under: the ensemble's elites when it keeps some,
    else all of its members; ``[None]`` (the model as it is) for a single model."""
    elites = getattr(model, "elite_indices", None)
    if elites is not None:
        return [int(k) for k in torch.as_tensor(elites).reshape(-1).tolist()]
    size = getattr(model, "ensemble_size", None)
    return list(range(int(size))) if size else [None]


def member_returns(
    policy: Any,
    model: WorldModel,
    start_obs: torch.Tensor,
    horizon: int,
    *,
    members: list[int | None],
    seed: int,
) -> np.ndarray:
    """Undiscounted imagined return of ``policy``'s deterministic action from each start
    state, under each member, averaged over the start states (the authors' code validates
    the policy's mean action, undiscounted, from fixed start states).

    Every member sees the same start states and the same seed, so two calls with different
    policies are compared on common random numbers.

    :param policy: anything with SB3's ``predict``.
    :param start_obs: ``[N, *obs_shape]``, one imagined episode from each.
    :param horizon: the longest imagined episode.
    :return: ``[K]``, one mean return per entry of ``members``.
    """
    n = start_obs.shape[0]

    def starts(count: int, generator: torch.Generator) -> torch.Tensor:
        return start_obs[:count]  # all of them, in order, at the first reset

    returns = np.zeros(len(members))
    for index, member in enumerate(members):
        venv = DreamVecEnv(model, num_envs=n, start_states=starts, horizon=horizon, member=member)
        obs, _ = venv.reset(seed=seed)
        total = np.zeros(n)
        running = np.ones(n, dtype=bool)
        while running.any():
            actions, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = venv.step(actions)
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
        returns[index] = total.mean()
    return returns


# ---------------------------------------------------------------------------- real data
def episode_starts(first: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Which of ``T`` consecutive real vector steps were taken from an episode's first
    observation: step 0 where ``first``, step ``t`` where step ``t - 1`` ended an episode.

    :param first: ``[n_envs]`` bool, the envs whose current episode had just begun.
    :param done: ``[T, n_envs]`` bool, ``terminated | truncated`` of each step.
    :return: ``[T, n_envs]`` bool.
    """
    return torch.cat([first.reshape(1, -1).to(done), done[:-1]])


def _episode_limit(env: gym.Env | VecEnv | None) -> int | None:
    """The real env's ``TimeLimit`` (of its first copy), or ``None``."""
    if env is None:
        return None
    spec = env.get_attr("spec", indices=[0])[0] if isinstance(env, VecEnv) else env.spec
    return getattr(spec, "max_episode_steps", None)


def _trpo() -> type[BaseAlgorithm]:
    """``sb3_contrib.TRPO``, imported when first needed: sb3-contrib is optional."""
    try:
        from sb3_contrib import TRPO
    except ImportError as err:
        raise ImportError(
            "METRPO trains sb3_contrib.TRPO, and sb3-contrib is not installed: "
            "pip install 'mbwrap[contrib]'"
        ) from err
    return TRPO


def _trpo_keywords() -> frozenset[str]:
    """The TRPO constructor keywords ``agent_kwargs`` may set (the env is the imagined
    one; seed, device and verbosity are METRPO's)."""
    parameters = inspect.signature(_trpo().__init__).parameters
    return frozenset(parameters) - {
        "self",
        "env",
        "_init_setup_model",
        "seed",
        "device",
        "verbose",
        "tensorboard_log",
    }


class METRPO(Algorithm):
    """Model-Ensemble TRPO: ``sb3_contrib.TRPO`` learning only in imagination.

    Each iteration collects ``real_steps_per_iteration`` real steps with the current
    (stochastic) policy, uniformly random actions the first time; fits the world model on
    every real transition so far; then runs TRPO on a :class:`~mbwrap.DreamVecEnv` of the
    model. Every ``validation_interval`` TRPO iterations the policy's deterministic
    imagined return is estimated under each ensemble member separately (the same start
    states and seed each time, see :func:`member_returns`). The policy has improved when
    that return rose under at least ``improvement_threshold`` of the members
    (:func:`improvement_ratio`); the phase ends ``patience`` TRPO iterations after the last
    improvement (:func:`should_stop`), and the policy goes back to the last improved one,
    as the authors' code does.

    Imagined episodes start from real observations (``start_states``) and last at most
    ``imagined_horizon`` steps; reward and termination come from the function registered
    for the env id when there is one (``mbwrap.fns``), else from the model's heads.

    The paper's model is an ensemble of deterministic networks, a random one predicting
    each imagined step: ``model="mlp", model_kwargs={"ensemble_size": 5}``. The default
    ``"gaussian-ensemble"`` also draws a random elite per step (``propagation="ts1"``).

    :param env: the real env.
    :param model: a registered model name or a :class:`~mbwrap.models.WorldModel` with the
        env's spaces.
    :param agent_kwargs: keywords of ``sb3_contrib.TRPO`` (``policy`` among them) over
        :meth:`default_agent_kwargs`. Unless given, the critic's ``batch_size`` is a tenth
        of a TRPO iteration: the paper fits rllab's linear baseline instead of a critic, and
        SB3's 128 would make ~4000 critic steps of a 50000-step iteration.
    :param model_kwargs: keywords of the model's constructor (only with a model name).
    :param real_steps_per_iteration: real env steps collected per iteration.
    :param num_imagined_envs: imagined episodes TRPO runs in parallel; a TRPO iteration is
        ``num_imagined_envs * n_steps`` imagined steps.
    :param imagined_horizon: the longest imagined episode; default the real env's time
        limit (the paper imagines as many steps as a real episode has), else 100.
    :param start_states: ``"initial"``: imagined (and validation) episodes start from the
        first observations of real episodes, the paper's start-state distribution;
        ``"all"``: from any real observation.
    :param validation_interval: TRPO iterations between validations.
    :param improvement_threshold: least fraction of members that must improve.
    :param patience: TRPO iterations after the last improvement before the phase ends.
    :param max_policy_iterations: TRPO iterations per phase at most.
    :param validation_episodes: imagined episodes per member and validation.
    :param buffer_size: real transitions kept (the model is fit on all of them).
    Other parameters as :class:`~mbwrap.algos.Algorithm`.
    """

    registry_name = "me-trpo"

    def __init__(
        self,
        env: gym.Env | VecEnv | None,
        model: str | WorldModel = "gaussian-ensemble",
        *,
        agent_kwargs: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        # Kurutach et al. 2018, the authors' code (github.com/thanard/me-trpo),
        # params/params-*.json: sample_size 3000 real steps per iteration.
        real_steps_per_iteration: int = 3000,
        # Code params: a TRPO iteration is 50000 imagined steps (trpo.batch_size):
        # 500 envs x n_steps 100.
        num_imagined_envs: int = 500,
        imagined_horizon: int | None = None,
        start_states: str = "initial",
        # Section 4.3: "we validate the policy after every 5 gradient updates and we use
        # 70% as the threshold"; code params: num_iters_threshold 25, max_iters 400.
        validation_interval: int = 5,
        improvement_threshold: float = 0.7,
        patience: int = 25,
        max_policy_iterations: int = 400,
        validation_episodes: int = 50,
        buffer_size: int = 1_000_000,
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
        for name, value in (
            ("real_steps_per_iteration", real_steps_per_iteration),
            ("num_imagined_envs", num_imagined_envs),
            ("validation_interval", validation_interval),
            ("patience", patience),
            ("max_policy_iterations", max_policy_iterations),
            ("validation_episodes", validation_episodes),
            ("buffer_size", buffer_size),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not 0.0 < float(improvement_threshold) <= 1.0:
            raise ValueError(
                "improvement_threshold: expected a fraction in (0, 1], got "
                f"{improvement_threshold!r}"
            )
        if start_states not in ("initial", "all"):
            raise ValueError(f"start_states: expected 'initial' or 'all', got {start_states!r}")
        horizon = imagined_horizon
        if horizon is None:
            # Code params: policy_opt_params.T 100, asserted equal to the real episode length.
            horizon = _episode_limit(env) or 100
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"imagined_horizon: expected a positive int, got {imagined_horizon!r}")
        self.agent_kwargs = self._check_agent_kwargs(agent_kwargs)
        self.model = resolve_model(
            model,
            model_kwargs,
            self.observation_space,
            self.action_space,
            env_id=env_id(env),
            device=self.device,
        )
        self.real_steps_per_iteration = int(real_steps_per_iteration)
        self.num_imagined_envs = int(num_imagined_envs)
        self.imagined_horizon = int(horizon)
        self.start_states = start_states
        self.validation_interval = int(validation_interval)
        self.improvement_threshold = float(improvement_threshold)
        self.patience = int(patience)
        self.max_policy_iterations = int(max_policy_iterations)
        self.validation_episodes = int(validation_episodes)
        self.rng = np.random.default_rng(seed)
        self.buffer = ReplayBuffer(
            self.observation_space,
            self.action_space,
            int(buffer_size),
            device=self.model.device,
            n_envs=self.n_envs,
        )
        #: ``[M, *obs_shape]``: the first observation of every real episode so far.
        self.initial_obs = torch.zeros(
            (0, *element_shape(self.observation_space)),
            dtype=torch_dtype(self.observation_space),
            device=self.model.device,
        )
        #: Completed iterations (collect, fit, improve).
        self.iterations = 0
        self.dream = DreamVecEnv(
            self.model,
            self.num_imagined_envs,
            start_states=self._sample_starts,
            horizon=self.imagined_horizon,
        )
        kwargs = {**self.default_agent_kwargs(), **self.agent_kwargs}
        if "batch_size" not in self.agent_kwargs:
            kwargs["batch_size"] = max(1, kwargs["n_steps"] * self.num_imagined_envs // 10)
        self.agent = build_agent(
            _trpo(),
            as_vec_env(self.dream),
            kwargs,
            seed=seed,
            device=self.device,
            verbose=max(verbose - 1, 0),
        )

    @staticmethod
    def default_agent_kwargs() -> dict[str, Any]:
        """The TRPO settings ``agent_kwargs`` is laid over."""
        return {
            "policy": "MlpPolicy",
            # With num_imagined_envs=500, code params' 50000 imagined steps per TRPO
            # iteration. The paper's step size 0.01 and initial std 1.0 are SB3's defaults
            # (target_kl, log_std_init).
            "n_steps": 100,
            # Code params: policy hidden layers [32, 32].
            "policy_kwargs": {"net_arch": {"pi": [32, 32], "vf": [64, 64]}},
        }

    @staticmethod
    def _check_agent_kwargs(agent_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        if agent_kwargs is None:
            return {}
        if not isinstance(agent_kwargs, dict):
            raise TypeError(
                f"agent_kwargs: expected a dict of sb3_contrib.TRPO keywords, got "
                f"{type(agent_kwargs).__name__}"
            )
        keywords = _trpo_keywords()
        unknown = sorted(set(agent_kwargs) - keywords)
        if unknown:
            raise TypeError(
                f"agent_kwargs: {unknown} are not keywords METRPO passes to sb3_contrib.TRPO "
                f"({', '.join(sorted(keywords))}); seed, device and verbose are METRPO's own"
            )
        # Checkpoints store torch classes by name (encode_kwargs).
        return decode_kwargs(agent_kwargs)

    # ------------------------------------------------------------------ checkpoints
    def get_config(self) -> dict[str, Any]:
        model_name, model_kwargs = model_config(self.model)
        return {
            "model": model_name,
            "model_kwargs": model_kwargs,
            "agent_kwargs": encode_kwargs(self.agent_kwargs, name="agent_kwargs"),
            "real_steps_per_iteration": self.real_steps_per_iteration,
            "num_imagined_envs": self.num_imagined_envs,
            "imagined_horizon": self.imagined_horizon,
            "start_states": self.start_states,
            "validation_interval": self.validation_interval,
            "improvement_threshold": self.improvement_threshold,
            "patience": self.patience,
            "max_policy_iterations": self.max_policy_iterations,
            "validation_episodes": self.validation_episodes,
            "buffer_size": self.buffer.capacity,
        }

    def get_tensors(self) -> dict[str, torch.Tensor]:
        """The TRPO policy's weights (the critic's among them), the model's tensors, the
        real transitions and episode start observations, and the iteration count.

        TRPO's critic optimizer state is not kept: learning after :meth:`load` restarts it.
        """
        tensors = {f"agent.{k}": v for k, v in self.agent.policy.state_dict().items()}
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors.update(buffer_tensors(self.buffer, "buffer"))
        tensors["initial_obs"] = self.initial_obs
        tensors["iterations"] = torch.tensor(self.iterations)
        return tensors

    def set_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.agent.policy.load_state_dict(part("agent."))
        self.model.load_state_dict({k: v.to(self.model.device) for k, v in part("model.").items()})
        restore_buffer(self.buffer, tensors, "buffer")
        initial_obs = tensors["initial_obs"]
        if initial_obs.shape[1:] != self.initial_obs.shape[1:]:
            raise ValueError(
                f"initial_obs has shape {tuple(initial_obs.shape)}, expected "
                f"(*, {', '.join(map(str, self.initial_obs.shape[1:]))})"
            )
        self.initial_obs = initial_obs.to(self.initial_obs)
        self.iterations = int(tensors["iterations"])

    # ------------------------------------------------------------------ imagination
    def _sample_starts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` real observations to start imagined episodes from: ``[n, *obs_shape]``."""
        if self.start_states == "all":
            return self.buffer.sample(n, generator=generator).obs
        if self.initial_obs.shape[0] == 0:
            raise ValueError(
                "start_states: no real episode has started yet; learn() collects real data "
                "before imagining"
            )
        index = torch.randint(
            self.initial_obs.shape[0], (n,), device=self.initial_obs.device, generator=generator
        )
        return self.initial_obs[index]

    def _improve_policy(self) -> dict[str, float]:
        """TRPO in imagination until validation says stop; keep the last improved policy."""
        agent = self.agent
        agent.set_env(agent.get_env())  # restart the imagined episodes under the refit model
        steps_per_trpo_iteration = agent.n_steps * agent.n_envs
        # Fixed for the phase, so validations differ only by the policy.
        generator = make_generator(self.model.device, int(self.rng.integers(2**62)))
        starts = self._sample_starts(self.validation_episodes, generator)
        seed = int(self.rng.integers(2**62))
        members = ensemble_members(self.model)

        def validate() -> np.ndarray:
            return member_returns(
                agent.policy, self.model, starts, self.imagined_horizon, members=members, seed=seed
            )

        first_returns = best_returns = validate()
        best_weights = copy.deepcopy(agent.policy.state_dict())
        iteration = improved_at = 0
        ratio = math.nan
        limit = self.max_policy_iterations
        while not should_stop(iteration, improved_at, patience=self.patience, max_iterations=limit):
            count = min(self.validation_interval, limit - iteration)
            agent.learn(
                count * steps_per_trpo_iteration,
                log_interval=None,  # type: ignore[arg-type]  # METRPO dumps the logs
                reset_num_timesteps=False,
            )
            iteration += count
            returns = validate()
            ratio = improvement_ratio(best_returns, returns)
            if ratio >= self.improvement_threshold:
                best_returns, improved_at = returns, iteration
                best_weights = copy.deepcopy(agent.policy.state_dict())
        agent.policy.load_state_dict(best_weights)
        return {
            "improvement_ratio": ratio,
            "trpo_iterations": iteration,
            "improved_at": improved_at,
            "imagined_return": float(best_returns.mean()),
            "imagined_return_gain": float(best_returns.mean() - first_returns.mean()),
        }

    # ------------------------------------------------------------------ real data
    def _collect(self, steps: int, callback: Any) -> bool:
        """``steps`` real steps into the buffer (:meth:`_collect_real_steps`), keeping the
        first observation of each episode they start; ``False`` when a callback stops."""
        assert self.env is not None
        n_envs = self.env.num_envs
        reset = self._last_obs is not self._collected_obs or self._episode_starts is None
        first = np.ones(n_envs, dtype=bool) if reset else self._episode_starts
        before = self.num_timesteps
        # Algorithm 1: the first real samples come from random actions.
        policy = None if self.iterations == 0 else self.agent
        keep_going = self._collect_real_steps(self.buffer, steps, callback, policy)
        taken = (self.num_timesteps - before) // n_envs
        if taken:
            new = self.buffer.transitions()
            new_obs = new.obs[-taken * n_envs :].reshape(taken, n_envs, *new.obs.shape[1:])
            done = (new.terminated | new.truncated)[-taken * n_envs :].reshape(taken, n_envs)
            start = episode_starts(torch.as_tensor(first, device=done.device), done)
            self.initial_obs = torch.cat([self.initial_obs, new_obs[start].to(self.initial_obs)])
        return keep_going

    # ------------------------------------------------------------------ public surface
    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "METRPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> METRPO:
        """Iterate (collect real steps, fit the model, improve the policy in imagination)
        until ``total_timesteps`` real steps are taken or a callback stops it.

        Callbacks see every real step (``locals``: ``new_obs``, ``rewards``, ``dones``,
        ``infos``, ``actions``) and none of the imagined ones.

        :param log_interval: iterations between log dumps (``None`` or 0: never).
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        self.agent.set_logger(self.logger)
        while self.num_timesteps < total_timesteps:
            steps = min(self.real_steps_per_iteration, total_timesteps - self.num_timesteps)
            if not self._collect(steps, callback):
                break
            self._record_metrics("model", self.model.fit(self.buffer))
            self._record_metrics("validation", self._improve_policy())
            self.iterations += 1
            self.logger.record("time/iterations", self.iterations, exclude="tensorboard")
            self.logger.record("imagination/total_timesteps", self.agent.num_timesteps)
            if log_interval and self.iterations % log_interval == 0:
                self._dump_logs()
        callback.on_training_end()
        return self

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The TRPO policy's action (its mean when ``deterministic``), as SB3's ``predict``."""
        return self.agent.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )

    @property
    def policy(self) -> Any:
        """The TRPO agent's SB3 policy."""
        return self.agent.policy
