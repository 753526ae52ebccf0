"""The ledger's batches: proposals, the decisions on them, and the labels bought with them.

A batch moves proposed -> approved (or rejected) -> pushed -> partial -> done; nothing is pushed
before it is approved, and rejecting a batch releases its reservation in the same transaction.
Bought answers are stored once per ``(external_id, annotator)``, so pulling again never records a
label twice. :class:`Batches` is that part of :class:`budget.ledger.Ledger`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from budget._validation import _check_choice, _check_key, _check_micro, _check_round, _dumps
from budget.exceptions import BatchNotFoundError, IdempotencyConflictError, InvalidTransitionError
from budget.ledger.db import LedgerDB
from budget.ledger.records import _BATCH_NEXT, BATCH_STATES, Approval, BatchRecord, LabelRow, _batch_record
from budget.ledger.round_records import BatchPayload

__all__ = ["Batches"]


class Batches(LedgerDB):
    """Batches and their approvals, and the labels bought for them.

    :meth:`reject` releases the batch's reservation through the journal
    (:class:`budget.ledger.journal.Journal`), which :class:`budget.ledger.Ledger` also inherits.
    """

    # --- batches and approvals -----------------------------------------------------------------------

    def add_batch(self, batch_id: str, *, round: int | None, reservation_id: int | None, payload: BatchPayload,
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
        values = (round, reservation_id, _dumps(payload.to_json(), "payload", "add_batch"), price, int(overlap), total)
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

    # --- helpers -------------------------------------------------------------------------------------

    def _decide(self, batch_id: str, decision: str, by: str, why: str) -> None:
        if not isinstance(by, str) or not by:
            raise ValueError(f"Say who decided: by= must be a non-empty str. Got {by!r} instead.")
        now = self._now()
        self._conn.execute("UPDATE batches SET state = ?, updated_at = ? WHERE batch_id = ?", (decision, now, batch_id))
        self._conn.execute('INSERT INTO approvals (batch_id, decision, "by", why, at) VALUES (?, ?, ?, ?, ?)',
                           (batch_id, decision, by, why, now))
