"""The hook a study plugs into a round's compute steps: a store of finished steps, and the keys they are found by.

Cells of a study repeat each other's work: the round-0 student of a seed is the same for every policy and
budget, and a teacher fine-tuned on the same labels is the same teacher. A step's key (:func:`step_key`) hashes
everything that fixes its outcome: the model it starts from, its training and dev data, its soft targets, its
settings and seed, and the source of the code that computes it (:data:`CODE_FILES`: a store filled before the
training code changed is not served to cells run after the change). What keeps the steps is a
:class:`StepStore`, handed to the run (``RunContext.phase_cache``); the study's is
:class:`budget.study.phase_cache.PhaseCache`. A run without one computes every step.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modeling.meter import PhaseRecord

__all__ = ["CODE_FILES", "CachedStep", "StepStore", "code_digest", "data_fingerprint", "folder_digest", "step_key"]

#: the source files whose code fixes a step's outcome: the modeling package (training, inference, models)
#: and the steps that call it
CODE_FILES: tuple[Path, ...] = (*sorted((Path(__file__).resolve().parents[2] / "modeling").glob("*.py")),
                                Path(__file__).resolve().parent / "steps.py")


@functools.cache
def code_digest(files: tuple[Path, ...] = CODE_FILES) -> str:
    """A short hash of ``files``' source, read once per process: part of every step's key."""
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def data_fingerprint(texts: list, labels: np.ndarray | None = None) -> str:
    """A short hash of texts, text pairs or item ids (and their labels, or soft logits) in order."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([list(t) if isinstance(t, tuple) else t for t in texts]).encode())
    if labels is not None:
        h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()


def folder_digest(folder: Path) -> str:
    """A short hash of a model folder's weights and config (not its checkpoints, which pruning removes):
    what a training that starts from it starts from."""
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in folder.iterdir() if p.suffix in {".safetensors", ".json"}):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def step_key(**parts: Any) -> str:
    """The key of a step from everything that fixes its outcome (JSON-able values) and the code that computes it
    (:func:`code_digest`)."""
    parts = {**parts, "code": code_digest()}
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class CachedStep:
    """A finished step found in the cache."""

    result: dict[str, Any]
    records: tuple[PhaseRecord, ...]
    model_dir: Path

    @property
    def flops(self) -> float:
        return sum(r.flops for r in self.records)


class StepStore(Protocol):
    """Where finished steps are kept and found by their :func:`step_key`, and where soft labels are shared."""

    @property
    def soft_labels_dir(self) -> Path:
        """The folder soft-label passes are cached in, shared by every run of the store."""

    def get(self, key: str) -> CachedStep | None:
        """The finished step stored under ``key``, or None."""

    def put(self, key: str, result: dict[str, Any], records: list[PhaseRecord], model_dir: Path) -> None:
        """Store a finished step (its result's JSON, its metered phases and its model folder)."""

    def restore(self, step: CachedStep, out_dir: Path) -> None:
        """Put a found step's model folder at ``out_dir``."""
