"""Simulations per second of mctx's ``muzero_policy`` and ``gumbel_muzero_policy`` (JAX).

The mctx half of ``benchmarks/search_speed.py``. It runs in mctx's own virtual environment
(``benchmarks/setup_mctx_venv.sh``) and never imports torch or mbwrap. The toy recurrent
function and the roots come from the ``.npz`` file that ``search_speed.py`` writes, so both
sides search with identical weights:

* ``x = [embedding, one_hot(action)]``; ``h = relu(relu(x W1 + b1) W2 + b2)``;
  ``out = h Wo + bo`` split into the next embedding (``tanh``), the reward, the value and
  the ``A`` prior logits; the discount is the constant ``discount``.

Each (policy, simulations) pair is one ``jax.jit`` function (batch sizes share it and
compile once each); the first call per batch size, compile included, is reported apart
as ``warmup_s``, and the timed calls each wait on ``block_until_ready``. The Dirichlet
fraction and Gumbel scale are traced arguments, so the deterministic cross-check calls
(no noise, ``gumbel_scale = 0``) reuse the compiled functions.

Set ``XLA_FLAGS`` and ``JAX_PLATFORMS`` in the environment (and the CPU affinity) before
starting this script (``search_speed.py`` does). ``cpu_over_wall`` is the process's CPU time
over the wall time of the timed calls: above 1, XLA ran threads in parallel. Prints one
line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import mctx
import numpy as np


def load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def make_recurrent_fn(num_actions: int, embed: int, discount: float):
    def recurrent_fn(params, rng_key, action, embedding):
        del rng_key
        x = jnp.concatenate([embedding, jax.nn.one_hot(action, num_actions)], axis=-1)
        h = jax.nn.relu(x @ params["w1"] + params["b1"])
        h = jax.nn.relu(h @ params["w2"] + params["b2"])
        out = h @ params["wo"] + params["bo"]
        next_embedding = jnp.tanh(out[:, :embed])
        reward = out[:, embed]
        value = out[:, embed + 1]
        logits = out[:, embed + 2 :]
        output = mctx.RecurrentFnOutput(
            reward=reward,
            discount=jnp.full_like(reward, discount),
            prior_logits=logits,
            value=value,
        )
        return output, next_embedding

    return recurrent_fn


def make_policies(args: argparse.Namespace, num_actions: int, embed: int, discount: float):
    """``{(policy, simulations): jitted (params, key, root, noise) -> (action, weights,
    root visit counts)}``."""
    recurrent_fn = make_recurrent_fn(num_actions, embed, discount)
    policies = {}
    for n in sorted(set(args.simulations) | set(args.check_simulations)):

        def muzero(params, key, root, noise, n=n):
            out = mctx.muzero_policy(
                params, key, root, recurrent_fn, num_simulations=n,
                dirichlet_fraction=noise, dirichlet_alpha=args.dirichlet_alpha,
                pb_c_init=args.pb_c_init, pb_c_base=args.pb_c_base, temperature=1.0,
            )
            return out.action, out.action_weights, out.search_tree.summary().visit_counts

        def gumbel(params, key, root, noise, n=n):
            out = mctx.gumbel_muzero_policy(
                params, key, root, recurrent_fn, num_simulations=n,
                max_num_considered_actions=args.max_num_considered_actions,
                gumbel_scale=noise,
                qtransform=lambda tree, node: mctx.qtransform_completed_by_mix_value(
                    tree, node, value_scale=args.c_scale, maxvisit_init=args.c_visit),
            )
            return out.action, out.action_weights, out.search_tree.summary().visit_counts

        policies["muzero", n] = jax.jit(muzero)
        policies["gumbel", n] = jax.jit(gumbel)
    return policies


def roots(data: dict[str, np.ndarray], batch: int, device) -> mctx.RootFnOutput:
    return mctx.RootFnOutput(
        prior_logits=jax.device_put(data["root_logits"][:batch], device),
        value=jax.device_put(data["root_value"][:batch], device),
        embedding=jax.device_put(data["root_embedding"][:batch], device),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help=".npz written by search_speed.py")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--simulations", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--policies", nargs="+", default=["muzero", "gumbel"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dirichlet-alpha", type=float, default=0.3)
    parser.add_argument("--dirichlet-fraction", type=float, default=0.25)
    parser.add_argument("--pb-c-init", type=float, default=1.25)
    parser.add_argument("--pb-c-base", type=float, default=19652.0)
    parser.add_argument("--max-num-considered-actions", type=int, default=16)
    parser.add_argument("--gumbel-scale", type=float, default=1.0)
    parser.add_argument("--c-visit", type=float, default=50.0)
    parser.add_argument("--c-scale", type=float, default=0.1)
    parser.add_argument("--check-batch", type=int, default=0, help="0: no cross-check")
    parser.add_argument("--check-simulations", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load(args.weights)
    embed = int(data["root_embedding"].shape[1])
    num_actions = int(data["root_logits"].shape[1])
    device = jax.devices()[0]
    params = {k: jax.device_put(data[k], device) for k in ("w1", "b1", "w2", "b2", "wo", "bo")}
    policies = make_policies(args, num_actions, embed, float(data["discount"]))

    runs: list[dict[str, Any]] = []
    for policy in args.policies:
        noise = args.dirichlet_fraction if policy == "muzero" else args.gumbel_scale
        for n in args.simulations:
            fn = policies[policy, n]
            for batch in args.batches:
                root = roots(data, batch, device)
                start = time.perf_counter()
                jax.block_until_ready(fn(params, jax.random.PRNGKey(args.seed), root, noise))
                warmup = time.perf_counter() - start
                keys = [jax.random.PRNGKey(args.seed + 1 + i) for i in range(args.repeats)]
                seconds = []
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                for key in keys:
                    start = time.perf_counter()
                    jax.block_until_ready(fn(params, key, root, noise))
                    seconds.append(time.perf_counter() - start)
                cpu = time.process_time() - cpu_start
                wall = time.perf_counter() - wall_start
                runs.append({
                    "policy": policy, "batch": batch, "simulations": n,
                    "seconds": seconds, "median_s": statistics.median(seconds),
                    "sims_per_s": batch * n / statistics.median(seconds),
                    "warmup_s": warmup, "cpu_over_wall": cpu / wall,
                })

    checks = {}
    if args.check_batch:
        root = roots(data, args.check_batch, device)
        for policy in args.policies:
            for n in args.check_simulations:
                fn = policies[policy, n]
                action, weights, visits = fn(params, jax.random.PRNGKey(args.seed), root, 0.0)
                checks[f"{policy}/{n}"] = {
                    "action": np.asarray(action).tolist(),
                    "visit_counts": np.asarray(visits).tolist(),
                    "action_weights": np.asarray(weights).tolist(),
                }

    print(json.dumps({
        "library": "mctx",
        "version": mctx.__version__,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "runs": runs,
        "checks": checks,
    }))


if __name__ == "__main__":
    main()
