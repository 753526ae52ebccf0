"""The ledger: every cent the run may spend, has reserved, and has spent, in one SQLite file.

After sqlite-utils' ``db.py``: a :class:`Ledger` opens a database (a path, or ``":memory:"``), applies
the named migrations of :mod:`budget.migrations`, and offers verb methods. Money moves through an
append-only journal (table ``entries``)::

    grant    adds to the budget                     granted  += amount
    reserve  holds money for a planned spend        reserved += amount   (the cap is checked here)
    settle   records money actually spent           reserved -= amount, spent += amount
    release  gives back what a reservation left     reserved -= amount

so that ``available = granted - reserved - spent`` never goes below zero. Every write runs in one
``BEGIN IMMEDIATE`` transaction: the cap check and the insert are atomic even when two processes
share the file. Every amount is an ``int`` of micro-dollars (see :mod:`budget.money`); writes that
can be retried take an idempotency ``key``, and repeating a write with the same key changes nothing.

Besides money the ledger keeps what a run needs to resume: batches and their approvals, bought
labels, steps of external actions, rounds, dev/test metrics and an event log.

A ``Ledger`` belongs to the thread that opened it; open one per thread or process.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from numbers import Real
from pathlib import Path
from typing import Any

from budget._validation import _check_choice, _check_key, _check_micro, _check_round, _check_same_entry, _dumps
from budget.exceptions import (
    BatchNotFoundError,
    CapExceededError,
    IdempotencyConflictError,
    InvalidTransitionError,
    LedgerFileError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from budget.migrations import LEDGER_MIGRATIONS
from budget.money import format_usd
from budget.records import (
    _BATCH_NEXT,
    BATCH_STATES,
    Approval,
    BatchRecord,
    Entry,
    Event,
    LabelRow,
    LedgerSnapshot,
    MetricRow,
    Reservation,
    RoundRecord,
    Totals,
    _batch_record,
    _round_record,
)

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
    "MetricRow",
    "Event",
    "LedgerSnapshot",
]


# --- the ledger --------------------------------------------------------------------------------------


class _Transaction:
    """``BEGIN`` at the outermost level, ``SAVEPOINT`` inside; commit on success, roll back on error."""

    def __init__(self, ledger: Ledger, begin: str) -> None:
        self._ledger, self._begin, self._savepoint = ledger, begin, None

    def __enter__(self) -> Ledger:
        ledger = self._ledger
        if ledger._depth == 0:
            ledger._conn.execute(self._begin)
        else:
            self._savepoint = f"sp{ledger._depth}"
            ledger._conn.execute(f"SAVEPOINT {self._savepoint}")
        ledger._depth += 1
        return ledger

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._ledger._depth -= 1
        conn = self._ledger._conn
        if self._savepoint is not None:
            if exc_type is not None:
                conn.execute(f"ROLLBACK TO {self._savepoint}")
            conn.execute(f"RELEASE {self._savepoint}")
        elif exc_type is not None:
            conn.execute("ROLLBACK")
        else:
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


class Ledger:
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

    def __init__(self, path: str | Path, *, clock: Callable[[], datetime] | None = None, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._depth = 0
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        _check_is_ledger(self._conn, self.path)
        self._conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:" and not self.path.startswith("file::memory:"):
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        LEDGER_MIGRATIONS.apply(self._conn, clock=self.clock)

    def __repr__(self) -> str:
        return f"Ledger({self.path!r})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, reservation_id: int | None = None, *, key: str | None = None) -> int | None:
        """Close the database connection; or, given a reservation id, :meth:`close_reservation`.

        ``ledger.close()`` may be called twice. ``ledger.close(rid, key=...)`` releases what the
        reservation still holds, closes it and returns the micro-dollars released.
        """
        if reservation_id is not None:
            if key is None:
                raise ValueError("Closing a reservation needs an idempotency key: close(reservation_id, key='...').")
            return self.close_reservation(reservation_id, key=key)
        if key is not None:
            raise ValueError("close() with a key closes a reservation; pass its id: close(reservation_id, key=key).")
        self._conn.close()
        return None

    def atomic(self) -> _Transaction:
        """A context manager: one ``BEGIN IMMEDIATE`` transaction, or a ``SAVEPOINT`` when nested.

        Everything inside commits together or, if the block raises, not at all.
        """
        return _Transaction(self, "BEGIN IMMEDIATE")

    # --- money ---------------------------------------------------------------------------------------

    def grant(self, amount_micro: int, *, note: str = "", key: str | None = None) -> int:
        """Add ``amount_micro`` micro-dollars to the budget; return the journal entry's id.

        With a ``key``, repeating the grant returns the first entry's id and adds nothing.

        Raises
        ------
        ValueError
            If ``amount_micro`` is not an int >= 1.
        IdempotencyConflictError
            If ``key`` was used for a different write.
        """
        amount = _check_micro(amount_micro, "amount_micro", "grant", minimum=1)
        with self.atomic():
            if key is not None:
                row = self._entry_by_key(_check_key(key, "grant"))
                if row is not None:
                    _check_same_entry(row, key, "grant", None, amount)
                    return row["id"]
            return self._insert_entry("grant", amount, None, key, note)

    def grant_up_to(self, total_micro: int, *, note: str = "") -> int:
        """Raise the budget to ``total_micro`` if it is below; return the micro-dollars added (0 if none).

        Idempotent by design: granting up to the same total twice adds money once, so a command
        repeated after a crash never doubles the budget. The read and the grant are one transaction.

        Raises
        ------
        ValueError
            If ``total_micro`` is not an int >= 1.
        """
        total = _check_micro(total_micro, "total_micro", "grant_up_to", minimum=1)
        with self.atomic():
            missing = total - self.totals().granted
            if missing <= 0:
                return 0
            self._insert_entry("grant", missing, None, None, note)
            return missing

    def reserve(self, amount_micro: int, *, key: str, arm: str, purpose: str = "", round: int | None = None,
                estimate_micro: int | None = None) -> Reservation:
        """Hold ``amount_micro`` micro-dollars for a planned spend, if it fits under the cap.

        Parameters
        ----------
        amount_micro : int
            Micro-dollars to hold.
        key : str
            Idempotency key: reserving again with the same key returns the same reservation.
        arm : str
            Who spends it (``'annotate'``, ``'distill'``, ...).
        purpose : str, default=""
            Free text for people.
        round : int or None
            The round the reservation belongs to.
        estimate_micro : int or None
            The estimate the amount came from, micro-dollars (defaults to ``amount_micro``).

        Raises
        ------
        CapExceededError
            If ``granted - reserved - spent < amount_micro``.
        IdempotencyConflictError
            If ``key`` was used for a different amount, arm or round, or for another kind of write.
        """
        amount = _check_micro(amount_micro, "amount_micro", "reserve")
        estimate = amount if estimate_micro is None else _check_micro(estimate_micro, "estimate_micro", "reserve")
        key = _check_key(key, "reserve")
        if not isinstance(arm, str) or not arm:
            raise ValueError(f"The 'arm' parameter of reserve must be a non-empty str. Got {arm!r} instead.")
        _check_round(round, "reserve")
        with self.atomic():
            row = self._conn.execute("SELECT id, amount_micro, arm, round FROM reservations WHERE key = ?", (key,))
            row = row.fetchone()
            if row is not None:
                if (row["amount_micro"], row["arm"], row["round"]) != (amount, arm, round):
                    raise IdempotencyConflictError(
                        f"Key {key!r} already reserved {format_usd(row['amount_micro'])} for {row['arm']!r} "
                        f"(round {row['round']}); use a new key for a different reservation.", key=key)
                return self.reservation(row["id"])
            used = self._entry_by_key(key)
            if used is not None:
                _check_same_entry(used, key, "reserve", None, amount)
            self._check_cap(amount, f"Reservation of {format_usd(amount)}")
            rid = self._conn.execute(
                "INSERT INTO reservations (key, arm, purpose, round, estimate_micro, amount_micro, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (key, arm, purpose, round, estimate, amount, self._now())).lastrowid
            self._insert_entry("reserve", amount, rid, key, purpose)
            return self.reservation(rid)

    def extend(self, reservation_id: int, amount_micro: int, *, note: str = "") -> int:
        """Hold up to ``amount_micro`` more on an open reservation, as much as fits under the cap.

        What a spend asks for when it needs more than its estimate: it gets the whole amount while
        money is available, part of it near the cap, and 0 at the cap (never an error). Returns the
        micro-dollars added.

        Raises
        ------
        ReservationNotFoundError, ReservationClosedError
            If the reservation does not exist, or is closed.
        """
        amount = _check_micro(amount_micro, "amount_micro", "extend")
        with self.atomic():
            held = self._open_reservation(reservation_id, "extend")
            granted = min(amount, max(0, self.totals().available))
            if granted:
                self._insert_entry("reserve", granted, held.id, None, note or "extension")
            return granted

    def settle(self, reservation_id: int, amount_micro: int, *, key: str) -> None:
        """Record ``amount_micro`` micro-dollars actually spent against an open reservation.

        May be called several times (partial settlements), each with its own key; repeating a key
        changes nothing. Settling more than the reservation still holds first reserves the excess
        (an extra ``reserve`` entry), which must fit under the cap.

        Raises
        ------
        CapExceededError
            If the excess over what the reservation holds does not fit under the cap.
        ReservationNotFoundError, ReservationClosedError
            If the reservation does not exist, or is closed.
        IdempotencyConflictError
            If ``key`` was used for a different write.
        """
        amount = _check_micro(amount_micro, "amount_micro", "settle")
        key = _check_key(key, "settle")
        with self.atomic():
            row = self._entry_by_key(key)
            if row is not None:
                _check_same_entry(row, key, "settle", reservation_id, amount)
                return
            held = self._open_reservation(reservation_id, "settle against")
            excess = amount - held.remaining_micro
            if excess > 0:
                self._check_cap(excess, f"Settlement of {format_usd(amount)} on reservation {held.id} "
                                        f"({format_usd(excess)} more than it holds)")
                self._insert_entry("reserve", excess, held.id, None, f"excess of settlement {key!r}")
            self._insert_entry("settle", amount, held.id, key, "")

    def release(self, reservation_id: int, amount_micro: int | None = None, *, key: str) -> int:
        """Give back part (``amount_micro``) or all (None) of what a reservation still holds.

        The reservation closes when nothing remains. Repeating a key returns what it released then.

        Returns
        -------
        int
            Micro-dollars released.

        Raises
        ------
        ValueError
            If ``amount_micro`` is more than the reservation holds.
        ReservationNotFoundError, ReservationClosedError, IdempotencyConflictError
            As for :meth:`settle`.
        """
        amount = None if amount_micro is None else _check_micro(amount_micro, "amount_micro", "release")
        with self.atomic():
            return self._release(reservation_id, amount, _check_key(key, "release"), close=False)

    def close_reservation(self, reservation_id: int, *, key: str) -> int:
        """Release what a reservation still holds and close it; return the micro-dollars released."""
        with self.atomic():
            return self._release(reservation_id, None, _check_key(key, "close"), close=True)

    def totals(self) -> Totals:
        """Granted, reserved (open, unsettled), spent and available micro-dollars, from the journal alone."""
        sums = dict.fromkeys(("grant", "reserve", "settle", "release"), 0)
        sums.update(self._conn.execute("SELECT kind, SUM(amount_micro) FROM entries GROUP BY kind").fetchall())
        reserved = sums["reserve"] - sums["settle"] - sums["release"]
        return Totals(sums["grant"], reserved, sums["settle"], sums["grant"] - reserved - sums["settle"])

    def reservation(self, reservation_id: int) -> Reservation:
        """The reservation with this id, with its settled and released amounts.

        Raises
        ------
        ReservationNotFoundError
            If there is none.
        """
        row = self._conn.execute(_RESERVATIONS_SQL + " WHERE r.id = ?", (reservation_id,)).fetchone()
        if row is None:
            raise ReservationNotFoundError(f"Reservation {reservation_id!r} not found; list them with "
                                           "Ledger.reservations().", reservation_id=reservation_id)
        return Reservation(**dict(row))

    def reservations(self, state: str | None = None, arm: str | None = None) -> list[Reservation]:
        """Reservations, oldest first, optionally only those in ``state`` (``'open'``/``'closed'``) or of ``arm``."""
        _check_choice(state, ("open", "closed"), "state", "reservations")
        rows = self._conn.execute(_RESERVATIONS_SQL + " WHERE (?1 IS NULL OR r.state = ?1)"
                                  " AND (?2 IS NULL OR r.arm = ?2) ORDER BY r.id", (state, arm))
        return [Reservation(**dict(row)) for row in rows]

    def spent_by_arm(self) -> dict[str, int]:
        """Settled micro-dollars per arm, for every arm that has reserved (zero if nothing is settled yet)."""
        return dict(self._conn.execute(_SPENT_SQL.format(group="arm", where="")).fetchall())

    def spent_by_round(self) -> dict[int, int]:
        """Settled micro-dollars per round, for the reservations made with a round."""
        return dict(self._conn.execute(_SPENT_SQL.format(group="round", where="WHERE r.round IS NOT NULL")).fetchall())

    def entries(self, reservation_id: int | None = None) -> list[Entry]:
        """The journal, oldest first; only one reservation's rows if ``reservation_id`` is given."""
        rows = self._conn.execute("SELECT * FROM entries WHERE ?1 IS NULL OR reservation_id = ?1 ORDER BY id",
                                  (reservation_id,))
        return [Entry(**dict(row)) for row in rows]

    # --- steps: idempotency for external actions -----------------------------------------------------

    def step_state(self, key: str) -> str | None:
        """``None`` if the step never began, else ``'started'`` or ``'done'``."""
        row = self._conn.execute("SELECT state FROM steps WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["state"]

    def begin_step(self, key: str) -> bool:
        """Record that a step starts; True if it is new, False if a killed run had started it.

        Raises
        ------
        InvalidTransitionError
            If the step is already done (read its result with :meth:`step_result`).
        """
        key = _check_key(key, "begin_step")
        with self.atomic():
            state = self.step_state(key)
            if state == "done":
                raise InvalidTransitionError(f"Step {key!r} is already done; read its result with "
                                             f"step_result({key!r}).", from_state="done", to_state="started")
            if state is None:
                self._conn.execute("INSERT INTO steps (key, state, started_at) VALUES (?, 'started', ?)",
                                   (key, self._now()))
            return state is None

    def finish_step(self, key: str, result: dict[str, Any]) -> bool:
        """Mark a started step done with its ``result``; False if it was already done with that result.

        Raises
        ------
        InvalidTransitionError
            If the step never began.
        IdempotencyConflictError
            If the step is done with a different result.
        """
        data = _dumps(result, "result", "finish_step")
        with self.atomic():
            row = self._conn.execute("SELECT state, result FROM steps WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise InvalidTransitionError(f"Step {key!r} was never begun; call begin_step({key!r}) before the "
                                             "action.", from_state=None, to_state="done")
            if row["state"] == "done":
                if row["result"] != data:
                    raise IdempotencyConflictError(f"Step {key!r} is already done with another result.", key=key)
                return False
            self._conn.execute("UPDATE steps SET state = 'done', result = ?, done_at = ? WHERE key = ?",
                               (data, self._now(), key))
            return True

    def step_result(self, key: str) -> dict[str, Any] | None:
        """The result of a done step, or None if it is not done."""
        row = self._conn.execute("SELECT result FROM steps WHERE key = ? AND state = 'done'", (key,)).fetchone()
        return None if row is None else json.loads(row["result"])

    # --- batches and approvals -----------------------------------------------------------------------

    def add_batch(self, batch_id: str, *, round: int | None, reservation_id: int | None, payload: dict[str, Any],
                  price_per_item_micro: int, overlap: int, total_micro: int) -> BatchRecord:
        """Record a proposed batch; adding the same batch again returns it unchanged.

        Prices are micro-dollars: ``price_per_item_micro`` per label, ``total_micro`` for the batch.

        Raises
        ------
        ReservationNotFoundError
            If ``reservation_id`` is given and does not exist.
        IdempotencyConflictError
            If ``batch_id`` exists with different contents.
        """
        _check_key(batch_id, "add_batch")
        price = _check_micro(price_per_item_micro, "price_per_item_micro", "add_batch")
        total = _check_micro(total_micro, "total_micro", "add_batch")
        _check_micro(overlap, "overlap", "add_batch", minimum=1, unit="")
        _check_round(round, "add_batch")
        values = (round, reservation_id, _dumps(payload, "payload", "add_batch"), price, int(overlap), total)
        with self.atomic():
            if reservation_id is not None:
                self.reservation(reservation_id)
            row = self._conn.execute("SELECT round, reservation_id, payload, price_per_item_micro, overlap, total_micro"
                                     " FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is not None and tuple(row) != values:
                raise IdempotencyConflictError(f"Batch {batch_id!r} already exists with other contents; propose it "
                                               "under a new id.", key=batch_id)
            if row is None:
                now = self._now()
                self._conn.execute(
                    "INSERT INTO batches (batch_id, round, reservation_id, state, payload, price_per_item_micro,"
                    " overlap, total_micro, created_at, updated_at) VALUES (?, ?, ?, 'proposed', ?, ?, ?, ?, ?, ?)",
                    (batch_id, *values, now, now))
            return self.batch(batch_id)

    def batch(self, batch_id: str) -> BatchRecord:
        """The batch with this id.

        Raises
        ------
        BatchNotFoundError
            If there is none.
        """
        row = self._conn.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None:
            raise BatchNotFoundError(f"Batch {batch_id!r} not found; list batches with "
                                     "`python -m budget.controller proposals`", batch_id=batch_id)
        return _batch_record(row)

    def batches(self, state: str | None = None, *, round: int | None = None) -> list[BatchRecord]:
        """Batches, oldest first, optionally only those in ``state`` and/or of one ``round``."""
        _check_choice(state, BATCH_STATES, "state", "batches")
        rows = self._conn.execute("SELECT * FROM batches WHERE (?1 IS NULL OR state = ?1)"
                                  " AND (?2 IS NULL OR round = ?2) ORDER BY created_at, rowid", (state, round))
        return [_batch_record(row) for row in rows]

    def set_batch_state(self, batch_id: str, state: str, receipt: dict[str, Any] | None = None) -> bool:
        """Move a batch along approved -> pushed -> partial -> done, storing ``receipt`` if given.

        Setting the state a batch is already in changes nothing but the receipt, and returns False.
        Decisions go through :meth:`approve` and :meth:`reject`.

        Raises
        ------
        InvalidTransitionError
            If the batch's state cannot reach ``state`` (e.g. pushing a batch nobody approved).
        BatchNotFoundError
            If there is no such batch.
        """
        _check_choice(state, BATCH_STATES, "state", "set_batch_state")
        if state in ("approved", "rejected", "proposed"):
            raise ValueError(f"set_batch_state cannot set {state!r}; use approve() or reject() for decisions.")
        data = None if receipt is None else _dumps(receipt, "receipt", "set_batch_state")
        with self.atomic():
            current = self.batch(batch_id).state
            if current != state and state not in _BATCH_NEXT[current]:
                allowed = ", ".join(repr(s) for s in _BATCH_NEXT[current]) or "nothing"
                raise InvalidTransitionError(f"Batch {batch_id!r} cannot go from {current!r} to {state!r}; from "
                                             f"{current!r} it can go to {allowed}.", from_state=current, to_state=state)
            self._conn.execute("UPDATE batches SET state = ?, receipt = COALESCE(?, receipt), updated_at = ?"
                               " WHERE batch_id = ?", (state, data, self._now(), batch_id))
            return current != state

    def approve(self, batch_id: str, *, by: str, why: str = "") -> bool:
        """Approve a proposed batch; True if this call approved it.

        Approving a batch that is already approved (or pushed, or done) is a no-op returning False,
        so two approvals never push twice.

        Raises
        ------
        InvalidTransitionError
            If the batch was rejected.
        BatchNotFoundError
            If there is no such batch.
        """
        with self.atomic():
            current = self.batch(batch_id).state
            if current == "rejected":
                raise InvalidTransitionError(f"Batch {batch_id!r} was rejected and cannot be approved; propose a new "
                                             "batch.", from_state=current, to_state="approved")
            if current == "proposed":
                self._decide(batch_id, "approved", by, why)
            return current == "proposed"

    def reject(self, batch_id: str, *, by: str, why: str) -> bool:
        """Reject a proposed batch and, in the same transaction, release and close its reservation.

        Returns False (and changes nothing) if the batch was already rejected.

        Raises
        ------
        InvalidTransitionError
            If the batch is past the proposal (approved, pushed, ...).
        BatchNotFoundError
            If there is no such batch.
        """
        with self.atomic():
            record = self.batch(batch_id)
            if record.state == "rejected":
                return False
            if record.state != "proposed":
                raise InvalidTransitionError(f"Batch {batch_id!r} is {record.state!r}; only a proposed batch can be "
                                             "rejected.", from_state=record.state, to_state="rejected")
            self._decide(batch_id, "rejected", by, why)
            if record.reservation_id is not None and self.reservation(record.reservation_id).state == "open":
                self._release(record.reservation_id, None, f"reject:{batch_id}", close=True)
            return True

    def approvals(self, batch_id: str) -> list[Approval]:
        """Decisions on a batch, oldest first."""
        self.batch(batch_id)
        rows = self._conn.execute('SELECT batch_id, decision, "by", why, at FROM approvals WHERE batch_id = ?'
                                  " ORDER BY id", (batch_id,))
        return [Approval(**dict(row)) for row in rows]

    # --- labels --------------------------------------------------------------------------------------

    def record_labels(self, batch_id: str, rows: Iterable[LabelRow]) -> int:
        """Store bought answers for a batch; return how many were new.

        An answer already stored for the same ``(external_id, annotator)`` is ignored, so pulling again
        never records a label twice.

        Raises
        ------
        BatchNotFoundError
            If there is no such batch.
        """
        new = 0
        with self.atomic():
            self.batch(batch_id)
            now = self._now()
            for row in rows:
                if row.batch_id not in (None, batch_id):
                    raise ValueError(f"Label row {row.external_id!r} belongs to batch {row.batch_id!r}, "
                                     f"not {batch_id!r}.")
                new += self._conn.execute(
                    "INSERT OR IGNORE INTO labels (item_id, external_id, annotator, label, lead_time_s, batch_id, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (int(row.item_id), row.external_id, row.annotator, row.label, row.lead_time_s, batch_id, now),
                ).rowcount
        return new

    def labels(self, batch_id: str | None = None) -> list[LabelRow]:
        """Bought answers, oldest first, optionally of one batch."""
        rows = self._conn.execute("SELECT item_id, external_id, annotator, label, lead_time_s, batch_id, at"
                                  " FROM labels WHERE ?1 IS NULL OR batch_id = ?1 ORDER BY id", (batch_id,))
        return [LabelRow(**dict(row)) for row in rows]

    # --- rounds, metrics, events ---------------------------------------------------------------------

    def start_round(self, round: int, arm: str, decision: dict[str, Any]) -> bool:
        """Record that a round starts with the policy's ``decision``; False if it was already recorded.

        Raises
        ------
        IdempotencyConflictError
            If the round was recorded with another arm.
        """
        _check_round(round, "start_round", optional=False)
        data = _dumps(decision, "decision", "start_round")
        with self.atomic():
            row = self._conn.execute("SELECT arm FROM rounds WHERE round = ?", (round,)).fetchone()
            if row is not None and row["arm"] != arm:
                raise IdempotencyConflictError(f"Round {round} was started with arm {row['arm']!r}, not {arm!r}.",
                                               key=f"round:{round}")
            if row is None:
                self._conn.execute("INSERT INTO rounds (round, arm, decision, state, started_at)"
                                   " VALUES (?, ?, ?, 'started', ?)", (round, arm, data, self._now()))
            return row is None

    def finish_round(self, round: int, summary: dict[str, Any]) -> bool:
        """Mark a round done with its ``summary``; False if it was already done.

        Raises
        ------
        InvalidTransitionError
            If the round was never started.
        """
        data = _dumps(summary, "summary", "finish_round")
        with self.atomic():
            row = self._conn.execute("SELECT state FROM rounds WHERE round = ?", (round,)).fetchone()
            if row is None:
                raise InvalidTransitionError(f"Round {round!r} was never started; call start_round first.",
                                             from_state=None, to_state="done")
            if row["state"] == "done":
                return False
            self._conn.execute("UPDATE rounds SET state = 'done', ended_at = ?, summary = ? WHERE round = ?",
                               (self._now(), data, round))
            return True

    def rounds(self) -> list[RoundRecord]:
        """Every round, in order."""
        return [_round_record(row) for row in self._conn.execute("SELECT * FROM rounds ORDER BY round")]

    def record_metric(self, round: int, name: str, value: float, split: str = "dev") -> None:
        """Store a score measured after ``round`` on ``split``; measuring it again replaces it."""
        _check_round(round, "record_metric", optional=False)
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"The 'value' parameter of record_metric must be a finite number. Got {value!r} instead.")
        with self.atomic():
            self._conn.execute("INSERT INTO metrics (round, name, split, value, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT"
                               " (round, name, split) DO UPDATE SET value = excluded.value, at = excluded.at",
                               (round, name, split, float(value), self._now()))

    def metrics(self, split: str | None = None) -> list[MetricRow]:
        """Scores, by round then name, optionally of one ``split``."""
        rows = self._conn.execute("SELECT round, name, split, value, at FROM metrics WHERE ?1 IS NULL OR split = ?1"
                                  " ORDER BY round, name, id", (split,))
        return [MetricRow(**dict(row)) for row in rows]

    def log_event(self, kind: str, **data: Any) -> int:
        """Append an event and return its id; values that are not JSON are stored as their ``str``."""
        text = json.dumps(data, sort_keys=True, default=str)
        with self.atomic():
            return self._conn.execute("INSERT INTO events (at, kind, data) VALUES (?, ?, ?)",
                                      (self._now(), kind, text)).lastrowid

    def events(self, kind: str | None = None) -> list[Event]:
        """The event log, oldest first, optionally of one ``kind``."""
        rows = self._conn.execute("SELECT * FROM events WHERE ?1 IS NULL OR kind = ?1 ORDER BY id", (kind,))
        return [Event(row["id"], row["at"], row["kind"], json.loads(row["data"])) for row in rows]

    def snapshot(self) -> LedgerSnapshot:
        """Totals, spend per arm and per round, rounds and dev metrics, read in one transaction."""
        with _Transaction(self, "BEGIN DEFERRED"):
            return LedgerSnapshot(totals=self.totals(), spent_by_arm=self.spent_by_arm(),
                                  spent_by_round=self.spent_by_round(), rounds=tuple(self.rounds()),
                                  dev_metrics=tuple(self.metrics("dev")))

    # --- helpers -------------------------------------------------------------------------------------

    def _now(self) -> str:
        now = self.clock()
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        return now.isoformat(timespec="microseconds")

    def _insert_entry(self, kind: str, amount: int, reservation_id: int | None, key: str | None, note: str) -> int:
        return self._conn.execute(
            "INSERT INTO entries (at, kind, reservation_id, amount_micro, key, note) VALUES (?, ?, ?, ?, ?, ?)",
            (self._now(), kind, reservation_id, amount, key, note)).lastrowid

    def _entry_by_key(self, key: str) -> sqlite3.Row | None:
        return self._conn.execute("SELECT * FROM entries WHERE key = ?", (key,)).fetchone()

    def _check_cap(self, amount: int, what: str) -> None:
        totals = self.totals()
        if amount > totals.available:
            raise CapExceededError(
                f"{what} would pass the cap: {format_usd(totals.committed)} of {format_usd(totals.granted)} "
                "already reserved or spent.",
                requested_micro=amount, committed_micro=totals.committed, granted_micro=totals.granted)

    def _open_reservation(self, reservation_id: int, verb: str) -> Reservation:
        held = self.reservation(reservation_id)
        if held.state == "closed":
            raise ReservationClosedError(f"Reservation {held.id} ({held.key!r}) is closed; cannot {verb} it. Reserve "
                                         "again for new spending.", reservation_id=held.id)
        return held

    def _release(self, reservation_id: int, amount: int | None, key: str, *, close: bool) -> int:
        row = self._entry_by_key(key)
        if row is not None:
            _check_same_entry(row, key, "release", reservation_id, amount)
            return row["amount_micro"]
        held = self._open_reservation(reservation_id, "release from")
        remaining = held.remaining_micro
        if amount is not None and amount > remaining:
            raise ValueError(f"Cannot release {format_usd(amount)} from reservation {held.id}: only "
                             f"{format_usd(remaining)} remains.")
        amount = remaining if amount is None else amount
        self._insert_entry("release", amount, held.id, key, "")
        if close or amount == remaining:
            self._conn.execute("UPDATE reservations SET state = 'closed', closed_at = ? WHERE id = ?",
                               (self._now(), held.id))
        return amount

    def _decide(self, batch_id: str, decision: str, by: str, why: str) -> None:
        if not isinstance(by, str) or not by:
            raise ValueError(f"Say who decided: by= must be a non-empty str. Got {by!r} instead.")
        now = self._now()
        self._conn.execute("UPDATE batches SET state = ?, updated_at = ? WHERE batch_id = ?", (decision, now, batch_id))
        self._conn.execute('INSERT INTO approvals (batch_id, decision, "by", why, at) VALUES (?, ?, ?, ?, ?)',
                           (batch_id, decision, by, why, now))


def _check_is_ledger(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file that is not SQLite, or an SQLite database that is not a ledger (before writing to it)."""
    way_out = "move it away or point --run-dir at another folder"
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        sets = ({row[0] for row in conn.execute("SELECT DISTINCT migration_set FROM _migrations")}
                if "_migrations" in tables else set())
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LedgerFileError(f"'{path}' is not a ledger this tool can read ({exc}); {way_out}.") from exc
    if tables and LEDGER_MIGRATIONS.name not in sets:
        conn.close()
        raise LedgerFileError(f"'{path}' is an SQLite database of something else (tables {', '.join(sorted(tables))}"
                              f"), not a run's ledger; {way_out}.")


# a reservation with its journal sums; callers append WHERE / ORDER BY on ``r``
_RESERVATIONS_SQL = "SELECT r.id, r.key, r.arm, r.purpose, r.round, r.estimate_micro, r.amount_micro, " + ", ".join(
    f"(SELECT COALESCE(SUM(amount_micro), 0) FROM entries WHERE reservation_id = r.id AND kind = '{kind}') AS {column}"
    for kind, column in (("reserve", "reserved_micro"), ("settle", "settled_micro"), ("release", "released_micro"))
) + ", r.state, r.created_at, r.closed_at FROM reservations r"
# settled micro-dollars grouped by a reservation column
_SPENT_SQL = ("SELECT r.{group}, COALESCE(SUM(e.amount_micro), 0) FROM reservations r LEFT JOIN entries e"
              " ON e.reservation_id = r.id AND e.kind = 'settle' {where} GROUP BY r.{group} ORDER BY r.{group}")
