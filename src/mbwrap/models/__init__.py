"""World models: the :class:`WorldModel` contract and its implementations."""

from mbwrap.models.base import WorldModel
from mbwrap.models.distill import distill_ensemble
from mbwrap.models.gaussian_ensemble import GaussianEnsemble
from mbwrap.models.gmm import GaussianMixture
from mbwrap.models.gp import GPModel
from mbwrap.models.gp_moments import KernelExpansion, moment_match
from mbwrap.models.latent_filter import LatentFilter
from mbwrap.models.layers import EnsembleLinear, EnsembleMLP, ResidualBlock
from mbwrap.models.local_linear import (
    DynamicsPriorGMM,
    LocalLinearModel,
    NormalInverseWishart,
    fit_conditional_gaussian,
    fit_linear_gaussian,
)
from mbwrap.models.losses import gaussian_nll, mixture_nll, soft_clamp_logvar
from mbwrap.models.mdn import MDNModel
from mbwrap.models.mdn_rnn import MDNRNN, sample_mixture
from mbwrap.models.mlp import MLPModel
from mbwrap.models.muzero_nets import MuZeroNetworks
from mbwrap.models.neural import NeuralWorldModel
from mbwrap.models.normalizer import Normalizer
from mbwrap.models.rssm import RSSM
from mbwrap.models.tabular import TabularModel
from mbwrap.models.vae import ConvVAE, vae_loss
from mbwrap.models.vae_mdn_rnn import VAEMDNRNN
from mbwrap.models.video import VideoModel

__all__ = [
    "MDNRNN",
    "RSSM",
    "VAEMDNRNN",
    "ConvVAE",
    "DynamicsPriorGMM",
    "EnsembleLinear",
    "EnsembleMLP",
    "GPModel",
    "GaussianEnsemble",
    "GaussianMixture",
    "KernelExpansion",
    "LatentFilter",
    "LocalLinearModel",
    "MDNModel",
    "MLPModel",
    "MuZeroNetworks",
    "NeuralWorldModel",
    "NormalInverseWishart",
    "Normalizer",
    "ResidualBlock",
    "TabularModel",
    "VideoModel",
    "WorldModel",
    "distill_ensemble",
    "fit_conditional_gaussian",
    "fit_linear_gaussian",
    "gaussian_nll",
    "mixture_nll",
    "moment_match",
    "sample_mixture",
    "soft_clamp_logvar",
    "vae_loss",
]
