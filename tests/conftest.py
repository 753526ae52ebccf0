"""Fixtures shared by every test package."""

import os

# Tiny models gain nothing from threads, and OpenMP threads spinning against servers and other
# processes on 2 cores slow torch down many times over; subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from budget.ledger import Ledger  # noqa: E402


def pytest_collection_modifyitems(items):
    """Keep each test file on one pytest-xdist worker (its module fixtures run once) and every test against the
    annotation servers on one worker, one after another, as they were written (they share accounts and
    datasets): ``scripts/test.sh`` runs ``-n 2 --dist loadgroup``."""
    for item in items:
        group = "servers" if "integration" in item.path.parts else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


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
