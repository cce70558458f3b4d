"""benchmarks/search_speed.py runs in --quick mode and prints a well-formed table, a row
per mbwrap backend (torch, and compiled where numba is installed)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "search_speed.py"
# Where benchmarks/setup_mctx_venv.sh puts mctx's venv: $MBWRAP_PEERS_DIR, else .peers/.
PEERS_DIR = Path(os.environ.get("MBWRAP_PEERS_DIR") or BENCHMARK.parents[1] / ".peers")
MCTX_PYTHON = PEERS_DIR / "mctx-venv" / "bin" / "python"
ROW = re.compile(r"^\| (muzero|gumbel) \| (\d+) \| (\d+) \| (torch|compiled) \|(.*)\|$")
NUMBER = r"[\d,]+"
BACKENDS = ["torch", "compiled"] if importlib.util.find_spec("numba") else ["torch"]


def run(*extra: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--batches", "1", "3",
         "--simulations", "4", "--repeats", "1", "--check-batch", "3", *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def speed_rows(out: str) -> list[list[str]]:
    """The cells of the rows of the first table (the sims/s one)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "| mbwrap sims/s |" in line)
    rows = []
    for line in lines[start + 2 :]:
        if not ROW.match(line):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    assert all(len(row) == 9 for row in rows), rows
    return rows


def check_table(out: str, with_mctx: bool) -> None:
    assert ("| policy | batch | sims | backend | mbwrap sims/s | mctx sims/s | python sims/s "
            in out)
    rows = speed_rows(out)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (policy, batch, "4", backend) for policy in ("muzero", "gumbel")
        for batch in ("1", "3") for backend in BACKENDS]
    for policy, batch, _, _, mbwrap, mctx, python, vs_mctx, vs_python in rows:
        assert re.fullmatch(NUMBER, mbwrap) and float(mbwrap.replace(",", "")) > 0
        if with_mctx:
            assert re.fullmatch(NUMBER, mctx) and re.fullmatch(r"\d+\.\d\d", vs_mctx)
        else:
            assert mctx == vs_mctx == "n/a"
        if policy == "muzero":
            # The Python search runs 2 roots (--quick), so batch 3 is an estimate.
            mark = "\\*" if batch == "3" else ""
            assert re.fullmatch(NUMBER + mark, python), python
            assert re.fullmatch(r"\d+\.\d\d" + mark, vs_python), vs_python
        else:
            assert python == vs_python == "n/a"
    assert "* estimated: the Python search ran only the first 2 roots" in out
    # Deterministic pUCT: mbwrap and the one-tree Python search visit the same actions.
    for backend in BACKENDS:
        assert re.search(rf"mbwrap {backend} +vs python muzero B=2 n=4: 2/2 roots identical",
                         out)
    if "compiled" in BACKENDS:  # and the two backends build the same trees
        for policy in ("muzero", "gumbel"):
            assert re.search(rf"mbwrap compiled vs torch  {policy} +B=3 n=4: 3/3 roots identical",
                             out)


def test_mbwrap_and_python_quick() -> None:
    check_table(run("--mctx-python", "none"), with_mctx=False)


@pytest.mark.skipif(not MCTX_PYTHON.exists(), reason="no mctx venv (setup_mctx_venv.sh)")
def test_with_mctx_quick() -> None:
    out = run("--mctx-python", str(MCTX_PYTHON), "--batches", "3")
    assert "mctx " in out and "jax " in out
    rows = speed_rows(out)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (policy, "3", backend) for policy in ("muzero", "gumbel") for backend in BACKENDS]
    for row in rows:
        assert re.fullmatch(NUMBER, row[5]) and re.fullmatch(r"\d+\.\d\d", row[7])
    for policy in ("muzero", "gumbel"):
        for backend in BACKENDS:
            assert re.search(
                rf"mbwrap {backend} +vs mctx   {policy} B=3 n=4: \d+/3 roots identical", out)
