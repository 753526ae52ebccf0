"""End to end: ``python -m budget.controller`` buys labels from people on a real Label Studio.

The controller runs as a subprocess on a tiny project (tiny BERT student and teacher, a 3-class keyword
task) whose ``[annotation] connector`` is ``labelstudio``. A thread of the test plays the annotators: it
finds the run's project on the server and answers each new task through the API the labeling UI uses,
mostly with the gold label, sometimes with a wrong one, sometimes skipping. The test then checks the
ledger against what the annotators did: labels stored, money settled and released, the student retrained,
and no task pushed twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from budget.config import load_config
from budget.ledger import Ledger
from budget.money import to_micro
from connectors.labelstudio import project_title
from tests.integration.conftest import LABEL_STUDIO_ANNOTATORS, LabelStudioServer
from tests.utils.projects import write_tiny_project

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "labelstudio" / "project.toml"
TASK = "keywords"  # the tiny project's task name
PER_LABEL = "0.50"  # the tiny project's [prices] per_label
BATCH = 10
CONTROLLER_TIMEOUT_S = 240

#: what one annotator does with one task: "gold" (the right label), "wrong" (another label) or "skip"
Plan = Callable[[int, int], str]


def plan_overlap_1(k: int, j: int) -> str:
    """One annotator: in every 10 tasks one wrong label and one skip, the rest right."""
    return {3: "wrong", 7: "skip"}.get(k % BATCH, "gold")


def plan_overlap_2(k: int, j: int) -> str:
    """Two annotators: a disagreement, a half skip (still a label), a full skip (no label) per 10 tasks."""
    if k % BATCH == 3:
        return "wrong" if j == 0 else "gold"
    if k % BATCH == 5:
        return "skip" if j == 0 else "gold"
    if k % BATCH == 7:
        return "skip"
    return "gold"


# -- the test's annotators -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    external_id: str
    annotator: str
    label: str | None  # None: skipped


@dataclass
class Annotators:
    """People labeling the run's Label Studio project, as the labeling UI would (one annotation per person)."""

    ls: LabelStudioServer
    ledger_path: Path
    gold: dict[str, str]  # text -> gold label
    labels: tuple[str, ...]
    emails: tuple[str, ...]
    plan: Plan
    acts: list[Act] = field(default_factory=list)
    project_id: int | None = None
    _seen: set[int] = field(default_factory=set)
    _choice: tuple[str, str] | None = None

    def find_project(self, timeout: float = 60.0) -> int | None:
        """The run's project, once the controller has written its run id and pushed a first batch."""
        if self.project_id is not None:
            return self.project_id
        deadline = time.monotonic() + timeout
        while True:
            run_id = _run_id(self.ledger_path)
            if run_id is not None:
                title = project_title(run_id, TASK)
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
            for j, email in enumerate(self.emails):
                self._annotate(task, email, self.plan(k, j))
        return n

    def _annotate(self, task: Any, email: str, what: str) -> None:
        gold = self.gold[task.data["text"]]
        label = {"gold": gold, "skip": None}.get(what, next(x for x in self.labels if x != gold))
        from_name, to_name = self._choice
        result = [] if label is None else [{"from_name": from_name, "to_name": to_name, "type": "choices",
                                            "value": {"choices": [label]}}]
        self.ls.admin.annotations.create(id=int(task.id), result=result, was_cancelled=label is None,
                                         completed_by=self.ls.annotators[email], lead_time=4.0)
        self.acts.append(Act(str(task.data["external_id"]), email, label))


class AnnotatorThread(threading.Thread):
    """Runs :meth:`Annotators.answer_new_tasks` every half second until stopped; keeps its error."""

    def __init__(self, people: Annotators) -> None:
        super().__init__(daemon=True)
        self.people = people
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.people.answer_new_tasks()
                self.stop.wait(0.5)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc


