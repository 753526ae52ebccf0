"""End to end: ``python -m budget.controller`` buys labels from people on a real Argilla.

These tests run on argilla-server 2.8.0 over the noida-db Elasticsearch emulator (started by
``scripts/test.sh``; see ``argilla_fixtures.py``). The controller runs as a subprocess on a tiny project
(tiny BERT student and teacher, a 3-class keyword task) whose ``[annotation] connector`` is ``argilla``.
A thread of the test plays the annotators: it finds the run's dataset (``<run id>-keywords``) and answers
each new record as Argilla's web UI does (``POST /api/v1/records/{id}/responses`` with the annotator's own
key), mostly with the gold label from ``data.jsonl``, once per batch with a wrong one, once discarding.
The test then checks the ledger against what the annotators did: labels stored, money settled and
released, the student retrained, and no record pushed twice.

``test_example_project_loads`` needs no server.
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

pytest.importorskip("argilla")

from budget.config import load_config  # noqa: E402
from budget.ledger import Ledger  # noqa: E402
from budget.money import to_micro  # noqa: E402
from tests.integration import argilla_fixtures  # noqa: E402
from tests.integration.argilla_fixtures import ARGILLA_ANNOTATORS, ArgillaServer  # noqa: E402
from tests.utils.projects import write_tiny_project  # noqa: E402

pytestmark = pytest.mark.integration

argilla_server = argilla_fixtures.argilla_server  # the session fixture, made visible to this module

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "argilla" / "project.toml"
TASK = "keywords"  # the tiny project's task name
PER_LABEL = "0.50"  # the tiny project's [prices] per_label
BATCH = 10
CONTROLLER_TIMEOUT_S = 240

#: what one annotator does with the k-th record of a batch: "gold", "wrong" (another label) or "discard"
Plan = Callable[[int, int], str]


def plan_overlap_1(k: int, j: int) -> str:
    """One annotator: in every batch one wrong label and one discard, the rest right."""
    return {3: "wrong", 7: "discard"}.get(k, "gold")


def plan_overlap_2(k: int, j: int) -> str:
    """Two annotators: a disagreement, a half discard (still a label), a full discard (no label) per batch."""
    if k == 3:
        return "wrong" if j == 0 else "gold"
    if k == 5:
        return "discard" if j == 0 else "gold"
    if k == 7:
        return "discard"
    return "gold"


# -- the test's annotators -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    external_id: str
    annotator: str
    label: str | None  # None: discarded


@dataclass
class Annotators:
    """People answering the run's Argilla dataset, as the web UI would (one response per person and record).

    A batch is answered once all its records are on the server, in the order of their external ids.
    """

    server: ArgillaServer
    ledger_path: Path
    gold: dict[str, str]  # text -> gold label
    labels: tuple[str, ...]
    names: tuple[str, ...]
    plan: Plan
    acts: list[Act] = field(default_factory=list)
    dataset_id: str | None = None
    _answered: set[str] = field(default_factory=set)  # batch ids

    def find_dataset(self) -> str | None:
        """The id of the run's dataset, once the controller has written its run id and pushed a first batch."""
        if self.dataset_id is None:
            run_id = _run_id(self.ledger_path)
            if run_id is None:
                return None
            response = self.server.owner.get("/api/v1/me/datasets")
            response.raise_for_status()
            for ds in response.json()["items"]:
                if ds["name"] == f"{run_id}-{TASK}":
                    self.dataset_id = str(ds["id"])
        return self.dataset_id

    def records(self) -> list[dict[str, Any]]:
        """Every record of the dataset as the owner reads it (the database, not the search engine)."""
        assert self.dataset_id is not None
        response = self.server.owner.get(f"/api/v1/datasets/{self.dataset_id}/records", params={"limit": 1000})
        response.raise_for_status()
        return list(response.json()["items"])

    def answer_new_records(self) -> int:
        """Answer every complete batch not answered yet; returns how many records were answered."""
        if self.find_dataset() is None:
            return 0
        by_batch: dict[str, list[dict[str, Any]]] = {}
        for record in self.records():
            by_batch.setdefault(record["metadata"]["batch_id"], []).append(record)
        n = 0
        for batch_id, records in sorted(by_batch.items()):
            if batch_id in self._answered or len(records) < _batch_size(self.ledger_path, batch_id):
                continue
            self._answered.add(batch_id)
            for k, record in enumerate(sorted(records, key=lambda r: r["external_id"])):
                n += 1
                for j, name in enumerate(self.names):
                    self._answer(record, name, self.plan(k, j))
        return n

    def _answer(self, record: dict[str, Any], name: str, what: str) -> None:
        gold = self.gold[record["fields"]["text"]]
        label = {"gold": gold, "discard": None}.get(what, next(x for x in self.labels if x != gold))
        self.server.answer(record["id"], name, label)
        self.acts.append(Act(str(record["external_id"]), name, label))


