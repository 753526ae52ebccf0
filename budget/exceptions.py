"""Errors raised by the ledger and the library (no click here: the command line's own bad-input error,
``InputError``, lives in :mod:`budget.cli_errors`).

The tree (after httpx)::

    LedgerError                     the ledger refused a write or could not find a record
    ├── CapExceededError            a reservation (or a settlement's excess) would pass the cap
    ├── BatchNotFoundError          no batch with that id
    ├── ReservationNotFoundError    no reservation with that id
    ├── InvalidTransitionError      a batch, step or round cannot move from its state to the one asked
    ├── IdempotencyConflictError    a key already used for a different write
    ├── ReservationClosedError      settle or release on a closed reservation
    └── LedgerFileError             a ledger file that is corrupt, or a database of something else
    RunNotFoundError (FileNotFoundError)  a run folder without a ledger
    DecisionError (ValueError)      a batch that cannot be approved or rejected (unknown, or decided)
    AwaitingApproval                a round waits for a lead's approval: the run exits, resumes later
    AwaitingAnnotators              a pushed batch is not finished within the wait: the run exits
    UsageError (ValueError)         the library cannot do what was asked as asked (another project's run
                                    folder, a new run's budget below one label); the CLI shows one line

Misuse (a float or negative amount, an unknown state name) raises ``ValueError`` or ``TypeError``
instead, naming the parameter and what it accepts. Money in messages is formatted with
:func:`budget.money.format_usd`; money in attributes is int micro-dollars.
"""

from __future__ import annotations

from budget.money import format_usd

__all__ = [
    "AwaitingApproval",
    "AwaitingAnnotators",
    "DecisionError",
    "RunNotFoundError",
    "UsageError",
    "LedgerFileError",
    "LedgerError",
    "CapExceededError",
    "BatchNotFoundError",
    "ReservationNotFoundError",
    "InvalidTransitionError",
    "IdempotencyConflictError",
    "ReservationClosedError",
]


class UsageError(ValueError):
    """Raised by the library when a request cannot be met as asked; the message is one line with the fix."""


class RunNotFoundError(FileNotFoundError):
    """Raised when a run folder has no ledger."""


class DecisionError(ValueError):
    """Raised when a batch cannot be approved or rejected (unknown, or already decided otherwise)."""


class AwaitingApproval(Exception):
    """Raised when a batch waits for a project lead's approval; the run exits and resumes later."""

    def __init__(self, batch_id: str, total_micro: int, n_items: int) -> None:
        super().__init__(f"Batch {batch_id} ({n_items} items, {format_usd(total_micro)}) waits for approval.")
        self.batch_id, self.total_micro, self.n_items = batch_id, total_micro, n_items


class AwaitingAnnotators(Exception):
    """Raised when a pushed batch is not finished within the configured wait; the run resumes later."""

    def __init__(self, batch_id: str, waiting: int) -> None:
        super().__init__(f"Batch {batch_id}: {waiting} items still wait for annotators.")
        self.batch_id, self.waiting = batch_id, waiting


class LedgerError(Exception):
    """Raised when the ledger refuses a write or cannot find a record."""


class LedgerFileError(LedgerError):
    """Raised when a ledger file is corrupt, or is an SQLite database of something else."""


class CapExceededError(LedgerError):
    """Raised when a reservation, or the excess of a settlement, would pass the granted budget."""

    def __init__(self, message: str, *, requested_micro: int, committed_micro: int, granted_micro: int) -> None:
        super().__init__(message)
        self.requested_micro = requested_micro
        self.committed_micro = committed_micro
        self.granted_micro = granted_micro


class BatchNotFoundError(LedgerError):
    """Raised when no batch has the given id."""

    def __init__(self, message: str, *, batch_id: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id


class ReservationNotFoundError(LedgerError):
    """Raised when no reservation has the given id."""

    def __init__(self, message: str, *, reservation_id: int) -> None:
        super().__init__(message)
        self.reservation_id = reservation_id


class InvalidTransitionError(LedgerError):
    """Raised when a batch, step or round is asked to move to a state its current state cannot reach."""

    def __init__(self, message: str, *, from_state: str | None, to_state: str) -> None:
        super().__init__(message)
        self.from_state = from_state
        self.to_state = to_state


class IdempotencyConflictError(LedgerError):
    """Raised when an idempotency key is reused for a different write."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class ReservationClosedError(LedgerError):
    """Raised when money is settled against, or released from, a closed reservation."""

    def __init__(self, message: str, *, reservation_id: int) -> None:
        super().__init__(message)
        self.reservation_id = reservation_id
