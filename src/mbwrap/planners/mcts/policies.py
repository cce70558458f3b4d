"""Search policies: MuZero's pUCT search and Gumbel MuZero's, built from the parts.

Both take ``B`` roots and a recurrent function and return the action to play at each
root, the search policy to train the policy head on, and the tree.
"""

from __future__ import annotations

import functools

import torch

from mbwrap.planners.mcts.action_selection import (
    PB_C_BASE,
    PB_C_INIT,
    gumbel_interior_action_selection,
    gumbel_root_action_selection,
    masked_argmax,
    muzero_action_selection,
)
from mbwrap.planners.mcts.compiled_search import (
    GumbelRule,
    PuctRule,
    choose_backend,
    compiled_search,
)
from mbwrap.planners.mcts.qtransforms import completed_by_mix_value
from mbwrap.planners.mcts.search import check_num_simulations, check_root, mask_logits, search
from mbwrap.planners.mcts.seq_halving import considered_visits_table, score_considered
from mbwrap.planners.mcts.tree import Tree
from mbwrap.planners.mcts.types import PolicyOutput, RecurrentFn, RootFnOutput

#: MuZero, Schrittwieser et al. 2020, Appendix C: root exploration noise for Atari.
#: AlphaZero scales alpha inversely to the typical number of legal moves (0.3 for chess,
#: 0.15 for shogi, 0.03 for Go: Silver et al. 2018).
DIRICHLET_ALPHA = 0.25
DIRICHLET_FRACTION = 0.25
#: Gumbel MuZero, Danihelka et al. 2022, Appendix D.
MAX_NUM_CONSIDERED_ACTIONS = 16
C_VISIT = 50.0
C_SCALE = 1.0


