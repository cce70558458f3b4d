"""CEM seeded by a policy: POPLIN-A (Wang & Ba 2019, "Exploring Model-based Planning with
Policy Networks", Section 4.1, the "Init" variant)."""

from __future__ import annotations

from typing import Any

import torch

from mbwrap.models import WorldModel
from mbwrap.planners.cem import CEM
from mbwrap.space_support import SpaceSupport


class POPLINA(CEM):
    """CEM over Box actions whose every decision starts from a policy's plan.

    The policy (an SB3 policy, or an algorithm with one) acts deterministically along the
    model's predicted trajectory from the current state for ``horizon`` steps; that action
    sequence is CEM's initial mean, in place of the previous solution shifted
    (``warm_start`` is off). CEM then searches around it as usual. Without a policy (or with
    ``policy=None`` assigned) it is plain CEM from the middle of the Box.

    The policy is not part of :meth:`save`: assign :attr:`policy` again after loading.

    :param policy: what proposes the initial plans; usually distilled from this planner
        (:func:`~mbwrap.algos.distill_planner`).
    :param kwargs: see :class:`~mbwrap.planners.CEM`.
    """

    registry_name = "poplin-a"
    supports_discrete = False
    space_support = SpaceSupport(observations=None, actions=("Box",), bounded_actions=True)

    def __init__(self, model: WorldModel, *, policy: Any = None, **kwargs: Any) -> None:
        kwargs["warm_start"] = False
        super().__init__(model, **kwargs)
        self.policy = policy
        self._proposal: torch.Tensor | None = None

    @torch.no_grad()
    def policy_sequences(self, state: torch.Tensor) -> torch.Tensor:
        """The policy's plan from each state: ``[B, *state_shape] -> [B, H, D]`` flat Box
        actions in env units, acting on the model's mean prediction (no sampling)."""
        policy = getattr(self.policy, "policy", self.policy)
        actions = []
        for _ in range(self.horizon):
            obs = self.model.dream_observation(state).to(policy.device)
            action = policy._predict(obs, deterministic=True).reshape(state.shape[0], -1)
            action = action.to(self.device).float()
            if policy.squash_output:
                action = self.lower + 0.5 * (action + 1.0) * (self.upper - self.lower)
            action = torch.clamp(action, self.lower, self.upper)
            actions.append(action)
            state = self.model.step(state, self.to_actions(action)).next_state
        return torch.stack(actions, dim=1)

    def fresh_solution(self, batch: int) -> torch.Tensor:
        if self._proposal is not None and self._proposal.shape[0] == batch:
            return self._proposal.clone()
        return super().fresh_solution(batch)

    def plan_states(self, state: torch.Tensor) -> torch.Tensor:
        if self.policy is not None and isinstance(state, torch.Tensor):
            self._proposal = self.policy_sequences(state.to(self.device))
        try:
            return super().plan_states(state)
        finally:
            self._proposal = None
