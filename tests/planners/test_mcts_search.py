"""The batched tree search: hand-worked trees, formulas, masks, reuse, errors."""

from __future__ import annotations

import math

import pytest
import torch

from mbwrap.errors import ModelOutputError
from mbwrap.planners.mcts import (
    RecurrentFnOutput,
    RootFnOutput,
    completed_by_mix_value,
    considered_visits,
    considered_visits_table,
    gumbel_muzero_policy,
    min_max_normalize,
    mixed_value,
    muzero_policy,
    puct_scores,
    reuse_subtree,
    sample_gamma,
    score_considered,
)
from mbwrap.planners.mcts.action_selection import masked_argmax
from mbwrap.planners.mcts.qtransforms import normalize_visited


def bandit_fn(rewards: list[float], discount: float = 0.0, value: float = 0.0):
    """Every action ends the episode with a fixed reward; the prior is uniform."""
    table = torch.tensor(rewards)

    def recurrent_fn(embedding, action):
        b = action.shape[0]
        out = RecurrentFnOutput(
            reward=table[action], discount=torch.full((b,), discount),
            prior_logits=torch.zeros(b, len(rewards)), value=torch.full((b,), value),
        )
        return out, embedding

    return recurrent_fn


def root_of(batch: int, actions: int, value: float = 0.0, dim: int = 3) -> RootFnOutput:
    return RootFnOutput(torch.zeros(batch, actions), torch.full((batch,), value),
                        torch.zeros(batch, dim))


def test_puct_on_a_two_armed_bandit_matches_the_hand_worked_counts():
    # Rewards [1, 0], terminal children. pb_c ~ 1.25 and the prior is 0.5, so action 0
    # (tie, lowest index) is taken until 0.625 sqrt(N) (1 - 1/N) > 1, i.e. at N = 5:
    # four visits to action 0, then one to action 1.
    out = muzero_policy(root_of(1, 2), bandit_fn([1.0, 0.0]), 5, dirichlet_fraction=0.0,
                        temperature=0.0)
    summary = out.search_tree.summary()
    assert summary.visit_counts.tolist() == [[4.0, 1.0]]
    # Root value: the root's own value 0 and the five returns 1, 1, 1, 1, 0.
    assert summary.value.item() == pytest.approx(4.0 / 6.0)
    assert summary.qvalues.tolist() == [[1.0, 0.0]]
    assert out.action.item() == 0
    assert out.action_weights[0].tolist() == pytest.approx([0.8, 0.2])


def test_two_player_discount_minus_one_flips_values_to_the_mover():
    # Action 0 leads to a position worth +1 to the opponent, action 1 to one worth -1.
    def recurrent_fn(embedding, action):
        b = action.shape[0]
        value = torch.where(action == 0, 1.0, -1.0)
        out = RecurrentFnOutput(torch.zeros(b), torch.full((b,), -1.0), torch.zeros(b, 2),
                                value)
        return out, embedding

    out = muzero_policy(root_of(1, 2), recurrent_fn, 20, dirichlet_fraction=0.0,
                        temperature=0.0, max_depth=1)
    summary = out.search_tree.summary()
    assert out.action.item() == 1
    assert summary.visit_counts[0, 1] > summary.visit_counts[0, 0]
    assert summary.qvalues[0].tolist() == [-1.0, 1.0]
    n0, n1 = summary.visit_counts[0].tolist()
    assert summary.value.item() == pytest.approx((n1 - n0) / 21)


