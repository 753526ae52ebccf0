"""Fixtures shared by the budget tests: one uninterrupted adaptive run that the killed-run tests compare with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.utils.kills import reference_run
from tests.utils.projects import write_tiny_project


@dataclass(frozen=True)
class ReferenceRun:
    """An uninterrupted run of the tiny project: its command (without ``--run-dir``), its folder, and the
    failpoints it reached in order, as (name, round)."""

    args: tuple[str, ...]
    run_dir: Path
    sequence: tuple[tuple[str, str], ...]

    def command(self, run_dir: Path) -> list[str]:
        """The same command, for a run in ``run_dir``."""
        return [*self.args, "--run-dir", str(run_dir)]


@pytest.fixture(scope="session")
def adaptive_reference(tmp_path_factory) -> ReferenceRun:
    """``--spend 40 --policy adaptive --seed 0`` on the tiny project, run once for every test that kills
    this command and compares the resumed run with it (labels, pilots and a mid-run distillation)."""
    root = tmp_path_factory.mktemp("adaptive-reference")
    project = write_tiny_project(root, models_dir=root / "models")
    args = ("--config", str(project), "--spend", "40", "--policy", "adaptive", "--seed", "0", "--quiet")
    whole = root / "whole"
    sequence = reference_run([*args, "--run-dir", str(whole)], root / "points.log")
    return ReferenceRun(args, whole, tuple(sequence))
