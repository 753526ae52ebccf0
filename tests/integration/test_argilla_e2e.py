"""End to end: ``python -m budget.controller`` buys labels from people on a real Argilla.

These tests run on argilla-server 2.8.0 over the noida-db Elasticsearch emulator (started by
``scripts/test.sh``; see ``argilla_fixtures.py``). The controller runs as a subprocess on a tiny project
(tiny BERT student and teacher, a 3-class keyword task) whose ``[annotation] connector`` is ``argilla``.
A thread of the test plays the annotators: it finds the run's dataset (``<run id>-keywords``) and answers
each new record as Argilla's web UI does (``POST /api/v1/records/{id}/responses`` with the annotator's own
key), mostly with the gold label from ``data.jsonl``, once per batch with a wrong one, once discarding.
The test then checks the ledger against what the annotators did: labels stored, money settled and
released, the student retrained, and no record pushed twice. The platform-independent parts are in
``tests/utils/e2e.py``.

``test_example_project_loads`` needs no server.
"""

from __future__ import annotations

import time
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
from tests.utils import e2e  # noqa: E402
from tests.utils.e2e import BATCH, CONTROLLER_TIMEOUT_S, PER_LABEL, REPO, TASK, Act, People, Plan  # noqa: E402

pytestmark = pytest.mark.integration

argilla_server = argilla_fixtures.argilla_server  # the session fixture, made visible to this module
models_dir = e2e.models_dir  # the module fixture, made visible to this module

EXAMPLE = REPO / "examples" / "argilla" / "project.toml"


# -- the test's annotators -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Annotators(People):
    """People answering the run's Argilla dataset, as the web UI would (one response per person and record).

    A batch is answered once all its records are on the server, in the order of their external ids; a plan's
    "skip" is a discard.
    """

    server: ArgillaServer
    dataset_id: str | None = None
    _answered: set[str] = field(default_factory=set)  # batch ids

    def find_dataset(self) -> str | None:
        """The id of the run's dataset, once the controller has written its run id and pushed a first batch."""
        if self.dataset_id is None:
            run_id = self.run_id()
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
        label = self.label_for(record["fields"]["text"], what)
        self.server.answer(record["id"], name, label)
        self.acts.append(Act(str(record["external_id"]), name, label))


def _batch_size(ledger_path: Path, batch_id: str) -> int:
    with Ledger(ledger_path) as ledger:
        return len(ledger.batch(batch_id).payload.item_ids)


# -- helpers ---------------------------------------------------------------------------------------------


def _project(root: Path, server: ArgillaServer, models_dir: Path, *, overlap: int, wait_seconds: float) -> Path:
    return e2e.write_project(root, models_dir, connector="argilla", overlap=overlap, wait_seconds=wait_seconds,
                             settings={"url": server.url, "api_key_env": "ARGILLA_API_KEY",
                                       "workspace": server.workspace})


def _people(server: ArgillaServer, project: Path, run_dir: Path, overlap: int, plan: Plan) -> Annotators:
    return Annotators.for_run(project, run_dir, ARGILLA_ANNOTATORS[:overlap], plan, server=server)


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
    people = _people(argilla_server, project, run_dir, overlap, e2e.plan_overlap_2)
    started = time.monotonic()
    done = e2e.run_with_annotators(people.answer_new_records, "--spend", "20", "--config", str(project),
                                   "--run-dir", str(run_dir), "--max-rounds", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait for annotators" not in done.stdout
    assert time.monotonic() - started < CONTROLLER_TIMEOUT_S

    with Ledger(run_dir / "ledger.sqlite") as ledger:
        e2e.check_two_rounds(ledger, people.acts, overlap, "20")
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
    first = e2e.run_controller("--spend", "5", *args, "--max-rounds", "3")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "wait for annotators" in first.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches()
        assert batch.state == "pushed" and ledger.labels() == []
        n_items = len(batch.payload.item_ids)
        assert n_items == 9  # $5 buys 9 labels at $0.50 plus the retraining
        totals = ledger.totals()
        assert totals.reserved > 0 and totals.available < to_micro(PER_LABEL)  # held while people work

    people = _people(argilla_server, project, run_dir, 1, e2e.plan_overlap_1)
    assert people.find_dataset() is not None
    assert argilla_server.record_count(people.dataset_id) == n_items
    assert people.answer_new_records() == n_items  # the people work while no controller runs

    again = e2e.run_controller(*args, "--max-rounds", "1")  # no --spend: only resume
    assert again.returncode == 0, again.stdout + again.stderr
    assert "wait for annotators" not in again.stdout
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        e2e.check_resumed(ledger, people.acts, n_items, "5")
    assert argilla_server.record_count(people.dataset_id) == n_items  # nothing pushed again


def test_example_project_loads(tmp_path: Path) -> None:
    """examples/argilla/project.toml is a valid project file for the Argilla connector (no server)."""
    config = load_config(EXAMPLE)
    assert config.annotation.connector == "argilla"
    assert config.task.pair_regex and config.task.batch_text_fields == ("text1", "text2")
    assert config.task.metric == "macro_f1" and config.prices.per_label == "0.364"
    c = config.connector
    assert c.url.startswith("http") and c.api_key_env == "ARGILLA_API_KEY" and c.workspace
    assert c.guidelines.strip()
    assert float(config.annotation.wait_seconds) > 0 and float(config.annotation.poll_seconds) > 0
    if config.task.data.exists():  # the shared Stanceosaurus file is in this checkout
        from budget.controller import Controller
        from connectors.argilla import ArgillaConnector

        controller = Controller(config, tmp_path / "run")
        assert controller.pool.labels == config.task.labels and isinstance(controller.pool.texts[0], tuple)
        connector = controller._make_connector("stanceosaurus-0123abcd")
        inner = connector.inner  # type: ignore[attr-defined]
        assert isinstance(inner, ArgillaConnector)
        assert inner.dataset == "stanceosaurus-0123abcd-stanceosaurus"
        assert (inner.url, inner.workspace, inner.guidelines) == (c.url, c.workspace, c.guidelines)
