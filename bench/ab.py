"""A/B: ``bench/e2e.py`` on an earlier commit and on the working tree, taking turns, in one run.

    .venv/bin/python bench/ab.py --base 9d9522a [--rounds 2] [--duration 60] [--to ru]

The base commit is checked out into a temporary git worktree; each round runs the base's ``bench/e2e.py``
and then this tree's, each in its own process with a cold stage cache, so both pay for the same work on the
same machine at nearly the same time. Printed: per-round totals, medians, and new/base for the whole job
and each stage (below 1.0 is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_e2e(tree: Path, duration: float, to: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(tree / "bench" / "e2e.py"), "--duration", str(duration), "--to", to, "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"error: bench/e2e.py failed in {tree}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    out = proc.stdout
    return dict(json.loads(out[out.index("{"):]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare against")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--to", default="ru")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vt-ab-") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base],
                       check=True)
        try:
            runs: dict[str, list[dict[str, object]]] = {"base": [], "new": []}
            for r in range(args.rounds):
                for name, tree in (("base", base_tree), ("new", ROOT)):
                    res = run_e2e(tree, args.duration, args.to)
                    runs[name].append(res)
                    total = res["stages_s"]["total"]  # type: ignore[index]
                    print(f"round {r + 1} {name}: total {total:.2f} s, rtf {res['rtf_warm']}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
    stages = sorted(set(runs["base"][0]["stages_s"]) & set(runs["new"][0]["stages_s"]))  # type: ignore[arg-type]
    print(f"\n{'stage':12} {'base s':>8} {'new s':>8} {'new/base':>9}")
    for stage in stages:
        b = statistics.median(float(r["stages_s"][stage]) for r in runs["base"])  # type: ignore[index]
        n = statistics.median(float(r["stages_s"][stage]) for r in runs["new"])  # type: ignore[index]
        print(f"{stage:12} {b:8.2f} {n:8.2f} {n / b if b else float('nan'):9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
