"""Named schema migrations, each recorded in the database in the same transaction that applies it.

After sqlite-utils' ``migrations.py``: a :class:`Migrations` set registers functions by decorator,
in order, and :meth:`Migrations.apply` runs the ones a database has not seen yet. Every migration
and its row in ``_migrations`` commit together under ``BEGIN IMMEDIATE``, so two processes opening
the same new file apply each migration once, and a crash leaves either both or neither.

A migration is never edited after it ships; change the schema by adding the next one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Migrations", "AppliedMigration", "LEDGER_MIGRATIONS"]

MigrationFn = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class AppliedMigration:
    """One row of ``_migrations``: which set, which migration, and when (ISO-8601 UTC)."""

    migration_set: str
    name: str
    applied_at: str


class Migrations:
    """An ordered set of named migrations.

    Parameters
    ----------
    name : str
        Name of the set, recorded beside each migration so several sets can share a database.

    Examples
    --------
    >>> m = Migrations("demo")
    >>> @m()
    ... def m001_create(conn):
    ...     conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> m.apply(conn)
    ['m001_create']
    >>> m.apply(conn)
    []
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[tuple[str, MigrationFn]] = []

    def __repr__(self) -> str:
        return f"Migrations({self.name!r})"

    def __call__(self, *, name: str | None = None) -> Callable[[MigrationFn], MigrationFn]:
        """Register the decorated function as the next migration, under ``name`` or its own name."""

        def register(fn: MigrationFn) -> MigrationFn:
            migration_name = name or fn.__name__
            if migration_name in self.names:
                raise ValueError(f"Migration {migration_name!r} is already registered in {self!r}; pick a new name.")
            self._migrations.append((migration_name, fn))
            return fn

        return register

    @property
    def names(self) -> list[str]:
        """Names of the registered migrations, in the order they apply."""
        return [name for name, _ in self._migrations]

    def applied(self, conn: sqlite3.Connection) -> list[AppliedMigration]:
        """Migrations of this set that ``conn``'s database has recorded, oldest first."""
        _ensure_table(conn)
        rows = conn.execute(
            "SELECT migration_set, name, applied_at FROM _migrations WHERE migration_set = ? ORDER BY rowid",
            (self.name,),
        ).fetchall()
        return [AppliedMigration(*row) for row in rows]

    def pending(self, conn: sqlite3.Connection) -> list[str]:
        """Names of the migrations ``conn``'s database has not applied yet."""
        done = {m.name for m in self.applied(conn)}
        return [name for name in self.names if name not in done]

    def apply(self, conn: sqlite3.Connection, *, clock: Callable[[], datetime] | None = None) -> list[str]:
        """Apply every pending migration, each in its own ``BEGIN IMMEDIATE`` transaction.

        ``conn`` must be outside a transaction (best opened with ``isolation_level=None``).

        Returns
        -------
        list of str
            Names of the migrations this call applied (empty when the database was up to date).
        """
        if conn.in_transaction:
            raise ValueError("Migrations.apply needs a connection outside any transaction; commit first.")
        clock = clock or _utcnow
        _ensure_table(conn)
        applied: list[str] = []
        for name, fn in self._migrations:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seen = conn.execute(
                    "SELECT 1 FROM _migrations WHERE migration_set = ? AND name = ?", (self.name, name)
                ).fetchone()
                if seen is None:
                    fn(conn)
                    conn.execute(
                        "INSERT INTO _migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
                        (self.name, name, _iso(clock())),
                    )
                    applied.append(name)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return applied


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL,"
        " PRIMARY KEY (migration_set, name))"
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """ISO-8601 in UTC; a naive datetime is taken to be UTC already."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


# --- the ledger's schema ---------------------------------------------------------------------------

LEDGER_MIGRATIONS = Migrations("ledger")


def _append_only(conn: sqlite3.Connection, table: str) -> None:
    for action in ("UPDATE", "DELETE"):
        conn.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def _execute_all(conn: sqlite3.Connection, statements: list[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def _create_money_tables(conn: sqlite3.Connection) -> None:
    """m001, part 1: the append-only journal ``entries`` and the ``reservations`` it draws on."""
    _execute_all(conn, [
        # the journal: every movement of money, never updated or deleted
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'settle', 'release')),
            reservation_id INTEGER REFERENCES reservations (id),
            amount_micro INTEGER NOT NULL CHECK (typeof(amount_micro) = 'integer' AND amount_micro >= 0),
            key TEXT UNIQUE,
            note TEXT NOT NULL DEFAULT '',
            CHECK ((kind = 'grant') = (reservation_id IS NULL)))""",
        "CREATE INDEX entries_by_reservation ON entries (reservation_id)",
        """CREATE TABLE reservations (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            arm TEXT NOT NULL,
            purpose TEXT NOT NULL DEFAULT '',
            round INTEGER,
            estimate_micro INTEGER NOT NULL CHECK (estimate_micro >= 0),
            amount_micro INTEGER NOT NULL CHECK (amount_micro >= 0),
            state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
            created_at TEXT NOT NULL,
            closed_at TEXT)""",
    ])


