"""benchmarks/decision_speed.py runs and prints a well-formed table: decisions per second
of MuZero and of the "mcts" planner in one env, per search backend."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")  # the compiled backend is one of the two columns

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "decision_speed.py"
NUMBER = r"[\d,]+\.\d"
ROW = re.compile(rf"^\| (.+) \| (.+) \| ({NUMBER}) \| ({NUMBER}) \| (\d+\.\d\d) \|$")


def test_decision_speed_prints_a_row_per_agent_with_positive_rates() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--decisions", "3", "--repeats", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [m for line in done.stdout.splitlines() if (m := ROW.match(line))]
    assert [m.group(1) for m in rows] == [
        "MuZero (CartPole preset)", '"mcts" planner over an "mlp" model'
    ], done.stdout
    for m in rows:
        torch_rate, compiled_rate = (float(m.group(i).replace(",", "")) for i in (3, 4))
        assert torch_rate > 0 and compiled_rate > 0
        assert float(m.group(5)) == pytest.approx(compiled_rate / torch_rate, rel=0.05)
