"""Times sheeprl's DreamerV3 on CartPole-v1 (vector observations) with a tiny configuration.

Runs INSIDE sheeprl's own virtual environment (benchmarks/setup_sheeprl_venv.sh), never in
mbwrap's: it imports sheeprl, torch and gymnasium only.

    .peers/sheeprl-venv/bin/python benchmarks/_sheeprl_dreamer.py --steps 2000 --learning-starts 256

sheeprl is driven through its own Hydra entry point, `sheeprl.cli.run` (what
`python -m sheeprl exp=dreamer_v3 ...` calls), with the overrides built by `overrides()`
below; `--print-overrides` prints them as a command line. The algorithm is sheeprl's as
installed: the script only wraps a few names of `sheeprl.algos.dreamer_v3.dreamer_v3` to
observe the run (when the setup ends, each gradient step, each episode return).

Output: ONE JSON line on stdout (everything sheeprl prints goes to stderr). `wall_seconds` is
the training loop only: from the end of sheeprl's setup (Fabric, environment, agent,
optimizers and replay buffer built) to the return of its `main` (the loop over the env steps,
with the gradient steps between them, then closing the environment). Imports, Hydra's config
composition and model construction are reported apart as `setup_seconds`.

How sheeprl turns `algo.replay_ratio` into gradient steps (sheeprl/utils/utils.py, `Ratio` and
`off_policy_schedule`, called from the loop of sheeprl/algos/dreamer_v3/dreamer_v3.py): one
iteration plays one step of every environment (here 1 env: 1 env step). Training starts at
iteration `train_starts = max(learning_starts // num_envs, per_rank_sequence_length, 1)` (the
first `learning_starts` steps play random actions). From then on each iteration does
`Ratio(replay_ratio)(policy_step - (train_starts - 1))` gradient steps: the integer part of
`replay_ratio` times the env steps since the last call, carrying the fraction over, so that
after N env steps the run has done about `replay_ratio * (N - train_starts + 1)` gradient
steps, rounded down (+ `per_rank_pretrain_steps`, 0 here; the JSON's
`expected_gradient_steps` replays `Ratio` exactly). Every gradient step is one world-model
update on a batch of `per_rank_batch_size` sequences of `per_rank_sequence_length` steps,
then one actor and one critic update on trajectories imagined `horizon` steps ahead from every
latent state of the batch (16 * 64 = 1024 starts). In DreamerV3's own terms (`train_ratio`,
replayed steps per env step) this is `replay_ratio * batch_size * sequence_length`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

# ---------------------------------------------------------------------------------------------
# The tiny configuration (DreamerV3's XS preset of sheeprl, `algo=dreamer_v3_XS`, with 2 MLP
# layers instead of its 1). Every value is passed to sheeprl explicitly by `overrides()`.
# ---------------------------------------------------------------------------------------------
ENV_ID = "CartPole-v1"
OBS_KEY = "state"  # the key sheeprl gives the vector observation (algo.mlp_keys.encoder)
NUM_ENVS = 1
ALGO_PRESET = "dreamer_v3_XS"
# Deterministic (GRU) state: algo.world_model.recurrent_model.recurrent_state_size
RECURRENT_STATE_SIZE = 256
STOCHASTIC_SIZE = 32  # categorical latents: algo.world_model.stochastic_size
DISCRETE_SIZE = 32  # classes per latent: algo.world_model.discrete_size
# algo.dense_units: every MLP (encoder, decoder, reward, continue, actor, critic) and the layer
# before the GRU; also the prior/posterior hidden layer
# (algo.world_model.{transition,representation}_model.hidden_size), as in mbwrap's RSSM
DENSE_UNITS = 256
MLP_LAYERS = 2  # algo.mlp_layers
BATCH_SIZE = 16  # algo.per_rank_batch_size
SEQUENCE_LENGTH = 64  # algo.per_rank_sequence_length
HORIZON = 15  # algo.horizon (imagination)
# algo.replay_ratio: gradient steps per env step. One gradient step of this configuration takes
# ~4-5 s on one thread of the 2-core VM (batch 16 x 64 steps through the world model, then
# 1024 x 15 imagined steps for the actor and the critic), so 1/32 keeps a run of a few thousand
# env steps at a few minutes. DreamerV3's train_ratio (replayed steps per env step) is
# replay_ratio * BATCH_SIZE * SEQUENCE_LENGTH = 32.
REPLAY_RATIO = 1 / 32
TOTAL_STEPS = 2000  # algo.total_steps: env steps
# algo.learning_starts: random-action env steps before training (sheeprl's default: 1024)
LEARNING_STARTS = 256
BUFFER_SIZE = 1_000_000  # buffer.size: larger than any run here, nothing is evicted
SEED = 42
NUM_THREADS = 1


def overrides(args: argparse.Namespace, run_dir: str) -> list[str]:
    """The Hydra overrides of sheeprl's `config.yaml` for this run."""
    return [
        "exp=dreamer_v3",
        f"algo={ALGO_PRESET}",
        "env=gym",
        f"env.id={ENV_ID}",
        f"env.num_envs={NUM_ENVS}",
        # The env stepped in the training process (AsyncVectorEnv: a subprocess and IPC)
        "env.sync_env=True",
        "env.capture_video=False",
        # Vector observations only: no CNN encoder/decoder (exp=dreamer_v3 sets both to [rgb])
        "algo.cnn_keys.encoder=[]",
        "algo.cnn_keys.decoder=[]",
        f"algo.mlp_keys.encoder=[{OBS_KEY}]",
        f"algo.mlp_keys.decoder=[{OBS_KEY}]",
        # Model dimensions
        f"algo.world_model.recurrent_model.recurrent_state_size={args.recurrent}",
        f"algo.world_model.stochastic_size={args.stoch}",
        f"algo.world_model.discrete_size={args.discrete}",
        f"algo.world_model.transition_model.hidden_size={args.units}",
        f"algo.world_model.representation_model.hidden_size={args.units}",
        f"algo.dense_units={args.units}",
        f"algo.mlp_layers={args.layers}",
        # Training recipe
        f"algo.per_rank_batch_size={args.batch}",
        f"algo.per_rank_sequence_length={args.sequence}",
        f"algo.horizon={args.horizon}",
        f"algo.replay_ratio={args.replay_ratio}",
        f"algo.total_steps={args.steps}",
        f"algo.learning_starts={args.learning_starts}",
        "algo.per_rank_pretrain_steps=0",
        "algo.compile.enabled=False",
        # No test episodes, checkpoints, metrics/tensorboard, timers or model registration
        "algo.run_test=False",
        "checkpoint.every=0",
        "checkpoint.save_last=False",
        "buffer.checkpoint=False",
        f"buffer.size={max(BUFFER_SIZE, args.steps)}",
        # In-memory replay buffer instead of memory-mapped files
        "buffer.memmap=False",
        "metric.log_level=0",
        "metric.disable_timer=True",
        "model_manager.disabled=True",
        # CPU, one process
        "fabric.accelerator=cpu",
        "fabric.devices=1",
        "fabric.precision=32-true",
        f"num_threads={args.threads}",
        f"seed={args.seed}",
        # What sheeprl writes (its config.yaml, an empty log dir) goes to a temporary directory
        f"log_root={run_dir}/logs",
        f"hydra.run.dir={run_dir}/hydra",
        "hydra.output_subdir=null",
    ]


