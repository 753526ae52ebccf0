"""Are two studies' (or runs') ledgers the same, apart from clocks? The regression check of a refactor.

    python -m budget.study --quick --out /tmp/qs && mv /tmp/qs /tmp/qs-before     # at the old commit
    python -m budget.study --quick --out /tmp/qs && mv /tmp/qs /tmp/qs-after      # at the new one
    python scripts/compare_ledgers.py /tmp/qs-before /tmp/qs-after

Run both at the same folder: a run's id hashes its project, whose paths name that folder.

Pairs every ``ledger.sqlite`` under the first folder with the one at the same relative path under the second
and compares every table row by row: money, reservations, batches, labels, steps, rounds, events. Columns and
JSON fields that hold a clock or a duration (``at``, ``*_at``, ``seconds``, ``wall``, ``pid``, ...) are left
out: they differ on every run; so does the run's id (random), written ``<run>`` wherever it appears.
Exit 0 when every pair is identical, 1 with the first differences otherwise.

Written by hand: sqldiff compares rows with their timestamps and has no notion of a JSON column.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

_VOLATILE = re.compile(r"(^|_)(at|since|seconds|secs|wall|elapsed|pid|host|started|finished|time|duration)($|_)|"
                       r"^(lead_time_s|applied_at|created_at|updated_at|closed_at)$")


def _clean(value: object, run_id: str) -> object:
    """``value`` with every clock-like field of a JSON document removed, recursively, and ``run_id`` as <run>."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return _clean(json.loads(value), run_id)
        except ValueError:
            pass
    if isinstance(value, str):
        return value.replace(run_id, "<run>") if run_id else value
    if isinstance(value, dict):
        return {_clean(k, run_id): _clean(v, run_id) for k, v in sorted(value.items()) if not _VOLATILE.search(k)}
    if isinstance(value, list):
        return [_clean(v, run_id) for v in value]
    return value


def dump(path: Path) -> dict[str, list[dict]]:
    """Every table of the ledger at ``path``: its rows in key order, without clock-like columns and fields."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%' AND name != '_migrations' ORDER BY name")]
    init = conn.execute("SELECT result FROM steps WHERE key = 'run:init'").fetchone() if "steps" in tables else None
    run_id = json.loads(init[0]).get("run_id", "") if init and init[0] else ""
    out = {}
    for table in tables:
        cur = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')
        names = [d[0] for d in cur.description]
        out[table] = [{n: _clean(v, run_id) for n, v in zip(names, row, strict=True) if not _VOLATILE.search(n)}
                      for row in cur]
    conn.close()
    return out


def differences(a: Path, b: Path, limit: int = 5) -> list[str]:
    """Up to ``limit`` lines naming where the ledgers ``a`` and ``b`` differ (empty: identical)."""
    da, db = dump(a), dump(b)
    lines = []
    for table in sorted(set(da) | set(db)):
        ra, rb = da.get(table, []), db.get(table, [])
        if len(ra) != len(rb):
            lines.append(f"{table}: {len(ra)} rows against {len(rb)}")
        for x, y in zip(ra, rb, strict=False):
            if x != y:
                keys = [k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
                lines.append(f"{table}: row {str(x)[:160]} differs in {keys}")
                break
    return lines[:limit]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(p).is_dir() for p in argv):
        print("Usage: python scripts/compare_ledgers.py BEFORE_FOLDER AFTER_FOLDER (two study or run folders).")
        return 2
    before, after = (Path(p) for p in argv)
    ledgers = sorted(p.relative_to(before) for p in before.rglob("ledger.sqlite"))
    missing = [p for p in ledgers if not (after / p).exists()]
    extra = [p.relative_to(after) for p in after.rglob("ledger.sqlite") if not (before / p.relative_to(after)).exists()]
    differ = {p: d for p in ledgers if p not in missing for d in [differences(before / p, after / p)] if d}
    for p in missing:
        print(f"only in {before}: {p}")
    for p in extra:
        print(f"only in {after}: {p}")
    for p, lines in differ.items():
        print(f"{p}:")
        print("\n".join(f"  {line}" for line in lines))
    same = len(ledgers) - len(missing) - len(differ)
    print(f"{same} of {len(ledgers)} ledgers identical (clocks aside).")
    return 0 if same == len(ledgers) and not extra else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
