"""The ledger against a model of its own rules, on a file, through crashes and repeated keys.

A hypothesis state machine grants, reserves, settles (partly, exactly, past the reservation),
releases and closes with keys drawn from a small pool, so keys collide across kinds of writes; it
replays earlier calls, crashes between and inside transactions, and reopens the file. After every
step the ledger must agree with the model, with its own journal, and with the cap.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from budget.exceptions import (
    CapExceededError,
    IdempotencyConflictError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from budget.ledger import Ledger

USD = 1_000_000
# a RAM-backed folder where there is one: the file behaves the same, but fsync costs nothing
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
KEYS = st.sampled_from([f"k{i}" for i in range(40)])  # few enough to collide across kinds of writes
AMOUNTS = st.integers(1, 120).map(lambda d: d * USD) | st.integers(1, 50 * USD)
GRANTS = st.integers(1, 500).map(lambda d: d * USD) | st.integers(1, 50 * USD)
# which reservation: 0 is the next id, which does not exist yet; anything else picks one that does
PICK = st.integers(0, 9)
ARMS = st.sampled_from(["annotate", "distill"])
PERCENT = st.integers(0, 160)  # of what a reservation still holds; > 100 settles past it


@dataclass
class ModelReservation:
    key: str
    arm: str
    amount: int
    reserved: int
    settled: int = 0
    released: int = 0
    state: str = "open"

    @property
    def remaining(self) -> int:
        return self.reserved - self.settled - self.released


@dataclass
class Model:
    granted: int = 0
    reservations: dict[int, ModelReservation] = field(default_factory=dict)
    entry_keys: dict[str, tuple] = field(default_factory=dict)  # key -> (kind, reservation id, amount)

    @property
    def reserved(self) -> int:
        return sum(r.remaining for r in self.reservations.values())

    @property
    def spent(self) -> int:
        return sum(r.settled for r in self.reservations.values())

    @property
    def available(self) -> int:
        return self.granted - self.reserved - self.spent


class LedgerMachine(RuleBasedStateMachine):
    @initialize(budget=st.integers(0, 300))
    def open_file(self, budget):
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-prop-", dir=SCRATCH))
        self.path = self.dir / "ledger.db"
        self.ledger = Ledger(self.path)
        self.model = Model()
        if budget:
            self.ledger.grant(budget * USD, key="initial")
            self.model.granted = budget * USD
            self.model.entry_keys["initial"] = ("grant", None, budget * USD)
        self.last = None  # (callable, args, kwargs, result) of the last call that succeeded
        self.crashes = 0

    def teardown(self):
        if hasattr(self, "ledger"):
            self.ledger.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _remember(self, method, args, kwargs, result):
        self.last = (method, args, kwargs, result)

    # --- money ---------------------------------------------------------------------------------

    def _pick(self, pick):
        count = len(self.model.reservations)
        return count + 1 if pick == 0 or count == 0 else pick % count + 1

    @rule(amount=GRANTS, key=KEYS)
    def grant(self, amount, key):
        m = self.model
        if key in m.entry_keys and m.entry_keys[key] != ("grant", None, amount):
            event("grant: IdempotencyConflictError")
            with pytest.raises(IdempotencyConflictError):
                self.ledger.grant(amount, key=key)
            return
        result = self.ledger.grant(amount, key=key)
        if key not in m.entry_keys:
            m.granted += amount
            m.entry_keys[key] = ("grant", None, amount)
        self._remember("grant", (amount,), {"key": key}, result)

    @rule(amount=AMOUNTS, key=KEYS, arm=ARMS)
    def reserve(self, amount, key, arm):
        m = self.model
        by_key = {r.key: (rid, r) for rid, r in m.reservations.items()}
        if key in by_key:
            rid, held = by_key[key]
            if (held.amount, held.arm) != (amount, arm):
                event("reserve: IdempotencyConflictError")
                with pytest.raises(IdempotencyConflictError):
                    self.ledger.reserve(amount, key=key, arm=arm)
                return
            event("reserve: repeated key")
            assert self.ledger.reserve(amount, key=key, arm=arm).id == rid
        elif key in m.entry_keys:
            event("reserve: IdempotencyConflictError")
            with pytest.raises(IdempotencyConflictError):
                self.ledger.reserve(amount, key=key, arm=arm)
            return
        elif amount > m.available:
            event("reserve: CapExceededError")
            with pytest.raises(CapExceededError, match="would pass the cap"):
                self.ledger.reserve(amount, key=key, arm=arm)
            return
        else:
            event("reserve: new")
            rid = self.ledger.reserve(amount, key=key, arm=arm).id
            assert rid == len(m.reservations) + 1
            m.reservations[rid] = ModelReservation(key, arm, amount, reserved=amount)
            m.entry_keys[key] = ("reserve", rid, amount)
        self._remember("reserve", (amount,), {"key": key, "arm": arm}, rid)

    @rule(pick=PICK, percent=PERCENT | st.just(None), key=KEYS)
    def settle(self, pick, percent, key):
        """Settle a share of what a reservation holds; ``percent=None`` settles one micro-dollar past the cap."""
        m, index = self.model, self._pick(pick)
        held = m.reservations.get(index)
        if held is None:
            amount = USD
        elif percent is None:
            amount = held.remaining + m.available + 1
        else:
            amount = held.remaining * percent // 100
        if key in m.entry_keys:
            if m.entry_keys[key] != ("settle", index, amount):
                event("settle: IdempotencyConflictError")
                with pytest.raises(IdempotencyConflictError):
                    self.ledger.settle(index, amount, key=key)
                return
        elif held is None:
            event("settle: ReservationNotFoundError")
            with pytest.raises(ReservationNotFoundError):
                self.ledger.settle(index, amount, key=key)
            return
        elif held.state == "closed":
            event("settle: ReservationClosedError")
            with pytest.raises(ReservationClosedError):
                self.ledger.settle(index, amount, key=key)
            return
        elif amount - held.remaining > m.available:
            event("settle: CapExceededError")
            with pytest.raises(CapExceededError, match="more than it holds"):
                self.ledger.settle(index, amount, key=key)
            return
        else:
            event("settle: past the reservation" if amount > held.remaining else "settle: within")
            held.reserved += max(0, amount - held.remaining)
            held.settled += amount
            m.entry_keys[key] = ("settle", index, amount)
        self.ledger.settle(index, amount, key=key)
        self._remember("settle", (index, amount), {"key": key}, None)

    @rule(pick=PICK, percent=st.none() | PERCENT | PERCENT, key=KEYS, close=st.sampled_from([False, False, True]))
    def release(self, pick, percent, key, close):
        m, index = self.model, self._pick(pick)
        held = m.reservations.get(index)
        if close or percent is None or held is None:
            amount = None
        else:
            amount = held.remaining * percent // 100
        call = self.ledger.close_reservation if close else self.ledger.release
        args, kwargs = ((index,), {"key": key}) if close else ((index, amount), {"key": key})
        if key in m.entry_keys:
            kind, rid, recorded = m.entry_keys[key]
            if (kind, rid) != ("release", index) or amount not in (None, recorded):
                event("release: IdempotencyConflictError")
                with pytest.raises(IdempotencyConflictError):
                    call(*args, **kwargs)
                return
            expected = recorded
        elif held is None:
            event("release: ReservationNotFoundError")
            with pytest.raises(ReservationNotFoundError):
                call(*args, **kwargs)
            return
        elif held.state == "closed":
            event("release: ReservationClosedError")
            with pytest.raises(ReservationClosedError):
                call(*args, **kwargs)
            return
        elif amount is not None and amount > held.remaining:
            event("release: ValueError")
            with pytest.raises(ValueError, match="Cannot release"):
                call(*args, **kwargs)
            return
        else:
            expected = held.remaining if amount is None else amount
            if close or expected == held.remaining:
                event("release: closes")
                held.state = "closed"
            held.released += expected
            m.entry_keys[key] = ("release", index, expected)
        assert call(*args, **kwargs) == expected
        self._remember("close_reservation" if close else "release", args, kwargs, expected)

    @precondition(lambda self: self.last is not None)
    @rule()
    def repeat_last_call(self):
        method, args, kwargs, result = self.last
        before = (self.ledger.totals(), self.ledger.entries(), self.ledger.reservations())
        again = getattr(self.ledger, method)(*args, **kwargs)
        if method == "reserve":
            again = again.id
        assert again == result
        assert (self.ledger.totals(), self.ledger.entries(), self.ledger.reservations()) == before

    # --- crashes -------------------------------------------------------------------------------

    @rule()
    def crash_and_reopen(self):
        self.ledger._conn.close()  # the process dies: no cleanup
        self.ledger = Ledger(self.path)

    @rule(amount=AMOUNTS, abandon=st.booleans())
    def crash_inside_a_transaction(self, amount, abandon):
        self.crashes += 1
        key = f"crash-{self.crashes}"
        if abandon:  # killed mid-transaction: the connection dies with the transaction open
            self.ledger.atomic().__enter__()
            self.ledger.grant(amount, key=key)
            self.ledger.reserve(amount, key=key + "-r", arm="distill")
            self.ledger._conn.close()
        else:  # an error inside atomic(): it rolls back, then the process dies anyway
            event("crash_inside_a_transaction: RuntimeError")
            with pytest.raises(RuntimeError), self.ledger.atomic():
                self.ledger.grant(amount, key=key)
                self.ledger.reserve(amount, key=key + "-r", arm="distill")
                raise RuntimeError("crash")
            self.ledger._conn.close()
        self.ledger = Ledger(self.path)
        assert all(e.key not in (key, key + "-r") for e in self.ledger.entries())

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def cap_holds_and_nothing_is_negative(self):
        t = self.ledger.totals()
        assert min(t.granted, t.reserved, t.spent, t.available) >= 0
        assert t.spent + t.reserved <= t.granted
        assert t.available == t.granted - t.reserved - t.spent

    @invariant()
    def totals_match_the_model(self):
        t, m = self.ledger.totals(), self.model
        assert (t.granted, t.reserved, t.spent, t.available) == (m.granted, m.reserved, m.spent, m.available)

    @invariant()
    def totals_are_the_sum_of_the_journal(self):
        sums = {"grant": 0, "reserve": 0, "settle": 0, "release": 0}
        for entry in self.ledger.entries():
            assert entry.amount_micro >= 0
            sums[entry.kind] += entry.amount_micro
        t = self.ledger.totals()
        assert t.granted == sums["grant"]
        assert t.spent == sums["settle"]
        assert t.reserved == sums["reserve"] - sums["settle"] - sums["release"]

    @invariant()
    def reservations_match_the_model(self):
        got = {r.id: (r.key, r.arm, r.reserved_micro, r.settled_micro, r.released_micro, r.state)
               for r in self.ledger.reservations()}
        want = {rid: (r.key, r.arm, r.reserved, r.settled, r.released, r.state)
                for rid, r in self.model.reservations.items()}
        assert got == want
        assert all(r.remaining_micro >= 0 for r in self.ledger.reservations())


LedgerMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_state_machine = LedgerMachine.TestCase
