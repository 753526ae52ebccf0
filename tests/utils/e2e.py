"""Platform-independent parts of the end-to-end tests against real annotation servers.

``tests/integration/test_argilla_e2e.py`` and ``test_labelstudio_e2e.py`` run ``python -m budget.controller``
as a subprocess on a tiny project while a thread plays the annotators through the platform's API. What
does not depend on the platform lives here: the annotators' plans, their record of what they did, the
thread, the controller call and the ledger checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest

from budget.config import load_config
from budget.ledger import Ledger
from budget.ledger.round_records import RunInit
from budget.money import to_micro
from tests.utils.projects import write_tiny_project

REPO = Path(__file__).resolve().parents[2]
TASK = "keywords"  # the tiny project's task name
PER_LABEL = "0.50"  # the tiny project's [prices] per_label
BATCH = 10
CONTROLLER_TIMEOUT_S = 240

#: what annotator j does with the k-th item: "gold" (the right label), "wrong" (another label) or "skip"
#: (no label: a skip in Label Studio, a discard in Argilla)
Plan = Callable[[int, int], str]


def plan_overlap_1(k: int, j: int) -> str:
    """One annotator: in every batch one wrong label and one skip, the rest right."""
    return {3: "wrong", 7: "skip"}.get(k % BATCH, "gold")


def plan_overlap_2(k: int, j: int) -> str:
    """Two annotators: a disagreement, a half skip (still a label), a full skip (no label) per batch."""
    if k % BATCH == 3:
        return "wrong" if j == 0 else "gold"
    if k % BATCH == 5:
        return "skip" if j == 0 else "gold"
    if k % BATCH == 7:
        return "skip"
    return "gold"


@dataclass(frozen=True)
class Act:
    """One answer an annotator gave."""

    external_id: str
    annotator: str
    label: str | None  # None: skipped


@dataclass(kw_only=True)
class People:
    """The annotators of one run and what they did; a platform's subclass answers through its API."""

    ledger_path: Path
    gold: dict[str, str]  # text -> gold label
    labels: tuple[str, ...]
    names: tuple[str, ...]
    plan: Plan
    acts: list[Act] = field(default_factory=list)

    @classmethod
    def for_run(cls, project: Path, run_dir: Path, names: tuple[str, ...], plan: Plan, **platform: Any) -> Self:
        """The first ``len(names)`` annotators of the run in ``run_dir`` on ``project``."""
        return cls(ledger_path=run_dir / "ledger.sqlite", gold=gold_labels(project),
                   labels=tuple(load_config(project).task.labels), names=names, plan=plan, **platform)

    def label_for(self, text: str, what: str) -> str | None:
        """The label a plan's ``what`` gives ``text``."""
        gold = self.gold[text]
        return {"gold": gold, "skip": None}.get(what, next(x for x in self.labels if x != gold))

    def run_id(self) -> str | None:
        """The run's id, once the controller has written it."""
        return run_id(self.ledger_path)


