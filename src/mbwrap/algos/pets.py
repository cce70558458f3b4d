"""Probabilistic Ensembles with Trajectory Sampling (PETS; Chua, Calandra, McAllister &
Levine 2018, "Deep Reinforcement Learning in a Handful of Trials using Probabilistic
Dynamics Models", Algorithm 1).

A probabilistic ensemble is refitted on all real data after every real episode (a
"trial"), and the agent acts by CEM model-predictive control, with particles propagated
through the ensemble (TS-inf by default). There is no policy network: the planner is the
policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from stable_baselines3.common.callbacks import BaseCallback

from mbwrap.algos.base import Algorithm
from mbwrap.algos.config import AlgoConfig, setting
from mbwrap.envs.fns import BatchedFn
from mbwrap.planners import Planner
from mbwrap.registry import make_planner
from mbwrap.space_support import SpaceSupport

#: Chua et al. 2018, Section 6: an ensemble of B = 5 bootstrapped networks, propagated
#: TS-inf (each particle keeps its member for the whole horizon).
PETS_ENSEMBLE: dict[str, Any] = {"ensemble_size": 5, "num_elites": 5, "propagation": "ts-inf"}


@dataclass(kw_only=True)
class PETSConfig(AlgoConfig):
    """Settings of :class:`PETS`: the paper's (Chua et al. 2018, Section 6 and Appendix A)
    as its code (github.com/kchua/handful-of-trials) sets them; ``presets.PENDULUM_PETS``
    sizes them for a CPU."""

    algo_name: ClassVar[str] = "pets"

    model: Any = setting(
        "gaussian-ensemble",
        "a registered model name (built with model_kwargs) or a WorldModel",
        source="Chua et al. 2018, Section 4 (probabilistic ensemble)",
    )
    model_kwargs: dict[str, Any] | None = setting(
        None,
        "constructor keywords of a named model; None: PETS's ensemble (5 members, all "
        "used, TS-inf) for 'gaussian-ensemble', the model's defaults otherwise",
        source="Chua et al. 2018, Section 6",
        optional=True,
    )
    planner: str = setting(
        "cem", "a registered planner name, built over the model with planner_kwargs",
        source="Chua et al. 2018, Section 5 (CEM)",
    )
    planner_kwargs: dict[str, Any] = setting(
        {},
        "constructor keywords of the planner (horizon, population, num_elites, iterations, "
        "particles...); 'cem' defaults to PETS's 500 x 50 elites x 5 iterations over 30 "
        "steps with 20 particles",
        source="Chua et al. 2018, Appendix A.1",
    )
    fit_kwargs: dict[str, Any] = setting(
        {"epochs": 5},
        "keywords of model.fit at each refit",
        source="handful-of-trials env configs: model_train_cfg = {'epochs': 5}",
    )
    learning_starts: int | None = setting(
        None,
        "real steps with uniformly random actions first; None: one whole random episode",
        source="Chua et al. 2018, Algorithm 1 (one random trial first)",
        low=0,
        optional=True,
    )
    model_train_freq: int | None = setting(
        None,
        "real steps between model refits; None: after every episode",
        source="Chua et al. 2018, Algorithm 1 (a refit after each trial)",
        low=1,
        optional=True,
    )
    buffer_size: int = setting(1_000_000, "real transitions kept", low=1)

    def validate(self) -> None:
        super().validate()
        for name in ("learning_starts", "model_train_freq"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{name}: expected an int or None, got {value!r}")
        if not isinstance(self.planner, str):
            raise TypeError(
                f"planner: expected a registered planner name such as 'cem', got {self.planner!r}"
            )
        for key in ("reward_fn", "termination_fn"):
            if key in self.planner_kwargs:
                raise ValueError(f"planner_kwargs: pass {key} to PETS itself, not to the planner")


class PETS(Algorithm):
    """PETS: a probabilistic ensemble planned over by CEM with trajectory sampling.

    ``learn(total_timesteps)``:

    1. uniformly random actions for ``learning_starts`` real steps or, by default
       (``None``), one whole episode (PETS starts from one random trial);
    2. then each iteration refits the model on every real transition (``fit_kwargs``)
       and acts with the planner until an episode ends, or, with ``model_train_freq``,
       for that many real steps. Each refit comes before the steps it serves, so a
       ``learn`` call that ends with an episode leaves the refit to the next call.

    The planner reads the registered (or given) reward and termination functions of the
    env, so on a task with a known reward the ensemble only learns the dynamics.

    Settings: :class:`PETSConfig`; ``model`` and ``planner`` may also be passed by
    position.

    :param reward_fn: batched ``(obs, action, next_obs) -> [n]`` reward the planner
        maximises, overriding the registered one and the model's head. Code, so not saved:
        give it again to a loaded algorithm as ``algo.planner.reward_fn``.
    :param termination_fn: likewise, ``[n]`` bool.
    """

    registry_name = "pets"
    space_support = SpaceSupport(
        observations=("Box",), actions=("Box", "Discrete"), bounded_actions=True
    )
    Config = PETSConfig
    positional_settings = ("model", "planner")
    saved_state = ("model", "planner_generator", "real_episodes", "refits")
    saved_buffers = ("buffer",)
    config: PETSConfig

    def __init__(
        self,
        env: Any,
        *args: Any,
        reward_fn: BatchedFn | None = None,
        termination_fn: BatchedFn | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(env, *args, **kwargs)
        config = self.config
        if config.model_kwargs is None:
            default = config.model == "gaussian-ensemble"
            config.model_kwargs = dict(PETS_ENSEMBLE) if default else {}
        self.model = self._make_model()
        self.planner: Planner = make_planner(
            config.planner,
            self.model,
            **{
                "seed": config.seed,
                "reward_fn": reward_fn,
                "termination_fn": termination_fn,
                **config.planner_kwargs,
            },
        )
        # The checkpoint names every planner setting, its defaults included.
        config.planner_kwargs = {**self.planner.get_config(), **config.planner_kwargs}
        config.planner_kwargs.pop("seed", None)
        self.buffer = self._make_buffer()
        #: Real episodes finished over every ``learn`` call.
        self.real_episodes = 0
        #: Model refits done.
        self.refits = 0

    @property
    def planner_generator(self) -> torch.Generator:
        """The planner's random stream (candidate sampling, particles' members)."""
        return self.planner.generator

    # ------------------------------------------------------------------ the loop's hooks
    def _warming_up(self) -> bool:
        if self.config.learning_starts is None:
            return self.real_episodes < 1
        return self.real_steps < self.config.learning_starts

    def _collect(self, callback: BaseCallback, remaining: int) -> bool:
        """Random steps while warming up; else refit when due, then plan until an episode
        ends (or for ``model_train_freq`` steps)."""
        config = self.config
        if self._warming_up():
            policy, every = None, config.learning_starts
        else:
            if self._model_due():
                # Algorithm 1 trains the model, then acts: the refit precedes the trial.
                self._refit()
            policy, every = self.planner, config.model_train_freq
        if every is None:
            return self._collect_steps(callback, remaining, policy, until_episode_end=True)
        done = self.real_steps if policy is None else self._steps_since_refit or 0
        return self._collect_steps(callback, min(every - done, remaining), policy)

    def _model_due(self) -> bool:
        """Never fitted, ``model_train_freq`` steps since the last refit or, without it,
        an episode ended since then (a loaded run starts at one)."""
        since = self._steps_since_refit
        if since is None:
            return True
        if self.config.model_train_freq is not None:
            return since >= self.config.model_train_freq
        ended = self._episode_starts is None or bool(self._episode_starts.any())
        return since > 0 and ended

    def _refit_due(self) -> bool:
        """Never after collecting: :meth:`_collect` refits before the trial it serves."""
        return False

    def _refit(self) -> None:
        super()._refit()
        self.refits += 1
        self.logger.record("model/refits", self.refits)
