"""``mbwrap train``, ``mbwrap eval``, ``mbwrap plot``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mbwrap.algos import DynaQ
from mbwrap.cli import main
from mbwrap.cli.plot import find_runs, plot_runs, read_run
from mbwrap.cli.train import load_algo, parse_settings, train


def test_parse_settings():
    assert parse_settings(["a=1", "b=[64, 64]", "c=PPO", "d=0.5"]) == {
        "a": 1,
        "b": [64, 64],
        "c": "PPO",
        "d": 0.5,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_settings(["novalue"])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dyna-q"
    code = main(
        [
            "train",
            "dyna-q",
            "--env",
            "mbwrap/DynaMaze-v0",
            "--steps",
            "2000",
            "--eval-freq",
            "500",
            "--eval-episodes",
            "2",
            "--set",
            "planning_steps=20",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_train_writes_logs_checkpoint_and_run_info(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"model.pt", "progress.csv", "evaluations.npz", "run.json"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["algo"] == "dyna-q" and info["settings"] == {"planning_steps": 20}
    with np.load(run_dir / "evaluations.npz") as data:
        np.testing.assert_array_equal(data["timesteps"], [500, 1000, 1500, 2000])
    algo = load_algo(run_dir / "model.pt")
    assert isinstance(algo, DynaQ) and algo.config.planning_steps == 20
    assert algo.num_timesteps == 2000


def test_eval_command(run_dir, capsys):
    assert main(["eval", str(run_dir), "--env", "mbwrap/DynaMaze-v0", "--episodes", "2"]) == 0
    assert "mbwrap/DynaMaze-v0: mean return" in capsys.readouterr().out


def test_plot_command_and_curves(run_dir, tmp_path):
    curves = read_run(run_dir)
    assert curves["eval_steps"].tolist() == [500, 1000, 1500, 2000]
    assert curves["eval_mean"].shape == (4,)
    assert main(["plot", str(run_dir.parent)]) == 0
    png = run_dir.parent / "learning_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert find_runs(run_dir.parent) == [run_dir]
    with pytest.raises(ValueError, match="no run"):
        plot_runs(tmp_path)


def test_train_function_with_unknown_algo(tmp_path):
    from mbwrap.errors import UnknownPluginError

    with pytest.raises(UnknownPluginError, match="dyna-q"):
        train("nope", "CartPole-v1", 10, out=tmp_path)


def test_train_with_a_preset(tmp_path):
    algo = train(
        "pets",
        "Pendulum-v1",
        5,  # within the random first episode: no planning, so this stays fast
        out=tmp_path,
        eval_freq=10_000,
        settings={"fit_kwargs": {"epochs": 3}},
        preset=True,
        progress_bar=False,
    )
    assert algo.planner.population == 200 and algo.config.fit_kwargs == {"epochs": 3}
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["preset"] is True
    with pytest.raises(ValueError, match="preset: none for pets on CartPole-v1"):
        train("pets", "CartPole-v1", 5, out=tmp_path, preset=True, progress_bar=False)


def _dyna_run(out, steps):
    return main(
        [
            "train", "dyna", "--env", "Pendulum-v1", "--steps", str(steps), "--seed", "0",
            "--device", "cpu", "--eval-freq", "100", "--eval-episodes", "1",
            "--set", "model=linear", "--set", "train_freq=100", "--set", "learning_starts=100",
            "--set", "imagined_steps=64", "--set", "num_imagined_envs=2",
            "--set", 'agent_kwargs={"n_steps": 16, "batch_size": 32}',
            "--out", str(out), "--no-progress",
        ]
    )


def test_resume_continues_an_interrupted_run_as_if_it_had_not_stopped(tmp_path):
    from mbwrap.testing import assert_same_checkpoints

    assert _dyna_run(tmp_path / "straight", 300) == 0
    # A run started for 300 real steps whose last checkpoint is at 200 (an episode end).
    assert _dyna_run(tmp_path / "stopped", 200) == 0
    info = json.loads((tmp_path / "stopped" / "run.json").read_text())
    (tmp_path / "stopped" / "run.json").write_text(json.dumps({**info, "steps": 300}))
    assert main(["train", "--resume", str(tmp_path / "stopped"), "--device", "cpu",
                 "--no-progress"]) == 0
    assert_same_checkpoints(tmp_path / "straight" / "model.pt", tmp_path / "stopped" / "model.pt")
    with np.load(tmp_path / "stopped" / "evaluations.npz") as data:
        np.testing.assert_array_equal(data["timesteps"], [100, 200, 300])
    rows = (tmp_path / "stopped" / "progress.csv").read_text().splitlines()
    straight = (tmp_path / "straight" / "progress.csv").read_text().splitlines()
    assert len(rows) == len(straight) and rows[0] == straight[0]
    with pytest.raises(FileNotFoundError, match="run_dir"):
        main(["train", "--resume", str(tmp_path / "nothing")])


def test_python_dash_m_mbwrap_runs_the_command():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "mbwrap", "train", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--resume" in result.stdout