class AnnotatorThread(threading.Thread):
    """Calls ``step`` (answer what is new) every half second until stopped; keeps its error."""

    def __init__(self, step: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.step = step
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
                self.stop.wait(0.5)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc


def run_id(ledger_path: Path) -> str | None:
    """The run id in the ledger, or None before the controller has written it."""
    if not ledger_path.exists():  # never create the ledger before the controller does
        return None
    try:
        with Ledger(ledger_path) as ledger:
            init = RunInit.read(ledger)
    except Exception:  # noqa: BLE001 - the controller may be creating the file right now
        return None
    return None if init is None else init.run_id


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny student and teacher are written, once per test module."""
    return tmp_path_factory.mktemp("tiny-models")


def write_project(root: Path, models_dir: Path, *, connector: str, settings: dict[str, Any], overlap: int,
                  wait_seconds: float, extra: dict[str, Any] | None = None) -> Path:
    """A tiny project under ``root`` annotated through ``connector`` with its ``[connector]`` ``settings``."""
    root.mkdir(parents=True, exist_ok=True)
    return write_tiny_project(root, models_dir=models_dir, overrides={
        "annotation": {"connector": connector, "poll_seconds": 1.0, "wait_seconds": wait_seconds,
                       "batch_size": BATCH},
        "connector": settings,
        "split": {"test_size": 0},
        "prices": {"overlap": overlap, "per_label": PER_LABEL},
        **(extra or {}),
    })


def gold_labels(project: Path) -> dict[str, str]:
    """Text -> gold label of the tiny project's data."""
    rows = [json.loads(line) for line in (project.parent / "data.jsonl").read_text().splitlines()]
    gold = {r["text"]: r["label"] for r in rows}
    assert len(gold) == len(rows), "the tiny task's texts must be unique to find their gold label"
    return gold


def run_controller(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m budget.controller ARGS --policy annotate --quiet`` with ``env`` added to this environment."""
    return subprocess.run([sys.executable, "-m", "budget.controller", *args, "--policy", "annotate", "--quiet"],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=REPO,
                          timeout=CONTROLLER_TIMEOUT_S, check=False)


def run_with_annotators(step: Callable[[], object], *args: str,
                        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the controller while a thread calls ``step``; re-raises the thread's error."""
    thread = AnnotatorThread(step)
    thread.start()
    try:
        done = run_controller(*args, env=env)
    finally:
        thread.stop.set()
        thread.join(30)
    if thread.error is not None:
        raise thread.error
    return done


def check_labels_and_money(ledger: Ledger, acts: list[Act], overlap: int) -> None:
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
    assert compute_settled == sum(r.summary.compute_micro for r in ledger.rounds() if r.state == "done")
    spent = ledger.spent_by_arm()
    compute_annotate = sum(e.amount_micro for e in entries if not e.key.endswith(":labels")
                           and ledger.reservation(e.reservation_id).arm == "annotate")
    assert spent["annotate"] == paid * price + compute_annotate
    rounds = {r.round: r for r in ledger.rounds()}
    for b in ledger.batches():
        mine = [a for a in acts if a.external_id in set(b.receipt["external_ids"])]
        given = sum(a.label is not None for a in mine)
        assert b.total_micro == len(b.payload.item_ids) * overlap * price
        settled = [e.amount_micro for e in entries if e.key == f"settle:{b.batch_id}:labels"]
        assert settled == ([given * price] if given else [])
        res = ledger.reservation(b.reservation_id)
        compute = sum(e.amount_micro for e in entries
                      if e.reservation_id == res.id and not e.key.endswith(":labels"))
        assert compute == rounds[b.round].summary.compute_micro  # the batch's retraining, on its reservation
        assert res.state == "closed" and res.reserved_micro >= b.total_micro and res.amount_micro >= b.total_micro
        assert res.settled_micro == given * price + compute  # no skipped answer was paid
        # the rest came back: the skipped answers' price and what the retraining did not use
        assert res.released_micro == res.reserved_micro - given * price - compute
        assert res.released_micro >= b.total_micro - given * price - max(0, compute - (res.amount_micro
                                                                                        - b.total_micro))
    assert totals.reserved == 0
    assert [r.state for r in ledger.reservations()] == ["closed"] * len(ledger.reservations())


def check_two_rounds(ledger: Ledger, acts: list[Act], overlap: int, spend: str) -> None:
    """After ``--spend SPEND --max-rounds 3`` answered live: baseline, two full batches bought and trained on."""
    rounds = ledger.rounds()
    assert [(r.round, r.arm, r.state) for r in rounds] == [(0, "baseline", "done"), (1, "annotate", "done"),
                                                           (2, "annotate", "done")]
    batches = ledger.batches()
    assert [b.state for b in batches] == ["done", "done"]
    assert all(len(b.payload.item_ids) == BATCH for b in batches)
    assert len(acts) == 2 * BATCH * overlap
    check_labels_and_money(ledger, acts, overlap)
    assert Path(rounds[-1].summary.student).is_dir()  # the latest student is kept (older ones may be pruned)
    for r in rounds[1:]:  # the student was retrained on the new labels
        assert r.summary.student and r.summary.dev is not None
        mine = [a for a in acts if a.external_id in set(ledger.batch(r.summary.batch_id).receipt["external_ids"])]
        assert r.summary.labels_bought == sum(a.label is not None for a in mine)
        assert r.summary.skipped == sum(a.label is None for a in mine)
    assert rounds[0].summary.n_labels < rounds[1].summary.n_labels < rounds[2].summary.n_labels
    pushed = {e for b in batches for e in b.receipt["external_ids"]}
    assert len(ledger.events("pushed")) == 2
    assert ledger.totals().granted == to_micro(spend)
    assert len(pushed) == 2 * BATCH


def check_resumed(ledger: Ledger, acts: list[Act], n_items: int, spend: str) -> None:
    """After a run without ``--spend`` resumed the one batch that one annotator answered meanwhile."""
    assert [(r.round, r.arm, r.state) for r in ledger.rounds()] == [(0, "baseline", "done"),
                                                                    (1, "annotate", "done")]
    (batch,) = ledger.batches()
    assert batch.state == "done"
    assert len(ledger.events("pushed")) == 1
    check_labels_and_money(ledger, acts, 1)
    summary = ledger.rounds()[1].summary
    assert summary.student and summary.dev is not None
    assert summary.labels_bought == n_items - 1 and summary.skipped == 1
    assert ledger.totals().granted == to_micro(spend)
