"""Fixtures shared by every test package."""

import os

# Tiny models gain nothing from threads, and OpenMP threads spinning against servers and other
# processes on 2 cores slow torch down many times over; subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from budget.ledger import Ledger  # noqa: E402


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown, and never called, without it
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (``scripts/test.sh`` runs two workers): each test file runs on one worker (its module
    fixtures run once), and every test against the annotation servers runs on one worker, one after another, as
    they were written. An explicit ``--dist`` other than the default ``load`` is honoured instead.

    Written here because pytest-xdist's own ``--dist loadgroup`` does not group under pytest 9 (it renames
    ``item._nodeid``, which pytest 9 no longer reads), and ``loadfile`` cannot put several files together."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFileServersTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "servers" if path.startswith("tests/integration/") else path

    return ByFileServersTogether(config, log)


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
