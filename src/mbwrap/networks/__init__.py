"""Agent networks, apart from world models: Dreamer's latent actor and critic,
AlphaZero's policy-value network and PILCO's RBF controller. They act and judge; they do
not predict the env."""

from mbwrap.networks.actor_critic import LatentActor, LatentCritic
from mbwrap.networks.policy_value import PolicyValueNet
from mbwrap.networks.rbf_controller import RBFController

__all__ = ["LatentActor", "LatentCritic", "PolicyValueNet", "RBFController"]
