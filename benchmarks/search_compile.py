"""Does torch.compile help the tree search's descent on this machine? Measure one level.

One level of the descent (gather a node's statistics, pUCT scores, argmax, follow the
child) is timed eagerly and compiled by ``torch.compile`` (inductor), for 1, 64 and 1024
trees. The search itself runs eagerly: a level is a few dozen small tensor operations,
and each new (batch, capacity) pair would compile anew.

    python benchmarks/search_compile.py [--threads 1] [--actions 16] [--nodes 52]
"""

from __future__ import annotations

import argparse
import time
import timeit

import torch


def descend_level(
    stats: torch.Tensor,
    node_visits: torch.Tensor,
    children: torch.Tensor,
    q_low: torch.Tensor,
    q_scale: torch.Tensor,
    row_offset: torch.Tensor,
    node: torch.Tensor,
    action: torch.Tensor,
    active: torch.Tensor,
    num_actions: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The work of one level of ``mbwrap.planners.mcts.search.simulate`` (pUCT)."""
    flat = row_offset + node
    visits, q, logits, penalty = stats.index_select(0, flat).unbind(1)
    parent = node_visits.index_select(0, flat)[:, None]
    normalized = ((q - q_low[:, None]) * q_scale[:, None]).masked_fill(visits == 0, 0.0)
    pb_c = 1.25 + torch.log((parent + 19652.0 + 1.0) / 19652.0)
    prior = torch.softmax(logits, -1)
    scores = normalized + prior * torch.sqrt(parent) / (visits + 1.0) * pb_c + penalty
    chosen = scores.argmax(-1)
    next_node = children.index_select(0, flat * num_actions + chosen)
    return torch.where(active, chosen, action), active & (next_node != -1), next_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--actions", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=52, help="tree capacity (50 simulations)")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    a, n = args.actions, args.nodes
    print(f"torch {torch.__version__}, {args.threads} thread(s), A = {a}, N = {n}")
    print(f"{'trees':>6} {'eager us':>10} {'compiled us':>12} {'speed-up':>9} {'compile s':>10}")
    for batch in (1, 64, 1024):
        inputs = (
            torch.rand(batch * n, 4, a), torch.rand(batch * n) * 10,
            torch.randint(-1, n, (batch * n * a,)), torch.zeros(batch), torch.ones(batch),
            torch.arange(batch) * n, torch.zeros(batch, dtype=torch.long),
            torch.zeros(batch, dtype=torch.long), torch.ones(batch, dtype=torch.bool), a,
        )
        repeats = max(50, args.repeats // max(1, batch // 64))
        eager = timeit.timeit(lambda x=inputs: descend_level(*x), number=repeats) / repeats
        start = time.perf_counter()
        compiled_fn = torch.compile(descend_level, dynamic=False)
        compiled_fn(*inputs)
        compile_s = time.perf_counter() - start
        compiled = (
            timeit.timeit(lambda f=compiled_fn, x=inputs: f(*x), number=repeats) / repeats
        )
        print(f"{batch:>6} {eager * 1e6:>10.1f} {compiled * 1e6:>12.1f} "
              f"{eager / compiled:>8.2f}x {compile_s:>10.1f}")


if __name__ == "__main__":
    main()
