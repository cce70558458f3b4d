"""Hyperparameter sweeps of a registered algorithm on Ray Tune (``mbwrap tune``).

Each trial builds the algorithm with one sample of the search space, trains it in chunks
of real env steps and reports the mean evaluation return after each chunk; ASHA (Li et
al. 2020, "A System for Massively Parallel Hyperparameter Tuning") stops the trials that
fall behind at the same number of real steps. A trial reserves a placement group: one CPU
for its learner and one bundle per collection worker, so that an algorithm with
``num_workers > 0`` starts its workers inside the trial's own reservation. Ray is
imported only when a sweep runs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from mbwrap import registry
from mbwrap.algos import AlgoConfig
from mbwrap.checkpoint import atomic_write
from mbwrap.cli.train import _eval_env, parse_settings
from mbwrap.distributed.ray_support import ensure_ray, require_ray

#: The metric every trial reports and the sweep maximises.
METRIC = "mean_reward"
#: The time axis of reports, of ASHA's rungs and of the learning curves.
TIME_ATTR = "real_steps"
SCHEDULERS = ("asha", "none")
# Tune's own directory of trial results, inside ``out``.
TUNE_DIR = "tune"

_SAMPLER = re.compile(r"^(choice|uniform|loguniform|randint)\((.*)\)$", re.DOTALL)
_SAMPLER_NAME = re.compile(r"^(choice|uniform|loguniform|randint)\(")
_SYNTAX = (
    "KEY=VALUE, KEY=choice(A,B,...), KEY=uniform(LO,HI), KEY=loguniform(LO,HI) or "
    "KEY=randint(LO,HI)"
)


def _split_arguments(text: str) -> list[str]:
    """``"1, [2, 3], 'a,b'"`` -> ``["1", "[2, 3]", "'a,b'"]``: commas inside brackets,
    braces or quotes do not split."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[i - 1] != "\\" else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _number(item: str, text: str, kind: type) -> float | int:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        expected = "an integer" if kind is int else "a number"
        raise ValueError(f"--set: expected {expected} for each bound, got {text!r} in {item!r}")
    return kind(value)


def _domain(item: str, key: str, sampler: str, arguments: str) -> Any:
    from ray import tune

    parts = _split_arguments(arguments)
    if any(not part for part in parts):
        raise ValueError(f"--set: expected comma-separated values inside {sampler}(), got {item!r}")
    if sampler == "choice":
        # Each option is read like a plain --set value: JSON, else a string.
        return tune.choice([parse_settings([f"{key}={part}"])[key] for part in parts])
    if len(parts) != 2:
        raise ValueError(f"--set: expected {sampler}(LO,HI) with two bounds, got {item!r}")
    kind = int if sampler == "randint" else float
    low, high = (_number(item, part, kind) for part in parts)
    if not low < high:
        raise ValueError(f"--set: expected LO < HI in {sampler}(LO,HI), got {item!r}")
    if sampler == "loguniform" and low <= 0:
        raise ValueError(f"--set: expected 0 < LO in loguniform(LO,HI), got {item!r}")
    samplers = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
    return samplers[sampler](low, high)


def parse_search_space(items: list[str]) -> dict[str, Any]:
    """``--set`` items -> a Ray Tune search space.

    ``KEY=choice(A,B,...)`` samples one of the values (each read like a plain value, so
    ``choice([64,64],[256,256])`` and ``choice(PPO,SAC)`` work); ``KEY=uniform(LO,HI)``
    and ``KEY=loguniform(LO,HI)`` a float in ``[LO, HI]`` (``0 < LO`` for loguniform);
    ``KEY=randint(LO,HI)`` an integer in ``[LO, HI)`` (``HI`` excluded, as in Ray Tune and
    NumPy); ``KEY=VALUE`` is a constant, JSON where it parses as JSON, else a string, as in
    ``mbwrap train --set``.

    :param items: ``KEY=...`` strings, each key at most once.
    :return: key -> ``tune.choice``/``tune.uniform``/... domain or constant.
    :raises ValueError: naming ``--set`` and the item, for malformed input.
    """
    require_ray("mbwrap tune")
    space: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"--set: expected {_SYNTAX}, got {item!r}")
        if key in space:
            raise ValueError(f"--set: {key!r} is given twice (second: {item!r})")
        match = _SAMPLER.match(value)
        if match:
            space[key] = _domain(item, key, match.group(1), match.group(2))
        elif _SAMPLER_NAME.match(value):
            raise ValueError(f"--set: expected {_SYNTAX}, got {item!r} (no closing parenthesis)")
        else:
            space.update(parse_settings([f"{key}={value}"]))
    return space


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(AlgoConfig) if f.name == name)


