"""Batched Monte-Carlo tree search on the model's device (MuZero's and Gumbel MuZero's).

``B`` trees are searched at once as preallocated tensors: selection, one batched model
call per simulation, and backup are tensor operations, with no loop over the batch and
no copy to the host inside the search. On the CPU the same trees can be built by numba
kernels working on those tensors' memory (:func:`compiled_search`, the policies'
``backend="compiled"``, chosen by ``"auto"`` when numba is installed), which is several
times faster at small batches.
"""

from mbwrap.planners.mcts.action_selection import (
    gumbel_interior_action_selection,
    gumbel_root_action_selection,
    masked_argmax,
    muzero_action_selection,
    puct_scores,
)
from mbwrap.planners.mcts.compiled_search import (
    COMPILED_MAX_BATCH,
    GumbelRule,
    PuctRule,
    compiled_search,
)
from mbwrap.planners.mcts.muzero_search import MuZeroSearchModel
from mbwrap.planners.mcts.planner import MCTSPlanner
from mbwrap.planners.mcts.policies import (
    add_dirichlet_noise,
    dirichlet_noise,
    gumbel_muzero_policy,
    muzero_policy,
    sample_gamma,
)
from mbwrap.planners.mcts.qtransforms import (
    completed_by_mix_value,
    min_max_normalize,
    min_max_siblings,
    mixed_value,
)
from mbwrap.planners.mcts.search import search
from mbwrap.planners.mcts.seq_halving import (
    considered_visits,
    considered_visits_table,
    score_considered,
)
from mbwrap.planners.mcts.simulator import BoardGameSearch, SimulatorSearch
from mbwrap.planners.mcts.tree import SearchSummary, Tree, reuse_subtree
from mbwrap.planners.mcts.types import (
    Embedding,
    PolicyOutput,
    RecurrentFn,
    RecurrentFnOutput,
    RootFnOutput,
    SearchModel,
)
from mbwrap.planners.mcts.world_model import ValueFn, WorldModelSearch
from mbwrap.transforms import (
    inverse_value_transform,
    scalar_to_two_hot,
    two_hot_to_scalar,
    value_transform,
)

__all__ = [
    "COMPILED_MAX_BATCH",
    "BoardGameSearch",
    "Embedding",
    "GumbelRule",
    "MCTSPlanner",
    "MuZeroSearchModel",
    "PolicyOutput",
    "PuctRule",
    "RecurrentFn",
    "RecurrentFnOutput",
    "RootFnOutput",
    "SearchModel",
    "SearchSummary",
    "SimulatorSearch",
    "Tree",
    "ValueFn",
    "WorldModelSearch",
    "add_dirichlet_noise",
    "compiled_search",
    "completed_by_mix_value",
    "considered_visits",
    "considered_visits_table",
    "dirichlet_noise",
    "gumbel_interior_action_selection",
    "gumbel_muzero_policy",
    "gumbel_root_action_selection",
    "inverse_value_transform",
    "masked_argmax",
    "min_max_normalize",
    "min_max_siblings",
    "mixed_value",
    "muzero_action_selection",
    "muzero_policy",
    "puct_scores",
    "reuse_subtree",
    "sample_gamma",
    "scalar_to_two_hot",
    "score_considered",
    "search",
    "two_hot_to_scalar",
    "value_transform",
]
