"""The vector critic of a TDM inside an SB3 actor-critic (DDPG, TD3, SAC).

Pong et al. (2018, Section 4.2) predict the distance to the goal per goal dimension and
structure the Q-function as ``Q(s, a, g, tau) = -|f(s, a, g, tau) - g|``: ``f`` predicts
the goal the agent will achieve after ``tau`` steps, and the actor maximises the sum of
the components. SB3's update is scalar, so the vector is laid out along the batch: a
TDM sampler (:class:`~mbwrap.algos.tdm_sampler.TDMSampler`) gives each transition ``D``
consecutive rows, row ``r`` for goal dimension ``r mod D``, and this critic returns
component ``r mod D`` of the vector on row ``r``. SB3's target, clipped double Q and MSE
are then taken per component, and its actor loss (the mean over rows) is the sum of the
components divided by ``D``: the paper's update, through SB3's own code.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.utils import get_parameters_by_name
from torch import nn

from mbwrap.algos.tdm_targets import GOAL


class GoalDistanceCritic(ContinuousCritic):
    """SB3's ``ContinuousCritic`` with the TDM structure: each Q network outputs ``f``,
    ``[N, D]``, and row ``r`` gets ``-|f - g|[r, r mod D]``, ``[N, 1]``.

    :param goal_dim: ``D``; ``N`` must be a multiple of it, as a TDM sampler's rows are.
    :param kwargs: ``ContinuousCritic``'s.
    """

    def __init__(self, goal_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.goal_dim = int(goal_dim)
        inputs = self.q_networks[0][0].in_features
        self.q_networks = []
        for idx in range(self.n_critics):
            q_net = nn.Sequential(
                *create_mlp(inputs, self.goal_dim, kwargs["net_arch"], kwargs["activation_fn"])
            )
            self.add_module(f"qf{idx}", q_net)  # replaces SB3's scalar head of that name
            self.q_networks.append(q_net)

    def _components(self, obs: dict[str, torch.Tensor], f: torch.Tensor) -> torch.Tensor:
        rows = f.shape[0]
        if rows % self.goal_dim:
            raise ValueError(
                f"obs: a TDM critic takes {self.goal_dim} rows per transition (one per goal "
                f"dimension), got {rows} rows"
            )
        pick = torch.arange(rows, device=f.device).remainder(self.goal_dim).unsqueeze(1)
        return -(f - obs[GOAL].float()).abs().gather(1, pick)

    def forward(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.set_grad_enabled(not self.share_features_extractor):
            features = self.extract_features(obs, self.features_extractor)
        inputs = torch.cat([features, actions], dim=1)
        return tuple(self._components(obs, q_net(inputs)) for q_net in self.q_networks)

    def q1_forward(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.extract_features(obs, self.features_extractor)
        return self._components(obs, self.q_networks[0](torch.cat([features, actions], dim=1)))


def use_goal_distance_critic(agent: Any, goal_dim: int) -> None:
    """Give an SB3 DDPG, TD3 or SAC agent :class:`GoalDistanceCritic` critics (and target)
    in place of its own, with a fresh optimiser of the same settings, as its policy's
    ``_build`` would have made them.

    :raises ValueError: naming ``agent_kwargs`` when the agent shares its features
        extractor between actor and critic (the critic's optimiser would then skip it).
    """
    policy = agent.policy
    if getattr(policy, "share_features_extractor", False):
        raise ValueError(
            "agent_kwargs: a TDM's vector critic needs policy_kwargs share_features_extractor=False"
        )
    kwargs = policy._update_features_extractor(policy.critic_kwargs, None)
    critic = GoalDistanceCritic(goal_dim, **kwargs).to(policy.device)
    policy.critic = critic
    policy.critic_target = copy.deepcopy(critic)
    policy.critic_target.set_training_mode(False)
    critic.optimizer = policy.optimizer_class(
        critic.parameters(), lr=agent.lr_schedule(1), **policy.optimizer_kwargs
    )
    agent._create_aliases()
    # TD3 and SAC copy the critics' batch-norm statistics into their targets.
    stats = get_parameters_by_name(critic, ["running_"])
    target_stats = get_parameters_by_name(policy.critic_target, ["running_"])
    if hasattr(agent, "critic_batch_norm_stats"):  # TD3, DDPG
        agent.critic_batch_norm_stats, agent.critic_batch_norm_stats_target = stats, target_stats
    if hasattr(agent, "batch_norm_stats"):  # SAC
        agent.batch_norm_stats, agent.batch_norm_stats_target = stats, target_stats
