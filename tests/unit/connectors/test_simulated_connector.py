"""The simulated platform: the connector contract, then its simulated people, clock and state file."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from annotation.records import Batch, BatchItem, Receipt
from annotation.simulated import SimulatedAnnotators
from connectors.base import Connector
from connectors.exceptions import ConnectorUsageError, ProtocolError
from connectors.simulated import SimClock, SimulatedConnector
from tests.utils.connector_contract import Answers, ConnectorContractTests
from tests.utils.pools import make_batch


class TestSimulatedConnectorContract(ConnectorContractTests):
    def make_connector(self) -> Connector:
        return SimulatedConnector()

    def annotate(self, connector: Connector, receipt: Receipt, answers: Answers) -> None:
        assert isinstance(connector, SimulatedConnector)
        for external_id, given in answers.items():
            for annotator, label in given:
                connector.submit(external_id, annotator, label)


class TestSimulatedConnectorWithStateFileContract(ConnectorContractTests):
    """The same contract when every change goes through the JSON state file and back."""

    @pytest.fixture(autouse=True)
    def _state(self, tmp_path: Path) -> None:
        self.state_path = tmp_path / "platform.json"

    def make_connector(self) -> Connector:
        return SimulatedConnector(state_path=self.state_path)

    def annotate(self, connector: Connector, receipt: Receipt, answers: Answers) -> None:
        # Answer through a second connector on the same state, like a person on the server.
        other = SimulatedConnector(state_path=self.state_path)
        for external_id, given in answers.items():
            for annotator, label in given:
                other.submit(external_id, annotator, label)
        assert isinstance(connector, SimulatedConnector)
        connector._load()  # the controller's connector re-reads the platform


# -- SimClock --------------------------------------------------------------------------------------------


def test_sim_clock_sleep_advances_at_once():
    clock = SimClock(start=5.0)
    clock.sleep(100.0)
    assert clock.now() == 105.0
    clock.advance_to(50.0)
    assert clock.now() == 105.0  # never goes back
    clock.advance_to(200.0)
    assert clock.now() == 200.0
    with pytest.raises(ValueError, match="negative"):
        clock.sleep(-1)


# -- simulated people ------------------------------------------------------------------------------------


def _gold(item: BatchItem) -> str:
    return "pos" if item.item_id % 2 else "neg"


def _crowd(**kwargs) -> SimulatedAnnotators:
    params = {"n_annotators": 3, "error_rate": 0.0, "skip_rate": 0.0, "latency_s": (10.0, 20.0), "seed": 0}
    params.update(kwargs)
    return SimulatedAnnotators(**params)


def test_answers_arrive_over_simulated_time():
    conn = SimulatedConnector(_gold, _crowd())
    receipt = conn.push(make_batch(6))
    assert conn.pull(receipt) == []
    first = conn.next_ready_at(receipt)
    assert 10.0 <= first <= 20.0
    conn.clock.sleep(first)
    assert len(conn.pull(receipt)) >= 1
    conn.clock.sleep(10_000)
    answers = conn.pull(receipt)
    assert len(answers) == 6
    assert {a.external_id: a.label for a in answers} == {i.external_id: _gold(i) for i in make_batch(6).items}
    assert conn.status(receipt).finished
    assert conn.next_ready_at(receipt) is None


def test_each_annotator_works_through_items_one_after_another():
    conn = SimulatedConnector(_gold, _crowd(n_annotators=1, latency_s=(10.0, 10.0)))
    receipt = conn.push(make_batch(3))
    conn.clock.sleep(25.0)
    assert len(conn.pull(receipt)) == 2  # ready at 10 and 20; the third at 30
    later = conn.push(make_batch(1, start=50))
    conn.clock.sleep(10.0)  # t=35: the new item queues behind the third (ready at 40)
    assert conn.pull(later) == []
    conn.clock.sleep(5.0)
    assert len(conn.pull(later)) == 1


def test_overlap_gives_distinct_annotators():
    conn = SimulatedConnector(_gold, _crowd(n_annotators=3))
    receipt = conn.push(make_batch(10, overlap=2))
    conn.clock.sleep(1e6)
    answers = conn.pull(receipt)
    per_item = Counter(a.external_id for a in answers)
    assert set(per_item.values()) == {2}
    for eid in receipt.external_ids:
        names = [a.annotator for a in answers if a.external_id == eid]
        assert len(set(names)) == 2
        assert set(names) <= set(_crowd().names)


def test_overlap_above_annotator_count_is_refused():
    conn = SimulatedConnector(_gold, _crowd(n_annotators=2))
    with pytest.raises(ConnectorUsageError, match="overlap 3.*2 annotators"):
        conn.push(make_batch(2, overlap=3))


def test_noisy_annotators_skip_and_err():
    conn = SimulatedConnector(_gold, _crowd(error_rate=0.3, skip_rate=0.2, seed=1))
    batch = make_batch(400)
    receipt = conn.push(batch)
    conn.clock.sleep(1e7)
    answers = conn.pull(receipt)
    gold = {i.external_id: _gold(i) for i in batch.items}
    skips = sum(a.skipped for a in answers)
    wrong = sum(a.label != gold[a.external_id] for a in answers if not a.skipped)
    assert 40 <= skips <= 120
    assert 0.2 <= wrong / (400 - skips) <= 0.4
    status = conn.status(receipt)
    assert status.skipped == skips and status.done == 400 - skips and status.finished


def test_missing_gold_is_refused_and_creates_nothing():
    batch = make_batch(3)
    gold = {batch.items[0].external_id: "neg"}
    conn = SimulatedConnector(gold, _crowd())
    with pytest.raises(ConnectorUsageError, match=f"No gold label for item '{batch.items[1].external_id}'"):
        conn.push(batch)
    ghost = Receipt(batch.batch_id, "simulated", "toy", tuple(i.external_id for i in batch.items))
    assert conn.status(ghost).pushed == 0


def test_gold_outside_labels_is_refused():
    conn = SimulatedConnector(lambda item: "maybe", _crowd())
    with pytest.raises(ConnectorUsageError, match="'maybe' .* not among"):
        conn.push(make_batch(1))


def test_annotators_need_gold():
    with pytest.raises(ConnectorUsageError, match="needs gold"):
        SimulatedConnector(None, _crowd())


def test_submit_checks_item_and_label():
    conn = SimulatedConnector()
    receipt = conn.push(make_batch(1))
    with pytest.raises(ConnectorUsageError, match="never pushed"):
        conn.submit("nope", "ann", "neg")
    with pytest.raises(ConnectorUsageError, match="'maybe'"):
        conn.submit(receipt.external_ids[0], "ann", "maybe")


def test_pair_text_is_kept_as_a_pair():
    conn = SimulatedConnector()
    batch = make_batch(2, pair=True)
    conn.push(batch)
    assert conn.text_of(batch.items[0].external_id) == batch.items[0].text


# -- state file ------------------------------------------------------------------------------------------


def test_resumed_connector_sees_the_same_platform(tmp_path: Path):
    path = tmp_path / "state" / "platform.json"
    batch = make_batch(8, overlap=2)
    first = SimulatedConnector(_gold, _crowd(error_rate=0.2, skip_rate=0.1), SimClock(), state_path=path)
    receipt = first.push(batch)
    first.clock.sleep(1e6)
    expected = first.pull(receipt)
    # The controller is killed; a new one starts with a new clock and pushes the same batch again.
    second = SimulatedConnector(_gold, _crowd(error_rate=0.2, skip_rate=0.1), SimClock(), state_path=path)
    assert second.push(batch) == receipt
    assert second.status(receipt).pushed == 8
    second.clock.sleep(1e6)
    assert second.pull(receipt) == expected
    assert [p.name for p in path.parent.iterdir()] == ["platform.json"]  # no temp files left behind


def test_resumed_clock_does_not_go_back(tmp_path: Path):
    path = tmp_path / "platform.json"
    first = SimulatedConnector(_gold, _crowd(), SimClock(start=1000.0), state_path=path)
    first.push(make_batch(1))
    second = SimulatedConnector(_gold, _crowd(), SimClock(), state_path=path)
    assert second.clock.now() == 1000.0


def test_state_file_is_plain_json(tmp_path: Path):
    path = tmp_path / "platform.json"
    conn = SimulatedConnector(_gold, _crowd(), state_path=path)
    conn.push(make_batch(2, pair=True))
    state = json.loads(path.read_text())
    assert state["version"] == 1
    assert len(state["tasks"]) == 2


def test_unreadable_state_file_names_the_fix(tmp_path: Path):
    path = tmp_path / "platform.json"
    path.write_text("{not json")
    with pytest.raises(ProtocolError, match="delete it to start a fresh platform"):
        SimulatedConnector(state_path=path)


def test_failed_write_keeps_the_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "platform.json"
    conn = SimulatedConnector(_gold, _crowd(), state_path=path)
    conn.push(make_batch(1))
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        conn.push(make_batch(1, start=5))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["platform.json"]


def test_repr_shows_the_constructor_call():
    assert repr(SimulatedConnector()).startswith("SimulatedConnector(annotators=None, clock=SimClock(")


def test_batch_with_repeated_item_creates_one_task():
    item = BatchItem(0, "r-0", "x")
    batch = Batch("b", "toy", ("neg", "pos"), (item, item), approved=True)
    conn = SimulatedConnector()
    receipt = conn.push(batch)
    assert receipt.external_ids == ("r-0",)
