"""ActionCheck: the fast path agrees with the exact per-element check at every edge."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.envs.action_check import ActionCheck
from mbwrap.errors import SpaceMismatchError

BOX = spaces.Box(np.array([-1.0, -10.0], np.float32), np.array([1.0, 10.0], np.float32))


def test_box_inside_per_dimension_bounds_passes_unchanged_without_warning():
    # 5.0 is beyond the tightest bound (1.0) but inside its own dimension's: the fast path
    # must fall through to the exact check, not clip.
    action = np.array([[0.5, 5.0], [-1.0, -10.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ActionCheck(BOX)(action)
    assert out is action


def test_box_outside_is_clipped_per_dimension_and_warns_once():
    check = ActionCheck(BOX)
    with pytest.warns(UserWarning, match="1 value"):
        out = check(np.array([[5.0, 5.0]], np.float32))
    np.testing.assert_array_equal(out, [[1.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(check(np.array([[0.0, 11.0]], np.float32)), [[0.0, 10.0]])
    assert check.warned


def test_box_tensor_is_clipped_on_its_device():
    with pytest.warns(UserWarning):
        out = ActionCheck(BOX)(torch.tensor([[-3.0, 0.0]]))
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, torch.tensor([[-1.0, 0.0]]))


@pytest.mark.parametrize("values", [[-1, 1], [-1], [1, 0, -1]])
def test_discrete_with_start_inside_passes(values):
    action = np.array(values)
    assert ActionCheck(spaces.Discrete(3, start=-1))(action) is action


@pytest.mark.parametrize("values, row", [([2], 0), ([0, -2], 1), ([1, 5, 0], 1)])
def test_discrete_with_start_outside_names_action_and_row(values, row):
    with pytest.raises(SpaceMismatchError, match=rf"^action: .* the first in row {row}"):
        ActionCheck(spaces.Discrete(3, start=-1))(np.array(values))


def test_multidiscrete_outside_names_action():
    with pytest.raises(SpaceMismatchError, match=r"^action: 1 action"):
        ActionCheck(spaces.MultiDiscrete([2, 3]))(np.array([[1, 3]]))


def test_strings_are_refused():
    with pytest.raises(SpaceMismatchError, match=r"^action: expected numbers"):
        ActionCheck(spaces.Discrete(2))("left")


@pytest.mark.parametrize("size", [1, 5, 16, 17, 300])  # a handful of values, and many
def test_fast_paths_decide_as_the_exact_check_at_every_batch_size(size):
    rng = np.random.default_rng(size)
    discrete, box = ActionCheck(spaces.Discrete(4)), ActionCheck(spaces.Box(-2.0, 2.0, (1,)))
    inside = rng.integers(0, 4, size)
    assert discrete(inside) is inside
    for bad in (-1, 4, np.iinfo(np.int64).min):
        action = inside.copy()
        action[size // 2] = bad
        with pytest.raises(SpaceMismatchError, match=rf"the first in row {size // 2}"):
            discrete(action)
    floats = rng.uniform(-2.0, 2.0, (size, 1)).astype(np.float32)
    assert box(floats) is floats
    # A NaN passes unchanged, as through the exact check; a value beyond the bounds next to
    # it is still clipped.
    floats[0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert box(floats) is floats
    floats[-1] = 3.0
    with pytest.warns(UserWarning):
        out = box(floats)
    assert out[-1, 0] == 2.0 and (size == 1 or np.isnan(out[0, 0]))
