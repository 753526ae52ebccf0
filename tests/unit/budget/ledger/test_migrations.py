"""The ledger's schema migrations: an old ledger upgrades in place when it is opened."""

import sqlite3

from budget.ledger import Ledger
from budget.ledger.migrations import LEDGER_MIGRATIONS, Migrations, m001_initial
from budget.money import to_micro


def _tables(conn):
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_ledger_made_before_m002_loses_its_metrics_table_and_keeps_its_money(tmp_path):
    path = tmp_path / "ledger.sqlite"
    first_release = Migrations(LEDGER_MIGRATIONS.name)  # the schema as the first release shipped it
    first_release()(m001_initial)
    conn = sqlite3.connect(path, isolation_level=None)
    first_release.apply(conn)
    conn.execute("INSERT INTO entries (at, kind, amount_micro, key) VALUES ('2024-01-01', 'grant', 500000000, 'g')")
    conn.execute("INSERT INTO metrics (round, name, split, value, at) VALUES (1, 'macro_f1', 'dev', 0.5, 'x')")
    conn.close()

    with Ledger(path) as ledger:
        assert "metrics" not in _tables(ledger._conn)
        assert [m.name for m in LEDGER_MIGRATIONS.applied(ledger._conn)] == ["m001_initial", "m002_drop_metrics"]
        assert ledger.totals().granted == to_micro("500")


def test_a_new_ledger_has_no_metrics_table():
    with Ledger(":memory:") as ledger:
        assert "metrics" not in _tables(ledger._conn)
        assert {"entries", "reservations", "batches", "labels", "steps", "rounds", "events"} <= _tables(ledger._conn)
