"""``mbwrap train``, ``mbwrap eval``: run a registered algorithm on a Gymnasium env."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HumanOutputFormat,
    Logger,
    TensorBoardOutputFormat,
    configure,
)
from stable_baselines3.common.monitor import Monitor

from mbwrap import registry
from mbwrap.algos import Algorithm
from mbwrap.algos.presets import PRESETS
from mbwrap.checkpoint import atomic_write, load_checkpoint

CHECKPOINT = "model.pt"
RUN_INFO = "run.json"


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[64, 64]", "c=PPO"]`` -> ``{"a": 1, "b": [64, 64], "c": "PPO"}``.

    Values are JSON where they parse as JSON, else plain strings.
    """
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


# Evaluation must end even for envs without a time limit (a greedy policy can loop forever).
EVAL_MAX_STEPS = 1000


def _eval_env(env_id: str) -> gym.Env:
    env = gym.make(env_id)
    if env.spec is None or env.spec.max_episode_steps is None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=EVAL_MAX_STEPS)
    return env


def load_algo(path: str | Path, env: gym.Env | None = None, device: str = "auto") -> Algorithm:
    """Load any registered algorithm's checkpoint, finding its class through the registry."""
    metadata, _ = load_checkpoint(path, kind="mbwrap.algo")
    name = metadata.get("registry_name")
    if not name:
        raise ValueError(f"path: {str(path)!r} names no registered algorithm")
    return registry.load("algo", name).load(path, env=env, device=device)


class _AppendingCSV(CSVOutputFormat):
    """SB3's CSV output continuing an existing ``progress.csv`` (its columns kept)."""

    def __init__(self, filename: str) -> None:
        self.file = open(filename, "r+")
        header = self.file.readline().strip()
        self.keys = header.split(",") if header else []
        self.separator = ","
        self.quotechar = '"'
        self.file.seek(0, 2)


def _run_logger(out: Path, *, append: bool) -> Logger:
    """stdout, CSV and TensorBoard logs in ``out``; ``append`` continues ``progress.csv``."""
    csv_path = out / "progress.csv"
    csv = _AppendingCSV(str(csv_path)) if append and csv_path.exists() else None
    if csv is None:
        return configure(str(out), ["stdout", "csv", "tensorboard"])
    formats = [HumanOutputFormat(sys.stdout), csv, TensorBoardOutputFormat(str(out))]
    return Logger(str(out), formats)


class SaveEvery(BaseCallback):
    """Saves the algorithm to ``path`` (atomically) every ``freq`` real steps, so that an
    interrupted ``mbwrap train`` continues from there (``--resume``)."""

    def __init__(self, path: str | Path, freq: int) -> None:
        super().__init__()
        self.path = Path(path)
        self.freq = max(1, int(freq))

    def _on_step(self) -> bool:
        if self.num_timesteps % self.freq < self.training_env.num_envs:
            self.model.save(self.path)
        return True


def _callbacks(
    algo: Algorithm, env_id: str, out: Path, seed: int | None, info: dict[str, Any]
) -> list[BaseCallback]:
    eval_env = Monitor(_eval_env(env_id))
    eval_env.reset(seed=None if seed is None else seed + 10_000 + algo.num_timesteps)
    evaluation = EvalCallback(
        eval_env,
        eval_freq=max(1, info["eval_freq"]),
        n_eval_episodes=info["eval_episodes"],
        log_path=str(out),
        deterministic=True,
        verbose=0,
    )
    if algo.num_timesteps:
        # EvalCallback rewrites evaluations.npz from its own lists: start from the file's.
        previous = out / "evaluations.npz"
        if previous.exists():
            with np.load(previous) as data:
                evaluation.evaluations_timesteps = list(data["timesteps"])
                evaluation.evaluations_results = [list(r) for r in data["results"]]
                evaluation.evaluations_length = [list(r) for r in data["ep_lengths"]]
    return [evaluation, SaveEvery(out / CHECKPOINT, info["checkpoint_freq"])]


