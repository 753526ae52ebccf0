"""The decision study's store of finished compute steps, shared by its cells (:class:`PhaseCache`).

A :class:`~budget.round.step_store.StepStore` in folders: a finished step stores its result, its metered phase
records and its model folder under ``<root>/<key>/`` (keys: :func:`budget.round.step_store.step_key`). A cell
that meets the same key copies the model (hard links where the file system allows) and is charged what the
phases cost when they ran, so its ledger is what an independent run would show; the FLOPs that did not run are
counted as saved. Outside a study there is no store, and nothing is charged for work that did not run.

The cache grows with every new step (tens of GB for a study of real models): :meth:`PhaseCache.prune`
removes the least recently used finished steps until it fits a size. A removed step is a cache miss
the next time: it runs again (and is stored again). Entries still being written (``.<key>.<pid>``
folders) and the soft labels beside the steps (``soft-labels/``, which a resumed cell reads by path)
are never removed. Model files hard-linked from run folders stay on disk until those links go too.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from budget.round.step_store import CachedStep
from modeling.meter import PhaseRecord

__all__ = ["PhaseCache"]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 if it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class PhaseCache:
    """A folder of finished steps, keyed by content (see the module's docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"PhaseCache({str(self.root)!r})"

    @property
    def soft_labels_dir(self) -> Path:
        """``<root>/soft-labels``: soft-label passes, shared by the cells (never pruned)."""
        return self.root / "soft-labels"

    def get(self, key: str) -> CachedStep | None:
        """The finished step stored under ``key``, or None."""
        entry = self.root / key
        if not (entry / "result.json").exists():
            return None
        raw = json.loads((entry / "result.json").read_text())
        try:
            os.utime(entry)  # used now: the last entry :meth:`prune` removes
        except OSError:  # a read-only cache still serves its entries
            pass
        return CachedStep(raw["result"], tuple(PhaseRecord(**r) for r in raw["records"]), entry / "model")

    def put(self, key: str, result: dict[str, Any], records: list[PhaseRecord], model_dir: Path) -> None:
        """Store a finished step; the entry appears whole or not at all (its result is written last)."""
        entry = self.root / key
        if (entry / "result.json").exists():
            return
        tmp = self.root / f".{key}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, tmp / "model", ignore=shutil.ignore_patterns("ckpt.*"), copy_function=_link_or_copy)
        (tmp / "result.json").write_text(json.dumps({"result": result, "records": [asdict(r) for r in records]}))
        try:
            os.replace(tmp, entry)
        except OSError:  # another process stored the same step first
            shutil.rmtree(tmp, ignore_errors=True)

    def size_bytes(self) -> int:
        """Bytes of every file under the cache's folder (0 if it does not exist)."""
        return _folder_bytes(self.root)

    def prune(self, keep_bytes: int) -> int:
        """Remove finished steps, least recently used first (stored or returned by :meth:`get`), until the
        cache holds at most ``keep_bytes``; return the bytes freed. Call it while no cell runs.

        Only whole entries are candidates: a step still being written, and the soft labels, are kept
        (see the module's docstring), so the cache may stay above ``keep_bytes``.
        """
        if isinstance(keep_bytes, bool) or not isinstance(keep_bytes, int) or keep_bytes < 0:
            raise ValueError(f"The 'keep_bytes' parameter must be an int >= 0. Got {keep_bytes!r} instead.")
        if not self.root.is_dir():
            return 0
        size = self.size_bytes()
        freed = 0
        for leftover in self.root.glob(".*.pruned.*"):  # an earlier prune was killed half-way
            freed += _folder_bytes(leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        entries = [e for e in self.root.iterdir() if not e.name.startswith(".") and (e / "result.json").is_file()]
        entries.sort(key=lambda e: (e.stat().st_mtime, e.name))
        for entry in entries:
            if size - freed <= keep_bytes:
                break
            doomed = self.root / f".{entry.name}.pruned.{os.getpid()}"
            os.replace(entry, doomed)  # the entry goes whole: from here on a get() is a miss
            freed += _folder_bytes(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        return freed

    @staticmethod
    def restore(step: CachedStep, out_dir: Path) -> None:
        """Put the cached model folder at ``out_dir`` (replacing a partial one)."""
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(step.model_dir, out_dir, copy_function=_link_or_copy)