def _create_batch_tables(conn: sqlite3.Connection) -> None:
    """m001, part 2: ``batches``, their ``approvals``, and the ``labels`` bought with them."""
    _execute_all(conn, [
        """CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY,
            round INTEGER,
            reservation_id INTEGER REFERENCES reservations (id),
            state TEXT NOT NULL
                CHECK (state IN ('proposed', 'approved', 'rejected', 'pushed', 'partial', 'done')),
            payload TEXT NOT NULL,
            price_per_item_micro INTEGER NOT NULL CHECK (price_per_item_micro >= 0),
            overlap INTEGER NOT NULL CHECK (overlap >= 1),
            total_micro INTEGER NOT NULL CHECK (total_micro >= 0),
            receipt TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        """CREATE TABLE approvals (
            id INTEGER PRIMARY KEY,
            batch_id TEXT NOT NULL REFERENCES batches (batch_id),
            decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
            "by" TEXT NOT NULL,
            why TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL)""",
        """CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL,
            external_id TEXT NOT NULL,
            annotator TEXT NOT NULL,
            label TEXT,
            lead_time_s REAL,
            batch_id TEXT NOT NULL REFERENCES batches (batch_id),
            at TEXT NOT NULL,
            UNIQUE (external_id, annotator))""",
        "CREATE INDEX labels_by_batch ON labels (batch_id)",
    ])


def _create_run_tables(conn: sqlite3.Connection) -> None:
    """m001, part 3: the run's ``steps``, ``rounds``, ``metrics`` and ``events``."""
    _execute_all(conn, [
        """CREATE TABLE steps (
            key TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('started', 'done')),
            result TEXT,
            started_at TEXT NOT NULL,
            done_at TEXT)""",
        """CREATE TABLE rounds (
            round INTEGER PRIMARY KEY,
            arm TEXT NOT NULL,
            decision TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('started', 'done')),
            started_at TEXT NOT NULL,
            ended_at TEXT,
            summary TEXT)""",
        """CREATE TABLE metrics (
            id INTEGER PRIMARY KEY,
            round INTEGER NOT NULL,
            name TEXT NOT NULL,
            split TEXT NOT NULL,
            value REAL NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (round, name, split))""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL)""",
        "CREATE INDEX events_by_kind ON events (kind)",
    ])


@LEDGER_MIGRATIONS()
def m001_initial(conn: sqlite3.Connection) -> None:
    """The journal, reservations, batches and approvals, labels, steps, rounds, metrics and events.

    Split into helpers by group of tables; the statements and their order are those m001 shipped with.
    """
    _create_money_tables(conn)
    _create_batch_tables(conn)
    _create_run_tables(conn)
    for table in ("entries", "approvals", "labels", "events"):
        _append_only(conn, table)


@LEDGER_MIGRATIONS()
def m002_drop_metrics(conn: sqlite3.Connection) -> None:
    """Drop the ``metrics`` table: nothing read it (a round's scores are in its summary in ``rounds``)."""
    conn.execute("DROP TABLE IF EXISTS metrics")
