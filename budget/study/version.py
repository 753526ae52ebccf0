"""Which code a study cell ran: the commit, and whether the tree had changes not committed.

A comparison of policies means something only when every cell in it ran the same code: a fixed-policy
cell run days before an adaptive one, or an adaptive cell run before a change that moved its decisions,
compares two programs, not two policies. So each ``cell.json`` records the version it ran at, and the
summary refuses to put cells of different versions side by side unless told to (and then marks them).

A version names the product's code, not the commit: 12 hex digits of a hash of the committed trees of
``budget/``, ``annotation/``, ``connectors/``, ``modeling/`` and ``pyproject.toml`` (so a commit that
changes only tests, docs or benchmark notes keeps the version, and a suite stopped at one commit resumes at
a later one that left the product alone), plus ``+`` and 8 hex digits of a hash of the uncommitted changes
(``git diff HEAD`` and the untracked files' names and bytes) when the tree was not clean: two runs with the
same changes share a version, two with different ones do not. The commit is recorded beside it. Outside a
git checkout (an installed package) the version is ``unknown``.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CodeVersion", "code_version", "UNRECORDED"]

UNRECORDED = "unrecorded"  # a cell finished before versions were recorded
_ROOT = Path(__file__).resolve().parents[2]
_PRODUCT = ("budget", "annotation", "connectors", "modeling", "pyproject.toml")  # what decides a cell's outcome


@dataclass(frozen=True)
class CodeVersion:
    """The code a cell ran: ``commit`` (hex, or 'unknown'), the hash of the product's committed files
    (``product``) and whether they were as committed."""

    commit: str
    clean: bool
    changes: str = ""  # 8 hex digits of the uncommitted changes' hash; empty when clean
    product: str = ""  # 12 hex digits of the product's committed trees; empty: the commit's own

    @property
    def label(self) -> str:
        """'1a2b3c4d5e6f', or '1a2b3c4d5e6f+9f8e7d6c' for a tree with uncommitted changes."""
        return (self.product or self.commit[:12]) + ("" if self.clean else f"+{self.changes}")


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, check=True, timeout=60).stdout


@functools.cache
def code_version() -> CodeVersion:
    """The version of the code this process runs (read once: a study's cells share it).

    Only the product's files count (``budget/``, ``annotation/``, ``connectors/``, ``modeling/``,
    ``pyproject.toml``): a changed test or benchmark note does not change what a cell buys.
    """
    try:
        commit = _git("rev-parse", "HEAD").decode().strip()
        product = hashlib.sha256(_git("ls-tree", "HEAD", "--", *_PRODUCT)).hexdigest()[:12]
        diff = _git("diff", "HEAD", "--", *_PRODUCT)
        untracked = sorted(_git("ls-files", "--others", "--exclude-standard", "--", *_PRODUCT).decode().split())
    except (OSError, subprocess.SubprocessError):
        return CodeVersion("unknown", clean=False, changes="unknown")
    if not diff and not untracked:
        return CodeVersion(commit, clean=True, product=product)
    h = hashlib.sha256(diff)
    for name in untracked:
        h.update(name.encode())
        path = _ROOT / name
        if path.is_file():
            h.update(path.read_bytes())
    return CodeVersion(commit, clean=False, changes=h.hexdigest()[:8], product=product)
