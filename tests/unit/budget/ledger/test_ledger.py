import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from budget.decision import Decision
from budget.exceptions import (
    BatchNotFoundError,
    CapExceededError,
    IdempotencyConflictError,
    InvalidTransitionError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from budget.ledger import LabelRow, Ledger, Totals
from budget.ledger.migrations import LEDGER_MIGRATIONS, Migrations
from budget.ledger.round_records import BatchPayload, RoundPlan, RoundSummary
from budget.money import to_micro

USD = 1_000_000
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def funded(fresh_ledger):
    """A ledger granted $500."""
    fresh_ledger.grant(500 * USD, key="grant-1")
    return fresh_ledger


PAYLOAD = BatchPayload(item_ids=(1, 2, 3), why="three items", available_before_micro=500 * USD,
                       available_after_micro=499_400_000)


def _batch(ledger, batch_id="b1", reservation_id=None, **kwargs):
    args = dict(round=1, reservation_id=reservation_id, payload=PAYLOAD, price_per_item_micro=200_000,
                overlap=1, total_micro=600_000)
    args.update(kwargs)
    return ledger.add_batch(batch_id, **args)


# --- opening, migrations, transactions ----------------------------------------------------------


def test_opening_a_file_uses_wal_full_sync_and_records_migrations(ledger_path):
    with Ledger(ledger_path) as ledger:
        assert ledger._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert [m.name for m in LEDGER_MIGRATIONS.applied(ledger._conn)] == LEDGER_MIGRATIONS.names
        assert repr(ledger) == f"Ledger({str(ledger_path)!r})"
    with Ledger(ledger_path) as again:
        assert LEDGER_MIGRATIONS.pending(again._conn) == []


def test_migrations_apply_once_in_order_and_record_each():
    m = Migrations("demo")

    @m()
    def m001(conn):
        conn.execute("CREATE TABLE t (x INTEGER)")

    @m(name="m002_seed")
    def _(conn):
        conn.execute("INSERT INTO t VALUES (1)")

    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert m.apply(conn) == ["m001", "m002_seed"]
    assert m.apply(conn) == []
    assert [a.name for a in m.applied(conn)] == ["m001", "m002_seed"]
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1


def test_a_failing_migration_leaves_no_trace():
    m = Migrations("demo")

    @m()
    def m001_broken(conn):
        conn.execute("CREATE TABLE t (x INTEGER)")
        raise RuntimeError("boom")

    conn = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(RuntimeError, match="boom"):
        m.apply(conn)
    assert m.pending(conn) == ["m001_broken"]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None


def test_migration_names_must_be_unique():
    m = Migrations("demo")
    m(name="one")(lambda conn: None)
    with pytest.raises(ValueError, match="Migration 'one' is already registered in Migrations\\('demo'\\)"):
        m(name="one")(lambda conn: None)


def test_atomic_rolls_back_everything_when_the_block_raises(funded):
    with pytest.raises(RuntimeError):
        with funded.atomic():
            funded.grant(USD, key="inside")
            funded.reserve(USD, key="r", arm="annotate")
            raise RuntimeError("crash")
    assert funded.totals() == Totals(granted=500 * USD, reserved=0, spent=0, available=500 * USD)
    assert funded.reservations() == []


def test_nested_atomic_rolls_back_only_the_inner_block(funded):
    with funded.atomic():
        funded.grant(USD, key="outer")
        with pytest.raises(CapExceededError):
            with funded.atomic():
                funded.grant(USD, key="inner")
                funded.reserve(10_000 * USD, key="too-much", arm="distill")
    assert funded.totals().granted == 501 * USD


def test_timestamps_come_from_the_injected_clock():
    ticks = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(100))
    with Ledger(":memory:", clock=lambda: next(ticks)) as ledger:
        ledger.grant(USD)
        assert ledger.entries()[0].at.startswith("2026-01-01T00:00:")
    with Ledger(":memory:", clock=lambda: datetime(2026, 1, 1, 12)) as naive:
        naive.grant(USD)
        assert naive.entries()[0].at == "2026-01-01T12:00:00.000000+00:00"


