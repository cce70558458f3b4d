"""step_to_host: a vectorised imagination env's outputs copied to the host, packed into one
copy (the accelerator's path) or tensor by tensor (the CPU's), with the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mbwrap.envs.host_copy import step_to_host

DICT = spaces.Dict(
    {
        "pos": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
        "cell": spaces.Discrete(5, start=-2),
        "ram": spaces.Box(0, 255, (3,), np.uint8),
    }
)


def _batch(space: spaces.Space, n: int) -> torch.Tensor | dict[str, torch.Tensor]:
    space.seed(0)
    values = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        return {key: torch.as_tensor(np.stack([v[key] for v in values])) for key in space}
    return torch.as_tensor(np.stack(values))


@pytest.mark.parametrize(
    "space",
    [spaces.Box(-5.0, 5.0, (3,), np.float32), spaces.Discrete(7, start=3), DICT],
    ids=["box", "discrete", "dict"],
)
def test_packed_and_separate_copies_give_the_same_fresh_arrays(space):
    obs = _batch(space, 4)
    reward = torch.tensor([0.5, -1.25, float("nan"), 3e38])
    terminated = torch.tensor([True, False, False, True])
    nonfinite = torch.tensor([False, False, True, False])
    columns = ((reward, np.float64), (terminated, np.bool_), (nonfinite, np.bool_))
    separate = step_to_host(obs, space, columns, packed=False)
    packed = step_to_host(obs, space, columns, packed=True)

    def leaves(host_obs):
        return host_obs if isinstance(host_obs, dict) else {"": host_obs}

    for key, array in leaves(separate[0]).items():
        other = leaves(packed[0])[key]
        assert array.dtype == other.dtype and array.shape == other.shape
        np.testing.assert_array_equal(array, other)
    for array, other, (tensor, dtype) in zip(separate[1], packed[1], columns, strict=True):
        assert array.dtype == other.dtype == dtype
        np.testing.assert_array_equal(array, other)
        np.testing.assert_array_equal(array, tensor.numpy().astype(dtype))
    # Writing to the copies leaves the tensors as they were.
    for arrays in (separate, packed):
        for array in arrays[1]:
            array[...] = 0
        for array in leaves(arrays[0]).values():
            array[...] = 0
    assert terminated.tolist() == [True, False, False, True] and reward[0] == 0.5
    assert all(leaf.abs().sum() > 0 for leaf in (obs.values() if isinstance(obs, dict) else [obs]))
