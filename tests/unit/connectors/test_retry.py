"""The retrying wrapper: transient errors are tried again with backoff, the rest go straight up."""

from __future__ import annotations

import pytest

from annotation.records import Annotation, Batch, BatchStatus, Receipt
from connectors.base import Connector, RealClock
from connectors.exceptions import (
    AuthError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
    UnapprovedBatchError,
)
from connectors.retry import RetryingConnector
from connectors.simulated import SimClock, SimulatedConnector
from tests.utils.connector_contract import Answers, ConnectorContractTests
from tests.utils.pools import make_batch


class FlakyConnector(Connector):
    """Raises the queued errors, one per call, then answers."""

    platform = "flaky"

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.closed = False
        self.clock = SimClock()

    def _fail(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    def _push(self, batch: Batch) -> Receipt:
        self._fail()
        return Receipt(batch.batch_id, self.platform, "p", tuple(i.external_id for i in batch.items))

    def pull(self, receipt: Receipt) -> list[Annotation]:
        self._fail()
        return [Annotation(receipt.external_ids[0], "ann", "pos")]

    def status(self, receipt: Receipt) -> BatchStatus:
        self._fail()
        return BatchStatus(1, 1, 0, 0)

    def close(self) -> None:
        self.closed = True


def _receipt() -> Receipt:
    return Receipt("b1", "flaky", "p", ("e1",))


@pytest.mark.parametrize(
    "error",
    [TransportError("timed out", batch_id="b1"), PlatformError("busy", status=503),
     PlatformError("slow down", status=429)],
)
def test_transient_errors_are_retried_with_exponential_backoff(error):
    inner = FlakyConnector([error, error])
    conn = RetryingConnector(inner, retries=3, backoff_s=0.5, clock=inner.clock)
    start = inner.clock.now()
    assert conn.pull(_receipt()) == [Annotation("e1", "ann", "pos")]
    assert inner.calls == 3
    assert inner.clock.now() - start == pytest.approx(0.5 + 1.0)


def test_gives_up_after_retries_and_raises_the_last_error():
    errors = [TransportError(f"try {i}") for i in range(5)]
    inner = FlakyConnector(errors)
    conn = RetryingConnector(inner, retries=2, backoff_s=1.0, clock=inner.clock)
    with pytest.raises(TransportError, match="try 2"):
        conn.status(_receipt())
    assert inner.calls == 3
    assert inner.clock.now() == pytest.approx(1.0 + 2.0)


@pytest.mark.parametrize(
    "error",
    [AuthError("bad key", status=401), PlatformError("bad request", status=400), ProtocolError("garbage"),
     ConnectorUsageError("misuse")],
)
def test_other_errors_are_not_retried(error):
    inner = FlakyConnector([error])
    conn = RetryingConnector(inner, clock=inner.clock)
    with pytest.raises(type(error)):
        conn.pull(_receipt())
    assert inner.calls == 1
    assert inner.clock.now() == 0.0


def test_push_is_retried_and_unapproved_batches_never_reach_the_platform():
    inner = FlakyConnector([TransportError("reset")])
    conn = RetryingConnector(inner, backoff_s=0.0)
    receipt = conn.push(make_batch(2))
    assert receipt.external_ids == ("test-item0000", "test-item0001")
    assert inner.calls == 2
    with pytest.raises(UnapprovedBatchError):
        conn.push(make_batch(2, approved=False))
    assert inner.calls == 2


def test_backoff_uses_the_given_clock():
    clock = SimClock()
    inner = FlakyConnector([TransportError("x")])
    RetryingConnector(inner, backoff_s=2.0, clock=clock).pull(_receipt())
    assert clock.now() == 2.0 and inner.clock.now() == 0.0


def test_wrapper_delegates_platform_close_and_repr():
    inner = FlakyConnector([])
    with RetryingConnector(inner, retries=1) as conn:
        assert conn.platform == "flaky"
        assert isinstance(conn.clock, RealClock)  # waiting between tries is real time unless told otherwise
        assert repr(conn) == "RetryingConnector(FlakyConnector(...), retries=1, backoff_s=0.5)"
    assert inner.closed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"retries": -1}, "'retries' parameter of RetryingConnector must be an int"),
     ({"retries": 1.5}, "'retries' parameter"),
     ({"backoff_s": -0.1}, r"'backoff_s' parameter .* Got -0.1 instead")],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetryingConnector(FlakyConnector([]), **kwargs)


class TestRetryingSimulatedConnectorContract(ConnectorContractTests):
    """The wrapper keeps the connector contract."""

    def make_connector(self) -> Connector:
        return RetryingConnector(SimulatedConnector())

    def annotate(self, connector: Connector, receipt: Receipt, answers: Answers) -> None:
        assert isinstance(connector, RetryingConnector) and isinstance(connector.inner, SimulatedConnector)
        for external_id, given in answers.items():
            for annotator, label in given:
                connector.inner.submit(external_id, annotator, label)
