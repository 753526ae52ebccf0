"""The ledger: every cent the run may spend, has reserved, and has spent, in one SQLite file.

After sqlite-utils' ``db.py``: a :class:`Ledger` opens a database (a path, or ``":memory:"``), applies
the named migrations of :mod:`budget.ledger.migrations`, and offers verb methods. It is made of parts that
share one connection, each in its own module:

    budget.ledger.db       LedgerDB   opening the file, ``atomic()`` transactions, timestamps
    budget.ledger.journal  Journal    grant / reserve / extend / settle / release, totals
    budget.ledger.batches  Batches    batches, approvals and rejections, bought labels
    budget.ledger.runlog   RunLog     steps of external actions, rounds, events

Money moves through an append-only journal, so that ``available = granted - reserved - spent``
never goes below zero. Every write runs in one ``BEGIN IMMEDIATE`` transaction: the cap check and
the insert are atomic even when two processes share the file. Every amount is an ``int`` of
micro-dollars (see :mod:`budget.money`); writes that can be retried take an idempotency ``key``,
and repeating a write with the same key changes nothing.

A ``Ledger`` belongs to the thread that opened it; open one per thread or process.
"""

from __future__ import annotations

from budget.ledger.batches import Batches
from budget.ledger.journal import Journal
from budget.ledger.records import (
    BATCH_STATES,
    Approval,
    BatchRecord,
    Entry,
    Event,
    LabelRow,
    LedgerSnapshot,
    Reservation,
    RoundRecord,
    Totals,
)
from budget.ledger.runlog import RunLog

__all__ = [
    "BATCH_STATES",
    "Ledger",
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


class Ledger(Journal, Batches, RunLog):
    """Every cent of a run, in SQLite: grants, reservations, settlements and releases, plus the run's state.

    Parameters
    ----------
    path : str or Path
        The database file (created if missing), or ``":memory:"``.
    clock : callable returning datetime, optional
        Source of timestamps (naive datetimes are taken as UTC). Defaults to the system clock.
    timeout : float, default=30.0
        Seconds a write waits for another process's transaction before giving up.

    Examples
    --------
    >>> from budget.money import to_micro
    >>> with Ledger(":memory:") as ledger:
    ...     _ = ledger.grant(to_micro("500"), key="grant-1")
    ...     r = ledger.reserve(to_micro("120"), key="round-1", arm="annotate")
    ...     ledger.settle(r.id, to_micro("100"), key="round-1-labels")
    ...     _ = ledger.close_reservation(r.id, key="round-1-close")
    ...     print(ledger.totals())
    granted $500.00, reserved $0.00, spent $100.00, available $400.00
    """

    def snapshot(self) -> LedgerSnapshot:
        """Totals, spend per arm and per round, and the rounds, read in one transaction."""
        with self._reading():
            return LedgerSnapshot(totals=self.totals(), spent_by_arm=self.spent_by_arm(),
                                  spent_by_round=self.spent_by_round(), rounds=tuple(self.rounds()))
