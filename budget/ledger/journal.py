"""The ledger's journal: money granted, reserved, settled and released, in micro-dollars.

Money moves through an append-only journal (table ``entries``)::

    grant    adds to the budget                     granted  += amount
    reserve  holds money for a planned spend        reserved += amount   (the cap is checked here)
    settle   records money actually spent           reserved -= amount, spent += amount
    release  gives back what a reservation left     reserved -= amount

so that ``available = granted - reserved - spent`` never goes below zero. The cap check and the
insert run in one ``BEGIN IMMEDIATE`` transaction. :class:`Journal` is the money part of
:class:`budget.ledger.Ledger`.
"""

from __future__ import annotations

import sqlite3

from budget._validation import _check_choice, _check_key, _check_micro, _check_round, _check_same_entry
from budget.exceptions import (
    CapExceededError,
    IdempotencyConflictError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from budget.ledger.db import LedgerDB
from budget.ledger.records import Entry, Reservation, Totals
from budget.money import format_usd

__all__ = ["Journal"]


class Journal(LedgerDB):
    """Grants, reservations, settlements and releases; totals and spend per arm and round."""

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

    # --- helpers -------------------------------------------------------------------------------------

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


# a reservation with its journal sums; callers append WHERE / ORDER BY on ``r``
_RESERVATIONS_SQL = "SELECT r.id, r.key, r.arm, r.purpose, r.round, r.estimate_micro, r.amount_micro, " + ", ".join(
    f"(SELECT COALESCE(SUM(amount_micro), 0) FROM entries WHERE reservation_id = r.id AND kind = '{kind}') AS {column}"
    for kind, column in (("reserve", "reserved_micro"), ("settle", "settled_micro"), ("release", "released_micro"))
) + ", r.state, r.created_at, r.closed_at FROM reservations r"
# settled micro-dollars grouped by a reservation column
_SPENT_SQL = ("SELECT r.{group}, COALESCE(SUM(e.amount_micro), 0) FROM reservations r LEFT JOIN entries e"
              " ON e.reservation_id = r.id AND e.kind = 'settle' {where} GROUP BY r.{group} ORDER BY r.{group}")
