"""End to end: ``python -m budget.controller`` buys labels from people on a real Label Studio.

The controller runs as a subprocess on a tiny project (tiny BERT student and teacher, a 3-class keyword
task) whose ``[annotation] connector`` is ``labelstudio``. A thread of the test plays the annotators: it
finds the run's project on the server and answers each new task through the API the labeling UI uses,
mostly with the gold label, sometimes with a wrong one, sometimes skipping. The test then checks the
ledger against what the annotators did: labels stored, money settled and released, the student retrained,
and no task pushed twice. The platform-independent parts are in ``tests/utils/e2e.py``.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from budget.config import load_config
from budget.ledger import Ledger
from connectors.labelstudio import project_title
from tests.integration.conftest import LABEL_STUDIO_ANNOTATORS, LabelStudioServer
from tests.utils import e2e
from tests.utils.e2e import BATCH, REPO, TASK, Act, People, Plan

pytestmark = pytest.mark.integration

models_dir = e2e.models_dir  # the module fixture, made visible to this module

EXAMPLE = REPO / "examples" / "labelstudio" / "project.toml"


# -- the test's annotators -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Annotators(People):
    """People labeling the run's Label Studio project, as the labeling UI would (one annotation per person).

    ``names`` are the annotators' emails.
    """

    ls: LabelStudioServer
    task: str = TASK  # the project's [task] name, in the Label Studio project's title
    project_id: int | None = None
    _seen: set[int] = field(default_factory=set)
    _choice: tuple[str, str] | None = None

    def find_project(self, timeout: float = 60.0) -> int | None:
        """The run's project, once the controller has written its run id and pushed a first batch."""
        if self.project_id is not None:
            return self.project_id
        deadline = time.monotonic() + timeout
        while True:
            run_id = self.run_id()
            if run_id is not None:
                title = project_title(run_id, self.task)
                for p in self.ls.admin.projects.list(title=title, page_size=100):
                    if p.title == title:
                        self.project_id = int(p.id)
                        parsed = self.ls.admin.projects.get(id=self.project_id).parsed_label_config
                        name, spec = next((k, v) for k, v in parsed.items() if v["type"] == "Choices")
                        self._choice = (name, spec["to_name"][0])
                        return self.project_id
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.3)

    def tasks(self) -> list[Any]:
        assert self.project_id is not None
        return sorted(self.ls.admin.tasks.list(project=self.project_id, fields="task_only", page_size=1000),
                      key=lambda t: int(t.id))

    def answer_new_tasks(self) -> int:
        """Answer every task not answered yet; returns how many were answered (0 before the first push)."""
        if self.find_project(timeout=0.0) is None:
            return 0
        n = 0
        for task in self.tasks():
            if int(task.id) in self._seen:
                continue
            k = len(self._seen)
            self._seen.add(int(task.id))
            n += 1
            for j, email in enumerate(self.names):
                self._annotate(task, email, self.plan(k, j))
        return n

    def _annotate(self, task: Any, email: str, what: str) -> None:
        label = self.label_for(task.data["text"], what)
        assert self._choice is not None
        from_name, to_name = self._choice
        result = [] if label is None else [{"from_name": from_name, "to_name": to_name, "type": "choices",
                                            "value": {"choices": [label]}}]
        self.ls.admin.annotations.create(id=int(task.id), result=result, was_cancelled=label is None,
                                         completed_by=self.ls.annotators[email], lead_time=4.0)
        self.acts.append(Act(str(task.data["external_id"]), email, label))


# -- helpers ---------------------------------------------------------------------------------------------


def _project(root: Path, ls: LabelStudioServer, models_dir: Path, *, overlap: int, wait_seconds: float) -> Path:
    return e2e.write_project(root, models_dir, connector="labelstudio", overlap=overlap, wait_seconds=wait_seconds,
                             settings={"url": ls.url, "api_key_env": "LABEL_STUDIO_API_KEY"},
                             # the student only has to be retrained, not to be good: keeps it fast
                             extra={"models": {"student_epochs": 2}})


