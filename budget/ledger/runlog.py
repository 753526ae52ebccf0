"""The ledger's run log: steps of external actions, rounds, and events.

What a killed run needs to resume: a step (push a batch, train a model) is recorded before it
starts and marked done with its result after it ends, so it is never done twice; a round is
started with the policy's decision and finished with its summary. :class:`RunLog` is that part of
:class:`budget.ledger.Ledger`.
"""

from __future__ import annotations

import json
from typing import Any

from budget._validation import _check_key, _check_round, _dumps
from budget.exceptions import IdempotencyConflictError, InvalidTransitionError
from budget.ledger.db import LedgerDB
from budget.ledger.records import Event, RoundRecord, _round_record
from budget.ledger.round_records import RoundPlan, RoundSummary

__all__ = ["RunLog"]


class RunLog(LedgerDB):
    """Steps, rounds and the event log."""

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

    # --- rounds --------------------------------------------------------------------------------------

    def start_round(self, round: int, arm: str, plan: RoundPlan) -> bool:
        """Record that a round starts with the policy's decision (its ``plan``); False if it was already recorded.

        Raises
        ------
        IdempotencyConflictError
            If the round was recorded with another arm.
        """
        _check_round(round, "start_round", optional=False)
        data = _dumps(plan.to_json(), "plan", "start_round")
        with self.atomic():
            row = self._conn.execute("SELECT arm FROM rounds WHERE round = ?", (round,)).fetchone()
            if row is not None and row["arm"] != arm:
                raise IdempotencyConflictError(f"Round {round} was started with arm {row['arm']!r}, not {arm!r}.",
                                               key=f"round:{round}")
            if row is None:
                self._conn.execute("INSERT INTO rounds (round, arm, decision, state, started_at)"
                                   " VALUES (?, ?, ?, 'started', ?)", (round, arm, data, self._now()))
            return row is None

    def finish_round(self, round: int, summary: RoundSummary) -> bool:
        """Mark a round done with its ``summary``; False if it was already done.

        Raises
        ------
        InvalidTransitionError
            If the round was never started.
        """
        data = _dumps(summary.to_json(), "summary", "finish_round")
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

    # --- events --------------------------------------------------------------------------------------

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
