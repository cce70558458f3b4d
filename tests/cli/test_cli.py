"""The ``mbwrap`` command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mbwrap.cli import main
from mbwrap.cli.demo import first_episode_below, format_curves, plot_curves, save_curves
from mbwrap.cli.plugins import format_table, plugin_rows


def test_plugins_lists_builtins_with_dist_version_and_status(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    header, *lines = out.strip().splitlines()
    assert header.split() == ["KIND", "NAME", "DIST", "VERSION", "STATUS"]
    rows = {tuple(line.split()[:2]): line.split() for line in lines}
    assert rows[("model", "tabular")][2:] == ["mbwrap", "0.1.0", "ok"]
    assert rows[("algo", "dyna-q")][2:] == ["mbwrap", "0.1.0", "ok"]
    assert rows[("fn", "mbwrap/DynaMaze-v0")][4] == "ok"


def test_plugin_rows_without_check_import_nothing():
    rows = plugin_rows(check=False)
    assert {r["status"] for r in rows} == {"not checked"}


def test_format_table_aligns_columns():
    table = format_table([{"a": "x", "b": "long"}, {"a": "yyy", "b": "z"}], ["a", "b"])
    assert table.splitlines() == ["A    B", "x    long", "yyy  z"]


def test_first_episode_below():
    assert first_episode_below(np.array([50.0, 30.0, 19.0, 25.0]), 20.0) == 3
    assert first_episode_below(np.array([50.0, 30.0]), 20.0) == 3


def test_curve_outputs(tmp_path):
    curves = {0: np.array([[100, 20], [50, 18]]), 5: np.array([[80, 16], [60, 16]])}
    table = format_curves(curves, rows=[1, 2])
    assert "| 1 | 75.0 | 70.0 |" in table and "| 2 | 19.0 | 16.0 |" in table
    save_curves(curves, tmp_path / "c.csv")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert lines[0] == "episode,planning_steps,mean_steps,std_steps"
    assert lines[1] == "1,0,75.000,25.000"
    plot_curves(curves, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_maze_demo_quick_end_to_end(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbwrap.cli",
            "demo",
            "maze",
            "--quick",
            "--no-progress",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| episode | n = 0 | n = 5 | n = 50 |" in result.stdout
    assert (tmp_path / "dyna_maze.png").exists() and (tmp_path / "dyna_maze_curves.csv").exists()


@pytest.mark.slow
def test_full_demo_reproduces_figure_8_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbwrap.cli",
            "demo",
            "maze",
            "--no-progress",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "30 seeds, 50 episodes" in result.stdout
    assert "n = 50: mean steps per episode first below 20 at episode 3" in result.stdout
    rows = (tmp_path / "dyna_maze_curves.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 50


def test_cartpole_demo_quick_end_to_end(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbwrap.cli",
            "demo",
            "--quick",
            "--no-progress",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| dyna-ppo | 500 |" in result.stdout and "| ppo | 2,000 |" in result.stdout
    assert "dyna-ppo: mean return >= 475" in result.stdout or "not within" in result.stdout
    assert (tmp_path / "cartpole.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "dyna-ppo" / "evaluations.npz").exists()
