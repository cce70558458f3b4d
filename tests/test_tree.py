"""Batches as one tensor or a flat dict of leaves (mbwrap.tree), and the Dict/Tuple
support of mbwrap.spaces built on it."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.spaces import (
    as_batch,
    check_space,
    flat_dim,
    flatten,
    is_image,
    leaf_spaces,
    rows_in_space,
    space_from_json,
    space_to_json,
    to_numpy,
    unflatten,
)
from mbwrap.tree import (
    rows_nonfinite,
    tree_assign,
    tree_batch_size,
    tree_float_leaves,
    tree_index,
    tree_map,
    tree_rows_finite,
    tree_where,
)

NESTED = spaces.Dict(
    {
        "pos": spaces.Box(-1, 1, (2,), np.float32),
        "goal": spaces.Dict(
            {"cell": spaces.Discrete(3, start=-1), "ram": spaces.Box(0, 255, (4,), np.uint8)}
        ),
        "parts": spaces.Tuple((spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(2))),
    }
)
# gymnasium sorts the keys of a Dict built from a plain dict.
PATHS = ["goal/cell", "goal/ram", "parts/0", "parts/1", "pos"]


def _element() -> dict:
    return {
        "pos": np.array([0.5, -0.5], np.float32),
        "goal": {"cell": np.int64(1), "ram": np.array([0, 10, 200, 255], np.uint8)},
        "parts": (np.array([1, 2]), np.array([0, 1], np.int8)),
    }


# ---------------------------------------------------------------------- tree


def test_tree_functions_apply_leaf_by_leaf_and_to_plain_tensors():
    tree = {"a": torch.arange(6.0).reshape(3, 2), "b": torch.tensor([1, 2, 3])}
    assert tree_batch_size(tree) == 3
    assert tree_map(lambda t: t * 2, tree)["b"].tolist() == [2, 4, 6]
    assert tree_index(tree, torch.tensor([2, 0]))["a"].tolist() == [[4.0, 5.0], [0.0, 1.0]]
    other = tree_map(torch.zeros_like, tree)
    mixed = tree_where(torch.tensor([True, False, True]), tree, other)
    assert mixed["a"].tolist() == [[0.0, 1.0], [0.0, 0.0], [4.0, 5.0]]
    assert mixed["b"].tolist() == [1, 0, 3]
    tree_assign(other, torch.tensor([1]), tree_index(tree, torch.tensor([0])))
    assert other["a"][1].tolist() == [0.0, 1.0] and other["b"].tolist() == [0, 1, 0]
    plain = torch.ones(2, 3)
    assert tree_where(torch.tensor([False, True]), plain, plain * 0).sum() == 3.0
    tree["a"][1, 0] = float("nan")
    assert tree_rows_finite(tree).tolist() == [True, False, True]
    # Integer leaves cannot hold NaN: every row of an all-integer batch is finite.
    assert tree_rows_finite({"b": torch.tensor([1, 2])}).tolist() == [True, True]


# ---------------------------------------------------------------------- spaces


def test_rows_nonfinite_flags_every_row_with_a_nan_or_an_infinity_in_any_tensor():
    nan, inf = float("nan"), float("inf")
    reward = torch.tensor([1.0, inf, 0.0, 2.0, 3.0, 0.0])
    state = torch.zeros(6, 2, 3)
    state[2, 1, 0], state[4, 0, 2] = nan, -inf
    prob = torch.tensor([0.5, 0.5, 0.5, nan, 0.1, 0.0])
    expected = [False, True, True, True, True, False]
    assert rows_nonfinite([reward, state, prob]).tolist() == expected
    # Tensors of other dtypes are checked on their own and the flags combined.
    assert rows_nonfinite([reward, state.double(), prob.half()]).tolist() == expected
    assert rows_nonfinite([state]).tolist() == [False, False, True, False, True, False]
    # The largest finite values are finite: no sum overflows to infinity.
    huge = torch.full((2, 5), torch.finfo(torch.float32).max)
    assert rows_nonfinite([huge, huge[:, 0]]).tolist() == [False, False]
    assert rows_nonfinite([]) is None
    assert rows_nonfinite([torch.zeros(0), torch.zeros(0, 4)]).shape == (0,)


def test_tree_float_leaves_skip_integer_leaves():
    batch = {"pos": torch.zeros(2, 3), "cell": torch.zeros(2, dtype=torch.long)}
    assert tree_float_leaves(batch) == [batch["pos"]]
    assert tree_float_leaves(torch.zeros(2, dtype=torch.int8)) == []


def test_leaf_spaces_name_nested_paths_in_order():
    leaves = leaf_spaces(NESTED)
    assert list(leaves) == PATHS
    assert leaves["goal/cell"] == spaces.Discrete(3, start=-1)
    assert leaf_spaces(spaces.Discrete(2)) == {"": spaces.Discrete(2)}


def test_check_space_takes_structured_spaces_only_when_asked_and_names_a_bad_leaf():
    assert check_space(NESTED, name="observation_space", structured=True) is NESTED
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space: .*takes no Dict"):
        check_space(NESTED, name="observation_space")
    bad = spaces.Dict({"ok": spaces.Discrete(2), "text": spaces.Text(3)})
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space\['text'\]: .*Text"):
        check_space(bad, name="observation_space", structured=True)
    with pytest.raises(UnsupportedSpaceError, match=r"^observation_space: got an empty Tuple"):
        check_space(spaces.Tuple(()), name="observation_space", structured=True)


def test_as_batch_takes_nested_values_and_to_numpy_gives_them_back():
    batch, batched = as_batch(_element(), NESTED, name="obs")
    assert not batched and list(batch) == PATHS
    assert batch["goal/cell"].tolist() == [1] and batch["goal/ram"].dtype == torch.uint8
    back = to_numpy(tree_index(batch, 0), NESTED)
    assert NESTED.contains(back)
    np.testing.assert_array_equal(back["goal"]["ram"], _element()["goal"]["ram"])
    assert isinstance(back["parts"], tuple)
    # A vector env's batch: every leaf with a leading dimension.
    samples = [NESTED.sample() for _ in range(4)]
    stacked = gym.vector.utils.concatenate(
        NESTED, samples, gym.vector.utils.create_empty_array(NESTED, 4)
    )
    batch, batched = as_batch(stacked, NESTED, name="obs")
    assert batched and tree_batch_size(batch) == 4
    assert to_numpy(tree_index(batch, 3), NESTED)["goal"]["cell"] == samples[3]["goal"]["cell"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"pos": np.zeros(2, np.float32)}, r"^obs: expected a dict with keys"),
        ({**_element(), "parts": (np.array([1, 2]),)}, r"^obs\['parts'\]: expected a tuple of 2"),
        ({**_element(), "pos": np.zeros(3, np.float32)}, r"^obs\['pos'\]: expected shape"),
        ({**_element(), "pos": "up"}, r"^obs\['pos'\]: expected numbers"),
    ],
    ids=["missing-keys", "short-tuple", "leaf-shape", "string-leaf"],
)
def test_as_batch_names_the_leaf_that_does_not_fit(value, match):
    with pytest.raises(SpaceMismatchError, match=match):
        as_batch(value, NESTED, name="obs")


def test_as_batch_refuses_mixed_batch_sizes():
    value = _element()
    value["pos"] = np.zeros((3, 2), np.float32)
    with pytest.raises(SpaceMismatchError, match=r"^obs: the entries .* all be single"):
        as_batch(value, NESTED, name="obs")


def test_flatten_and_unflatten_round_trip_every_leaf_kind():
    batch, _ = as_batch(_element(), NESTED, name="obs")
    features = flatten(batch, NESTED)
    # 2 floats, 3 one-hot, 4 ram values, 2 + 3 one-hot, 2 bits.
    assert features.shape == (1, flat_dim(NESTED)) == (1, 16)
    back = unflatten(features, NESTED)
    for path in PATHS:
        assert torch.equal(back[path], batch[path]), path
        assert back[path].dtype == batch[path].dtype
    # Noisy features decode to the nearest element: argmax, rounding, clipping.
    noisy = unflatten(
        features + 0.3 * torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), NESTED
    )
    assert rows_in_space(noisy, NESTED).all()
    # An integer Box leaf beyond its bounds is clipped back into them.
    ram = spaces.Box(0, 255, (2,), np.uint8)
    assert unflatten(torch.tensor([[-7.2, 300.0]]), ram).tolist() == [[0, 255]]


def test_rows_in_space_checks_every_leaf():
    batch, _ = as_batch(_element(), NESTED, name="obs")
    assert rows_in_space(batch, NESTED).tolist() == [True]
    batch["goal/cell"] = torch.tensor([2])  # Discrete(3, start=-1) holds -1, 0, 1
    assert rows_in_space(batch, NESTED).tolist() == [False]


def test_structured_spaces_survive_json():
    data = json.loads(json.dumps(space_to_json(NESTED)))
    assert space_from_json(data) == NESTED


def test_only_three_dimensional_uint8_boxes_are_images():
    assert is_image(spaces.Box(0, 255, (210, 160, 3), np.uint8))
    assert not is_image(spaces.Box(0, 255, (128,), np.uint8))  # Atari RAM: features
    assert not is_image(spaces.Box(0, 1, (8, 8, 3), np.float32))
