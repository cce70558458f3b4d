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