def test_the_journal_is_append_only(ledger_path):
    with Ledger(ledger_path) as ledger:
        ledger.grant(USD)
    conn = sqlite3.connect(ledger_path)
    with pytest.raises(sqlite3.IntegrityError, match="entries is append-only"):
        conn.execute("UPDATE entries SET amount_micro = 0")
    with pytest.raises(sqlite3.IntegrityError, match="entries is append-only"):
        conn.execute("DELETE FROM entries")
    conn.close()


# --- grant, reserve, settle, release ------------------------------------------------------------


def test_grant_returns_the_entry_and_is_idempotent_on_its_key(fresh_ledger):
    first = fresh_ledger.grant(500 * USD, key="spend-1", note="--spend 500")
    assert fresh_ledger.grant(500 * USD, key="spend-1") == first
    fresh_ledger.grant(USD)
    fresh_ledger.grant(USD)  # no key: every call adds
    assert fresh_ledger.totals().granted == 502 * USD
    with pytest.raises(IdempotencyConflictError, match=r"Key 'spend-1' was already used for a grant of \$500\.00"):
        fresh_ledger.grant(400 * USD, key="spend-1")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (1.5, r"The 'amount_micro' parameter of grant must be an int >= 1 \(micro-dollars\)\. Got 1\.5 instead\. "
              r"Convert dollars with budget\.to_micro"),
        (Decimal("1"), r"must be an int >= 1 \(micro-dollars\)\. Got Decimal\('1'\) instead"),
        (0, r"must be an int >= 1 \(micro-dollars\)\. Got 0 instead\.$"),
        (-5, r"Got -5 instead"),
        (True, r"Got True instead"),
    ],
)
def test_grant_refuses_floats_and_amounts_below_one(fresh_ledger, amount, message):
    with pytest.raises(ValueError, match=message):
        fresh_ledger.grant(amount)


def test_reserve_holds_money_within_the_cap(funded):
    r = funded.reserve(to_micro("120"), key="round-1", arm="annotate", purpose="batch b1", round=1)
    assert (r.amount_micro, r.estimate_micro, r.reserved_micro, r.remaining_micro) == (120 * USD,) * 4
    assert (r.arm, r.purpose, r.round, r.state) == ("annotate", "batch b1", 1, "open")
    assert funded.totals() == Totals(granted=500 * USD, reserved=120 * USD, spent=0, available=380 * USD)


def test_reserve_may_take_exactly_what_is_available(funded):
    funded.reserve(500 * USD, key="all", arm="distill")
    assert funded.totals().available == 0


def test_reserve_past_the_cap_is_refused_with_the_numbers(funded):
    funded.reserve(450 * USD, key="r1", arm="annotate")
    message = r"^Reservation of \$120\.00 would pass the cap: \$450\.00 of \$500\.00 already reserved or spent\.$"
    with pytest.raises(CapExceededError, match=message) as info:
        funded.reserve(120 * USD, key="r2", arm="distill")
    assert (info.value.requested_micro, info.value.committed_micro, info.value.granted_micro) == (
        120 * USD, 450 * USD, 500 * USD)
    assert len(funded.reservations()) == 1


def test_reserve_again_with_the_same_key_returns_the_same_reservation(funded):
    first = funded.reserve(100 * USD, key="round-1", arm="annotate", round=1)
    again = funded.reserve(100 * USD, key="round-1", arm="annotate", round=1)
    assert again == first
    assert len(funded.entries(first.id)) == 1
    assert funded.totals().reserved == 100 * USD


