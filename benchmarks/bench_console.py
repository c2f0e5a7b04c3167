"""What a researcher reads: run a sweep as a user would (piped, as in a log file or CI) and count
the console lines, the noise among them and the widest line.

    python benchmarks/bench_console.py                       # qbe_margin --num-samples 5
    python benchmarks/bench_console.py --repo /path/to/older/checkout   # the same, another version

Counts: all lines; lines of Ray Train's per-report logging ("Reporting training result"),
"Checkpoint successfully created", warnings (WARNING/Warning), error-level lines from Ray's C++
core (" E " in the prefix), box-drawing table lines, lines over 120 characters. The run uses a
scratch storage path and MLflow store, and the shared corpus/view cache (so a warm cache measures
the sweep, not the extraction).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATTERNS = {
    "train report lines": re.compile(r"Reporting training result"),
    "checkpoint lines": re.compile(r"Checkpoint successfully created"),
    "warnings": re.compile(r"WARNING|Warning"),
    "core E lines": re.compile(r"^\[[^\]]* E \d+ \d+\]"),
    "box-drawing lines": re.compile(r"[─│╭╮╰╯├┤┼═║]"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="checkout to run (default: this one)")
    ap.add_argument("--sweep", default="qbe_margin")
    ap.add_argument("--num-samples", type=int, default=5)
    ap.add_argument("--cache-dir", type=Path, default=Path("cache").resolve())
    ap.add_argument("--show", action="store_true", help="print the captured output too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "orchestrator.sweep", args.sweep, "--num-samples", str(args.num_samples),
               "--cache-dir", str(args.cache_dir), "--storage-path", f"{d}/ray_results",
               "--tracking-uri", f"sqlite:///{d}/mlflow.db"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=args.repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - t0
    lines = done.stdout.splitlines()
    if args.show:
        print(done.stdout)
    print(f"{' '.join(cmd[1:4])} ... in {args.repo} (exit {done.returncode}, {seconds:.0f} s)")
    print(f"console lines: {len(lines)}")
    for name, pat in PATTERNS.items():
        print(f"  {name}: {sum(1 for ln in lines if pat.search(ln))}")
    print(f"  lines over 120 characters: {sum(1 for ln in lines if len(ln) > 120)}"
          f" (widest {max((len(ln) for ln in lines), default=0)})")


if __name__ == "__main__":
    main()