class AnnotatorThread(threading.Thread):
    """Runs :meth:`Annotators.answer_new_records` every half second until stopped; keeps its error."""

    def __init__(self, people: Annotators) -> None:
        super().__init__(daemon=True)
        self.people = people
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.people.answer_new_records()
                self.stop.wait(0.5)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc


def _run_id(ledger_path: Path) -> str | None:
    if not ledger_path.exists():  # never create the ledger before the controller does
        return None
    try:
        with Ledger(ledger_path) as ledger:
            init = ledger.step_result("run:init")
    except Exception:  # noqa: BLE001 - the controller may be creating the file right now
        return None
    return None if init is None else str(init["run_id"])


def _batch_size(ledger_path: Path, batch_id: str) -> int:
    with Ledger(ledger_path) as ledger:
        return len(ledger.batch(batch_id).payload["item_ids"])


# -- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


def _project(root: Path, server: ArgillaServer, models_dir: Path, *, overlap: int, wait_seconds: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return write_tiny_project(root, models_dir=models_dir, overrides={
        "annotation": {"connector": "argilla", "poll_seconds": 1.0, "wait_seconds": wait_seconds,
                       "batch_size": BATCH},
        "connector": {"url": server.url, "api_key_env": "ARGILLA_API_KEY", "workspace": server.workspace},
        "split": {"test_size": 0},
        "prices": {"overlap": overlap, "per_label": PER_LABEL},
    })


def _gold(project: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (project.parent / "data.jsonl").read_text().splitlines()]
    gold = {r["text"]: r["label"] for r in rows}
    assert len(gold) == len(rows), "the tiny task's texts must be unique to find their gold label"
    return gold


def _controller(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "budget.controller", *args, "--policy", "annotate", "--quiet"],
                          capture_output=True, text=True, env=dict(os.environ), cwd=REPO,
                          timeout=CONTROLLER_TIMEOUT_S, check=False)


def _people(server: ArgillaServer, project: Path, run_dir: Path, overlap: int, plan: Plan) -> Annotators:
    return Annotators(server, run_dir / "ledger.sqlite", _gold(project), tuple(load_config(project).task.labels),
                      ARGILLA_ANNOTATORS[:overlap], plan)


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
    assert labels_settled == paid * price  # exactly, in micro-dollars
    assert totals.spent - compute_settled == paid * price
    assert compute_settled == sum(r.summary["compute_micro"] for r in ledger.rounds() if r.state == "done")
    spent = ledger.spent_by_arm()
    compute_annotate = sum(e.amount_micro for e in entries if not e.key.endswith(":labels")
                           and ledger.reservation(e.reservation_id).arm == "annotate")
    assert spent["annotate"] == paid * price + compute_annotate
    for b in ledger.batches():
        mine = [a for a in acts if a.external_id in set(b.receipt["external_ids"])]
        given = sum(a.label is not None for a in mine)
        assert b.total_micro == len(b.payload["item_ids"]) * overlap * price
        settled = [e.amount_micro for e in entries if e.key == f"settle:{b.batch_id}:labels"]
        assert settled == ([given * price] if given else [])
        res = ledger.reservation(b.reservation_id)
        compute = sum(e.amount_micro for e in entries
                      if e.reservation_id == res.id and not e.key.endswith(":labels"))
        assert res.state == "closed" and res.reserved_micro >= b.total_micro
        assert res.settled_micro == given * price + compute  # no discarded answer was paid
        # the rest came back: the discarded answers' price and what the retraining did not use
        assert res.released_micro == res.reserved_micro - given * price - compute
        assert res.released_micro >= b.total_micro - given * price - max(0, compute - (res.amount_micro
                                                                                        - b.total_micro))
    assert totals.reserved == 0
    assert [r.state for r in ledger.reservations()] == ["closed"] * len(ledger.reservations())


def _dataset(server: ArgillaServer, dataset_id: str) -> dict[str, Any]:
    response = server.owner.get(f"/api/v1/datasets/{dataset_id}")
    response.raise_for_status()
    return dict(response.json())


# -- tests ------------------------------------------------------------------------------------------------


