"""``mbwrap tune``: a hyperparameter sweep of a registered algorithm on Ray Tune."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    # Ray is imported only when a sweep runs: `mbwrap` works without the ray extra.
    from mbwrap.cli.sweep import format_table, parse_search_space, run_sweep

    try:
        search_space = parse_search_space(args.set)
    except ValueError as err:
        raise SystemExit(f"mbwrap tune: {err}") from err
    result = run_sweep(
        args.algo,
        args.env,
        samples=args.samples,
        steps=args.steps,
        search_space=search_space,
        report_every=args.report_every or max(1, args.steps // 10),
        eval_episodes=args.eval_episodes,
        out=Path(args.out or f"runs/tune-{args.algo}-{args.env.replace('/', '_')}"),
        seed=args.seed,
        scheduler=args.scheduler,
        grace_steps=args.grace_steps,
        address=args.address,
    )
    print(format_table(result))
    print(f"best config: {result.paths['best_config']}")
    return 0


def add_tune_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tune",
        help="sweep an algorithm's settings on Ray Tune",
        description="Sample settings of ALGO from a search space, train each sample on a "
        "Gymnasium env for a number of REAL env steps, evaluate it after every chunk of "
        "steps, stop the ones that fall behind (ASHA) and write the best settings, a table "
        "of the trials and their learning curves.",
    )
    parser.add_argument("algo", help="registered algorithm name (see `mbwrap plugins`)")
    parser.add_argument("--env", required=True, help="Gymnasium env id")
    parser.add_argument("--samples", type=int, default=8, help="trials (default 8)")
    parser.add_argument("--steps", type=int, required=True, help="real env steps per trial")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=SPACE",
        help="a setting: KEY=choice(A,B,...), KEY=uniform(LO,HI), KEY=loguniform(LO,HI), "
        "KEY=randint(LO,HI) (HI excluded) or a constant KEY=VALUE",
    )
    parser.add_argument(
        "--report-every", type=int, help="real steps between evaluations (default steps/10)"
    )
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument(
        "--scheduler",
        choices=["asha", "none"],
        default="asha",
        help="asha stops trials that fall behind; none runs every trial to the end",
    )
    parser.add_argument(
        "--grace-steps",
        type=int,
        help="real steps before ASHA may stop a trial (default: --report-every)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every trial")
    parser.add_argument("--out", help="output directory (default runs/tune-ALGO-ENV)")
    parser.add_argument(
        "--address", help="Ray cluster to join ('auto' or host:port); default: local Ray"
    )
    parser.set_defaults(run=run)
