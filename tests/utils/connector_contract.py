"""The connector contract: one set of tests that every connector's test class inherits.

After small-text's ``SamplingStrategiesTests``. A platform's test class inherits
:class:`ConnectorContractTests` and implements two hooks::

    class TestSimulatedConnector(ConnectorContractTests):
        def make_connector(self):
            return SimulatedConnector()                 # nobody answers unless told to

        def annotate(self, connector, receipt, answers):
            for external_id, given in answers.items():
                for annotator, label in given:
                    connector.submit(external_id, annotator, label)

What the contract asks of a connector:

- ``push`` of an unapproved batch raises ``UnapprovedBatchError`` and creates nothing on the platform.
- ``push`` returns a receipt with the batch id, ``connector.platform``, every external id of the batch in
  batch order, and a ``task_refs`` entry for each.
- Pushing a batch again, or a batch that shares items with an earlier one, creates no second task for
  any external id; the receipt still lists every item of the batch.
- ``status(receipt).pushed`` counts the platform's tasks that carry the receipt's external ids (a
  duplicate would count twice, an item the platform does not have counts zero). ``done`` counts items
  with ``batch.overlap`` answers of which at least one is a label, ``skipped`` items whose
  ``batch.overlap`` answers are all skips, ``waiting`` the rest of the pushed ones.
- ``pull(receipt)`` returns one :class:`Annotation` per finished answer to the receipt's items (a skip has
  ``label=None``), with the annotator's name as ``annotate`` was given it; nothing for items of other
  receipts; the same answers when called again.

Hooks (the only things a subclass writes):

- :meth:`ConnectorContractTests.make_connector` - a fresh connector; it is closed after each test.
- :meth:`ConnectorContractTests.annotate` - make people answer on the platform. When it returns, the
  answers must be visible to ``pull`` (wait, poll or advance a simulated clock inside it if needed).

Optional class attributes:

- ``annotator_names`` - two annotator names that exist on the platform (default ``("ann-a", "ann-b")``);
  ``annotate`` is only ever called with these, and ``pull`` must report them unchanged.
- ``supports_overlap`` - set False to skip the test that asks two annotators to answer one item.
- ``labels`` - the label set of the batches (default ``("neg", "pos")``).

Every test makes its external ids with a fresh run id, so tests may share one server or project.
Batches come from :func:`tests.utils.pools.make_batch`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from annotation.records import Annotation, Batch, BatchStatus, Receipt
from connectors.base import Connector
from connectors.exceptions import UnapprovedBatchError
from tests.utils.pools import make_batch, new_run_id

__all__ = ["Answers", "ConnectorContractTests"]

#: external id -> [(annotator name, label or None for a skip), ...]
Answers = dict[str, list[tuple[str, str | None]]]


def _as_set(annotations: list[Annotation]) -> set[tuple[str, str, str | None]]:
    return {(a.external_id, a.annotator, a.label) for a in annotations}


def _expected(answers: Answers) -> set[tuple[str, str, str | None]]:
    return {(eid, who, label) for eid, given in answers.items() for who, label in given}


class ConnectorContractTests:
    """Mixin of contract tests; see the module docstring for the hooks a subclass implements."""

    annotator_names: tuple[str, str] = ("ann-a", "ann-b")
    supports_overlap: bool = True
    labels: tuple[str, ...] = ("neg", "pos")

    # -- hooks ------------------------------------------------------------------------------------------

    def make_connector(self) -> Connector:
        """Return a fresh connector for one test."""
        raise NotImplementedError("The 'make_connector' method must be implemented by the connector's test class.")

    def annotate(self, connector: Connector, receipt: Receipt, answers: Answers) -> None:
        """Make people answer on the platform, then return once ``pull`` can see every answer.

        Parameters
        ----------
        connector : Connector
            The connector the batch was pushed with.
        receipt : Receipt
            The receipt of the push that holds the items answered.
        answers : dict of str to list of (str, str or None)
            For each external id, who answers what: ``(annotator name, label)``, or
            ``(annotator name, None)`` for a skip. Names come from ``annotator_names``.
        """
        raise NotImplementedError("The 'annotate' method must be implemented by the connector's test class.")

    # -- fixtures ---------------------------------------------------------------------------------------

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        conn = self.make_connector()
        try:
            yield conn
        finally:
            conn.close()

    @pytest.fixture
    def run_id(self) -> str:
        return new_run_id()

    def _batch(self, n: int, run_id: str, **kwargs: object) -> Batch:
        return make_batch(n, self.labels, run_id=run_id, **kwargs)  # type: ignore[arg-type]

    # -- push -------------------------------------------------------------------------------------------

    def test_push_unapproved_batch_raises_and_creates_nothing(self, connector: Connector, run_id: str) -> None:
        batch = self._batch(3, run_id, approved=False)
        with pytest.raises(UnapprovedBatchError, match=batch.batch_id):
            connector.push(batch)
        ghost = Receipt(batch.batch_id, connector.platform, "", tuple(i.external_id for i in batch.items))
        assert connector.status(ghost).pushed == 0
        assert connector.pull(ghost) == []

    def test_push_returns_receipt_with_every_external_id(self, connector: Connector, run_id: str) -> None:
        batch = self._batch(4, run_id)
        receipt = connector.push(batch)
        assert receipt.batch_id == batch.batch_id
        assert receipt.platform == connector.platform
        assert receipt.external_ids == tuple(item.external_id for item in batch.items)
        assert set(receipt.task_refs) == set(receipt.external_ids)

    def test_push_same_batch_twice_creates_no_duplicate(self, connector: Connector, run_id: str) -> None:
        batch = self._batch(4, run_id)
        first = connector.push(batch)
        second = connector.push(batch)
        assert second.external_ids == first.external_ids
        assert second.task_refs == first.task_refs
        assert connector.status(first).pushed == 4

    def test_push_overlapping_batch_creates_no_duplicate(self, connector: Connector, run_id: str) -> None:
        first = connector.push(self._batch(4, run_id, start=0))
        batch2 = self._batch(5, run_id, start=2)  # items 2 and 3 are in both batches
        second = connector.push(batch2)
        assert second.external_ids == tuple(item.external_id for item in batch2.items)
        assert connector.status(first).pushed == 4
        assert connector.status(second).pushed == 5
        shared = first.external_ids[2]
        assert second.task_refs[shared] == first.task_refs[shared]
        # One task: an answer given through the first receipt shows through the second.
        who = self.annotator_names[0]
        self.annotate(connector, first, {shared: [(who, self.labels[0])]})
        assert _as_set(connector.pull(second)) == {(shared, who, self.labels[0])}

    # -- pull and status --------------------------------------------------------------------------------

    def test_pull_before_any_answer_returns_nothing(self, connector: Connector, run_id: str) -> None:
        receipt = connector.push(self._batch(3, run_id))
        assert connector.pull(receipt) == []
        assert connector.status(receipt) == BatchStatus(pushed=3, done=0, skipped=0, waiting=3)
        assert not connector.status(receipt).finished

    def test_pull_returns_labels_and_skips_with_annotator_names(self, connector: Connector, run_id: str) -> None:
        receipt = connector.push(self._batch(5, run_id))
        ids = receipt.external_ids
        a, b = self.annotator_names
        answers: Answers = {ids[0]: [(a, self.labels[0])], ids[1]: [(b, self.labels[1])], ids[2]: [(a, None)]}
        self.annotate(connector, receipt, answers)
        pulled = connector.pull(receipt)
        assert _as_set(pulled) == _expected(answers)
        assert len(pulled) == 3
        assert all(isinstance(x, Annotation) for x in pulled)
        assert [x.skipped for x in pulled if x.external_id == ids[2]] == [True]
        assert connector.status(receipt) == BatchStatus(pushed=5, done=2, skipped=1, waiting=2)

    def test_pull_twice_returns_the_same_answers(self, connector: Connector, run_id: str) -> None:
        receipt = connector.push(self._batch(3, run_id))
        ids = receipt.external_ids
        who = self.annotator_names[0]
        self.annotate(connector, receipt, {ids[0]: [(who, self.labels[1])], ids[2]: [(who, None)]})
        first = connector.pull(receipt)
        second = connector.pull(receipt)
        assert _as_set(first) == _as_set(second)
        assert len(first) == len(second) == 2

    def test_pull_returns_only_the_receipts_items(self, connector: Connector, run_id: str) -> None:
        mine = connector.push(self._batch(2, run_id, start=0))
        other = connector.push(self._batch(2, run_id, start=10))
        who = self.annotator_names[0]
        self.annotate(connector, other, {other.external_ids[0]: [(who, self.labels[0])]})
        assert connector.pull(mine) == []
        assert connector.status(mine).waiting == 2
        assert connector.status(other) == BatchStatus(pushed=2, done=1, skipped=0, waiting=1)

    def test_all_answered_batch_is_finished(self, connector: Connector, run_id: str) -> None:
        receipt = connector.push(self._batch(2, run_id))
        ids = receipt.external_ids
        who = self.annotator_names[1]
        self.annotate(connector, receipt, {ids[0]: [(who, self.labels[0])], ids[1]: [(who, None)]})
        status = connector.status(receipt)
        assert status == BatchStatus(pushed=2, done=1, skipped=1, waiting=0)
        assert status.finished

    def test_pair_text_batch_round_trips(self, connector: Connector, run_id: str) -> None:
        batch = self._batch(3, run_id, pair=True)
        assert batch.text_fields == ("sentence1", "sentence2")
        receipt = connector.push(batch)
        assert receipt.external_ids == tuple(item.external_id for item in batch.items)
        ids = receipt.external_ids
        a, b = self.annotator_names
        answers: Answers = {ids[0]: [(a, self.labels[1])], ids[1]: [(b, self.labels[0])]}
        self.annotate(connector, receipt, answers)
        assert _as_set(connector.pull(receipt)) == _expected(answers)
        assert connector.status(receipt) == BatchStatus(pushed=3, done=2, skipped=0, waiting=1)

    def test_overlap_item_waits_for_every_annotator(self, connector: Connector, run_id: str) -> None:
        if not self.supports_overlap:
            pytest.skip("this connector's test class sets supports_overlap = False")
        receipt = connector.push(self._batch(3, run_id, overlap=2))
        ids = receipt.external_ids
        a, b = self.annotator_names
        answers: Answers = {
            ids[0]: [(a, self.labels[0]), (b, self.labels[1])],  # done, annotators disagree
            ids[1]: [(a, None), (b, None)],  # skipped by everyone asked
            ids[2]: [(a, self.labels[0])],  # one of two: still waiting
        }
        self.annotate(connector, receipt, answers)
        assert _as_set(connector.pull(receipt)) == _expected(answers)
        assert connector.status(receipt) == BatchStatus(pushed=3, done=1, skipped=1, waiting=1)