def expected_gradient_steps(replay_ratio: float, train_iters: int) -> int:
    """The gradient steps that sheeprl's `Ratio` gives over `train_iters` iterations of one env
    step each, called as the DreamerV3 loop calls it (with 1, 2, ..., train_iters env steps since
    the training began)."""
    from sheeprl.utils.utils import Ratio

    ratio = Ratio(replay_ratio)
    return sum(ratio(step) for step in range(1, train_iters + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--steps", type=int, default=TOTAL_STEPS, help="env steps (algo.total_steps)")
    add("--learning-starts", type=int, default=LEARNING_STARTS, help="algo.learning_starts")
    add("--replay-ratio", type=float, default=REPLAY_RATIO, help="algo.replay_ratio")
    add("--threads", type=int, default=NUM_THREADS, help="torch intra-op threads")
    add("--seed", type=int, default=SEED)
    # The sizes (defaults: the constants above); the prior/posterior hidden size follows the
    # dense units, as in sheeprl's presets.
    add("--recurrent", type=int, default=RECURRENT_STATE_SIZE)
    add("--stoch", type=int, default=STOCHASTIC_SIZE)
    add("--discrete", type=int, default=DISCRETE_SIZE)
    add("--units", type=int, default=DENSE_UNITS)
    add("--layers", type=int, default=MLP_LAYERS)
    add("--batch", type=int, default=BATCH_SIZE)
    add("--sequence", type=int, default=SEQUENCE_LENGTH)
    add("--horizon", type=int, default=HORIZON)
    add("--print-overrides", action="store_true", help="print the sheeprl command line, exit")
    args = parser.parse_args()

    # Thread counts before torch is imported (sheeprl's `num_threads` only sets OMP_NUM_THREADS
    # after torch is already loaded, so it is also applied with torch.set_num_threads below)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    if args.print_overrides:
        ovr = overrides(args, "<tmpdir>")
        quoted = (f"'{o}'" if ("[" in o or "<" in o) else o for o in ovr)
        print("python -m sheeprl " + " ".join(quoted))
        return
    run_dir = tempfile.mkdtemp(prefix="sheeprl_dreamer_")
    ovr = overrides(args, run_dir)

    load_start = list(os.getloadavg())
    t_import = time.perf_counter()
    import gymnasium as gym
    import torch

    torch.set_num_threads(args.threads)

    import sheeprl
    import sheeprl.cli
    from sheeprl.algos.dreamer_v3 import dreamer_v3 as dv3

    marks: dict[str, float] = {}
    grad = {"steps": 0, "seconds": 0.0}
    returns: list[float] = []
    resolved: dict = {}

    # Observation only: wrappers around names that sheeprl's DreamerV3 `main` looks up at call time
    orig_schedule = dv3.off_policy_schedule

    def timed_schedule(cfg, *a, **kw):
        # Called once, after Fabric, the env, the agent, the optimizers and the replay buffer are
        # built, just before the first reset and the loop over the env steps
        out = orig_schedule(cfg, *a, **kw)
        resolved["learning_starts_iter"], resolved["train_starts_iter"] = int(out[0]), int(out[1])
        resolved["algo"] = cfg.algo
        marks["loop_start"] = time.perf_counter()
        return out

    orig_train = dv3.train

    def counted_train(*a, **kw):
        t = time.perf_counter()
        out = orig_train(*a, **kw)
        grad["seconds"] += time.perf_counter() - t
        grad["steps"] += 1
        return out

    class EpisodeReturns(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self._ret = 0.0

        def reset(self, **kw):
            self._ret = 0.0
            return self.env.reset(**kw)

        def step(self, action):
            obs, rew, term, trunc, info = self.env.step(action)
            self._ret += float(rew)
            if term or trunc:
                returns.append(self._ret)
                self._ret = 0.0
            return obs, rew, term, trunc, info

    orig_make_env = dv3.make_env

    def recording_make_env(*a, **kw):
        thunk = orig_make_env(*a, **kw)
        return lambda: EpisodeReturns(thunk())

    orig_build_agent = dv3.build_agent
    params: dict[str, int] = {}

    def counting_build_agent(*a, **kw):
        out = orig_build_agent(*a, **kw)
        for name, module in zip(("world_model", "actor", "critic"), out[:3], strict=True):
            params[name] = sum(p.numel() for p in module.parameters())
        return out

    orig_main = dv3.main

    def timed_main(fabric, cfg, *a, **kw):
        marks["main_start"] = time.perf_counter()
        out = orig_main(fabric, cfg, *a, **kw)
        marks["loop_end"] = time.perf_counter()
        return out

    dv3.off_policy_schedule = timed_schedule
    dv3.train = counted_train
    dv3.make_env = recording_make_env
    dv3.build_agent = counting_build_agent
    # sheeprl.cli.run_algorithm looks the entry point up in the module's namespace
    dv3.main = timed_main

    t0 = time.perf_counter()
    argv = sys.argv
    sys.argv = [argv[0], *ovr]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            try:
                sheeprl.cli.run()
            except SystemExit as exc:  # hydra exits on a bad override
                if exc.code not in (0, None):
                    raise
    finally:
        sys.argv = argv
        shutil.rmtree(run_dir, ignore_errors=True)

    if "loop_end" not in marks:
        raise RuntimeError("sheeprl's DreamerV3 did not run (see stderr)")
    wall = marks["loop_end"] - marks["loop_start"]
    algo = resolved["algo"]
    wm = algo.world_model
    env_steps = args.steps // NUM_ENVS * NUM_ENVS
    result = {
        "library": "sheeprl",
        "sheeprl_version": sheeprl.__version__,
        "torch_version": torch.__version__,
        "gymnasium_version": gym.__version__,
        "env": ENV_ID,
        "obs": "vector",
        "num_envs": NUM_ENVS,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "env_steps": env_steps,
        "gradient_steps": grad["steps"],
        "wall_seconds": round(wall, 3),
        "wall_seconds_covers": "training loop only (env steps + gradient steps), setup excluded",
        "setup_seconds": round(marks["loop_start"] - t0, 3),
        "import_seconds": round(t0 - t_import, 3),
        "train_seconds": round(grad["seconds"], 3),
        "env_steps_per_s": round(env_steps / wall, 2),
        "gradient_steps_per_s": round(grad["steps"] / wall, 3),
        "gradient_steps_per_train_s": (
            round(grad["steps"] / grad["seconds"], 3) if grad["seconds"] else None
        ),
        "seconds_per_gradient_step": (
            round(grad["seconds"] / grad["steps"], 4) if grad["steps"] else None
        ),
        "replay_ratio": float(algo.replay_ratio),
        "train_ratio_replayed_steps_per_env_step": float(algo.replay_ratio)
        * algo.per_rank_batch_size
        * algo.per_rank_sequence_length,
        "expected_gradient_steps": expected_gradient_steps(
            float(algo.replay_ratio), env_steps // NUM_ENVS - resolved["train_starts_iter"] + 1
        ),
        "learning_starts": int(algo.learning_starts),
        "train_starts_at_env_step": resolved["train_starts_iter"] * NUM_ENVS,
        "model": {
            "recurrent_state_size": int(wm.recurrent_model.recurrent_state_size),
            "stochastic_size": int(wm.stochastic_size),
            "discrete_size": int(wm.discrete_size),
            "transition_hidden_size": int(wm.transition_model.hidden_size),
            "representation_hidden_size": int(wm.representation_model.hidden_size),
            "dense_units": int(algo.dense_units),
            "mlp_layers": int(algo.mlp_layers),
            "batch_size": int(algo.per_rank_batch_size),
            "sequence_length": int(algo.per_rank_sequence_length),
            "horizon": int(algo.horizon),
            "reward_bins": int(wm.reward_model.bins),
            "critic_bins": int(algo.critic.bins),
            "compile": bool(algo.compile.enabled),
            "parameters": params,
        },
        "episodes": len(returns),
        "episode_returns": returns,
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