@pytest.mark.parametrize("change", [{"amount_micro": 99 * USD}, {"arm": "distill"}, {"round": 2}])
def test_reserve_with_a_used_key_and_other_terms_is_a_conflict(funded, change):
    funded.reserve(100 * USD, key="round-1", arm="annotate", round=1)
    args = {"amount_micro": 100 * USD, "arm": "annotate", "round": 1, **change}
    with pytest.raises(IdempotencyConflictError, match=r"Key 'round-1' already reserved \$100\.00 for 'annotate'"):
        funded.reserve(key="round-1", **args)


def test_a_key_used_by_another_kind_of_write_cannot_reserve(funded):
    with pytest.raises(IdempotencyConflictError, match="already used for a grant"):
        funded.reserve(USD, key="grant-1", arm="annotate")


def test_reserve_validates_its_arguments(funded):
    with pytest.raises(ValueError, match="The 'arm' parameter of reserve must be a non-empty str"):
        funded.reserve(USD, key="k", arm="")
    with pytest.raises(ValueError, match="The 'key' parameter of reserve must be a non-empty str"):
        funded.reserve(USD, key="", arm="annotate")
    with pytest.raises(ValueError, match="The 'amount_micro' parameter of reserve must be an int >= 0"):
        funded.reserve(-1, key="k", arm="annotate")
    with pytest.raises(ValueError, match="The 'round' parameter of reserve must be an int or None"):
        funded.reserve(USD, key="k", arm="annotate", round="1")


def test_reserve_keeps_the_estimate_beside_the_amount(funded):
    r = funded.reserve(110 * USD, key="k", arm="distill", estimate_micro=100 * USD)
    assert (r.estimate_micro, r.amount_micro) == (100 * USD, 110 * USD)


def test_partial_settlements_move_money_from_reserved_to_spent(funded):
    r = funded.reserve(100 * USD, key="r", arm="annotate", round=1)
    funded.settle(r.id, 30 * USD, key="pull-1")
    funded.settle(r.id, 20 * USD, key="pull-2")
    funded.settle(r.id, 20 * USD, key="pull-2")  # repeated: nothing changes
    held = funded.reservation(r.id)
    assert (held.settled_micro, held.remaining_micro, held.state) == (50 * USD, 50 * USD, "open")
    assert funded.totals() == Totals(granted=500 * USD, reserved=50 * USD, spent=50 * USD, available=400 * USD)
    with pytest.raises(IdempotencyConflictError, match=r"Key 'pull-2' was already used for a settle of \$20\.00 "
                                                       r"on reservation 1; use a new key for this settle\."):
        funded.settle(r.id, 25 * USD, key="pull-2")


def test_settling_more_than_reserved_reserves_the_excess_under_the_cap(funded):
    r = funded.reserve(100 * USD, key="r", arm="distill")
    funded.settle(r.id, 130 * USD, key="meter")
    held = funded.reservation(r.id)
    assert (held.reserved_micro, held.settled_micro, held.remaining_micro) == (130 * USD, 130 * USD, 0)
    assert [(e.kind, e.amount_micro) for e in funded.entries(r.id)] == [
        ("reserve", 100 * USD), ("reserve", 30 * USD), ("settle", 130 * USD)]
    assert funded.totals() == Totals(granted=500 * USD, reserved=0, spent=130 * USD, available=370 * USD)


def test_settling_past_the_cap_is_refused_and_writes_nothing(funded):
    r = funded.reserve(450 * USD, key="r", arm="distill")
    message = (r"^Settlement of \$520\.00 on reservation 1 \(\$70\.00 more than it holds\) would pass the cap: "
               r"\$450\.00 of \$500\.00 already reserved or spent\.$")
    with pytest.raises(CapExceededError, match=message):
        funded.settle(r.id, 520 * USD, key="meter")
    assert len(funded.entries(r.id)) == 1
    assert funded.totals().spent == 0