def sample_gamma(
    concentration: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gamma(``concentration``, 1) samples, elementwise, from ``generator``.

    Marsaglia and Tsang's (2000) squeeze method, with ``Gamma(a) = Gamma(a + 1) U^(1/a)``
    for ``a < 1``. Sixteen proposals are drawn at once and the first accepted one kept
    (each is accepted with probability above 0.95), so there is no data-dependent loop.
    """
    alpha = concentration
    boosted = alpha + (alpha < 1).to(alpha.dtype)
    d = boosted - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    tries = 16
    shape = (tries, *alpha.shape)
    x = torch.randn(shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
    u = torch.rand(shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
    v = (1.0 + c * x) ** 3
    ok = (v > 0) & (torch.log(u.clamp(min=1e-30)) < 0.5 * x**2 + d - d * v
                    + d * torch.log(v.clamp(min=1e-30)))
    first = torch.argmax(ok.to(torch.uint8), dim=0, keepdim=True)
    sample = (d * v).gather(0, first).squeeze(0)
    u_small = torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
    small = sample * u_small.clamp(min=1e-30) ** (1.0 / alpha)
    return torch.where(alpha < 1, small, sample)


def dirichlet_noise(
    alpha: float, shape: tuple[int, int], *, invalid: torch.Tensor | None,
    generator: torch.Generator | None, device: torch.device, dtype: torch.dtype,
) -> torch.Tensor:
    """``[B, A]`` Dirichlet(``alpha``) samples over the legal actions of each row."""
    gamma = sample_gamma(torch.full(shape, float(alpha), device=device, dtype=dtype),
                         generator=generator)
    if invalid is not None:
        gamma = gamma.masked_fill(invalid, 0.0)
    return gamma / gamma.sum(-1, keepdim=True).clamp(min=1e-30)


def add_dirichlet_noise(
    prior_logits: torch.Tensor,
    noise: torch.Tensor,
    fraction: float,
) -> torch.Tensor:
    """``log((1 - fraction) softmax(logits) + fraction noise)``: ``[B, A]``."""
    probs = (1.0 - fraction) * torch.softmax(prior_logits, -1) + fraction * noise
    return torch.log(probs.clamp(min=torch.finfo(probs.dtype).tiny))


def _sample_from_visits(
    counts: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    if temperature == 0:
        return counts.argmax(-1)
    logits = torch.log(counts.clamp(min=1e-30)) / temperature
    logits = logits.masked_fill(counts <= 0, float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def muzero_policy(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    num_simulations: int,
    *,
    invalid_actions: torch.Tensor | None = None,
    dirichlet_alpha: float = DIRICHLET_ALPHA,
    dirichlet_fraction: float = DIRICHLET_FRACTION,
    pb_c_init: float = PB_C_INIT,
    pb_c_base: float = PB_C_BASE,
    temperature: float = 1.0,
    max_depth: int | None = None,
    qtransform: str = "min_max_tree",
    generator: torch.Generator | None = None,
    tree: Tree | None = None,
    backend: str = "auto",
) -> PolicyOutput:
    """MuZero's search (Schrittwieser et al. 2020, Appendix B) on ``B`` roots.

    Root prior mixed with Dirichlet noise (``dirichlet_fraction = 0`` turns it off),
    pUCT selection with min-max normalised Q, and the action drawn from the root visit
    counts raised to ``1 / temperature`` (``temperature = 0``: the most visited).

    :param root: ``B`` roots; :param recurrent_fn: see :data:`RecurrentFn`.
    :param invalid_actions: ``[B, A]`` bool illegal root actions (default from the root).
    :param qtransform: ``"min_max_tree"`` (the paper) or ``"min_max_siblings"`` (mctx).
    :param tree: a reused subtree (:func:`reuse_subtree`) to continue from.
    :param backend: ``"torch"`` (tensor operations, any device), ``"compiled"`` (numba
        kernels on the CPU: :func:`compiled_search`) or ``"auto"`` (compiled on the CPU
        for up to ``COMPILED_MAX_BATCH`` roots when numba is installed, else torch). Both
        build the same tree.
    :return: action ``[B]``, action_weights = root visit distribution ``[B, A]``, the tree.
    """
    num_simulations = check_num_simulations(num_simulations)
    if qtransform not in ("min_max_tree", "min_max_siblings"):
        raise ValueError(
            f"qtransform: expected 'min_max_tree' or 'min_max_siblings', got {qtransform!r}"
        )
    if temperature < 0:
        raise ValueError(f"temperature: expected a float >= 0, got {temperature!r}")
    invalid = check_root(root, invalid_actions)
    backend = choose_backend(backend, root.value.device, root.value.shape[0], root.value.dtype)
    logits = mask_logits(root.prior_logits, invalid)
    if dirichlet_fraction > 0:
        noise = dirichlet_noise(
            dirichlet_alpha, tuple(logits.shape), invalid=invalid,
            generator=generator, device=logits.device, dtype=logits.dtype,
        )
        logits = add_dirichlet_noise(logits, noise, dirichlet_fraction)
    noisy = RootFnOutput(logits, root.value, root.embedding, root.invalid_actions)
    if backend == "compiled":
        search_tree = compiled_search(
            noisy, recurrent_fn, num_simulations=num_simulations,
            rule=PuctRule(pb_c_init, pb_c_base, qtransform),
            invalid_actions=invalid, max_depth=max_depth, tree=tree,
        )
    else:
        search_tree = search(
            noisy, recurrent_fn, num_simulations=num_simulations,
            root_action_selection_fn=lambda t: muzero_action_selection(
                t, torch.zeros_like(t.batch_range), pb_c_init=pb_c_init, pb_c_base=pb_c_base,
                qtransform=qtransform),
            interior_action_selection_fn=functools.partial(
                muzero_action_selection, pb_c_init=pb_c_init, pb_c_base=pb_c_base,
                qtransform=qtransform),
            invalid_actions=invalid, max_depth=max_depth, tree=tree,
        )
    summary = search_tree.summary()
    action = _sample_from_visits(summary.visit_counts, temperature, generator)
    return PolicyOutput(action=action, action_weights=summary.visit_probs,
                        search_tree=search_tree)


def gumbel_muzero_policy(
    root: RootFnOutput,
    recurrent_fn: RecurrentFn,
    num_simulations: int,
    *,
    invalid_actions: torch.Tensor | None = None,
    max_num_considered_actions: int = MAX_NUM_CONSIDERED_ACTIONS,
    gumbel_scale: float = 1.0,
    c_visit: float = C_VISIT,
    c_scale: float = C_SCALE,
    max_depth: int | None = None,
    generator: torch.Generator | None = None,
    tree: Tree | None = None,
    backend: str = "auto",
) -> PolicyOutput:
    """Gumbel MuZero's search (Danihelka et al. 2022) on ``B`` roots.

    Gumbel-top-k sampling of ``max_num_considered_actions`` root actions, sequential
    halving among them, completed Q through ``sigma`` (``c_visit``, ``c_scale``), and
    deterministic improved-policy matching below the root. No Dirichlet noise: the
    Gumbel noise explores. ``gumbel_scale = 0`` makes the choice deterministic.

    :param backend: ``"torch"``, ``"compiled"`` or ``"auto"``, as for :func:`muzero_policy`.
    :return: action ``[B]``; action_weights = ``softmax(logits + sigma(completed Q))``
        ``[B, A]``, the improved policy the policy head is trained on; the tree.
    """
    num_simulations = check_num_simulations(num_simulations)
    if max_num_considered_actions < 1:
        raise ValueError(
            f"max_num_considered_actions: expected an int >= 1, got {max_num_considered_actions!r}"
        )
    invalid = check_root(root, invalid_actions)
    backend = choose_backend(backend, root.value.device, root.value.shape[0], root.value.dtype)
    logits = mask_logits(root.prior_logits, invalid)
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device,
                         dtype=logits.dtype)
    gumbel = gumbel_scale * -torch.log(-torch.log(uniform.clamp(1e-20, 1 - 1e-7)))
    table = considered_visits_table(max_num_considered_actions, num_simulations,
                                    device=logits.device)
    masked = RootFnOutput(logits, root.value, root.embedding, root.invalid_actions)
    if backend == "compiled":
        search_tree = compiled_search(
            masked, recurrent_fn, num_simulations=num_simulations,
            rule=GumbelRule(table, max_num_considered_actions, c_visit, c_scale),
            invalid_actions=invalid, max_depth=max_depth, tree=tree, root_gumbel=gumbel,
        )
    else:
        search_tree = search(
            masked, recurrent_fn, num_simulations=num_simulations,
            root_action_selection_fn=functools.partial(
                gumbel_root_action_selection, table=table,
                max_num_considered_actions=max_num_considered_actions,
                c_visit=c_visit, c_scale=c_scale),
            interior_action_selection_fn=functools.partial(
                gumbel_interior_action_selection, c_visit=c_visit, c_scale=c_scale),
            invalid_actions=invalid, max_depth=max_depth, tree=tree, root_gumbel=gumbel,
        )
    summary = search_tree.summary()
    # Act with the best of the most visited actions (the paper's final selection).
    considered_visit = summary.visit_counts.max(-1).values
    root_logits = search_tree.children_prior_logits[:, 0]
    sigma = completed_by_mix_value(
        summary.qvalues, summary.visit_counts, root_logits, search_tree.raw_values[:, 0],
        c_visit=c_visit, c_scale=c_scale,
    )
    scores = score_considered(considered_visit, gumbel, root_logits, sigma, summary.visit_counts)
    action = masked_argmax(scores, invalid)
    weights = torch.softmax(mask_logits(root_logits + sigma, invalid), -1)
    return PolicyOutput(action=action, action_weights=weights, search_tree=search_tree)
