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

Defaults cite the paper and the authors' code (github.com/thanard/me-trpo,
``params/params-*.json``, "code params" below).
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from mbwrap.algos.agents import decode_kwargs, resolve_agent
from mbwrap.algos.base import Algorithm
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.algos.me_trpo_validation import (
    ensemble_members,
    first_observations,
    improvement_ratio,
    member_returns,
    should_stop,
)
from mbwrap.device import make_generator
from mbwrap.envs import DreamVecEnv
from mbwrap.sb3 import as_vec_env
from mbwrap.space_support import SpaceSupport
from mbwrap.spaces import element_shape, torch_dtype

_CODE = "Kurutach et al. 2018, code params"


def _episode_limit(env: VecEnv | None) -> int | None:
    """The real env's ``TimeLimit`` (of its first copy), or ``None``."""
    spec = env.get_attr("spec", indices=[0])[0] if env is not None else None
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


def _check_agent_kwargs(agent_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``agent_kwargs`` decoded, after checking that ``sb3_contrib.TRPO`` takes each (the env
    is the imagined one; seed, device and verbosity are METRPO's)."""
    own = {"self", "env", "_init_setup_model", "seed", "device", "verbose", "tensorboard_log"}
    keywords = frozenset(inspect.signature(_trpo().__init__).parameters) - own
    unknown = sorted(set(agent_kwargs) - keywords)
    if unknown:
        raise TypeError(
            f"agent_kwargs: {unknown} are not keywords METRPO passes to sb3_contrib.TRPO "
            f"({', '.join(sorted(keywords))}); seed, device and verbose are METRPO's own"
        )
    return decode_kwargs(agent_kwargs)


@dataclass(kw_only=True)
class METRPOConfig(AlgoConfig):
    """Settings of :class:`METRPO`: the paper's and its code's (``params-*.json``)."""

    algo_name: ClassVar[str] = "me-trpo"

    model: Any = setting(
        "gaussian-ensemble",
        "a registered model name (built with model_kwargs) or a WorldModel; the paper's "
        "ensemble of deterministic networks, a random one per imagined step, is model='mlp', "
        "model_kwargs={'ensemble_size': 5}; 'gaussian-ensemble' draws a random elite per step",
        source="Kurutach et al. 2018, Section 4.1",
    )
    model_kwargs: dict[str, Any] = setting({}, "constructor keywords of a named model")
    fit_kwargs: dict[str, Any] = setting({}, "keywords of model.fit at each refit")
    agent_kwargs: dict[str, Any] = setting(
        {},
        "keywords of sb3_contrib.TRPO (policy among them) over METRPO.default_agent_kwargs(); "
        "unless given, the critic's batch_size is a tenth of a TRPO iteration (the paper fits "
        "rllab's linear baseline, not a critic)",
    )
    learning_starts: int = setting(
        3000, "real steps with uniformly random actions before the first fit (the first "
        "iteration)", source=f"Algorithm 1; {_CODE} sample_size", low=0,
    )
    train_freq: int = setting(
        3000, "real steps with the policy per iteration (then a refit and policy improvement)",
        source=f"{_CODE} sample_size", low=1,
    )
    num_imagined_envs: int = setting(
        500,
        "imagined episodes TRPO runs in parallel; a TRPO iteration is num_imagined_envs * "
        "n_steps imagined steps",
        source=f"{_CODE} trpo.batch_size 50000 = 500 x n_steps 100",
        low=1,
    )
    imagination_horizon: int | None = setting(
        None,
        "the longest imagined episode; None: the real env's time limit (else 100)",
        source=f"{_CODE} policy_opt_params.T, the real episode length",
        low=1,
        optional=True,
    )
    start_states: str = setting(
        "initial",
        "'initial': imagined and validation episodes start from first observations of real "
        "episodes (the paper's start-state distribution); 'all': from any real observation",
        source="Kurutach et al. 2018, Section 4.2",
        choices=("initial", "all"),
    )
    validation_interval: int = setting(
        5, "TRPO iterations between validations", source="Section 4.3", low=1
    )
    improvement_threshold: float = setting(
        0.7, "least fraction, in (0, 1], of ensemble members under which the imagined return "
        "must rise", source="Section 4.3", high=1.0,
    )
    patience: int = setting(
        25, "TRPO iterations after the last improvement before the phase ends",
        source=f"{_CODE} num_iters_threshold", low=1,
    )
    max_policy_iterations: int = setting(
        400, "TRPO iterations per phase at most", source=f"{_CODE} max_iters", low=1
    )
    validation_episodes: int = setting(
        50, "imagined episodes per member and validation, from fixed start states", low=1
    )
    buffer_size: int = setting(
        1_000_000, "real transitions kept (the model is fit on all of them)",
        source="SB3's default replay size", low=1,
    )

    def validate(self) -> None:
        super().validate()
        if not self.improvement_threshold > 0:
            raise ValueError(
                "improvement_threshold: expected a fraction in (0, 1], got "
                f"{self.improvement_threshold!r}"
            )


class METRPO(Algorithm):
    """Model-Ensemble TRPO: ``sb3_contrib.TRPO`` learning only in imagination.

    After ``learning_starts`` uniformly random real steps, and then after every
    ``train_freq`` real steps with the current (stochastic) policy, the model is fit on
    every real transition and TRPO runs on a :class:`~mbwrap.DreamVecEnv` of it. Every
    ``validation_interval`` TRPO iterations the policy's deterministic imagined return is
    estimated under each member (:func:`member_returns`); it improved when it rose under
    at least ``improvement_threshold`` of them (:func:`improvement_ratio`); the phase ends
    ``patience`` TRPO iterations after the last improvement (:func:`should_stop`) and the
    policy goes back to the last improved one, as the authors' code does.

    Reward and termination in imagination come from the function registered for the env
    id (``mbwrap.fns``), else from the model's heads. Logs: ``model/`` (fits),
    ``validation/`` (each phase), TRPO's ``train/``.

    Settings: :class:`METRPOConfig`; ``model`` may also be passed by position.
    """

    registry_name = "me-trpo"
    space_support = SpaceSupport(
        observations=("Box",), actions=("Box", "Discrete", "MultiDiscrete", "MultiBinary")
    )
    Config = METRPOConfig
    positional_settings = ("model",)
    saved_state = ("agent", "model", "iterations", "rng", "dream_rng")
    saved_buffers = ("buffer", "initial_obs")
    config: METRPOConfig

    def __init__(self, env: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        agent_kwargs = _check_agent_kwargs(config.agent_kwargs)
        self.model = self._make_model()
        config.imagination_horizon = config.imagination_horizon or _episode_limit(self.env) or 100
        #: Generator of the validation start states and seeds.
        self.rng = np.random.default_rng(config.seed)
        self.buffer = self._make_buffer()
        #: ``[M, *obs_shape]``: the first observation of every real episode so far.
        shape, dtype = element_shape(self.observation_space), torch_dtype(self.observation_space)
        self.initial_obs = torch.zeros((0, *shape), dtype=dtype, device=self.model.device)
        #: Completed iterations (collect, fit, improve).
        self.iterations = 0
        self.dream = DreamVecEnv(self.model, config.num_imagined_envs,
                                 start_states=self._sample_starts,
                                 horizon=config.imagination_horizon)
        kwargs = {**self.default_agent_kwargs(), **agent_kwargs}
        if "batch_size" not in agent_kwargs:
            kwargs["batch_size"] = max(1, kwargs["n_steps"] * config.num_imagined_envs // 10)
        # The config keeps the TRPO settings in full, so that a checkpoint rebuilds them.
        self.agent, _, config.agent_kwargs = resolve_agent(
            _trpo(),
            kwargs,
            as_vec_env(self.dream),
            seed=config.seed,
            device=self.device,
            verbose=max(self.verbose - 1, 0),
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

    # ------------------------------------------------------------------ checkpoints
    @property
    def dream_rng(self) -> np.random.Generator:
        """The generator TRPO's imagined episodes draw their start states from."""
        return self.dream.np_random

    def _after_restore(self) -> None:
        self.initial_obs = self.initial_obs.to(self.model.device)
        # The dream continues its saved random stream instead of its seed.
        self.agent.get_env()._reset_seeds()

    # ------------------------------------------------------------------ imagination
    def _sample_starts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` real observations to start imagined episodes from: ``[n, *obs_shape]``."""
        if self.config.start_states == "all":
            return self.buffer.sample(n, generator=generator).obs
        starts = self.initial_obs
        if starts.shape[0] == 0:
            raise ValueError("start_states: no real episode has started yet; learn() first")
        return starts[torch.randint(len(starts), (n,), device=starts.device, generator=generator)]

    def _improve_policy(self) -> dict[str, float]:
        """TRPO in imagination until validation says stop; keep the last improved policy."""
        agent, config = self.agent, self.config
        agent.set_env(agent.get_env())  # restart the imagined episodes under the refit model
        steps_per_trpo_iteration = agent.n_steps * agent.n_envs
        # Fixed for the phase, so validations differ only by the policy.
        generator = make_generator(self.model.device, int(self.rng.integers(2**62)))
        starts = self._sample_starts(config.validation_episodes, generator)
        seed = int(self.rng.integers(2**62))
        members = ensemble_members(self.model)
        horizon = config.imagination_horizon

        def validate() -> np.ndarray:
            return member_returns(agent.policy, self.model, starts, horizon, members=members,
                                  seed=seed)

        first_returns = best_returns = validate()
        best_weights = copy.deepcopy(agent.policy.state_dict())
        iteration = improved_at = 0
        ratio = math.nan
        limit, patience = config.max_policy_iterations, config.patience
        while not should_stop(iteration, improved_at, patience=patience, max_iterations=limit):
            count = min(config.validation_interval, limit - iteration)
            agent.learn(
                count * steps_per_trpo_iteration,
                log_interval=None,  # type: ignore[arg-type]  # METRPO dumps the logs
                reset_num_timesteps=False,
            )
            iteration += count
            returns = validate()
            ratio = improvement_ratio(best_returns, returns)
            if ratio >= config.improvement_threshold:
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

    # ------------------------------------------------------------------ the loop's hooks
    def _on_training_start(self) -> None:
        self.agent.set_logger(self.logger)

    def _collect(self, callback: Any, remaining: int) -> bool:
        """The base's collection, keeping the first observation of each episode it starts."""
        reset = self._last_obs is not self._collected_obs or self._episode_starts is None
        first = np.ones(self.n_envs, dtype=bool) if reset else self._episode_starts
        before = self.real_steps
        keep_going = super()._collect(callback, remaining)
        if self.real_steps > before:
            steps = (self.real_steps - before) // self.n_envs
            new = first_observations(self.buffer.transitions(), torch.as_tensor(first), steps)
            self.initial_obs = torch.cat([self.initial_obs, new.to(self.initial_obs)])
        return keep_going

    def _train(self) -> None:
        """A policy-improvement phase in imagination (the refit happened just before)."""
        self._record_metrics("validation", self._improve_policy())
        self.iterations += 1
        self.logger.record("time/iterations", self.iterations, exclude="tensorboard")
        self.logger.record("imagination/total_timesteps", self.agent.num_timesteps)

    # ------------------------------------------------------------------ public surface
    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """The TRPO policy's action (its mean when ``deterministic``), as SB3's ``predict``."""
        return self.agent.predict(observation, state, episode_start, deterministic)

    @property
    def policy(self) -> Any:
        """The TRPO agent's SB3 policy."""
        return self.agent.policy