def test_settle_and_release_need_an_open_existing_reservation(funded):
    with pytest.raises(ReservationNotFoundError, match=r"Reservation 42 not found"):
        funded.settle(42, USD, key="s")
    with pytest.raises(ReservationNotFoundError):
        funded.release(42, key="x")
    r = funded.reserve(10 * USD, key="r", arm="annotate")
    funded.release(r.id, key="all")
    with pytest.raises(ReservationClosedError, match=r"Reservation 1 \('r'\) is closed; cannot settle against it"):
        funded.settle(r.id, USD, key="late")
    with pytest.raises(ReservationClosedError, match="cannot release from it"):
        funded.release(r.id, USD, key="again")


def test_release_gives_back_part_then_the_rest_and_closes(funded):
    r = funded.reserve(100 * USD, key="r", arm="annotate")
    funded.settle(r.id, 60 * USD, key="s")
    assert funded.release(r.id, 10 * USD, key="skips") == 10 * USD
    assert funded.reservation(r.id).state == "open"
    assert funded.release(r.id, key="rest") == 30 * USD
    closed = funded.reservation(r.id)
    assert (closed.state, closed.remaining_micro, closed.released_micro) == ("closed", 0, 40 * USD)
    assert closed.closed_at is not None
    assert funded.totals() == Totals(granted=500 * USD, reserved=0, spent=60 * USD, available=440 * USD)


def test_release_is_idempotent_on_its_key(funded):
    r = funded.reserve(100 * USD, key="r", arm="annotate")
    assert funded.release(r.id, key="rest") == 100 * USD
    assert funded.release(r.id, key="rest") == 100 * USD
    assert funded.release(r.id, 100 * USD, key="rest") == 100 * USD
    with pytest.raises(IdempotencyConflictError):
        funded.release(r.id, 5 * USD, key="rest")
    assert funded.totals().available == 500 * USD


def test_release_cannot_give_back_more_than_remains(funded):
    r = funded.reserve(100 * USD, key="r", arm="annotate")
    with pytest.raises(ValueError, match=r"Cannot release \$101\.00 from reservation 1: only \$100\.00 remains\."):
        funded.release(r.id, 101 * USD, key="x")


def test_close_reservation_releases_the_rest_and_closes_even_when_nothing_remains(funded):
    r = funded.reserve(100 * USD, key="r", arm="distill")
    funded.settle(r.id, 100 * USD, key="s")
    assert funded.close_reservation(r.id, key="close") == 0
    assert funded.reservation(r.id).state == "closed"
    assert funded.close_reservation(r.id, key="close") == 0
    r2 = funded.reserve(50 * USD, key="r2", arm="distill")
    assert funded.close_reservation(r2.id, key="close-2") == 50 * USD


def test_close_without_arguments_closes_the_connection():
    ledger = Ledger(":memory:")
    ledger.close()
    ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        ledger.totals()


def test_reservations_filter_by_state_and_arm_and_spending_adds_up_by_arm_and_round(funded):
    a = funded.reserve(100 * USD, key="a", arm="annotate", round=1)
    d = funded.reserve(200 * USD, key="d", arm="distill", round=2)
    funded.reserve(10 * USD, key="n", arm="annotate")
    funded.settle(a.id, 80 * USD, key="sa")
    funded.close_reservation(a.id, key="ca")
    funded.settle(d.id, 150 * USD, key="sd")
    assert [r.key for r in funded.reservations(state="open")] == ["d", "n"]
    assert [r.key for r in funded.reservations(arm="annotate")] == ["a", "n"]
    assert [r.key for r in funded.reservations(state="closed", arm="annotate")] == ["a"]
    assert funded.spent_by_arm() == {"annotate": 80 * USD, "distill": 150 * USD}
    assert funded.spent_by_round() == {1: 80 * USD, 2: 150 * USD}
    with pytest.raises(ValueError, match=r"The 'state' parameter of reservations must be a str among \{'open', "):
        funded.reservations(state="done")


