"""Kill tiny controller runs with SIGKILL at many seeded points, resume each to the end, compare with whole runs.

The suite runs 36 kills (tests/unit/budget/round/test_kill_resume.py); this runs as many as you ask:

    .venv/bin/python scripts/kill_resume.py --kills 120 --chains 6

Each chain is one policy and seed: an uninterrupted reference run, then the same command run again
after every kill (``--spend 40`` each time, as a person would after a crash). It prints one line per
chain and a summary (kills that fired by kind, mismatches, wall time); exit 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

POLICIES = ("adaptive", "split:0.5", "distill", "annotate", "split:0.3")


def main() -> int:
    from tests.utils.kills import fingerprint, killed_run, plan_kills, reference_run
    from tests.utils.projects import write_tiny_project

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=120, help="kill points in all (default 120)")
    parser.add_argument("--chains", type=int, default=6, help="runs to spread them over (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (runs and kill points)")
    parser.add_argument("--workdir", help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="kill-resume-"))
    project = write_tiny_project(root, models_dir=root / "models")
    per_chain = -(-args.kills // args.chains)
    kinds: Counter[str] = Counter()
    planned = fired_total = mismatches = 0
    started = time.monotonic()
    for c in range(args.chains):
        policy, seed = POLICIES[c % len(POLICIES)], args.seed + c
        cmd = ["--config", str(project), "--spend", "40", "--policy", policy, "--seed", str(seed), "--quiet"]
        whole, killed = root / f"chain{c}-whole", root / f"chain{c}-killed"
        t0 = time.monotonic()
        sequence = reference_run([*cmd, "--run-dir", str(whole)], root / f"chain{c}.log")
        plan = plan_kills(sequence, per_chain, seed=seed)
        fired = killed_run([*cmd, "--run-dir", str(killed)], plan)
        a, b = fingerprint(whole), fingerprint(killed)
        diff = sorted(k for k in a if a[k] != b[k])
        kinds.update(p.name for p in fired)
        planned += len(plan)
        fired_total += len(fired)
        mismatches += bool(diff)
        print(f"chain {c} ({policy}, seed {seed}): {len(fired)}/{len(plan)} kills fired, "
              f"{len(a['rounds'])} rounds, spent {a['totals'][2]} micro-dollars, "
              f"{'SAME as the uninterrupted run' if not diff else 'DIFFERS in ' + ', '.join(diff)} "
              f"({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"\n{fired_total} kills fired of {planned} planned over {args.chains} runs, "
          f"{mismatches} runs differ from their uninterrupted twin; {time.monotonic() - started:.0f} s in all.")
    print("kills by kind of step: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"runs kept in {root}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
