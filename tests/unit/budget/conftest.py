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


@dataclass(frozen=True)
class WaitingRun:
    """A run of the tiny project (``--spend 40 --policy annotate``, no auto-approval) whose first batch, 30 items
    at $0.50, waits for a lead: its project file, its models and its folder (copy it before changing it)."""

    project: Path
    models: Path
    run_dir: Path


@pytest.fixture(scope="session")
def waiting_run(tmp_path_factory) -> WaitingRun:
    """One :class:`WaitingRun` for every test that needs a batch waiting for approval."""
    from click.testing import CliRunner

    from budget.controller.cli import cli

    root = tmp_path_factory.mktemp("waiting-run")
    project = write_tiny_project(root, models_dir=root / "models", policy="annotate",
                                 overrides={"annotation": {"auto_approve_under": "0"}})
    result = CliRunner().invoke(cli, ["--spend", "40", "--config", str(project), "--run-dir", str(root / "run"),
                                      "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0 and "waits for approval" in result.output, result.output
    return WaitingRun(project, root / "models", root / "run")
