"""Sweeps on Ray Tune (``mbwrap tune``): the search-space syntax, the placement group of a
trial, the choice of the best trial, and real sweeps of Dyna-Q on the Dyna maze from
Python (with a collection worker inside each trial) and from the command line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

import mbwrap.cli
from mbwrap.cli.sweep import (
    SweepResult,
    SweepTrial,
    best_trial,
    format_table,
    hide_unreserved_gpus,
    parse_search_space,
    run_sweep,
    trial_resources,
)

ray = pytest.importorskip("ray")
from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Uniform  # noqa: E402

MAZE = "mbwrap/DynaMaze-v0"


pytestmark = pytest.mark.usefixtures("ray_session")


# ---------------------------------------------------------------------- search space
def test_choice_reads_each_option_like_a_plain_value():
    space = parse_search_space(
        ["agent=choice(PPO, SAC)", "net_arch=choice([64, 64],[256,256])", "n=choice(0,5,50)"]
    )
    assert isinstance(space["agent"], Categorical)
    assert space["agent"].categories == ["PPO", "SAC"]
    assert space["net_arch"].categories == [[64, 64], [256, 256]]
    assert space["n"].categories == [0, 5, 50]


def test_uniform_loguniform_and_randint_sample_inside_their_bounds():
    space = parse_search_space(
        ["tau=uniform(0.1, 0.3)", "lr=loguniform(1e-4,1e-2)", "horizon=randint(5,8)"]
    )
    assert isinstance(space["tau"], Float) and isinstance(space["tau"].get_sampler(), Uniform)
    assert isinstance(space["lr"].get_sampler(), LogUniform)
    assert isinstance(space["horizon"], Integer)
    assert (space["lr"].lower, space["lr"].upper) == (1e-4, 1e-2)
    tau = np.array(space["tau"].sample(size=500))
    assert tau.min() >= 0.1 and tau.max() <= 0.3
    lr = np.array(space["lr"].sample(size=2000))
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2
    # Log-uniform: as many samples below the geometric middle (1e-3) as above it.
    assert 0.4 < np.mean(lr < 1e-3) < 0.6
    assert set(space["horizon"].sample(size=500)) == {5, 6, 7}  # HI excluded


def test_a_plain_value_is_a_constant_read_as_in_train():
    space = parse_search_space(["gamma=0.99", "net_arch=[64, 64]", "agent=PPO", "f=foo(1)"])
    assert space == {"gamma": 0.99, "net_arch": [64, 64], "agent": "PPO", "f": "foo(1)"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("gamma", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("lr=uniform(1)", "two bounds"),
        ("lr=uniform(0.3,0.1)", "LO < HI"),
        ("lr=uniform(a,1)", "a number"),
        ("lr=loguniform(0,1)", "0 < LO"),
        ("n=randint(1.5,4)", "an integer"),
        ("n=choice()", "comma-separated values"),
        ("n=choice(1,,2)", "comma-separated values"),
        ("n=choice(1,2", "no closing parenthesis"),
        ("n=choice(1,2)x", "no closing parenthesis"),
    ],
)
def test_malformed_items_name_set_and_the_item(item, message):
    with pytest.raises(ValueError, match=r"^--set: ") as err:
        parse_search_space([item])
    assert message in str(err.value)
    assert repr(item) in str(err.value)


def test_a_key_given_twice_is_an_error():
    with pytest.raises(ValueError, match=r"^--set: 'n' is given twice"):
        parse_search_space(["n=1", "n=choice(1,2)"])


# ---------------------------------------------------------------------- resources
def test_a_trial_without_workers_reserves_one_cpu_for_its_learner():
    assert trial_resources({}).bundles == [{"CPU": 1.0}]
    assert trial_resources({"num_workers": 0, "worker_cpus": 4}).bundles == [{"CPU": 1.0}]


def test_a_trial_reserves_a_bundle_per_collection_worker():
    assert trial_resources({"num_workers": 2}).bundles == [{"CPU": 1.0}] * 3
    bundles = trial_resources({"num_workers": 2, "worker_cpus": 2, "worker_gpus": 0.5}).bundles
    assert bundles == [{"CPU": 1.0}, {"CPU": 2.0, "GPU": 0.5}, {"CPU": 2.0, "GPU": 0.5}]
    assert trial_resources({"num_workers": 2, "worker_cpus": 0}).bundles == [{"CPU": 1.0}]


def test_a_cuda_learner_reserves_a_gpu():
    assert trial_resources({"device": "cuda:0"}).bundles == [{"CPU": 1.0, "GPU": 1.0}]
    assert trial_resources({"device": "auto"}).bundles == [{"CPU": 1.0}]


def test_a_trial_without_a_gpu_reservation_sees_no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    hide_unreserved_gpus([0])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # Ray's own choice is kept
    hide_unreserved_gpus([])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


# ---------------------------------------------------------------------- best trial, table
def _trial(trial_id: str, reward: float | None, steps: int, **config) -> SweepTrial:
    curve = [] if reward is None else [(steps, reward)]
    return SweepTrial(trial_id, config, reward, steps if curve else 0, curve)


def test_the_best_trial_ran_longest_then_has_the_highest_return():
    stopped = _trial("a", 9.0, 100, lr=0.1)  # higher return, but stopped early by ASHA
    finished = _trial("b", 5.0, 400, lr=0.2)
    better = _trial("c", 7.0, 401, lr=0.3)  # past the target: counted as 400
    failed = SweepTrial("d", {"lr": 0.4}, None, 0, [], error="RuntimeError: boom")
    assert best_trial([stopped, finished, failed], steps=400) is finished
    assert best_trial([stopped, finished, better, failed], steps=400) is better
    with pytest.raises(ValueError, match=r"none of the 1 trials.*RuntimeError: boom"):
        best_trial([failed], steps=400)


def test_the_table_lists_every_trial_best_first_and_marked():
    trials = [
        _trial("a", 2.0, 400, lr=0.1, arch=[64, 64]),
        _trial("b", 5.0, 400, lr=0.2, arch=[32]),
        SweepTrial("c", {"lr": 0.3}, None, 0, [], error="RuntimeError: boom"),
    ]
    lines = format_table(SweepResult(trials, trials[1], {})).splitlines()
    assert lines[0].split() == ["trial", "real_steps", "mean_reward", "arch", "lr", "error"]
    assert lines[1].split() == ["*", "b", "400", "5", "[32]", "0.2"]
    assert lines[2].split() == ["a", "400", "2", "[64,", "64]", "0.1"]
    assert lines[3].split()[:4] == ["c", "0", "-", "-"]
    assert lines[3].endswith("0.3  RuntimeError: boom")


# ---------------------------------------------------------------------- real sweeps
def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_two_trial_sweep_writes_the_best_config_the_trials_and_their_curves(tmp_path):
    # Each trial reserves both CPUs (learner + one collection worker): had its worker been
    # placed outside the trial's placement group it would wait for a CPU forever.
    space = parse_search_space(
        ["planning_steps=choice(0,50)", "learning_rate=uniform(0.05,0.5)", "num_workers=1"]
    )
    result = run_sweep(
        "dyna-q",
        MAZE,
        samples=2,
        steps=300,
        search_space=space,
        report_every=100,
        eval_episodes=1,
        out=tmp_path,
        scheduler="none",
    )
    assert len(result.trials) == 2
    for trial in result.trials:
        assert trial.error is None
        assert trial.real_steps == 300
        assert [s for s, _ in trial.curve] == [100, 200, 300]
        assert trial.config["planning_steps"] in (0, 50)
        assert 0.05 <= trial.config["learning_rate"] <= 0.5
    best_config = json.loads((tmp_path / "best_config.json").read_text())
    assert best_config == result.best.config
    assert best_config in [t.config for t in result.trials]
    assert result.best.mean_reward == max(t.mean_reward for t in result.trials)
    rows = _rows(tmp_path / "trials.csv")
    assert len(rows) == 2
    assert {r["trial_id"] for r in rows} == {t.trial_id for t in result.trials}
    assert all(r["real_steps"] == "300" and r["error"] == "" for r in rows)
    png = tmp_path / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.paths["tune"].is_dir()
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_command_line_sweeps_with_asha_and_prints_the_table(tmp_path, capsys):
    status = mbwrap.cli.main(
        [
            "tune",
            "dyna-q",
            "--env",
            MAZE,
            "--samples",
            "2",
            "--steps",
            "200",
            "--report-every",
            "100",
            "--eval-episodes",
            "1",
            "--set",
            "planning_steps=choice(0,5)",
            "--set",
            "exploration_rate=0.2",
            "--out",
            str(tmp_path / "sweep"),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "planning_steps" in out and "exploration_rate" in out
    assert f"best config: {tmp_path / 'sweep' / 'best_config.json'}" in out
    rows = _rows(tmp_path / "sweep" / "trials.csv")
    assert len(rows) == 2
    assert all(r["exploration_rate"] == "0.2" for r in rows)
    best = json.loads((tmp_path / "sweep" / "best_config.json").read_text())
    assert best["planning_steps"] in (0, 5) and best["exploration_rate"] == 0.2


def test_bad_arguments_fail_before_any_trial_starts(tmp_path):
    common = {"samples": 1, "steps": 10, "report_every": 5, "eval_episodes": 1, "out": tmp_path}
    with pytest.raises(TypeError, match="plannig_steps: not a setting of 'dyna-q'"):
        run_sweep("dyna-q", MAZE, search_space={"plannig_steps": 5}, **common)
    with pytest.raises(ValueError, match=r"^scheduler: expected one of \['asha', 'none'\]"):
        run_sweep("dyna-q", MAZE, search_space={}, scheduler="hyperband", **common)
    with pytest.raises(ValueError, match=r"^samples: expected an integer >= 1, got 0"):
        run_sweep("dyna-q", MAZE, search_space={}, **{**common, "samples": 0})
    assert not list(tmp_path.iterdir())


def test_a_malformed_set_item_ends_the_command_with_its_message():
    with pytest.raises(SystemExit, match=r"mbwrap tune: --set: .*'lr=uniform\(1\)'"):
        mbwrap.cli.main(
            ["tune", "dyna-q", "--env", MAZE, "--steps", "10", "--set", "lr=uniform(1)"]
        )


def test_a_failed_trial_is_reported_with_its_error(tmp_path):
    space = parse_search_space(["exploration_rate=2.0"])  # above the allowed 1.0
    with pytest.raises(
        RuntimeError,
        match=r"every trial failed .*none of the 1 trials reported a result; the first error: "
        r"ValueError: exploration_rate: expected a value <= 1\.0",
    ):
        run_sweep(
            "dyna-q",
            MAZE,
            samples=1,
            steps=10,
            search_space=space,
            report_every=10,
            eval_episodes=1,
            out=tmp_path,
        )
    [row] = _rows(tmp_path / "trials.csv")
    assert row["mean_reward"] == ""
    assert row["error"] == "ValueError: exploration_rate: expected a value <= 1.0, got 2.0"
    assert not (tmp_path / "best_config.json").exists()
