"""Fixtures shared by every test package."""

import os

# Tiny models gain nothing from threads, and OpenMP threads spinning against servers and other
# processes on 2 cores slow torch down many times over; subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from budget.ledger import Ledger  # noqa: E402


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