def _controller(ls: LabelStudioServer, *args: str) -> subprocess.CompletedProcess[str]:
    return e2e.run_controller(*args, env={"LABEL_STUDIO_API_KEY": ls.api_key})


def _people(ls: LabelStudioServer, project: Path, run_dir: Path, overlap: int, plan: Plan) -> Annotators:
    return Annotators.for_run(project, run_dir, LABEL_STUDIO_ANNOTATORS[:overlap], plan, ls=ls)


def _task_count(ls: LabelStudioServer, project_id: int | None) -> tuple[int, int]:
    assert project_id is not None
    tasks = list(ls.admin.tasks.list(project=project_id, fields="task_only", page_size=1000))
    return len(tasks), len({t.data["external_id"] for t in tasks})


# -- tests ------------------------------------------------------------------------------------------------


def test_two_annotation_rounds_against_label_studio(labelstudio: LabelStudioServer, models_dir: Path,
                                                    tmp_path: Path) -> None:
    """Two annotators per item (a disagreement, a half skip and a full skip in each batch) over two rounds;
    one annotator per item is covered by the resume test below."""
    overlap = 2
    project = _project(tmp_path / "project", labelstudio, models_dir, overlap=overlap, wait_seconds=120.0)
    run_dir = tmp_path / "run"
    people = _people(labelstudio, project, run_dir, overlap, e2e.plan_overlap_2)
    done = e2e.run_with_annotators(people.answer_new_tasks, "--spend", "20", "--config", str(project),
                                   "--run-dir", str(run_dir), "--max-rounds", "3",
                                   env={"LABEL_STUDIO_API_KEY": labelstudio.api_key})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait for annotators" not in done.stdout

    with Ledger(run_dir / "ledger.sqlite") as ledger:
        e2e.check_two_rounds(ledger, people.acts, overlap, "20")
    assert _task_count(labelstudio, people.project_id) == (2 * BATCH, 2 * BATCH)  # no task pushed twice


def test_run_waits_for_annotators_then_resumes_without_pushing_again(labelstudio: LabelStudioServer,
                                                                    models_dir: Path, tmp_path: Path) -> None:
    project = _project(tmp_path / "project", labelstudio, models_dir, overlap=1, wait_seconds=3.0)
    run_dir = tmp_path / "run"
    first = _controller(labelstudio, "--spend", "20", "--config", str(project), "--run-dir", str(run_dir),
                        "--max-rounds", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "10 items still wait for annotators" in first.stdout
    assert "Run the same command again" in first.stdout and "no money is added" in first.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches()
        assert batch.state == "pushed" and ledger.labels() == []
        assert ledger.totals().reserved > 0  # the batch's money is held while people work

    people = _people(labelstudio, project, run_dir, 1, e2e.plan_overlap_1)
    assert people.find_project() is not None
    assert _task_count(labelstudio, people.project_id) == (BATCH, BATCH)
    assert people.answer_new_tasks() == BATCH  # the people work while no controller runs

    # as the message says: the same command again; its --spend 20 names the budget the run already has
    again = _controller(labelstudio, "--spend", "20", "--config", str(project), "--run-dir", str(run_dir),
                        "--max-rounds", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "wait for annotators" not in again.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        e2e.check_resumed(ledger, people.acts, BATCH, "20")
    assert _task_count(labelstudio, people.project_id) == (BATCH, BATCH)  # nothing pushed again


def test_example_project_loads() -> None:
    """examples/labelstudio/project.toml is a valid project file for the Label Studio connector (no server)."""
    config = load_config(EXAMPLE)
    assert config.annotation.connector == "labelstudio"
    assert config.task.pair_regex and config.task.batch_text_fields == ("text1", "text2")
    assert config.connector.url.startswith("http") and config.connector.api_key_env
    assert float(config.annotation.wait_seconds) > 0 and float(config.annotation.poll_seconds) > 0
    if config.task.data.exists():  # the shared MultiPIT file is in this checkout
        from annotation.pool import load_pool

        pool = load_pool(config.task)
        assert pool.labels == ("NO", "YES") and isinstance(pool.texts[0], tuple)