def _run_id(ledger_path: Path) -> str | None:
    if not ledger_path.exists():
        return None
    try:
        with Ledger(ledger_path) as ledger:
            init = ledger.step_result("run:init")
    except Exception:  # noqa: BLE001 - the controller may be creating the file right now
        return None
    return None if init is None else str(init["run_id"])


# -- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


def _project(root: Path, ls: LabelStudioServer, models_dir: Path, *, overlap: int, wait_seconds: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return write_tiny_project(root, models_dir=models_dir, overrides={
        "annotation": {"connector": "labelstudio", "poll_seconds": 1.0, "wait_seconds": wait_seconds,
                       "batch_size": BATCH},
        "connector": {"url": ls.url, "api_key_env": "LABEL_STUDIO_API_KEY"},
        "split": {"test_size": 0},
        "prices": {"overlap": overlap, "per_label": PER_LABEL},
        "models": {"student_epochs": 2},  # the student only has to be retrained, not to be good: keeps it fast
    })


def _gold(project: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (project.parent / "data.jsonl").read_text().splitlines()]
    return {r["text"]: r["label"] for r in rows}


def _controller(ls: LabelStudioServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABEL_STUDIO_API_KEY": ls.api_key}
    return subprocess.run([sys.executable, "-m", "budget.controller", *args, "--policy", "annotate", "--quiet"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=CONTROLLER_TIMEOUT_S,
                          check=False)


def _people(ls: LabelStudioServer, project: Path, run_dir: Path, overlap: int, plan: Plan) -> Annotators:
    return Annotators(ls, run_dir / "ledger.sqlite", _gold(project), tuple(load_config(project).task.labels),
                      LABEL_STUDIO_ANNOTATORS[:overlap], plan)


def _check_labels_and_money(ledger: Ledger, acts: list[Act], overlap: int) -> None:
    """Labels stored == what the people did; money settled == labels given x price; the rest released."""
    stored = sorted((r.external_id, r.annotator, r.label) for r in ledger.labels())
    assert stored == sorted((a.external_id, a.annotator, a.label) for a in acts)
    price = to_micro(PER_LABEL)
    paid = sum(a.label is not None for a in acts)
    entries = [e for e in ledger.entries() if e.kind == "settle"]
    labels_settled = sum(e.amount_micro for e in entries if e.key.endswith(":labels"))
    compute_settled = sum(e.amount_micro for e in entries if not e.key.endswith(":labels"))
    totals = ledger.totals()
    assert labels_settled == paid * price
    assert totals.spent - compute_settled == paid * price
    assert compute_settled == sum(r.summary["compute_micro"] for r in ledger.rounds() if r.state == "done")
    for b in ledger.batches():
        mine = [a for a in acts if a.external_id in set(b.receipt["external_ids"])]
        given = sum(a.label is not None for a in mine)
        assert b.total_micro == len(b.payload["item_ids"]) * overlap * price
        res = ledger.reservation(b.reservation_id)
        assert res.state == "closed" and res.amount_micro >= b.total_micro
        # the labels settle at what was given; the rest of the reservation (skipped answers included) is
        # released, less what the retraining cost beyond its estimate
        compute = {r.round: r for r in ledger.rounds()}[b.round].summary["compute_micro"]
        assert res.settled_micro == given * price + compute
        assert res.released_micro == res.reserved_micro - given * price - compute
    assert totals.reserved == 0


def _task_count(ls: LabelStudioServer, project_id: int) -> tuple[int, int]:
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
    people = _people(labelstudio, project, run_dir, overlap, plan_overlap_2)
    thread = AnnotatorThread(people)
    thread.start()
    try:
        done = _controller(labelstudio, "--spend", "20", "--config", str(project), "--run-dir", str(run_dir),
                           "--max-rounds", "3")
    finally:
        thread.stop.set()
        thread.join(30)
    if thread.error is not None:
        raise thread.error
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait for annotators" not in done.stdout

    with Ledger(run_dir / "ledger.sqlite") as ledger:
        rounds = ledger.rounds()
        assert [(r.round, r.arm, r.state) for r in rounds] == [(0, "baseline", "done"), (1, "annotate", "done"),
                                                               (2, "annotate", "done")]
        batches = ledger.batches()
        assert [b.state for b in batches] == ["done", "done"]
        assert all(len(b.payload["item_ids"]) == BATCH for b in batches)
        assert len(people.acts) == 2 * BATCH * overlap
        _check_labels_and_money(ledger, people.acts, overlap)
        for r in rounds[1:]:  # the student was retrained on the new labels
            assert r.summary["student"] and Path(r.summary["student"]).is_dir()
            assert r.summary["dev"] is not None
            mine = [a for a in people.acts if a.external_id in set(ledger.batch(r.summary["batch_id"]).receipt[
                "external_ids"])]
            assert r.summary["labels_bought"] == sum(a.label is not None for a in mine)
            assert r.summary["skipped"] == sum(a.label is None for a in mine)
        assert rounds[2].summary["n_labels"] > rounds[0].summary["n_labels"]
        pushed = {e for b in batches for e in b.receipt["external_ids"]}
        assert len(ledger.events("pushed")) == 2
    assert len(pushed) == 2 * BATCH
    assert _task_count(labelstudio, people.project_id) == (2 * BATCH, 2 * BATCH)  # no task pushed twice


def test_run_waits_for_annotators_then_resumes_without_pushing_again(labelstudio: LabelStudioServer,
                                                                    models_dir: Path, tmp_path: Path) -> None:
    project = _project(tmp_path / "project", labelstudio, models_dir, overlap=1, wait_seconds=3.0)
    run_dir = tmp_path / "run"
    first = _controller(labelstudio, "--spend", "20", "--config", str(project), "--run-dir", str(run_dir),
                        "--max-rounds", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "10 items still wait for annotators" in first.stdout and "without --spend" in first.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches()
        assert batch.state == "pushed" and ledger.labels() == []
        assert ledger.totals().reserved > 0  # the batch's money is held while people work

    people = _people(labelstudio, project, run_dir, 1, plan_overlap_1)
    assert people.find_project() is not None
    assert _task_count(labelstudio, people.project_id) == (BATCH, BATCH)
    assert people.answer_new_tasks() == BATCH  # the people work while no controller runs

    # as the message says: the same run folder, no --spend (the project file is the one stored in the run)
    again = _controller(labelstudio, "--run-dir", str(run_dir), "--max-rounds", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "wait for annotators" not in again.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert [(r.round, r.arm, r.state) for r in ledger.rounds()] == [(0, "baseline", "done"),
                                                                        (1, "annotate", "done")]
        (batch,) = ledger.batches()
        assert batch.state == "done"
        assert len(ledger.events("pushed")) == 1
        _check_labels_and_money(ledger, people.acts, 1)
        summary = ledger.rounds()[1].summary
        assert summary["student"] and summary["dev"] is not None
        assert summary["labels_bought"] == BATCH - 1 and summary["skipped"] == 1
        assert ledger.totals().granted == to_micro("20")
    assert _task_count(labelstudio, people.project_id) == (BATCH, BATCH)  # nothing pushed again


def test_example_project_loads() -> None:
    """examples/labelstudio/project.toml is a valid project file for the Label Studio connector (no server)."""
    config = load_config(EXAMPLE)
    assert config["annotation"]["connector"] == "labelstudio"
    assert config.task.pair_regex and config.task.batch_text_fields == ("text1", "text2")
    assert config["connector"]["url"].startswith("http") and config["connector"]["api_key_env"]
    assert float(config["annotation"]["wait_seconds"]) > 0 and float(config["annotation"]["poll_seconds"]) > 0
    if config.task.data.exists():  # the shared MultiPIT file is in this checkout
        from annotation.pool import load_pool

        pool = load_pool(config.task)
        assert pool.labels == ("NO", "YES") and isinstance(pool.texts[0], tuple)
