"""Fixtures shared by every test package."""

import pytest

from budget.ledger import Ledger


@pytest.fixture
def fresh_ledger():
    """An empty ledger in memory, closed after the test."""
    ledger = Ledger(":memory:")
    yield ledger
    ledger.close()


@pytest.fixture
def ledger_path(tmp_path):
    """Path of a ledger file that does not exist yet, in the test's tmp folder."""
    return tmp_path / "ledger.db"
