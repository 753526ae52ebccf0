"""What a run folder keeps: the ledger, the report, and only the models a person (or the next round) needs.

A round trains a student (and a distillation a teacher) into ``models/round-NNN/{student,teacher}``.
While a phase runs, ``ckpt.pt`` beside the model holds what a killed process needs to resume it (the
optimizer state is twice the model); once the phase's step is done in the ledger nothing reads it
again, so it goes. Of the finished rounds' models the folder keeps the best student on dev, and the
latest ``keep`` students and teachers (``[models] keep``, default 1; ``"all"`` keeps every one). The
latest student always stays: the next round selects items with it; so do the latest label-only and the
latest distilled student, which the next round of each kind is compared with. Soft labels cached for a teacher
that is removed go with it. A round still in flight is never touched.

:func:`prune` does this; the controller calls it after every round and ``python -m budget.controller
prune`` on old run folders.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from budget.ledger import Ledger
from budget.ledger.records import RoundRecord
from budget.round.compute_steps import compute_steps
from budget.round.results import SoftLabelResult
from budget.shipped import best_round

__all__ = ["PruneResult", "best_student_round", "folder_bytes", "format_bytes", "prune"]

_CHECKPOINTS = ("ckpt.pt", "ckpt.tmp", "ckpt-phase-rank*.json", "launch")  # launch/: a multi-process job's files


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` removed and the bytes it freed."""

    removed: tuple[Path, ...] = ()
    freed_bytes: int = 0


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 if it does not exist)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def format_bytes(n: float) -> str:
    """``n`` bytes as people read them: '512 bytes', '3.4 MB', '26.0 GB' (powers of 1000)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def best_student_round(rounds: list[RoundRecord]) -> int | None:
    """The finished round whose student the run ships (:func:`budget.shipped.best_round`), as the report
    names it."""
    best = best_round(rounds)
    return None if best is None else best[0]


def _soft_label_files(ledger: Ledger, rnd: int) -> set[Path]:
    """The soft-label cache files a round's teachers made (or reused)."""
    paths = [s.soft_labels for s in compute_steps(ledger, rnd) if isinstance(s, SoftLabelResult) and s.soft_labels]
    return {f for p in paths for f in (Path(p), Path(p).with_suffix(".json"))}


def prune(run_dir: Path, ledger: Ledger, keep: int | None = 1) -> PruneResult:
    """Remove finished phases' checkpoints and the models of finished rounds that ``keep`` does not keep.

    Parameters
    ----------
    run_dir : Path
        The run folder (its ``models/`` and ``cache/``).
    ledger : Ledger
        The run's ledger: which rounds are done, their dev scores and soft-label files.
    keep : int or None
        How many of the latest students and teachers to keep besides the best student; None keeps all.
    """
    rounds = ledger.rounds()
    done = sorted(r.round for r in rounds if r.state == "done")
    models = Path(run_dir) / "models"
    doomed = [ckpt for rnd in done for name in _CHECKPOINTS for ckpt in (models / f"round-{rnd:03d}").glob(f"*/{name}")]
    if keep is not None:
        have = {role: [r for r in done if (models / f"round-{r:03d}" / role).is_dir()]
                for role in ("student", "teacher")}
        kept = {(role, r) for role, rs in have.items() for r in rs[-keep:]}
        best = best_student_round(rounds)
        if best is not None:
            kept.add(("student", best))
        for distilled in (False, True):  # the next round of each kind is compared with the latest of it
            kind = [r.round for r in rounds if r.round in have["student"] and r.distilled == distilled]
            kept.update(("student", r) for r in kind[-1:])
        gone = [(role, r) for role, rs in have.items() for r in rs if (role, r) not in kept]
        doomed += [folder for role, r in gone for folder in (models / f"round-{r:03d}").glob(f"{role}*")
                   if folder.name == role or folder.name.startswith(f"{role}-")]  # an ensemble's teacher-2, ...
        still_used = set().union(*(_soft_label_files(ledger, r) for role, r in kept if role == "teacher"))
        doomed += [f for role, r in gone if role == "teacher" for f in _soft_label_files(ledger, r) - still_used
                   if f.exists() and f.resolve().is_relative_to(Path(run_dir).resolve())]  # not a study's shared cache
    freed = 0
    for path in doomed:
        freed += folder_bytes(path) if path.is_dir() else path.stat().st_size
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for rnd in done:
        round_dir = models / f"round-{rnd:03d}"
        if round_dir.is_dir() and not any(round_dir.iterdir()):
            round_dir.rmdir()
    return PruneResult(tuple(doomed), freed)