def test_visits_and_values_are_consistent_through_a_deep_search():
    torch.manual_seed(0)
    weights = torch.randn(8 + 3, 8) * 0.7

    def recurrent_fn(embedding, action):
        x = torch.cat([embedding, torch.nn.functional.one_hot(action, 3).float()], -1)
        nxt = torch.tanh(x @ weights)
        out = RecurrentFnOutput(nxt[:, 0], torch.full((x.shape[0],), 0.9), nxt[:, :3], nxt[:, 1])
        return out, nxt

    root = RootFnOutput(torch.zeros(5, 3), torch.zeros(5), torch.randn(5, 8))
    tree = muzero_policy(root, recurrent_fn, 60, dirichlet_fraction=0.0).search_tree
    used = tree.num_nodes[0].item()
    assert tree.num_nodes.tolist() == [61] * 5
    # Every node was visited once at expansion plus once per backup through it.
    assert torch.equal(tree.node_visits[:, :used], tree.children_visits[:, :used].sum(-1) + 1)
    # Each edge's Q is its reward plus the discounted value of its child.
    rows, nodes, acts = torch.nonzero(tree.children_index[:, :used] >= 0, as_tuple=True)
    child = tree.children_index[rows, nodes, acts]
    expected = tree.children_rewards[rows, nodes, acts] + 0.9 * tree.node_values[rows, child]
    assert torch.allclose(tree.children_qvalues[rows, nodes, acts], expected, atol=1e-6)
    # A parent's value is the visit-weighted mean of its own value and its edges' Q.
    q_sum = (tree.children_qvalues * tree.children_visits)[:, :used].sum(-1)
    mean = (tree.raw_values[:, :used] + q_sum) / tree.node_visits[:, :used]
    assert torch.allclose(tree.node_values[:, :used], mean, atol=1e-5)


def test_a_batch_searches_like_its_rows_one_at_a_time():
    torch.manual_seed(1)
    weights = torch.randn(6 + 4, 6)

    def recurrent_fn(embedding, action):
        x = torch.cat([embedding, torch.nn.functional.one_hot(action, 4).float()], -1)
        nxt = torch.tanh(x @ weights)
        out = RecurrentFnOutput(nxt[:, 0], torch.full((x.shape[0],), 0.95), nxt[:, :4], nxt[:, 1])
        return out, nxt

    root = RootFnOutput(torch.randn(6, 4), torch.randn(6), torch.randn(6, 6))
    together = muzero_policy(root, recurrent_fn, 30, dirichlet_fraction=0.0, temperature=0.0)
    for i in range(6):
        alone = muzero_policy(
            RootFnOutput(root.prior_logits[i:i + 1], root.value[i:i + 1], root.embedding[i:i + 1]),
            recurrent_fn, 30, dirichlet_fraction=0.0, temperature=0.0,
        )
        assert torch.equal(alone.search_tree.summary().visit_counts[0],
                           together.search_tree.summary().visit_counts[i])
    gumbel = gumbel_muzero_policy(root, recurrent_fn, 30, gumbel_scale=0.0)
    alone = gumbel_muzero_policy(
        RootFnOutput(root.prior_logits[2:3], root.value[2:3], root.embedding[2:3]),
        recurrent_fn, 30, gumbel_scale=0.0,
    )
    assert torch.allclose(alone.action_weights[0], gumbel.action_weights[2], atol=1e-6)


def test_illegal_actions_are_never_visited_at_the_root_or_below():
    def recurrent_fn(embedding, action):
        b = action.shape[0]
        invalid = torch.zeros(b, 4, dtype=torch.bool)
        invalid[:, 3] = True  # action 3 is illegal below the root
        out = RecurrentFnOutput(torch.ones(b), torch.full((b,), 0.9), torch.zeros(b, 4),
                                torch.zeros(b), invalid_actions=invalid)
        return out, embedding

    invalid_root = torch.tensor([[False, True, False, False], [True, True, True, False]])
    for policy in (muzero_policy, gumbel_muzero_policy):
        out = policy(root_of(2, 4), recurrent_fn, 40, invalid_actions=invalid_root)
        tree = out.search_tree
        assert tree.children_visits[:, 0][invalid_root].sum() == 0
        assert tree.children_visits[:, 1:-1, 3].sum() == 0  # the last slot is spare
        assert not invalid_root[torch.arange(2), out.action].any()
        assert out.action_weights[invalid_root].max() < 1e-6
        assert out.action[1].item() == 3  # the only legal root action


def test_max_depth_one_expands_only_root_children():
    tree = muzero_policy(root_of(1, 3), bandit_fn([0.1, 0.2, 0.3], discount=0.9), 20,
                         max_depth=1, dirichlet_fraction=0.0).search_tree
    assert tree.num_nodes.item() == 4  # the root and its three children, re-expanded
    assert tree.children_visits[0, 0].sum().item() == 20


