"""Agent networks, apart from world models: Dreamer's latent actor and critic, and
AlphaZero's policy-value network. They act and judge; they do not predict the env."""

from mbwrap.networks.actor_critic import LatentActor, LatentCritic
from mbwrap.networks.policy_value import PolicyValueNet

__all__ = ["LatentActor", "LatentCritic", "PolicyValueNet"]
