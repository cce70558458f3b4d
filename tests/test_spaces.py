"""Tests of mbwrap.spaces: support checks, tensor conversion, flattening, JSON round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.errors import SpaceMismatchError, UnsupportedSpaceError
from mbwrap.spaces import (
    action_bounds,
    as_batch,
    check_same_space,
    check_space,
    element_shape,
    flat_dim,
    flatten,
    is_discrete,
    scale_action,
    space_from_json,
    space_to_json,
    to_numpy,
    torch_dtype,
    unscale_action,
)

# ---------------------------------------------------------------------- check_space

UNSUPPORTED = [
    pytest.param(spaces.Text(5), "Text", id="Text"),
    pytest.param(spaces.Graph(spaces.Box(0, 1, (2,)), spaces.Discrete(2)), "Graph", id="Graph"),
    pytest.param(spaces.Dict({"a": spaces.Discrete(2)}), "Dict", id="Dict"),
    pytest.param(spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3))), "Tuple", id="Tuple"),
]


@pytest.mark.parametrize(("space", "type_name"), UNSUPPORTED)
def test_check_space_rejects_unsupported_naming_argument_and_space(space, type_name):
    with pytest.raises(UnsupportedSpaceError) as info:
        check_space(space, name="observation_space")
    message = str(info.value)
    assert message.startswith("observation_space:")
    assert f"gymnasium.spaces.{type_name.lower()}.{type_name}" in message
    assert repr(space) in message
    # It is also a TypeError, so callers catching the builtin still see it.
    assert isinstance(info.value, TypeError)


def test_check_space_rejects_non_space():
    with pytest.raises(UnsupportedSpaceError, match=r"^action_space:.*builtins\.int"):
        check_space(3, name="action_space")


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-1, 1, (2,)),
        spaces.Discrete(3),
        spaces.MultiDiscrete([2, 3]),
        spaces.MultiBinary(4),
    ],
)
def test_check_space_returns_supported_space_itself(space):
    assert check_space(space, name="x") is space


def test_is_discrete():
    assert is_discrete(spaces.Discrete(3))
    assert is_discrete(spaces.MultiDiscrete([2, 2]))
    assert is_discrete(spaces.MultiBinary(2))
    assert not is_discrete(spaces.Box(0, 255, (2,), np.uint8))


# ---------------------------------------------------------------------- shape and dtype table


@pytest.mark.parametrize(
    ("space", "shape", "dtype"),
    [
        (spaces.Box(-1, 1, (3, 2), np.float32), (3, 2), torch.float32),
        (spaces.Box(-1, 1, (4,), np.float64), (4,), torch.float32),
        (spaces.Box(0, 255, (2, 2, 3), np.uint8), (2, 2, 3), torch.uint8),
        (spaces.Box(-5, 5, (2,), np.int32), (2,), torch.int32),
        (spaces.Discrete(5), (), torch.int64),
        (spaces.Discrete(5, start=-2, dtype=np.int32), (), torch.int64),
        (spaces.MultiDiscrete([3, 4]), (2,), torch.int64),
        (spaces.MultiDiscrete([[2, 3], [4, 5]]), (2, 2), torch.int64),
        (spaces.MultiBinary(4), (4,), torch.int8),
        (spaces.MultiBinary([2, 3]), (2, 3), torch.int8),
    ],
)
def test_element_shape_and_torch_dtype_follow_the_table(space, shape, dtype):
    assert element_shape(space) == shape
    assert torch_dtype(space) == dtype


def test_torch_dtype_rejects_unsupported_space():
    with pytest.raises(UnsupportedSpaceError, match=r"^space:"):
        torch_dtype(spaces.Text(3))


# ---------------------------------------------------------------------- as_batch


def test_as_batch_single_box_element_becomes_batch_of_one():
    space = spaces.Box(-10, 10, (3,), np.float32)
    tensor, batched = as_batch(np.array([1.0, 2.0, 3.0], dtype=np.float64), space, name="obs")
    assert batched is False
    assert tensor.shape == (1, 3)
    assert tensor.dtype == torch.float32
    assert tensor.tolist() == [[1.0, 2.0, 3.0]]


def test_as_batch_batched_box_is_kept():
    space = spaces.Box(-10, 10, (3,), np.float32)
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor, batched = as_batch(value, space, name="obs")
    assert batched is True
    assert tensor.shape == (2, 3)
    assert tensor.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_as_batch_discrete_scalar_and_batch():
    space = spaces.Discrete(4, start=2)
    tensor, batched = as_batch(3, space, name="action")
    assert (batched, tensor.dtype, tensor.tolist()) == (False, torch.int64, [3])
    tensor, batched = as_batch(np.array([2, 5, 4], dtype=np.int32), space, name="action")
    assert (batched, tensor.dtype, tensor.tolist()) == (True, torch.int64, [2, 5, 4])


def test_as_batch_tensor_input_single_multidiscrete():
    space = spaces.MultiDiscrete([3, 4])
    tensor, batched = as_batch(torch.tensor([2, 3], dtype=torch.int32), space, name="obs")
    assert (batched, tensor.dtype, tensor.tolist()) == (False, torch.int64, [[2, 3]])


def test_as_batch_multibinary_accepts_booleans():
    space = spaces.MultiBinary(3)
    tensor, batched = as_batch(np.array([[True, False, True]]), space, name="obs")
    assert (batched, tensor.dtype, tensor.tolist()) == (True, torch.int8, [[1, 0, 1]])


def test_as_batch_uint8_box_keeps_integer_dtype():
    space = spaces.Box(0, 255, (2, 2), np.uint8)
    tensor, _ = as_batch(np.full((5, 2, 2), 200, dtype=np.uint8), space, name="obs")
    assert tensor.dtype == torch.uint8
    assert int(tensor.sum()) == 200 * 20


@pytest.mark.parametrize("shape", [(2,), (2, 4), (3, 2, 3), ()])
def test_as_batch_wrong_shape_names_argument_and_shapes(shape):
    space = spaces.Box(-1, 1, (3,), np.float32)
    with pytest.raises(SpaceMismatchError) as info:
        as_batch(np.zeros(shape, dtype=np.float32), space, name="next_obs")
    message = str(info.value)
    assert message.startswith("next_obs:")
    assert "(3,)" in message
    assert f"got shape {shape}" in message


def test_as_batch_rejects_fractional_float_for_discrete():
    with pytest.raises(SpaceMismatchError, match=r"^action: expected integer values"):
        as_batch(np.array([0.0, 1.5]), spaces.Discrete(3), name="action")
    with pytest.raises(SpaceMismatchError, match=r"^action: expected integer values"):
        as_batch(torch.tensor([[0.5, 1.0]]), spaces.MultiDiscrete([3, 3]), name="action")
    with pytest.raises(SpaceMismatchError, match=r"^action: expected integer values"):
        as_batch(np.array(float("nan")), spaces.Discrete(3), name="action")


def test_as_batch_accepts_integral_float_for_discrete_as_int64():
    tensor, _ = as_batch(np.array([0.0, 2.0]), spaces.Discrete(3), name="action")
    assert tensor.dtype == torch.int64
    assert tensor.tolist() == [0, 2]


def test_as_batch_rejects_booleans_for_discrete_and_objects():
    with pytest.raises(SpaceMismatchError, match=r"^action: .*booleans"):
        as_batch(np.array([True, False]), spaces.Discrete(2), name="action")
    with pytest.raises(SpaceMismatchError, match=r"^obs: expected numbers"):
        as_batch(np.array(["a", None], dtype=object), spaces.Discrete(2), name="obs")


# ---------------------------------------------------------------------- to_numpy


def test_to_numpy_single_discrete_is_int64_scalar():
    value = to_numpy(torch.tensor(3), spaces.Discrete(5, dtype=np.int32))
    assert isinstance(value, np.int64)
    assert value == 3


def test_to_numpy_batched_discrete_is_int64_array():
    value = to_numpy(torch.tensor([1, 4]), spaces.Discrete(5))
    assert value.dtype == np.int64
    assert value.tolist() == [1, 4]


@pytest.mark.parametrize(
    ("space", "dtype"),
    [
        (spaces.Box(-1, 1, (2,), np.float64), np.float64),
        (spaces.Box(0, 255, (2,), np.uint8), np.uint8),
        (spaces.MultiDiscrete([3, 3], dtype=np.int32), np.int32),
        (spaces.MultiBinary(2), np.int8),
    ],
)
def test_to_numpy_uses_space_dtype(space, dtype):
    value = to_numpy(torch.tensor([[1, 0], [0, 1]]), space)
    assert value.dtype == dtype
    assert value.tolist() == [[1, 0], [0, 1]]


def test_to_numpy_copies_and_detaches():
    tensor = torch.tensor([1.0, 2.0], requires_grad=True)
    array = to_numpy(tensor, spaces.Box(-5, 5, (2,), np.float32))
    with torch.no_grad():
        tensor.add_(10.0)
    assert array.tolist() == [1.0, 2.0]

    # Even when no dtype conversion is needed, the array does not alias the tensor.
    plain = torch.tensor([1.0, 2.0])
    array = to_numpy(plain, spaces.Box(-5, 5, (2,), np.float32))
    plain[0] = 7.0
    assert array.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------- flatten


def test_flatten_discrete_with_start_is_one_hot_from_start():
    space = spaces.Discrete(4, start=-2)
    out = flatten(torch.tensor([-2, 1, 0]), space)
    assert out.dtype == torch.float32
    assert out.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert flat_dim(space) == 4


def test_flatten_multidiscrete_concatenates_one_hots():
    space = spaces.MultiDiscrete([3, 2], start=[1, -1])
    # First digit in {1,2,3}, second in {-1,0}.
    out = flatten(torch.tensor([[2, 0], [1, -1], [3, 0]]), space)
    assert out.dtype == torch.float32
    assert out.tolist() == [
        [0, 1, 0, 0, 1],
        [1, 0, 0, 1, 0],
        [0, 0, 1, 0, 1],
    ]
    assert flat_dim(space) == 5


def test_flatten_two_dimensional_multidiscrete():
    space = spaces.MultiDiscrete([[2, 3], [1, 2]])
    out = flatten(torch.tensor([[[1, 2], [0, 1]]]), space)
    assert out.tolist() == [[0, 1, 0, 0, 1, 1, 0, 1]]
    assert flat_dim(space) == 8


def test_flatten_box_and_multibinary_are_reshaped_floats():
    box = spaces.Box(0, 255, (2, 2), np.uint8)
    out = flatten(torch.tensor([[[1, 2], [3, 4]]], dtype=torch.uint8), box)
    assert out.dtype == torch.float32
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert flat_dim(box) == 4
    mb = spaces.MultiBinary([2, 3])
    out = flatten(torch.tensor([[[1, 0, 1], [0, 0, 1]]], dtype=torch.int8), mb)
    assert out.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]]
    assert flat_dim(mb) == 6


def test_flat_dim_rejects_unsupported():
    with pytest.raises(UnsupportedSpaceError):
        flat_dim(spaces.Text(3))
    # A Dict flattens leaf by leaf; a leaf mbwrap cannot represent is still refused.
    with pytest.raises(UnsupportedSpaceError):
        flat_dim(spaces.Dict({"a": spaces.Text(3)}))


# ---------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-1.5, 2.25, (2, 3), np.float32),
        spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 1.0]), dtype=np.float64),
        spaces.Box(0, 255, (4, 4, 3), np.uint8),
        spaces.Box(-1.0, 1.0, (), np.float32),
        spaces.Discrete(7),
        spaces.Discrete(3, start=-1),
        spaces.Discrete(3, dtype=np.int32),
        spaces.MultiDiscrete([3, 4, 2]),
        spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [-2, 3]]),
        spaces.MultiDiscrete([3, 3], dtype=np.int32),
        spaces.MultiBinary(5),
        spaces.MultiBinary([5]),
        spaces.MultiBinary([2, 3]),
    ],
    ids=repr,
)
def test_space_json_round_trip(space):
    import json

    data = json.loads(json.dumps(space_to_json(space)))
    back = space_from_json(data)
    assert type(back) is type(space)
    assert back == space
    assert element_shape(back) == element_shape(space)
    assert back.dtype == space.dtype
    if isinstance(space, spaces.Box):
        np.testing.assert_array_equal(back.low, space.low)
        np.testing.assert_array_equal(back.high, space.high)


def test_space_to_json_rejects_unsupported():
    with pytest.raises(UnsupportedSpaceError, match=r"^space:"):
        space_to_json(spaces.Sequence(spaces.Discrete(2)))
    with pytest.raises(UnsupportedSpaceError, match=r"^space:"):
        space_to_json(spaces.Tuple((spaces.Text(2),)))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"type": "Discrete"}, "malformed"),
        ({"type": "Discrete", "n": 0, "start": 0}, "malformed"),
        (
            {"type": "Box", "low": [0], "high": [1, 2], "shape": [2], "dtype": "float32"},
            "malformed",
        ),
        (
            {"type": "Box", "low": [0, 0], "high": [1, 2], "shape": [2], "dtype": "nope"},
            "malformed",
        ),
        ({"type": "MultiDiscrete", "nvec": [3, 2]}, "malformed"),
        ({"type": "MultiBinary", "n": "abc"}, "malformed"),
        ({"type": "Text", "max_length": 3}, "names no supported space type"),
        ({"n": 3}, "names no supported space type"),
        ([1, 2], "names no supported space type"),
        ("Discrete(3)", "names no supported space type"),
    ],
)
def test_space_from_json_malformed(data, match):
    with pytest.raises(SpaceMismatchError, match=match):
        space_from_json(data)


# ---------------------------------------------------------------------- check_same_space


def test_check_same_space_accepts_equal_spaces():
    check_same_space(spaces.Discrete(3), spaces.Discrete(3), name="env.observation_space")
    check_same_space(
        spaces.Box(-1, 1, (2,), np.float32),
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        name="env.observation_space",
    )


@pytest.mark.parametrize(
    "got",
    [
        spaces.Discrete(4),
        spaces.Discrete(3, start=1),
        spaces.MultiDiscrete([3]),
        spaces.Box(-1, 1, (2,), np.float32),
    ],
)
def test_check_same_space_rejects_differences(got):
    with pytest.raises(SpaceMismatchError) as info:
        check_same_space(spaces.Discrete(3), got, name="buffer.observation_space")
    message = str(info.value)
    assert message.startswith("buffer.observation_space: expected Discrete(3), got ")
    assert repr(got) in message


def test_check_same_space_compares_bounds_and_dtype():
    with pytest.raises(SpaceMismatchError):
        check_same_space(
            spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-2, 1, (2,), np.float32), name="x"
        )
    with pytest.raises(SpaceMismatchError):
        check_same_space(
            spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-1, 1, (2,), np.float64), name="x"
        )


def test_action_bounds_flatten_a_box():
    box = spaces.Box(np.array([[-1.0, -2.0]]), np.array([[1.0, 3.0]]), dtype=np.float64)
    lower, upper = action_bounds(box, "cpu", flat=True)
    assert lower.dtype == torch.float32 and lower.shape == (2,)
    torch.testing.assert_close(lower, torch.tensor([-1.0, -2.0]))
    torch.testing.assert_close(upper, torch.tensor([1.0, 3.0]))


def test_scale_and_unscale_actions_are_inverse_and_map_the_bounds():
    box = spaces.Box(np.array([-1.0, 0.0]), np.array([3.0, 2.0]), dtype=np.float32)
    low, high = action_bounds(box, "cpu")
    assert low.shape == (2,) and high.shape == (2,)
    actions = torch.tensor([[-1.0, 0.0], [3.0, 2.0], [1.0, 1.5]])
    scaled = scale_action(actions, low, high)
    torch.testing.assert_close(scaled, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.5]]))
    torch.testing.assert_close(unscale_action(scaled, low, high), actions)