def test_two_annotation_rounds_against_argilla(argilla_server: ArgillaServer, models_dir: Path,
                                               tmp_path: Path) -> None:
    """--spend 20: the baseline, then two batches of 10 records answered by two annotators while the run waits."""
    overlap = 2
    project = _project(tmp_path / "project", argilla_server, models_dir, overlap=overlap, wait_seconds=120.0)
    run_dir = tmp_path / "run"
    people = _people(argilla_server, project, run_dir, overlap, plan_overlap_2)
    thread = AnnotatorThread(people)
    thread.start()
    started = time.monotonic()
    try:
        done = _controller("--spend", "20", "--config", str(project), "--run-dir", str(run_dir), "--max-rounds", "3")
    finally:
        thread.stop.set()
        thread.join(30)
    if thread.error is not None:
        raise thread.error
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait for annotators" not in done.stdout
    assert time.monotonic() - started < CONTROLLER_TIMEOUT_S

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
            mine = [a for a in people.acts
                    if a.external_id in set(ledger.batch(r.summary["batch_id"]).receipt["external_ids"])]
            assert r.summary["labels_bought"] == sum(a.label is not None for a in mine)
            assert r.summary["skipped"] == sum(a.label is None for a in mine)
        assert rounds[0].summary["n_labels"] < rounds[1].summary["n_labels"] < rounds[2].summary["n_labels"]
        pushed = {e for b in batches for e in b.receipt["external_ids"]}
        assert len(ledger.events("pushed")) == 2
        assert ledger.totals().granted == to_micro("20")
    assert len(pushed) == 2 * BATCH
    assert people.dataset_id is not None
    assert argilla_server.record_count(people.dataset_id) == 2 * BATCH  # no record pushed twice
    assert _dataset(argilla_server, people.dataset_id)["distribution"] == {"strategy": "overlap",
                                                                          "min_submitted": overlap}


def test_run_waits_for_annotators_then_resumes_without_pushing_again(argilla_server: ArgillaServer,
                                                                    models_dir: Path, tmp_path: Path) -> None:
    """--spend 5: the batch holds nearly all the money while it waits; a run without --spend still resumes it."""
    project = _project(tmp_path / "project", argilla_server, models_dir, overlap=1, wait_seconds=3.0)
    run_dir = tmp_path / "run"
    args = ("--config", str(project), "--run-dir", str(run_dir))
    first = _controller("--spend", "5", *args, "--max-rounds", "3")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "wait for annotators" in first.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches()
        assert batch.state == "pushed" and ledger.labels() == []
        n_items = len(batch.payload["item_ids"])
        assert n_items == 9  # $5 buys 9 labels at $0.50 plus the retraining
        totals = ledger.totals()
        assert totals.reserved > 0 and totals.available < to_micro(PER_LABEL)  # held while people work

    people = _people(argilla_server, project, run_dir, 1, plan_overlap_1)
    assert people.find_dataset() is not None
    assert argilla_server.record_count(people.dataset_id) == n_items
    assert people.answer_new_records() == n_items  # the people work while no controller runs

    again = _controller(*args, "--max-rounds", "1")  # no --spend: only resume
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
        assert summary["labels_bought"] == n_items - 1 and summary["skipped"] == 1
        assert ledger.totals().granted == to_micro("5")
    assert argilla_server.record_count(people.dataset_id) == n_items  # nothing pushed again


def test_example_project_loads(tmp_path: Path) -> None:
    """examples/argilla/project.toml is a valid project file for the Argilla connector (no server)."""
    config = load_config(EXAMPLE)
    assert config["annotation"]["connector"] == "argilla"
    assert config.task.pair_regex and config.task.batch_text_fields == ("text1", "text2")
    assert config.task.metric == "macro_f1" and config["prices"]["per_label"] == "0.364"
    c = config["connector"]
    assert c["url"].startswith("http") and c["api_key_env"] == "ARGILLA_API_KEY" and c["workspace"]
    assert c["guidelines"].strip()
    assert float(config["annotation"]["wait_seconds"]) > 0 and float(config["annotation"]["poll_seconds"]) > 0
    if config.task.data.exists():  # the shared Stanceosaurus file is in this checkout
        from budget.controller import Controller
        from connectors.argilla import ArgillaConnector

        controller = Controller(config, tmp_path / "run")
        assert controller.pool.labels == config.task.labels and isinstance(controller.pool.texts[0], tuple)
        connector = controller._make_connector("stanceosaurus-0123abcd")
        inner = connector.inner  # type: ignore[attr-defined]
        assert isinstance(inner, ArgillaConnector)
        assert inner.dataset == "stanceosaurus-0123abcd-stanceosaurus"
        assert (inner.url, inner.workspace, inner.guidelines) == (c["url"], c["workspace"], c["guidelines"])