def trial_resources(settings: Mapping[str, Any]) -> Any:
    """The placement group one trial reserves: a bundle for its learner and one per
    collection worker, so that the workers an algorithm starts (``num_workers > 0``) are
    placed inside the trial's reservation and never wait for CPUs other trials hold.

    The learner's bundle is one CPU, plus one GPU when ``settings["device"]`` names CUDA
    (``device="auto"`` runs on the CPU in a trial: a trial that reserved no GPU sees none,
    see :func:`hide_unreserved_gpus`). Each worker's bundle is
    ``{"CPU": worker_cpus, "GPU": worker_gpus}``, zero amounts left out; the defaults are
    :class:`~mbwrap.algos.AlgoConfig`'s.

    :param settings: one trial's algorithm settings (sampled values, not domains).
    :return: a ``ray.tune.PlacementGroupFactory``.
    """
    require_ray("mbwrap tune")
    from ray.tune import PlacementGroupFactory

    learner = {"CPU": 1.0}
    if str(settings.get("device", _default("device"))).startswith("cuda"):
        learner["GPU"] = 1.0
    worker = {
        "CPU": float(settings.get("worker_cpus", _default("worker_cpus"))),
        "GPU": float(settings.get("worker_gpus", _default("worker_gpus"))),
    }
    worker = {name: amount for name, amount in worker.items() if amount > 0}
    workers = int(settings.get("num_workers", _default("num_workers")))
    # A worker that reserves nothing needs no bundle (Ray refuses empty ones).
    return PlacementGroupFactory([learner] + ([worker] * workers if worker else []))


