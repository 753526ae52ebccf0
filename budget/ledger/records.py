"""The ledger's records: frozen dataclasses that :class:`budget.ledger.Ledger` reads back.

Money is in micro-dollars, times are ISO-8601 UTC. Re-exported by :mod:`budget.ledger`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from budget.ledger.round_records import BatchPayload, RoundPlan, RoundSummary
from budget.money import format_usd

__all__ = [
    "BATCH_STATES",
    "Entry",
    "Reservation",
    "Totals",
    "BatchRecord",
    "Approval",
    "LabelRow",
    "RoundRecord",
    "Event",
    "LedgerSnapshot",
]

#: batch states, in the order a batch moves through them (``rejected`` ends a proposal)
BATCH_STATES = ("proposed", "approved", "rejected", "pushed", "partial", "done")
_BATCH_NEXT = {"proposed": ("approved", "rejected"), "approved": ("pushed", "done"), "pushed": ("partial", "done"),
               "partial": ("done",), "rejected": (), "done": ()}

# --- records (money in micro-dollars, times ISO-8601 UTC) --------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One journal row; ``reservation_id`` is None for grants."""

    id: int
    at: str
    kind: str
    reservation_id: int | None
    amount_micro: int
    key: str | None
    note: str


@dataclass(frozen=True)
class Reservation:
    """Money held for one planned spend.

    ``amount_micro`` is what was asked for; ``reserved_micro`` adds any excess a settlement needed.
    Settled and released amounts come from the journal; ``remaining_micro`` is what is still held.
    """

    id: int
    key: str
    arm: str
    purpose: str
    round: int | None
    estimate_micro: int
    amount_micro: int
    reserved_micro: int
    settled_micro: int
    released_micro: int
    state: str
    created_at: str
    closed_at: str | None

    @property
    def remaining_micro(self) -> int:
        """Micro-dollars still held: reserved, minus settled, minus released."""
        return self.reserved_micro - self.settled_micro - self.released_micro


@dataclass(frozen=True)
class Totals:
    """The budget in micro-dollars: ``available = granted - reserved - spent``.

    ``reserved`` is held by reservations and not yet settled; ``spent`` is settled.
    """

    granted: int
    reserved: int
    spent: int
    available: int

    @property
    def committed(self) -> int:
        """Reserved plus spent: what the cap is checked against, micro-dollars."""
        return self.reserved + self.spent

    def __str__(self) -> str:
        return (f"granted {format_usd(self.granted)}, reserved {format_usd(self.reserved)}, "
                f"spent {format_usd(self.spent)}, available {format_usd(self.available)}")


@dataclass(frozen=True)
class BatchRecord:
    """A batch proposed for annotation: ``payload`` is what a lead sees of it, ``receipt`` the platform's."""

    batch_id: str
    round: int | None
    reservation_id: int | None
    state: str
    payload: BatchPayload
    price_per_item_micro: int
    overlap: int
    total_micro: int
    receipt: dict[str, Any] | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Approval:
    """One decision on a batch: ``decision`` is ``'approved'`` or ``'rejected'``."""

    batch_id: str
    decision: str
    by: str
    why: str
    at: str


@dataclass(frozen=True)
class LabelRow:
    """One bought answer; ``label`` is None when the annotator skipped the item.

    ``item_id`` is the item's row index in the task's pool; ``batch_id`` and ``at`` are filled in by
    :meth:`Ledger.record_labels`.
    """

    item_id: int
    external_id: str
    annotator: str
    label: str | None
    lead_time_s: float | None = None
    batch_id: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class RoundRecord:
    """One round: the arm the policy chose, its plan (the decision and its estimates), and the summary
    written when it ended (None while it runs)."""

    round: int
    arm: str
    plan: RoundPlan
    state: str
    started_at: str
    ended_at: str | None
    summary: RoundSummary | None

    @property
    def distilled(self) -> bool:
        """True when the round's student is a distilled one: a distillation's, or one refined from it by
        labels that no distillation followed."""
        return self.arm == "distill" or bool(self.summary and self.summary.refined)


@dataclass(frozen=True)
class Event:
    """One row of the event log."""

    id: int
    at: str
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class LedgerSnapshot:
    """What the policy may read, taken in one read transaction.

    ``spent_by_round`` maps a round to what its reservations settled; each round's dev score is in
    its summary.
    """

    totals: Totals
    spent_by_arm: dict[str, int] = field(default_factory=dict)
    spent_by_round: dict[int, int] = field(default_factory=dict)
    rounds: tuple[RoundRecord, ...] = ()


# --- rows to records (JSON columns are stored as text) ---------------------------------------------


def _batch_record(row: sqlite3.Row) -> BatchRecord:
    data = dict(row)
    data["payload"] = BatchPayload.from_json(json.loads(data["payload"]))
    data["receipt"] = None if data["receipt"] is None else json.loads(data["receipt"])
    return BatchRecord(**data)


def _round_record(row: sqlite3.Row) -> RoundRecord:
    data = dict(row)
    data["plan"] = RoundPlan.from_json(json.loads(data.pop("decision")))
    data["summary"] = None if data["summary"] is None else RoundSummary.from_json(json.loads(data["summary"]))
    return RoundRecord(**data)
