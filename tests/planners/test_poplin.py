"""POPLIN-A: the policy's plan through the model by hand, CEM started from it, and plain
CEM without a policy."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from mbwrap.planners import CEM, POPLINA


def halving_policy(squash: bool = False) -> SimpleNamespace:
    """What POPLIN-A reads of an SB3 policy: ``a = -s / 2`` (in [-1, 1] units if squashing)."""
    return SimpleNamespace(
        device=torch.device("cpu"),
        squash_output=squash,
        _predict=lambda obs, deterministic: -0.5 * obs,
    )


def test_policy_plan_follows_the_model_by_hand(shift_model):
    planner = POPLINA(
        shift_model,
        policy=halving_policy(),
        horizon=3,
        population=8,
        num_elites=2,
        particles=1,
        seed=0,
    )
    # s = (2, -4): a = (-1, 2) -> clipped (-1, 1); s1 = (1, -3): a = (-0.5, 1); s2 = (0.5, -2).
    plan = planner.policy_sequences(torch.tensor([[2.0, -4.0]]))
    expected = torch.tensor([[[-1.0, 1.0], [-0.5, 1.0], [-0.25, 1.0]]])
    torch.testing.assert_close(plan, expected)


def test_squashed_policy_actions_are_mapped_to_the_bounds(shift_model):
    planner = POPLINA(
        shift_model,
        policy=halving_policy(squash=True),
        horizon=1,
        population=8,
        num_elites=2,
        particles=1,
    )
    # [-1, 1] is the Box itself here: a = -s/2 unchanged.
    torch.testing.assert_close(
        planner.policy_sequences(torch.tensor([[1.0, 0.5]])), torch.tensor([[[-0.5, -0.25]]])
    )


def test_each_decision_starts_cem_from_the_policys_plan(shift_model):
    kwargs = dict(
        horizon=3, population=30, num_elites=5, iterations=1, alpha=0.0, particles=1, seed=0
    )
    poplin = POPLINA(shift_model, policy=halving_policy(), **kwargs)
    cem = CEM(shift_model, warm_start=False, **kwargs)
    state = torch.tensor([[2.0, -4.0], [0.5, 0.5]])
    first = poplin.plan_states(state)
    init = poplin.policy_sequences(state)
    expected = cem.first_action(cem.optimize(state, init))  # same seed, same draws
    torch.testing.assert_close(first, expected)
    assert not poplin.warm_start and poplin.get_config()["warm_start"] is False
    poplin.policy = None  # plain CEM from the middle of the Box
    torch.testing.assert_close(poplin.plan_states(state), cem.plan_states(state))