@dataclass(frozen=True)
class SweepTrial:
    """One trial of a sweep.

    :ivar trial_id: Tune's id of the trial.
    :ivar config: the sampled settings the algorithm was built with (JSON values).
    :ivar mean_reward: the mean evaluation return of its last report; ``None`` when it
        reported nothing.
    :ivar real_steps: the real env steps it reached.
    :ivar curve: ``(real_steps, mean_reward)`` after each chunk, in order.
    :ivar error: what stopped it when it failed, else ``None``.
    """

    trial_id: str
    config: dict[str, Any]
    mean_reward: float | None
    real_steps: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` found.

    :ivar trials: every trial, in Tune's order.
    :ivar best: the trial :func:`best_trial` picks.
    :ivar paths: ``"best_config"``, ``"trials"``, ``"learning_curves"`` and ``"tune"``
        (Tune's own results) -> the path written.
    """

    trials: list[SweepTrial]
    best: SweepTrial
    paths: dict[str, Path]


def best_trial(trials: list[SweepTrial], *, steps: int) -> SweepTrial:
    """The trial that trained longest (real steps, counted up to ``steps``), then had the
    highest last mean return: a trial ASHA stopped early is compared at fewer steps, so
    it never wins over one that ran to the end.

    :raises ValueError: when no trial reported a result.
    """
    reported = [t for t in trials if t.mean_reward is not None]
    if not reported:
        errors = [t.error for t in trials if t.error]
        first = f"; the first error: {errors[0]}" if errors else ""
        raise ValueError(f"trials: none of the {len(trials)} trials reported a result{first}")
    return max(reported, key=lambda t: (min(t.real_steps, steps), t.mean_reward))


def hide_unreserved_gpus(reserved: list[Any]) -> None:
    """Hide every GPU from this process when it reserved none.

    Ray leaves the GPUs a task did not reserve visible (``CUDA_VISIBLE_DEVICES`` is set
    only for tasks with GPUs), so a trial's ``device="auto"`` would take a GPU that no
    placement group accounts for. Call before CUDA is first used in the process.

    :param reserved: the GPU ids Ray gave this process (``ray.get_gpu_ids()``).
    """
    if not reserved:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _trial(
    config: dict[str, Any],
    *,
    algo: str,
    env_id: str,
    steps: int,
    report_every: int,
    eval_episodes: int,
    seed: int,
) -> None:
    """Tune's function trainable: train in chunks of ``report_every`` real steps, evaluate
    and report after each."""
    import ray
    from ray import tune
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    hide_unreserved_gpus(ray.get_gpu_ids())
    model = registry.make_algo(algo, gym.make(env_id), **{"seed": seed, **config})
    eval_env = Monitor(_eval_env(env_id))
    eval_env.reset(seed=seed + 10_000)  # the same evaluation episodes in every trial
    try:
        while model.num_timesteps < steps:
            before = model.num_timesteps
            model.learn(min(report_every, steps - before), reset_num_timesteps=False)
            mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes)
            tune.report({METRIC: float(mean), TIME_ATTR: int(model.num_timesteps)})
            if model.num_timesteps == before:  # a callback stopped training
                break
    finally:
        eval_env.close()
        close = getattr(model, "close", None)
        if close is not None:
            close()


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _last_line(error: BaseException) -> str:
    """The exception a trial raised, without Ray's traceback (Tune keeps that in the
    trial's ``error.txt``): the last line of Ray's message is ``"Type: message"``."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def _collect_trials(results: Any) -> list[SweepTrial]:
    trials = []
    for result in results:
        frame = result.metrics_dataframe
        curve: list[tuple[int, float]] = []
        if frame is not None and METRIC in frame and TIME_ATTR in frame:
            rows = frame[[TIME_ATTR, METRIC]].dropna()
            curve = [(int(s), float(r)) for s, r in zip(rows[TIME_ATTR], rows[METRIC], strict=True)]
        trials.append(
            SweepTrial(
                trial_id=str((result.metrics or {}).get("trial_id") or Path(result.path).name),
                config=_json_value(dict(result.config or {})),
                mean_reward=curve[-1][1] if curve else None,
                real_steps=curve[-1][0] if curve else 0,
                curve=curve,
                error=None if result.error is None else _last_line(result.error),
            )
        )
    return trials


def _write_trials_csv(path: Path, trials: list[SweepTrial]) -> None:
    keys = sorted({key for t in trials for key in t.config})

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["trial_id", METRIC, TIME_ATTR, *keys, "error"])
            for t in trials:
                values = [
                    json.dumps(t.config[k])
                    if isinstance(t.config.get(k), (list, dict))
                    else t.config.get(k, "")
                    for k in keys
                ]
                reward = "" if t.mean_reward is None else t.mean_reward
                writer.writerow([t.trial_id, reward, t.real_steps, *values, t.error or ""])

    atomic_write(path, write)


def _plot_curves(path: Path, trials: list[SweepTrial], best: SweepTrial) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for t in trials:
        if not t.curve:
            continue
        x, y = zip(*t.curve, strict=True)
        label = f"{t.trial_id} (best)" if t is best else t.trial_id
        ax.plot(x, y, marker="o", markersize=3, linewidth=2.0 if t is best else 1.0, label=label)
    ax.set_xlabel("real env steps")
    ax.set_ylabel("mean evaluation return")
    ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")


def run_sweep(
    algo: str,
    env_id: str,
    *,
    samples: int,
    steps: int,
    search_space: dict[str, Any],
    report_every: int,
    eval_episodes: int,
    out: str | Path,
    seed: int = 0,
    scheduler: str = "asha",
    grace_steps: int | None = None,
    address: str | None = None,
) -> SweepResult:
    """Sweep the settings of the algorithm registered as ``algo`` on ``env_id``.

    Each of ``samples`` trials builds ``make_algo(algo, gym.make(env_id), seed=seed,
    **config)`` with one sample ``config`` of ``search_space`` (a ``seed`` in the space
    overrides ``seed``), calls ``learn`` for ``report_every`` real steps at a time up to
    ``steps``, and after each chunk reports the mean return of ``eval_episodes``
    deterministic episodes on a fresh ``gym.make(env_id)`` (cut at 1000 steps when the
    env has no time limit). With ``scheduler="asha"`` ASHA stops trials that fall behind
    at ``grace_steps`` (default ``report_every``) real steps and at each rung after it.

    ``out`` receives ``best_config.json`` (the best trial's settings), ``trials.csv`` (one
    row per trial), ``learning_curves.png`` (mean evaluation return against real steps,
    one line per trial) and Tune's own results in ``out/tune``.

    :param search_space: key -> Tune domain or constant, e.g. from
        :func:`parse_search_space`.
    :param address: the Ray cluster to join (``"auto"``, ``"host:port"``); ``None`` starts
        Ray on this machine unless this process already runs it.
    :raises ValueError: for a count below 1 or an unknown scheduler.
    :raises TypeError: for a key that is not a setting of ``algo``.
    :raises UnknownPluginError: for an algorithm name that is not registered.
    :raises RuntimeError: when every trial failed (``trials.csv`` is written, with the
        errors).
    """
    _check_positive(
        samples=samples,
        steps=steps,
        report_every=report_every,
        eval_episodes=eval_episodes,
        grace_steps=grace_steps,
    )
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler: expected one of {list(SCHEDULERS)}, got {scheduler!r}")
    gym.spec(env_id)  # an unknown id fails here, not in every trial
    config_class = getattr(registry.load("algo", algo), "Config", None)
    if isinstance(config_class, type) and issubclass(config_class, AlgoConfig):
        config_class.check_keys(search_space)
    ensure_ray(address)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    trainable = tune.with_parameters(
        _trial,
        algo=algo,
        env_id=env_id,
        steps=steps,
        report_every=report_every,
        eval_episodes=eval_episodes,
        seed=seed,
    )
    asha = ASHAScheduler(
        time_attr=TIME_ATTR,
        metric=METRIC,
        mode="max",
        max_t=steps,
        grace_period=min(grace_steps or report_every, steps),
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, trial_resources),
        param_space=dict(search_space),
        tune_config=tune.TuneConfig(
            num_samples=samples, scheduler=asha if scheduler == "asha" else None
        ),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(out), verbose=1),
    )
    trials = _collect_trials(tuner.fit())
    paths = {
        "best_config": out / "best_config.json",
        "trials": out / "trials.csv",
        "learning_curves": out / "learning_curves.png",
        "tune": out / TUNE_DIR,
    }
    _write_trials_csv(paths["trials"], trials)
    try:
        best = best_trial(trials, steps=steps)
    except ValueError as err:
        raise RuntimeError(f"mbwrap tune: every trial failed ({paths['trials']}): {err}") from err
    atomic_write(
        paths["best_config"],
        lambda tmp: tmp.write_text(json.dumps(best.config, indent=2, sort_keys=True) + "\n"),
    )
    _plot_curves(paths["learning_curves"], trials, best)
    return SweepResult(trials=trials, best=best, paths=paths)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def format_table(result: SweepResult) -> str:
    """The trials as a text table, best first then by mean return: trial id, real steps
    reached, last mean evaluation return and each setting; the best is marked ``*`` and
    an ``error`` column says what stopped a failed trial."""
    keys = sorted({key for t in result.trials for key in t.config})
    failed = any(t.error for t in result.trials)
    header = ["", "trial", TIME_ATTR, METRIC, *keys] + (["error"] if failed else [])
    ranked = sorted(
        result.trials,
        key=lambda t: (t is not result.best, t.mean_reward is None, -(t.mean_reward or 0.0)),
    )
    rows = [
        [
            "*" if t is result.best else "",
            t.trial_id,
            str(t.real_steps),
            _cell(t.mean_reward),
            *(_cell(t.config.get(k)) for k in keys),
        ]
        + ([t.error or ""] if failed else [])
        for t in ranked
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)