def train(
    algo_name: str,
    env_id: str,
    steps: int,
    *,
    out: str | Path,
    agent: str | None = None,
    seed: int | None = None,
    device: str = "auto",
    eval_freq: int = 1000,
    eval_episodes: int = 10,
    checkpoint_freq: int | None = None,
    settings: dict[str, Any] | None = None,
    preset: bool = False,
    progress_bar: bool = True,
) -> Algorithm:
    """Train ``algo_name`` on ``env_id`` for ``steps`` real steps, logging into ``out``.

    ``out`` receives ``progress.csv`` and TensorBoard events (SB3's logger),
    ``evaluations.npz`` (SB3's ``EvalCallback``), the checkpoint ``model.pt`` (saved every
    ``checkpoint_freq`` real steps, default ``eval_freq``, and at the end) and ``run.json``
    describing the run (written first, so that :func:`resume` can continue it). With
    ``preset``, the settings start from :data:`mbwrap.algos.presets.PRESETS` for
    ``(algo_name, env_id)`` (``settings`` override them key by key).

    :raises ValueError: when ``preset`` is asked for and there is none for the pair.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = dict(settings or {})
    if preset:
        if (algo_name, env_id) not in PRESETS:
            known = ", ".join(f"{a} on {e}" for a, e in sorted(PRESETS))
            raise ValueError(f"preset: none for {algo_name} on {env_id}; there are: {known}")
        kwargs = {**PRESETS[(algo_name, env_id)], **kwargs}
    if agent is not None:
        kwargs["agent"] = agent
    info = {
        "algo": algo_name,
        "env": env_id,
        "steps": steps,
        "agent": agent,
        "seed": seed,
        "settings": settings or {},
        "preset": preset,
        "eval_freq": eval_freq,
        "eval_episodes": eval_episodes,
        "checkpoint_freq": checkpoint_freq or eval_freq,
    }
    algo = registry.make_algo(algo_name, gym.make(env_id), seed=seed, device=device, **kwargs)
    atomic_write(out / RUN_INFO, lambda tmp: tmp.write_text(json.dumps(info, indent=2)))
    algo.set_logger(_run_logger(out, append=False))
    try:
        algo.learn(
            steps, callback=_callbacks(algo, env_id, out, seed, info), progress_bar=progress_bar
        )
        algo.save(out / CHECKPOINT)
    finally:
        close = getattr(algo, "close", None)  # Ray workers, when num_workers > 0
        if close is not None:
            close()
    return algo


def resume(run_dir: str | Path, *, device: str = "auto", progress_bar: bool = True) -> Algorithm:
    """Continue the ``mbwrap train`` run in ``run_dir`` from its last checkpoint up to the
    real steps it was started for; logs and evaluations are appended.

    :raises FileNotFoundError: when ``run_dir`` holds no ``run.json`` or checkpoint.
    """
    out = Path(run_dir)
    if not (out / RUN_INFO).is_file() or not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(
            f"run_dir: {str(out)!r} holds no {RUN_INFO} and {CHECKPOINT} written by mbwrap train"
        )
    info = json.loads((out / RUN_INFO).read_text())
    algo = load_algo(out / CHECKPOINT, env=gym.make(info["env"]), device=device)
    remaining = int(info["steps"]) - algo.num_timesteps
    if remaining > 0:
        algo.set_logger(_run_logger(out, append=True))
        callbacks = _callbacks(algo, info["env"], out, info["seed"], info)
        algo.learn(
            remaining, callback=callbacks, reset_num_timesteps=False, progress_bar=progress_bar
        )
        algo.save(out / CHECKPOINT)
    return algo


def _with_workers(
    settings: dict[str, Any], workers: int | None, address: str | None
) -> dict[str, Any]:
    """``--workers`` and ``--address`` as the settings ``num_workers`` / ``ray_address``."""
    if workers is not None:
        if workers < 0:
            raise SystemExit(f"mbwrap train: --workers: expected an int >= 0, got {workers}")
        settings["num_workers"] = workers
    if address is not None:
        settings["ray_address"] = address
    return settings


def run_train(args: argparse.Namespace) -> int:
    if args.resume:
        resume(args.resume, device=args.device, progress_bar=not args.no_progress)
        return 0
    if args.algo is None or args.env is None or args.steps is None:
        raise SystemExit("mbwrap train: ALGO, --env and --steps are required (or --resume)")
    train(
        args.algo,
        args.env,
        args.steps,
        out=args.out or f"runs/{args.algo}-{args.env.replace('/', '_')}-{args.seed}",
        agent=args.agent,
        seed=args.seed,
        device=args.device,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        checkpoint_freq=args.checkpoint_freq,
        settings=_with_workers(parse_settings(args.set), args.workers, args.address),
        preset=args.preset,
        progress_bar=not args.no_progress,
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        path = path / CHECKPOINT
    env = Monitor(_eval_env(args.env))
    algo = load_algo(path, device=args.device)
    mean, std = evaluate_policy(
        algo, env, n_eval_episodes=args.episodes, deterministic=not args.stochastic
    )
    print(f"{args.env}: mean return {mean:.2f} +/- {std:.2f} over {args.episodes} episodes")
    return 0


def add_train_parsers(commands: Any) -> None:
    train_parser = commands.add_parser(
        "train",
        help="train a registered algorithm on a Gymnasium env",
        description="Train ALGO on a Gymnasium env for a number of REAL env steps, with a "
        "progress bar, CSV and TensorBoard logs, periodic evaluation and a saved checkpoint.",
    )
    train_parser.add_argument(
        "algo", nargs="?", help="registered algorithm name (see `mbwrap plugins`)"
    )
    train_parser.add_argument("--env", help="Gymnasium env id")
    train_parser.add_argument("--steps", type=int, help="real env steps")
    train_parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint (other options are read "
        "from its run.json)",
    )
    train_parser.add_argument(
        "--checkpoint-freq", type=int, help="real steps between checkpoints (default: eval freq)"
    )
    train_parser.add_argument("--agent", help="SB3 agent for algorithms that take one")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--device", default="auto")
    train_parser.add_argument("--out", help="run directory (default runs/ALGO-ENV-SEED)")
    train_parser.add_argument("--eval-freq", type=int, default=1000, help="real steps")
    train_parser.add_argument("--eval-episodes", type=int, default=10)
    train_parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="algorithm keyword"
    )
    train_parser.add_argument(
        "--preset",
        action="store_true",
        help="start from mbwrap's small-budget settings for ALGO on this env "
        "(mbwrap.algos.presets; --set overrides them)",
    )
    train_parser.add_argument(
        "--workers", type=int, metavar="N",
        help="Ray actors collecting real steps (self-play actors for alphazero/muzero); "
        "needs the ray extra",
    )
    train_parser.add_argument(
        "--address", metavar="ADDR",
        help="Ray cluster to join: 'auto' (ray start --head on this machine) or host:port",
    )
    train_parser.add_argument("--no-progress", action="store_true")
    train_parser.set_defaults(run=run_train)

    eval_parser = commands.add_parser(
        "eval",
        help="evaluate a saved algorithm on a real env",
        description="Evaluate a "
        "checkpoint written by `mbwrap train` (or any algorithm's save()) on a Gymnasium env.",
    )
    eval_parser.add_argument("path", help="checkpoint file or run directory")
    eval_parser.add_argument("--env", required=True, help="Gymnasium env id")
    eval_parser.add_argument("--episodes", type=int, default=10)
    eval_parser.add_argument("--stochastic", action="store_true", help="sample actions")
    eval_parser.add_argument("--device", default="auto")
    eval_parser.set_defaults(run=run_eval)