def test_totals_print_in_dollars(funded):
    funded.reserve(to_micro("120.5"), key="r", arm="annotate")
    assert str(funded.totals()) == "granted $500.00, reserved $120.50, spent $0.00, available $379.50"


# --- two ledgers on one file, and crashes -------------------------------------------------------


def test_two_ledgers_on_one_file_cannot_together_reserve_past_the_cap(ledger_path):
    with Ledger(ledger_path) as setup:
        setup.grant(100 * USD)
    barrier = threading.Barrier(4)
    won, errors = [], []

    def spend(worker):
        with Ledger(ledger_path) as ledger:
            barrier.wait()
            for i in range(8):
                try:
                    ledger.reserve(7 * USD, key=f"w{worker}-{i}", arm="annotate")
                    won.append((worker, i))
                except CapExceededError:
                    pass
                except Exception as exc:  # pragma: no cover - reported below
                    errors.append(exc)

    threads = [threading.Thread(target=spend, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(won) == 14  # 14 x $7 = $98 of $100
    with Ledger(ledger_path) as check:
        assert check.totals() == Totals(granted=100 * USD, reserved=98 * USD, spent=0, available=2 * USD)


def test_a_second_ledger_waits_for_the_first_ones_cap_check(ledger_path):
    with Ledger(ledger_path) as first, Ledger(ledger_path, timeout=0.05) as second:
        first.grant(100 * USD)
        with first.atomic():
            first.reserve(60 * USD, key="first", arm="annotate")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                second.reserve(60 * USD, key="second", arm="distill")
        with pytest.raises(CapExceededError, match=r"\$60\.00 of \$100\.00 already reserved or spent"):
            second.reserve(60 * USD, key="second", arm="distill")


_CHILD = """
import os, sys
from budget.ledger import Ledger
ledger = Ledger(sys.argv[1])
ledger.grant(100_000_000, key="committed")
ledger.atomic().__enter__()
ledger.grant(7_000_000, key="in-flight")
ledger.reserve(50_000_000, key="in-flight-r", arm="annotate")
os._exit(9)  # killed mid-transaction: no rollback, no close
"""


def test_a_process_killed_mid_transaction_leaves_only_what_it_committed(ledger_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ledger_path)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 9, done.stderr.decode()
    with Ledger(ledger_path) as ledger:
        assert ledger.totals() == Totals(granted=100 * USD, reserved=0, spent=0, available=100 * USD)
        assert ledger.reservations() == []
        ledger.grant(7 * USD, key="in-flight")  # the key is free again
        assert ledger.totals().granted == 107 * USD


# --- steps --------------------------------------------------------------------------------------


def test_a_step_is_begun_then_finished_with_its_result(fresh_ledger):
    assert fresh_ledger.step_state("push:b1") is None
    assert fresh_ledger.begin_step("push:b1") is True
    assert fresh_ledger.begin_step("push:b1") is False  # a resumed run begins it again
    assert fresh_ledger.step_state("push:b1") == "started"
    assert fresh_ledger.step_result("push:b1") is None
    assert fresh_ledger.finish_step("push:b1", {"project": "7"}) is True
    assert fresh_ledger.finish_step("push:b1", {"project": "7"}) is False
    assert fresh_ledger.step_state("push:b1") == "done"
    assert fresh_ledger.step_result("push:b1") == {"project": "7"}


def test_steps_refuse_impossible_moves(fresh_ledger):
    with pytest.raises(InvalidTransitionError, match=r"Step 'x' was never begun; call begin_step\('x'\)"):
        fresh_ledger.finish_step("x", {})
    fresh_ledger.begin_step("x")
    fresh_ledger.finish_step("x", {"n": 1})
    with pytest.raises(InvalidTransitionError, match=r"Step 'x' is already done; read its result with step_result"):
        fresh_ledger.begin_step("x")
    with pytest.raises(IdempotencyConflictError, match="already done with another result"):
        fresh_ledger.finish_step("x", {"n": 2})
    with pytest.raises(ValueError, match="must be JSON-serialisable"):
        fresh_ledger.finish_step("x", {"n": object()})


# --- batches and approvals ----------------------------------------------------------------------


def test_add_batch_stores_a_proposal_and_is_idempotent(funded):
    r = funded.reserve(600_000, key="r", arm="annotate", round=1)
    batch = _batch(funded, reservation_id=r.id)
    assert (batch.state, batch.payload, batch.total_micro, batch.receipt) == ("proposed", PAYLOAD,
                                                                              600_000, None)
    assert _batch(funded, reservation_id=r.id) == batch
    with pytest.raises(IdempotencyConflictError, match="Batch 'b1' already exists with other contents"):
        _batch(funded, reservation_id=r.id, total_micro=700_000)
    with pytest.raises(ReservationNotFoundError):
        _batch(funded, "b2", reservation_id=99)


def test_a_missing_batch_says_how_to_list_them(fresh_ledger):
    with pytest.raises(BatchNotFoundError, match=r"^Batch 'x' not found; list batches with "
                                                 r"`python -m budget\.controller proposals`$"):
        fresh_ledger.batch("x")


def test_a_batch_moves_from_proposed_to_done(funded):
    _batch(funded)
    assert funded.approve("b1", by="lead", why="looks fine") is True
    assert funded.set_batch_state("b1", "pushed", receipt={"project_ref": "7"}) is True
    assert funded.set_batch_state("b1", "partial") is True
    assert funded.set_batch_state("b1", "partial", receipt={"project_ref": "7", "pulled": 2}) is False
    assert funded.set_batch_state("b1", "done") is True
    done = funded.batch("b1")
    assert (done.state, done.receipt) == ("done", {"project_ref": "7", "pulled": 2})
    assert [b.batch_id for b in funded.batches(state="done")] == ["b1"]
    assert funded.batches(state="proposed") == []


def test_nothing_is_pushed_before_it_is_approved(funded):
    _batch(funded)
    with pytest.raises(InvalidTransitionError, match=r"Batch 'b1' cannot go from 'proposed' to 'pushed'; from "
                                                     r"'proposed' it can go to 'approved', 'rejected'\.") as info:
        funded.set_batch_state("b1", "pushed")
    assert (info.value.from_state, info.value.to_state) == ("proposed", "pushed")
    with pytest.raises(ValueError, match=r"set_batch_state cannot set 'approved'; use approve\(\) or reject\(\)"):
        funded.set_batch_state("b1", "approved")
    with pytest.raises(ValueError, match="The 'state' parameter of set_batch_state must be a str among"):
        funded.set_batch_state("b1", "sent")


def test_approving_twice_approves_once(funded):
    _batch(funded)
    assert funded.approve("b1", by="alice") is True
    assert funded.approve("b1", by="bob") is False
    funded.set_batch_state("b1", "pushed")
    assert funded.approve("b1", by="carol") is False
    assert [(a.decision, a.by) for a in funded.approvals("b1")] == [("approved", "alice")]


def test_rejecting_releases_the_batch_reservation_in_the_same_transaction(funded):
    r = funded.reserve(600_000, key="r", arm="annotate", round=1)
    _batch(funded, reservation_id=r.id)
    assert funded.reject("b1", by="lead", why="too many near-duplicates") is True
    assert funded.reject("b1", by="lead", why="again") is False
    assert funded.batch("b1").state == "rejected"
    released = funded.reservation(r.id)
    assert (released.state, released.released_micro) == ("closed", 600_000)
    assert funded.totals().available == 500 * USD
    assert [(a.decision, a.why) for a in funded.approvals("b1")] == [("rejected", "too many near-duplicates")]
    with pytest.raises(InvalidTransitionError, match="Batch 'b1' was rejected and cannot be approved"):
        funded.approve("b1", by="lead")


def test_an_approved_batch_cannot_be_rejected(funded):
    _batch(funded)
    funded.approve("b1", by="lead")
    with pytest.raises(InvalidTransitionError, match="Batch 'b1' is 'approved'; only a proposed batch can be rejected"):
        funded.reject("b1", by="lead", why="changed my mind")
    _batch(funded, "b2")
    with pytest.raises(ValueError, match="Say who decided"):
        funded.approve("b2", by="")
    assert funded.batch("b2").state == "proposed"


# --- labels, rounds, events, snapshot -----------------------------------------------------------


def test_labels_are_stored_once_per_item_and_annotator(funded):
    _batch(funded)
    rows = [LabelRow(1, "run-a1", "ann-1", "pos", 12.5), LabelRow(2, "run-a2", "ann-1", None)]
    assert funded.record_labels("b1", rows) == 2
    assert funded.record_labels("b1", rows + [LabelRow(1, "run-a1", "ann-2", "neg")]) == 1
    stored = funded.labels("b1")
    assert [(r.external_id, r.annotator, r.label) for r in stored] == [
        ("run-a1", "ann-1", "pos"), ("run-a2", "ann-1", None), ("run-a1", "ann-2", "neg")]
    assert stored[0].batch_id == "b1" and stored[0].lead_time_s == 12.5 and stored[0].at
    assert funded.labels() == stored
    with pytest.raises(BatchNotFoundError):
        funded.record_labels("nope", rows)


def test_rounds_start_and_finish_once(fresh_ledger):
    plan = RoundPlan(Decision("annotate", 10, 5, "labels"), compute_estimate_micro=2, compute_estimate_raw=1.5,
                     compute_estimate_phases={"student_finetune": 1.5})
    assert fresh_ledger.start_round(1, "annotate", plan) is True
    assert fresh_ledger.start_round(1, "annotate", plan) is False
    with pytest.raises(IdempotencyConflictError, match="Round 1 was started with arm 'annotate', not 'distill'"):
        fresh_ledger.start_round(1, "distill", RoundPlan(Decision("distill")))
    summary = RoundSummary(n_labels=70, labels_bought=10, dev=0.5, agreement=None, compute_micro=3)
    assert fresh_ledger.finish_round(1, summary) is True
    assert fresh_ledger.finish_round(1, RoundSummary(dev=0.9)) is False
    (record,) = fresh_ledger.rounds()  # the typed records come back as they went in
    assert (record.round, record.arm, record.plan, record.state, record.summary) == (
        1, "annotate", plan, "done", summary)
    with pytest.raises(InvalidTransitionError, match="Round 2 was never started"):
        fresh_ledger.finish_round(2, RoundSummary())
    with pytest.raises(ValueError, match="The 'round' parameter of start_round must be an int. Got None instead."):
        fresh_ledger.start_round(None, "annotate", plan)


def test_events_keep_their_data_as_json(fresh_ledger):
    first = fresh_ledger.log_event("decision", arm="annotate", amount_micro=5)
    fresh_ledger.log_event("push", path=Path("/tmp/x"))
    assert [e.kind for e in fresh_ledger.events()] == ["decision", "push"]
    (push,) = fresh_ledger.events("push")
    assert push.data == {"path": "/tmp/x"} and push.id == first + 1
    assert json.loads(json.dumps(push.data)) == push.data


def test_snapshot_shows_the_policy_money_and_rounds(funded):
    r = funded.reserve(100 * USD, key="r", arm="annotate", round=1)
    funded.settle(r.id, 90 * USD, key="s")
    funded.start_round(1, "annotate", RoundPlan(Decision("annotate")))
    snap = funded.snapshot()
    assert snap.totals == Totals(granted=500 * USD, reserved=10 * USD, spent=90 * USD, available=400 * USD)
    assert snap.spent_by_arm == {"annotate": 90 * USD}
    assert snap.spent_by_round == {1: 90 * USD}
    assert [x.round for x in snap.rounds] == [1]
