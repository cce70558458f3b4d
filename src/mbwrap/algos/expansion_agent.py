"""What value expansion asks of an SB3 actor-critic agent: the actions its rollouts take
and its critics' bootstrap values, read from the agent's own networks."""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm


def check_actor_critic(agent: Any, *, what: str, bootstrap: bool = False) -> None:
    """Raise ``TypeError`` naming ``agent`` unless it is an SB3 off-policy actor-critic.

    :param what: the algorithm asking, for the message.
    :param bootstrap: whether the caller computes the critics' bootstrap values itself
        (STEVE): then only TD3 (and DDPG, its subclass) and SAC are known.
    """
    cls = agent if isinstance(agent, type) else type(agent)
    if not issubclass(cls, OffPolicyAlgorithm):
        raise TypeError(
            f"agent: {what} expands the critic's target of an SB3 off-policy actor-critic "
            f"(TD3, DDPG, SAC...), got {cls.__name__}"
        )
    if bootstrap and not issubclass(cls, (TD3, SAC)):
        raise TypeError(
            f"agent: {what} computes every critic's bootstrap value itself and knows TD3, "
            f"DDPG and SAC (and their subclasses), got {cls.__name__}"
        )


def smoothed(agent: Any, action: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """TD3's target policy smoothing: clipped Gaussian noise added to the target actor's
    action, clipped to ``[-1, 1]`` (Fujimoto et al. 2018, eq. 14; none for DDPG, whose clip
    is 0)."""
    noise = torch.randn(action.shape, device=action.device, generator=generator)
    clip = agent.target_noise_clip
    return (action + (noise * agent.target_policy_noise).clamp(-clip, clip)).clamp(-1.0, 1.0)


@torch.no_grad()
def rollout_actions(
    agent: Any, obs: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The actions an imagined rollout takes, in the agent's ``[-1, 1]`` units.

    The target actor where the agent has one (TD3, DDPG): MVE imagines with it "for parity
    with DDPG, which uses a target actor to compute target value estimates" (Feinberg et
    al. 2018, Section 4), with TD3's target smoothing noise as TD3's own targets take it;
    else the actor's sample (SAC, whose target uses the current actor).

    :param obs: ``[N, *obs_shape]`` on the agent's device.
    :param generator: draws TD3's smoothing noise.
    :return: ``[N, *act_shape]``.
    """
    if isinstance(agent, TD3):
        return smoothed(agent, agent.actor_target(obs), generator)
    actor = getattr(agent, "actor_target", None) or agent.actor
    return actor(obs)


@torch.no_grad()
def bootstrap_values(
    agent: Any, obs: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Every target critic's value of ``obs`` under the agent's target policy, as its own
    ``train()`` bootstraps: ``Q'_k(s, a')`` with TD3's clipped smoothing noise on the target
    actor's action (none for DDPG, whose clip is 0), or ``Q'_k(s, a') - alpha log pi(a'|s)``
    with ``a' ~ pi`` for SAC. STEVE needs each critic apart, not their minimum.

    :param obs: ``[N, *obs_shape]`` on the agent's device.
    :param generator: draws TD3's smoothing noise.
    :return: ``[K, N]``, one row per critic.
    """
    if isinstance(agent, TD3):
        action = smoothed(agent, agent.actor_target(obs), generator)
        return torch.cat(agent.critic_target(obs, action), dim=1).T
    if isinstance(agent, SAC):
        action, log_prob = agent.actor.action_log_prob(obs)
        ent_coef = (
            torch.exp(agent.log_ent_coef.detach())
            if agent.ent_coef_optimizer is not None
            else agent.ent_coef_tensor
        )
        values = torch.cat(agent.critic_target(obs, action), dim=1).T
        return values - ent_coef.reshape(()) * log_prob.reshape(1, -1)
    check_actor_critic(agent, what="bootstrap_values", bootstrap=True)
    raise AssertionError("unreachable")


def critic_count(agent: Any) -> int:
    """The number of Q networks of an SB3 actor-critic (``n_critics``)."""
    return int(agent.critic.n_critics)


class RealRowsDriveTheActor:
    """Forward hooks on an SB3 actor's output layers (``mu``, and SAC's ``log_std``) so
    that, in a batch whose first rows are real and the rest imagined, only the real rows
    move the actor: MVE updates the actor on the real transitions alone and the critic on
    all (Feinberg et al. 2018, Algorithm 1), while SB3's ``train()`` takes one batch for both.

    On a batch of :meth:`expect`'s size the imagined rows' outputs are detached and the
    real rows' gradient is scaled by ``total / real``, so the actor's mean loss has the
    gradient of the mean over the real rows; the values are unchanged. Any other batch
    (acting, a target computed under ``no_grad``) passes through.
    """

    def __init__(self, agent: Any) -> None:
        self.real = self.total = 0
        actor = agent.actor
        modules = [actor.mu] + [
            m for m in (getattr(actor, "log_std", None),) if isinstance(m, torch.nn.Module)
        ]
        self.handles = [module.register_forward_hook(self._hook) for module in modules]

    def expect(self, real: int, total: int) -> None:
        """The next batches have ``total`` rows, the first ``real`` of them real."""
        self.real, self.total = int(real), int(total)

    def _hook(self, module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or self.total == self.real or output.shape[0] != self.total:
            return output
        scale = self.total / self.real
        real_rows = torch.arange(self.total, device=output.device) < self.real
        rescaled = output * scale - output.detach() * (scale - 1.0)
        return torch.where(
            real_rows.reshape(-1, *([1] * (output.ndim - 1))), rescaled, output.detach()
        )
