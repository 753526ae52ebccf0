"""The ledger's database: opening the file, transactions and timestamps.

:class:`LedgerDB` is the base every part of :class:`budget.ledger.Ledger` builds on (the journal,
the batches, the run log): one SQLite connection, opened with the named migrations of
:mod:`budget.ledger.migrations` applied, and :meth:`LedgerDB.atomic` transactions that nest as savepoints.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from budget.exceptions import LedgerFileError
from budget.ledger.migrations import LEDGER_MIGRATIONS

__all__ = ["LedgerDB"]


class _Transaction:
    """``BEGIN`` at the outermost level, ``SAVEPOINT`` inside; commit on success, roll back on error."""

    def __init__(self, db: LedgerDB, begin: str) -> None:
        self._db, self._begin, self._savepoint = db, begin, None

    def __enter__(self) -> LedgerDB:
        db = self._db
        if db._depth == 0:
            db._conn.execute(self._begin)
        else:
            self._savepoint = f"sp{db._depth}"
            db._conn.execute(f"SAVEPOINT {self._savepoint}")
        db._depth += 1
        return db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._db._depth -= 1
        conn = self._db._conn
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


class LedgerDB:
    """One connection to a ledger file, migrated to the current schema; see :class:`budget.ledger.Ledger`.

    Parameters
    ----------
    path : str or Path
        The database file (created if missing), or ``":memory:"``.
    clock : callable returning datetime, optional
        Source of timestamps (naive datetimes are taken as UTC). Defaults to the system clock.
    timeout : float, default=30.0
        Seconds a write waits for another process's transaction before giving up.

    Raises
    ------
    LedgerFileError
        If the file is not SQLite, or is an SQLite database of something else.
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
        return f"{type(self).__name__}({self.path!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection; closing twice is harmless."""
        self._conn.close()

    def atomic(self) -> _Transaction:
        """A context manager: one ``BEGIN IMMEDIATE`` transaction, or a ``SAVEPOINT`` when nested.

        Everything inside commits together or, if the block raises, not at all.
        """
        return _Transaction(self, "BEGIN IMMEDIATE")

    def _reading(self) -> _Transaction:
        """A read transaction (``BEGIN DEFERRED``): several reads see one state of the file."""
        return _Transaction(self, "BEGIN DEFERRED")

    def _now(self) -> str:
        now = self.clock()
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        return now.isoformat(timespec="microseconds")


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
