"""Plots of open-loop prediction: PNG files written atomically, the episode a buffer's
index picks, and bad input that writes nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.image import imread

import mbwrap
from mbwrap.diagnostics import open_loop_error, plot_open_loop, plot_open_loop_error
from mbwrap.diagnostics.plot import _episode

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_only_png(directory, name: str) -> bool:
    """``name`` is the directory's only entry (no temporary file left) and is a PNG."""
    with open(directory / name, "rb") as handle:
        magic = handle.read(8)
    return os.listdir(directory) == [name] and magic == PNG_MAGIC


def test_open_loop_plot_is_a_png_and_nothing_else(tmp_path, make_drift_model, make_drift_buffer):
    path = tmp_path / "open_loop.png"
    written = plot_open_loop(make_drift_model((0.1, 0.0, 0.0)), make_drift_buffer([[30]]), path)
    assert written == path
    assert _is_only_png(tmp_path, "open_loop.png")


def test_reward_panel_only_for_models_with_a_reward_head(
    tmp_path, make_drift_model, make_drift_buffer
):
    buffer = make_drift_buffer([[30]])
    plot_open_loop(make_drift_model(), buffer, tmp_path / "with.png", dims=(0, 2))
    plot_open_loop(
        make_drift_model(reward_head=False), buffer, tmp_path / "without.png", dims=(0, 2)
    )
    # Two observation panels plus a reward panel make a taller image than two alone.
    assert imread(tmp_path / "with.png").shape[0] > imread(tmp_path / "without.png").shape[0]


def test_open_loop_plot_of_sequences_and_other_formats(
    tmp_path, make_drift_model, make_drift_buffer
):
    sequences = make_drift_buffer([[30]]).sample_sequences(3, 10, generator=torch.Generator())
    plot_open_loop(make_drift_model(), sequences, tmp_path / "row.png", episode_index=-1, horizon=4)
    plot_open_loop(make_drift_model(), sequences, tmp_path / "row.svg", dims=[1])
    assert sorted(os.listdir(tmp_path)) == ["row.png", "row.svg"]
    assert (tmp_path / "row.svg").read_text().lstrip().startswith("<?xml")


def test_error_curve_plot(tmp_path, make_drift_model, make_drift_buffer):
    buffer = make_drift_buffer([[30, 30]])
    errors = {
        "exact": open_loop_error(make_drift_model(), buffer, 8, num_starts=50),
        "biased": open_loop_error(make_drift_model((0.1, 0.1, 0.1)), buffer, 8, num_starts=50),
        "no reward head": open_loop_error(
            make_drift_model((0.2, 0.0, 0.0), reward_head=False), buffer, 8, num_starts=50
        ),
    }
    plot_open_loop_error(errors, tmp_path / "curve.png", title="drift")
    assert _is_only_png(tmp_path, "curve.png")


def test_episodes_are_numbered_oldest_first(make_drift_buffer):
    # Stream 0: episodes of 3 and 5 steps; stream 1: 4 and 4. By first step, then stream:
    # (t=0, s0, 3 steps), (t=0, s1, 4), (t=3, s0, 5), (t=4, s1, 4).
    buffer = make_drift_buffer([[3, 5], [4, 4]])
    data = buffer.transitions()
    grid = data.obs.reshape(8, 2, 3)
    for index, (row, stream, length) in enumerate([(0, 0, 3), (0, 1, 4), (3, 0, 5), (4, 1, 4)]):
        episode = _episode(buffer, index)
        assert episode.obs.shape == (1, length, 3)
        assert torch.equal(episode.obs[0], grid[row : row + length, stream])
    assert torch.equal(_episode(buffer, -1).obs, _episode(buffer, 3).obs)
    with pytest.raises(IndexError, match=r"^episode_index: the buffer holds 4 episodes, got 4"):
        _episode(buffer, 4)


def test_a_break_without_a_terminal_step_ends_an_episode(make_drift_model):
    # Collection stopped mid-episode and restarted elsewhere: no terminal flag, but the next
    # step does not start where the last one ended.
    model = make_drift_model()
    buffer = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 20, device="cpu")
    for start, steps in ((0.0, 6), (500.0, 4)):
        for t in range(steps):
            obs = np.full(3, start + t, np.float32)
            buffer.add(obs, np.ones(3, np.float32), 0.0, obs + 1, False, False)
        buffer.end_episodes()
    assert _episode(buffer, 0).obs[0, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert _episode(buffer, 1).obs[0, :, 0].tolist() == [500.0, 501.0, 502.0, 503.0]
    assert not bool(buffer.transitions().terminated.any())


def test_an_overwritten_buffer_starts_with_the_rest_of_an_episode(make_drift_model):
    model = make_drift_model()
    buffer = mbwrap.ReplayBuffer(model.observation_space, model.action_space, 5, device="cpu")
    for t in range(8):
        obs = np.full(3, float(t), np.float32)
        buffer.add(obs, np.ones(3, np.float32), 0.0, obs + 1, False, t == 7)
    assert _episode(buffer, 0).obs[0, :, 0].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    with pytest.raises(IndexError):
        _episode(buffer, 1)


def test_bad_input_writes_nothing(tmp_path, make_drift_model, make_drift_buffer):
    model, buffer = make_drift_model(), make_drift_buffer([[20]])
    with pytest.raises(ValueError, match=r"^dims: expected indices into the 3 observation"):
        plot_open_loop(model, buffer, tmp_path / "a.png", dims=(0, 3))
    with pytest.raises(ValueError, match=r"^horizon: expected an int >= 1"):
        plot_open_loop(model, buffer, tmp_path / "a.png", horizon=0)
    with pytest.raises(IndexError, match=r"^episode_index: the buffer holds 1 episodes"):
        plot_open_loop(model, buffer, tmp_path / "a.png", episode_index=1)
    with pytest.raises(ValueError, match=r"^path: cannot write a figure as 'xyz'"):
        plot_open_loop(model, buffer, tmp_path / "a.xyz")
    with pytest.raises(ValueError, match=r"^errors: expected a non-empty mapping"):
        plot_open_loop_error({}, tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"^errors\['x'\]: expected a result of open_loop_error"):
        plot_open_loop_error({"x": {"mse": [1.0]}}, tmp_path / "b.png")
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file(tmp_path, monkeypatch, make_drift_model, make_drift_buffer):
    def half_written(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(PNG_MAGIC)
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        plot_open_loop(make_drift_model(), make_drift_buffer([[20]]), tmp_path / "c.png")
    assert os.listdir(tmp_path) == []
