"""How PlaNet acts in a batch of envs between calls: beliefs, planner memory and the
action repeat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mbwrap.models.latent_filter import LatentFilter, observation_batch
from mbwrap.planners import Planner

if TYPE_CHECKING:
    from mbwrap.algos.planet import PlaNet


class Acting:
    """What acting keeps between calls for a batch of envs, as an SB3 predictor: the
    filtered beliefs, the planner (and its warm start), the last decision and the action
    repeat's phase.

    PlaNet keeps one for collecting experience and one for :meth:`PlaNet.predict`, so that
    an evaluation during learning (SB3's ``EvalCallback``) leaves the training envs'
    beliefs and planner memory alone.
    """

    def __init__(self, algo: PlaNet, planner: Planner) -> None:
        self.algo = algo
        self.planner = planner
        #: Filters the beliefs; its generator also draws the exploration noise.
        self.filter = LatentFilter(algo.model)
        #: Uniformly random decisions (the ``learning_starts`` steps) instead of planned.
        self.random = False
        #: ``[B, *act_shape]`` the action executed since the beliefs were filtered.
        self.action: torch.Tensor | None = None
        #: ``[B, *act_shape]`` the last decision, repeated between decisions.
        self.decided: np.ndarray | None = None
        #: ``[B]`` bool: envs whose episode started since the last decision.
        self.pending: np.ndarray | None = None
        #: Env steps since the last decision, modulo the action repeat.
        self.phase = 0
        #: On a collection worker: the learner says when a decision starts (its writer
        #: decides for every worker's envs together), not this batch's episode starts.
        self.learner_decides = False

    def forget(self, *, decisions: bool = True) -> None:
        """Drop every env's belief (and the decisions being repeated): the next decision
        starts from the observation alone."""
        self.filter.reset()
        self.planner.reset()
        self.action = None
        if decisions:
            self.decided = self.pending = None
            self.phase = 0

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """See :meth:`PlaNet.predict`."""
        algo = self.algo
        obs, batched = observation_batch(observation, algo.observation_space, algo.model.device)
        batch = next(iter(obs.values())).shape[0] if isinstance(obs, dict) else obs.shape[0]
        starts = np.zeros(batch, dtype=bool)
        if episode_start is not None:
            starts = np.asarray(episode_start, dtype=bool).reshape(-1)
            if starts.shape != (batch,):
                raise ValueError(
                    f"episode_start: expected {batch} booleans, one per observation, got "
                    f"shape {np.shape(episode_start)}"
                )
        if self.decided is None or self.decided.shape[0] != batch:
            self.forget()
            starts = np.ones(batch, dtype=bool)
        self.pending = starts if self.pending is None else self.pending | starts
        if starts.all() and not self.learner_decides:
            self.phase = 0
        if self.phase == 0:
            self.decided = self._decide(obs, batch, explore=not deterministic)
            self.pending = np.zeros(batch, dtype=bool)
        self.phase = (self.phase + 1) % algo.config.action_repeat
        assert self.decided is not None
        actions = self.decided.copy()
        return (actions if batched else actions[0]), state

    @torch.no_grad()
    def _decide(self, obs: Any, batch: int, explore: bool) -> np.ndarray:
        """Filter every env's belief with its new observation ``[B, *obs_shape]`` and plan
        from it: ``[B, *act_shape]`` actions, noisy if ``explore``."""
        algo, restart = self.algo, self.pending
        if self.random:
            self.forget(decisions=False)
            return np.stack([algo.action_space.sample() for _ in range(batch)])
        known = self.filter.state is not None and self.action is not None
        self.planner.reset(restart if known else None)
        vector = algo.model.action_vector(self.action) if known else None
        state = self.filter.observe(obs, vector, restart)
        action = self.planner.plan_states(state)
        if explore and algo.config.exploration_noise > 0:
            action = algo._explore(action, self.filter.generator)
        self.action = action
        return action.cpu().numpy()