def test_gumbel_considers_only_the_top_k_and_halves():
    # Deterministic: the considered actions are the 2 with the largest logits.
    root = RootFnOutput(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), torch.zeros(1), torch.zeros(1, 2))
    out = gumbel_muzero_policy(root, bandit_fn([0.0, 1.0, 0.0, 0.0]), 8,
                               max_num_considered_actions=2, gumbel_scale=0.0)
    visits = out.search_tree.summary().visit_counts[0]
    assert visits.tolist() == [4.0, 4.0, 0.0, 0.0]
    assert out.action.item() == 1  # the better of the two on Q
    weights = out.action_weights[0]
    assert torch.allclose(weights.sum(), torch.tensor(1.0))
    assert weights[1] > weights[0]


def test_considered_visits_schedule_by_hand():
    # m = 4, S = 8: log2(4) = 2 phases; 4 actions once each, then 2 actions twice each.
    assert considered_visits(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]
    assert considered_visits(1, 3) == [0, 1, 2]
    assert considered_visits(2, 4) == [0, 0, 1, 1]


def test_considered_visits_table_rows_are_the_schedules_for_each_action_count():
    table = considered_visits_table(4, 8)
    assert table.shape == (5, 8) and table.dtype == torch.long
    for k in range(5):
        assert table[k].tolist() == considered_visits(k, 8)
    assert table[4].tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    table[4] = 99  # a copy: the cached rows stay as they were
    assert considered_visits_table(4, 8)[4].tolist() == [0, 0, 0, 0, 1, 1, 2, 2]


def test_masked_argmax_skips_invalid_entries_and_breaks_ties_low():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 1.0, 0.0, 4.0], [0.0, 2.0, 1.0, 3.0]])
    invalid = torch.tensor(
        [[False, False, False, False], [True, False, False, True], [True, True, True, True]]
    )
    # Row 0: a tie between 1 and 2 goes to 1. Row 1: the best valid entry is 1.0 at index 1.
    # Row 2: every entry invalid (a terminal node), so the mask is ignored.
    assert masked_argmax(scores, invalid).tolist() == [1, 1, 3]
    assert masked_argmax(scores, None).tolist() == [1, 0, 3]


def test_normalize_visited_scales_visited_q_and_zeros_the_rest():
    q = torch.tensor([[1.0, 3.0, -1.0], [0.5, 0.5, 2.0]])
    visits = torch.tensor([[1, 2, 0], [0, 4, 1]])
    out = normalize_visited(q, visits, torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    expected = torch.tensor([[0.0, 1.0, 0.0], [0.0, 3.0, 6.0]])
    torch.testing.assert_close(out, expected)


def test_puct_scores_formula():
    logits = torch.log(torch.tensor([[0.2, 0.8]]))
    scores = puct_scores(logits, torch.tensor([[1.0, 3.0]]), torch.tensor([5.0]),
                         torch.tensor([[0.5, 0.25]]))
    pb_c = 1.25 + math.log((5 + 19652 + 1) / 19652)
    expected = [0.5 + 0.2 * math.sqrt(5) / 2 * pb_c, 0.25 + 0.8 * math.sqrt(5) / 4 * pb_c]
    assert scores[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_min_max_normalize_over_the_tree():
    q = torch.tensor([[2.0, 0.0, 5.0]])
    visits = torch.tensor([[1.0, 0.0, 2.0]])
    out = min_max_normalize(q, visits, torch.tensor([-1.0]), torch.tensor([5.0]))
    assert out[0].tolist() == pytest.approx([0.5, 0.0, 1.0])
    # Before two different Q are seen, Q passes through.
    same = min_max_normalize(q, visits, torch.tensor([2.0]), torch.tensor([2.0]))
    assert same[0].tolist() == pytest.approx([2.0, 0.0, 5.0])


def test_mixed_value_and_sigma_match_the_paper():
    q = torch.tensor([[1.0, 0.0, 0.5]])
    visits = torch.tensor([[2.0, 0.0, 1.0]])
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    # v_mix = (v + 3 * (0.5 * 1 + 0.2 * 0.5) / (0.5 + 0.2)) / 4 with v = 0.2
    v_mix = (0.2 + 3 * (0.5 * 1.0 + 0.2 * 0.5) / 0.7) / 4
    assert mixed_value(torch.tensor([0.2]), q, visits, probs).item() == pytest.approx(v_mix)
    sigma = completed_by_mix_value(q, visits, torch.log(probs), torch.tensor([0.2]))
    completed = torch.tensor([1.0, v_mix, 0.5])
    rescaled = (completed - completed.min()) / (completed.max() - completed.min())
    assert sigma[0].tolist() == pytest.approx(((50 + 2) * 1.0 * rescaled).tolist(), rel=1e-5)


def test_score_considered_masks_the_others():
    score = score_considered(torch.tensor([1]), torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 2.0]]),
                             torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 1.0]]))
    assert score[0, 1] == float("-inf")
    assert score[0].argmax().item() == 2


