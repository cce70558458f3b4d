"""Simulations per second of batched tree search: mbwrap against mctx and a one-tree Python MCTS.

Three searches over the same toy recurrent function, with identical weights:

* mbwrap's ``muzero_policy`` and ``gumbel_muzero_policy`` (``B`` trees at once), once per
  backend (``--backends``): ``torch`` (the bookkeeping as tensor operations) and
  ``compiled`` (the bookkeeping in numba kernels on the CPU; skipped without numba), a
  row of the table each;
* mctx's ``muzero_policy`` and ``gumbel_muzero_policy`` (JAX, ``jax.jit``), run in mctx's own
  virtual environment (``benchmarks/setup_mctx_venv.sh``) through
  ``benchmarks/_mctx_search.py``, which prints JSON;
* ``python``: pUCT over one tree at a time, nodes as Python objects, calling the same torch
  recurrent function on one state per simulation, the way single-tree implementations do.

The recurrent function is an MLP: ``[embedding (32), one_hot(action) (A)] -> 64 -> 64 ->``
next embedding (``tanh``, 32), reward, value and ``A`` prior logits, discount 0.997. Its
weights and the roots (embeddings, prior logits, values) are drawn from one numpy seed and
written to a temporary ``.npz`` that both torch and JAX load.

Both libraries run the same algorithm with the same settings: pUCT with ``c1 = 1.25``,
``c2 = 19652``, Dirichlet noise (alpha 0.3, fraction 0.25) and Q normalised over the node's
value and its visited children (mctx's default; mbwrap's ``qtransform="min_max_siblings"``);
Gumbel with 16 considered actions, ``gumbel_scale = 1``, ``c_visit = 50`` and
``c_scale = 0.1`` (mctx's ``value_scale`` default). The Python search is pUCT only.

Throughput is ``batch x simulations / seconds``, the median of ``--repeats`` timed calls after
one warm-up call, whose time (for mctx: the ``jax.jit`` compile) is reported apart, with the
CPU time over wall time of the timed calls (above 1: threads ran in parallel). ``--threads N``
sets torch's intra-op threads and XLA's (``--xla_cpu_multi_thread_eigen``,
``intra_op_parallelism_threads``), and by default pins the whole run, mctx's process
included, to ``N`` CPUs, since XLA also runs work on threads of its own. The
Python search runs at most ``--python-max-roots`` roots one after the other and its rate is
extrapolated to the whole batch (it searches one root at a time, so its rate does not depend
on the batch). With deterministic settings (no Dirichlet noise, ``gumbel_scale = 0``) the
script also compares mbwrap's root visit counts with mctx's, and mbwrap's pUCT with the
Python search's, on the same roots, for each backend, and mbwrap's backends' trees with
each other's.

With ``--device cuda`` mbwrap and mctx search on the GPU (mctx needs the venv built on a
machine with one: ``jax[cuda12]``); the Python search keeps its model on the CPU, where
one-state model calls are fastest.

Usage::

    python benchmarks/search_speed.py                         # 1, 64, 1024 roots; 50, 200 sims
    python benchmarks/search_speed.py --quick                 # smoke run
    python benchmarks/search_speed.py --mctx-python none      # mbwrap and Python only
    python benchmarks/search_speed.py --backends compiled     # mbwrap's compiled backend only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mbwrap.planners.mcts import (
    RecurrentFnOutput,
    RootFnOutput,
    gumbel_muzero_policy,
    muzero_policy,
)

HERE = Path(__file__).resolve().parent
# Peer libraries run in venvs of their own under $MBWRAP_PEERS_DIR, by default the
# repository's ignored .peers/ folder (benchmarks/setup_mctx_venv.sh builds mctx's there).
PEERS_DIR = Path(os.environ.get("MBWRAP_PEERS_DIR") or HERE.parent / ".peers")
POLICIES = ("muzero", "gumbel")
BACKENDS = ("torch", "compiled")


# --------------------------------------------------------------------------- the toy model


def make_weights(args: argparse.Namespace, max_batch: int) -> dict[str, np.ndarray]:
    """MLP weights and ``max_batch`` roots, float32, from ``args.seed``."""
    rng = np.random.default_rng(args.seed)
    e, a, h = args.embed, args.actions, args.hidden

    def linear(fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
        w = rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in)
        b = 0.1 * rng.standard_normal(fan_out)
        return w.astype(np.float32), b.astype(np.float32)

    w1, b1 = linear(e + a, h)
    w2, b2 = linear(h, h)
    wo, bo = linear(h, e + 2 + a)
    return {
        "w1": w1, "b1": b1, "w2": w2, "b2": b2, "wo": wo, "bo": bo,
        "root_embedding": np.tanh(rng.standard_normal((max_batch, e))).astype(np.float32),
        "root_logits": rng.standard_normal((max_batch, a)).astype(np.float32),
        "root_value": (0.5 * rng.standard_normal(max_batch)).astype(np.float32),
        "discount": np.asarray(args.discount, dtype=np.float32),
    }


class ToyModel:
    """The MLP in torch: ``recurrent_fn(embedding [B, E], action [B]) -> (output, next)``."""

    def __init__(self, weights: dict[str, np.ndarray], device: torch.device) -> None:
        self.device = device
        self.params = {
            k: torch.as_tensor(weights[k], device=device)
            for k in ("w1", "b1", "w2", "b2", "wo", "bo")
        }
        self.embed = weights["root_embedding"].shape[1]
        self.num_actions = weights["root_logits"].shape[1]
        self.discount = float(weights["discount"])
        self.weights = weights

    def recurrent_fn(
        self, embedding: torch.Tensor, action: torch.Tensor
    ) -> tuple[RecurrentFnOutput, torch.Tensor]:
        p, e = self.params, self.embed
        one_hot = torch.nn.functional.one_hot(action, self.num_actions).to(embedding.dtype)
        x = torch.cat([embedding, one_hot], -1)
        h = torch.relu(x @ p["w1"] + p["b1"])
        h = torch.relu(h @ p["w2"] + p["b2"])
        out = h @ p["wo"] + p["bo"]
        reward = out[:, e]
        output = RecurrentFnOutput(
            reward=reward,
            discount=torch.full_like(reward, self.discount),
            prior_logits=out[:, e + 2 :],
            value=out[:, e + 1],
        )
        return output, torch.tanh(out[:, :e])

    def roots(self, batch: int, first: int = 0) -> RootFnOutput:
        def rows(key: str) -> torch.Tensor:
            return torch.as_tensor(self.weights[key][first : first + batch], device=self.device)

        return RootFnOutput(rows("root_logits"), rows("root_value"), rows("root_embedding"))


# --------------------------------------------------------------------------- mbwrap


def mbwrap_search(
    model: ToyModel, policy: str, root: RootFnOutput, n: int, args: argparse.Namespace,
    *, backend: str, deterministic: bool = False, generator: torch.Generator | None = None,
):
    if policy == "muzero":
        return muzero_policy(
            root, model.recurrent_fn, n,
            dirichlet_alpha=args.dirichlet_alpha,
            dirichlet_fraction=0.0 if deterministic else args.dirichlet_fraction,
            pb_c_init=args.pb_c_init, pb_c_base=args.pb_c_base,
            qtransform="min_max_siblings", generator=generator, backend=backend,
        )
    return gumbel_muzero_policy(
        root, model.recurrent_fn, n,
        max_num_considered_actions=args.max_num_considered_actions,
        gumbel_scale=0.0 if deterministic else args.gumbel_scale,
        c_visit=args.c_visit, c_scale=args.c_scale, generator=generator, backend=backend,
    )


def timed(fn, repeats: int, device: torch.device) -> dict[str, Any]:
    """Warm-up call time, then ``repeats`` timed calls (each ending on a host copy)."""

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn()
        out.action.cpu()
        return time.perf_counter() - start

    warmup = once()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    seconds = [once() for _ in range(repeats)]
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return {"seconds": seconds, "median_s": statistics.median(seconds), "warmup_s": warmup,
            "cpu_over_wall": cpu / wall}


def mbwrap_runs(model: ToyModel, args: argparse.Namespace) -> dict[tuple, dict[str, Any]]:
    """Keyed by ``(backend, policy, batch, simulations)``. The first call of the compiled
    backend in the process (the warm-up of its first configuration) loads or compiles
    the numba kernels."""
    runs = {}
    for backend in args.backends:
        generator = torch.Generator(device=model.device)
        generator.manual_seed(args.seed)
        for policy in POLICIES:
            for n in args.simulations:
                for batch in args.batches:
                    root = model.roots(batch)
                    with torch.inference_mode():
                        run = timed(
                            lambda root=root, policy=policy, n=n, backend=backend,
                            generator=generator: mbwrap_search(
                                model, policy, root, n, args, backend=backend,
                                generator=generator),
                            args.repeats, model.device,
                        )
                    run["sims_per_s"] = batch * n / run["median_s"]
                    runs[backend, policy, batch, n] = run
                    print(f"  mbwrap {backend:8} {policy:6} B={batch:<5} n={n:<4} "
                          f"{run['sims_per_s']:12,.0f} sims/s", flush=True)
    return runs


# --------------------------------------------------------------------------- Python MCTS


class Node:
    """One node of a single search tree."""

    __slots__ = ("children", "discount", "embedding", "prior", "reward", "value", "visits")

    def __init__(self, prior: list[float], value: float, embedding: torch.Tensor,
                 reward: float = 0.0, discount: float = 1.0) -> None:
        self.prior = prior
        self.value = value  # mean of the values backed up through this node
        self.visits = 1  # the expansion counts as the first visit
        self.embedding = embedding
        self.reward = reward
        self.discount = discount
        self.children: list[Node | None] = [None] * len(prior)


def softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [x / total for x in exps]


def select(node: Node, c1: float, c2: float) -> int:
    """pUCT with Q normalised by the node's value and its visited children's Q."""
    q = [None if c is None else c.reward + c.discount * c.value for c in node.children]
    seen = [x for x in q if x is not None]
    low = min([node.value, *seen])
    high = max([node.value, *seen])
    scale = 1.0 / max(high - low, 1e-8)
    pb_c = (c1 + math.log((node.visits + c2 + 1.0) / c2)) * math.sqrt(node.visits)
    best, best_score = 0, -math.inf
    for a, child in enumerate(node.children):
        if child is None:
            score = pb_c * node.prior[a]
        else:
            score = (q[a] - low) * scale + pb_c * node.prior[a] / (child.visits + 1)
        if score > best_score:
            best, best_score = a, score
    return best


def python_mcts(model: ToyModel, logits: list[float], value: float, embedding: torch.Tensor,
                n: int, args: argparse.Namespace, noise: bool) -> list[int]:
    """``n`` pUCT simulations from one root; returns the root's children's visit counts."""
    prior = softmax(logits)
    if noise:
        gamma = [random.gammavariate(args.dirichlet_alpha, 1.0) for _ in prior]
        f, total = args.dirichlet_fraction, sum(gamma)
        prior = [(1 - f) * p + f * g / total for p, g in zip(prior, gamma, strict=True)]
    root = Node(prior, value, embedding)
    for _ in range(n):
        node, path = root, [root]
        while True:
            action = select(node, args.pb_c_init, args.pb_c_base)
            child = node.children[action]
            if child is None:
                break
            node = child
            path.append(node)
        out, next_embedding = model.recurrent_fn(
            node.embedding, torch.tensor([action], device=model.device))
        child = Node(torch.softmax(out.prior_logits[0], -1).tolist(), out.value.item(),
                     next_embedding, out.reward.item(), out.discount.item())
        node.children[action] = child
        ret = child.value
        for parent, below in zip(reversed(path), [child, *reversed(path)], strict=False):
            ret = below.reward + below.discount * ret
            parent.value = (parent.value * parent.visits + ret) / (parent.visits + 1)
            parent.visits += 1
    return [0 if c is None else c.visits for c in root.children]


def python_roots(model: ToyModel, count: int, n: int, args: argparse.Namespace,
                 noise: bool = True) -> list[list[int]]:
    w = model.weights
    return [
        python_mcts(model, w["root_logits"][i].tolist(), float(w["root_value"][i]),
                    torch.as_tensor(w["root_embedding"][i : i + 1], device=model.device),
                    n, args, noise)
        for i in range(count)
    ]


def python_runs(model: ToyModel, args: argparse.Namespace) -> dict[tuple, dict[str, Any]]:
    runs = {}
    random.seed(args.seed)
    for n in args.simulations:
        for batch in args.batches:
            count = min(batch, args.python_max_roots)
            with torch.inference_mode():
                start = time.perf_counter()
                python_roots(model, count, n, args)
                warmup = time.perf_counter() - start
                seconds = []
                for _ in range(args.python_repeats):
                    start = time.perf_counter()
                    python_roots(model, count, n, args)
                    seconds.append(time.perf_counter() - start)
            median = statistics.median(seconds)
            runs["muzero", batch, n] = {
                "seconds": seconds, "median_s": median, "warmup_s": warmup,
                "roots_run": count, "sims_per_s": count * n / median,
                "estimated_batch_s": median * batch / count,
            }
            print(f"  python muzero B={batch:<5} n={n:<4} "
                  f"{count * n / median:12,.0f} sims/s ({count} of {batch} roots run)",
                  flush=True)
    return runs


# --------------------------------------------------------------------------- mctx


def mctx_env(args: argparse.Namespace, device: torch.device) -> dict[str, str]:
    env = dict(os.environ)
    if args.threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        flags = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={args.threads}"
    env["XLA_FLAGS"] = flags
    env["JAX_PLATFORMS"] = "cuda" if device.type == "cuda" else "cpu"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    return env


def mctx_runs(args: argparse.Namespace, weights_path: str, device: torch.device) -> dict | None:
    if args.mctx_python == "none" or not Path(args.mctx_python).exists():
        return None
    command = [
        args.mctx_python, str(HERE / "_mctx_search.py"),
        "--weights", weights_path,
        "--batches", *map(str, args.batches),
        "--simulations", *map(str, args.simulations),
        "--repeats", str(args.repeats),
        "--dirichlet-alpha", str(args.dirichlet_alpha),
        "--dirichlet-fraction", str(args.dirichlet_fraction),
        "--pb-c-init", str(args.pb_c_init), "--pb-c-base", str(args.pb_c_base),
        "--max-num-considered-actions", str(args.max_num_considered_actions),
        "--gumbel-scale", str(args.gumbel_scale),
        "--c-visit", str(args.c_visit), "--c-scale", str(args.c_scale),
        "--check-batch", str(args.check_batch),
        "--check-simulations", *map(str, args.check_simulations),
        "--seed", str(args.seed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env=mctx_env(args, device))
    if done.returncode:
        print(f"mctx run failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- cross-checks


def compare(ours: np.ndarray, theirs: np.ndarray) -> str:
    same = int((ours == theirs).all(-1).sum())
    worst = int(np.abs(ours - theirs).max())
    total = int(np.abs(ours - theirs).sum())
    return (f"{same}/{len(ours)} roots identical, max |diff| {worst} visits, "
            f"{total} of {int(ours.sum())} visits placed differently in all")


def cross_checks(model: ToyModel, args: argparse.Namespace, mctx: dict | None) -> list[str]:
    lines = []
    root = model.roots(args.check_batch)
    for n in args.check_simulations:
        for policy in POLICIES:
            counts = {}
            for backend in args.backends:
                with torch.inference_mode():
                    out = mbwrap_search(model, policy, root, n, args, backend=backend,
                                        deterministic=True)
                ours = out.search_tree.summary().visit_counts.cpu().numpy().astype(np.int64)
                counts[backend] = ours
                if mctx is not None and f"{policy}/{n}" in mctx["checks"]:
                    check = mctx["checks"][f"{policy}/{n}"]
                    theirs = np.asarray(check["visit_counts"], dtype=np.int64)
                    weights = np.abs(out.action_weights.cpu().numpy()
                                     - np.asarray(check["action_weights"])).max()
                    line = (f"mbwrap {backend:8} vs mctx   {policy:6} B={args.check_batch} "
                            f"n={n}: {compare(ours, theirs)}; "
                            f"max |action_weights diff| {weights:.1e}")
                    if policy == "gumbel":  # pUCT samples its action: only Gumbel's is compared
                        same = (out.action.cpu().numpy() == np.asarray(check["action"])).sum()
                        line += f"; actions equal {int(same)}/{args.check_batch}"
                    lines.append(line)
                if policy == "muzero":
                    count = min(args.check_batch, args.python_check_roots)
                    with torch.inference_mode():
                        python = np.asarray(python_roots(model, count, n, args, noise=False))
                    lines.append(f"mbwrap {backend:8} vs python muzero B={count} n={n}: "
                                 f"{compare(ours[:count], python)}")
            if len(counts) == len(BACKENDS):
                lines.append(f"mbwrap compiled vs torch  {policy:6} B={args.check_batch} n={n}: "
                             f"{compare(counts['compiled'], counts['torch'])}")
    return lines


# --------------------------------------------------------------------------- report


def number(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}"


def report(args, ours, theirs, python) -> list[str]:
    lines = [
        "| policy | batch | sims | backend | mbwrap sims/s | mctx sims/s | python sims/s "
        "| mbwrap/mctx | mbwrap/python |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    estimated = False
    for policy in POLICIES:
        for n in args.simulations:
            for batch in args.batches:
                for backend in args.backends:
                    key = policy, batch, n
                    mine = ours[(backend, *key)]["sims_per_s"]
                    other = theirs.get(key, {}).get("sims_per_s")
                    single = python.get(key)
                    py = None if single is None else single["sims_per_s"]
                    mark = ""
                    if single is not None and single["roots_run"] < batch:
                        mark, estimated = "*", True
                    lines.append(
                        f"| {policy} | {batch} | {n} | {backend} | {number(mine)} | "
                        f"{number(other)} | {number(py)}{mark} | {ratio(mine, other)} | "
                        f"{ratio(mine, py)}{mark} |")
    if estimated:
        lines.append(
            f"\n\\* estimated: the Python search ran only the first {args.python_max_roots} "
            "roots of the batch, one after the other, and its rate is taken as the batch's "
            "(time for the batch = time per root x batch).")
    lines.append("python: one-tree pUCT only (no Gumbel search); n/a in the gumbel rows.")
    lines += [
        "",
        "| policy | batch | sims | backend | mbwrap warm-up s | mctx warm-up s (jit compile) "
        "| mbwrap cpu/wall | mctx cpu/wall | python s per batch |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for policy in POLICIES:
        for n in args.simulations:
            for batch in args.batches:
                for backend in args.backends:
                    key = policy, batch, n
                    mine = ours[(backend, *key)]
                    other = theirs.get(key)
                    single = python.get(key)
                    lines.append(
                        f"| {policy} | {batch} | {n} | {backend} | {mine['warmup_s']:.3f} | "
                        + ("n/a" if other is None else f"{other['warmup_s']:.3f}") + " | "
                        + f"{mine['cpu_over_wall']:.2f} | "
                        + ("n/a" if other is None else f"{other['cpu_over_wall']:.2f}") + " | "
                        + ("n/a" if single is None else f"{single['estimated_batch_s']:.3f}"
                           + ("*" if single["roots_run"] < batch else "")) + " |")
    if "compiled" in args.backends:
        lines.append("compiled: the first warm-up of the process includes importing numba "
                     "and loading (or, the first time, compiling) its kernels.")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="default 1 64 1024 (--quick: 1 16)")
    parser.add_argument("--simulations", type=int, nargs="+", default=None,
                        help="default 50 200 (--quick: 16)")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (--quick: 2)")
    parser.add_argument("--python-repeats", type=int, default=None,
                        help="default 3 (--quick: 1)")
    parser.add_argument("--python-max-roots", type=int, default=None,
                        help="roots the Python search runs per batch; default 16 (--quick: 2)")
    parser.add_argument("--python-check-roots", type=int, default=None,
                        help="roots of the mbwrap / Python cross-check; default 16 (--quick: 2)")
    parser.add_argument("--check-batch", type=int, default=None,
                        help="roots of the cross-checks; default 64 (--quick: 16); 0 skips them")
    parser.add_argument("--check-simulations", type=int, nargs="+", default=None,
                        help="default: the --simulations values")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="mbwrap's search backends to time (compiled needs numba)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; XLA intra-op threads for mctx")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="pin the run (mctx's process too) to --threads CPUs (Linux)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    parser.add_argument("--mctx-python", default=str(PEERS_DIR / "mctx-venv" / "bin" / "python"),
                        help="python of mctx's venv (default: $MBWRAP_PEERS_DIR/mctx-venv, "
                        "else .peers/mctx-venv); 'none' skips mctx")
    parser.add_argument("--embed", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--actions", type=int, default=16)
    parser.add_argument("--discount", type=float, default=0.997)
    parser.add_argument("--dirichlet-alpha", type=float, default=0.3)
    parser.add_argument("--dirichlet-fraction", type=float, default=0.25)
    parser.add_argument("--pb-c-init", type=float, default=1.25)
    parser.add_argument("--pb-c-base", type=float, default=19652.0)
    parser.add_argument("--max-num-considered-actions", type=int, default=16)
    parser.add_argument("--gumbel-scale", type=float, default=1.0)
    parser.add_argument("--c-visit", type=float, default=50.0)
    parser.add_argument("--c-scale", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = {
        "batches": ([1, 16], [1, 64, 1024]),
        "simulations": ([16], [50, 200]),
        "repeats": (2, 5),
        "python_repeats": (1, 3),
        "python_max_roots": (2, 16),
        "python_check_roots": (2, 16),
        "check_batch": (16, 64),
    }
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.check_simulations is None:
        args.check_simulations = list(args.simulations)
    if "compiled" in args.backends and importlib.util.find_spec("numba") is None:
        print("  compiled backend skipped: numba is not installed (pip install numba)")
        args.backends = [b for b in args.backends if b != "compiled"]
    if not args.backends:
        parser.error("--backends: no backend left to time")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pinned = "not pinned"
    if args.pin and hasattr(os, "sched_setaffinity"):
        # XLA runs some work on threads of its own whatever its flags say; pinning bounds
        # both libraries (the mctx subprocess inherits the affinity) to the same CPUs.
        cpus = sorted(os.sched_getaffinity(0))[: args.threads]
        os.sched_setaffinity(0, cpus)
        pinned = f"pinned to CPU(s) {cpus}"
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    weights = make_weights(args, max(*args.batches, args.check_batch, 1))
    print(
        f"search speed: MLP [{args.embed}+{args.actions}] -> {args.hidden} -> {args.hidden} -> "
        f"[{args.embed}, 1, 1, {args.actions}], discount {args.discount}; batches "
        f"{args.batches}, simulations {args.simulations}, repeats {args.repeats}; "
        f"device {device}; torch {torch.__version__}, {args.threads} thread(s), {pinned}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    model = ToyModel(weights, device)
    cpu_model = model if device.type == "cpu" else ToyModel(weights, torch.device("cpu"))

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "toy_mlp.npz")
        np.savez(path, **weights)
        theirs = mctx_runs(args, path, device)
    if theirs is not None:
        print(f"  mctx {theirs['version']}, jax {theirs['jax']} on {theirs['device']}, "
              f"XLA_FLAGS={theirs['xla_flags']!r}", flush=True)
    elif args.mctx_python != "none":
        print(f"  mctx skipped: no {args.mctx_python} (benchmarks/setup_mctx_venv.sh)")
    ours = mbwrap_runs(model, args)
    python = python_runs(cpu_model, args)
    mctx_by_key = {} if theirs is None else {
        (r["policy"], r["batch"], r["simulations"]): r for r in theirs["runs"]}

    print("\nsims/s = batch x simulations / median wall seconds of one search call "
          "(warm-up excluded); ratios > 1: mbwrap faster.\n")
    print("\n".join(report(args, ours, mctx_by_key, python)))
    if args.check_batch:
        print("\ncross-check, deterministic (no Dirichlet noise, gumbel_scale 0), "
              "root visit counts:")
        for line in cross_checks(model, args, theirs):
            print("  " + line)
    print(f"\nload average after the run {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