def test_reuse_subtree_keeps_the_chosen_childs_statistics():
    torch.manual_seed(2)
    weights = torch.randn(4 + 3, 4)

    def recurrent_fn(embedding, action):
        x = torch.cat([embedding, torch.nn.functional.one_hot(action, 3).float()], -1)
        nxt = torch.tanh(x @ weights)
        return RecurrentFnOutput(nxt[:, 0], torch.full((x.shape[0],), 0.9), nxt[:, :3],
                                 nxt[:, 1]), nxt

    root = RootFnOutput(torch.zeros(3, 3), torch.zeros(3), torch.randn(3, 4))
    out = muzero_policy(root, recurrent_fn, 40, dirichlet_fraction=0.0, temperature=0.0)
    old = out.search_tree
    child = old.children_index[torch.arange(3), 0, out.action]
    reused = reuse_subtree(old, out.action, keep=torch.tensor([True, True, False]))
    assert reused.num_nodes[2].item() == 0
    for row in range(2):
        c = child[row].item()
        assert reused.node_visits[row, 0] == old.node_visits[row, c]
        assert reused.node_values[row, 0] == old.node_values[row, c]
        assert reused.num_nodes[row].item() == old.node_visits[row, c].item()
        assert torch.equal(reused.embeddings[row, 0], old.embeddings[row, c])
        assert reused.parents[row, 0].item() == -1
        kids = reused.children_index[row, 0]
        for a in range(3):
            if kids[a] >= 0:
                assert reused.parents[row, kids[a]].item() == 0
                assert reused.children_visits[row, 0, a] == reused.node_visits[row, kids[a]]
    # Searching on continues from those statistics.
    embedding = old.embeddings[torch.arange(3), child]
    new_root = RootFnOutput(torch.zeros(3, 3), torch.zeros(3), embedding)
    more = muzero_policy(new_root, recurrent_fn, 10, dirichlet_fraction=0.0, tree=reused)
    assert more.search_tree.node_visits[0, 0] == old.node_visits[0, child[0]] + 10
    assert more.search_tree.node_visits[2, 0] == 11


def test_temperature_and_dirichlet_noise_are_seeded():
    fn = bandit_fn([0.5, 0.4, 0.3])

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return muzero_policy(root_of(16, 3), fn, 10, generator=gen).action

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_sample_gamma_has_the_right_moments():
    gen = torch.Generator().manual_seed(0)
    for alpha in (0.3, 2.5):
        x = sample_gamma(torch.full((200_000,), alpha), generator=gen)
        assert (x > 0).all()
        assert x.mean().item() == pytest.approx(alpha, rel=0.02)
        assert x.var().item() == pytest.approx(alpha, rel=0.05)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_num_simulations_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="num_simulations"):
        muzero_policy(root_of(1, 2), bandit_fn([0.0, 1.0]), bad)
    with pytest.raises(ValueError, match="num_simulations"):
        gumbel_muzero_policy(root_of(1, 2), bandit_fn([0.0, 1.0]), bad)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"root\.value"):
        muzero_policy(RootFnOutput(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 1)),
                      bandit_fn([0.0] * 3), 2)
    with pytest.raises(ValueError, match="invalid_actions"):
        muzero_policy(root_of(2, 3), bandit_fn([0.0] * 3), 2,
                      invalid_actions=torch.zeros(2, 4, dtype=torch.bool))

    def wrong(embedding, action):
        return RecurrentFnOutput(torch.zeros(1), torch.zeros(1), torch.zeros(1, 3),
                                 torch.zeros(1)), embedding

    with pytest.raises(ValueError, match="recurrent_fn: expected reward"):
        muzero_policy(root_of(2, 3), wrong, 2)


def test_a_model_that_outputs_nan_raises():
    with pytest.raises(ModelOutputError, match="NaN"):
        muzero_policy(root_of(2, 2), bandit_fn([0.0, 1.0], value=float("nan")), 4)
