"""Retries, kept in one wrapper above the connectors (the way httpx's ``Client`` sits above a transport).

Only errors a later try may get past are retried: :class:`TransportError` (connection, timeout) and
:class:`PlatformError` whose ``retryable`` is True (429 and 5xx). Everything else, and in particular
:class:`AuthError` and our own :class:`ConnectorUsageError`, goes straight up. Retrying ``push`` is safe
because push is idempotent on the items' external ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from numbers import Integral, Real
from typing import TypeVar

from annotation.records import Annotation, Batch, BatchStatus, Receipt
from connectors.base import Clock, Connector, RealClock
from connectors.exceptions import ConnectorError, PlatformError, TransportError

__all__ = ["RetryingConnector"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _retryable(exc: ConnectorError) -> bool:
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, PlatformError) and exc.retryable


class RetryingConnector(Connector):
    """A connector that retries its inner connector's transient failures with exponential backoff.

    Parameters
    ----------
    inner : Connector
        The connector that talks to the platform.
    retries : int, default=3
        How many times a failed call is tried again (so at most ``retries + 1`` calls).
    backoff_s : float, default=0.5
        Seconds to wait before the first retry; each later wait doubles.
    clock : Clock, optional
        Whose ``sleep`` waits between tries; real time when None.

    Examples
    --------
    >>> from connectors.simulated import SimulatedConnector
    >>> RetryingConnector(SimulatedConnector(), retries=2)
    RetryingConnector(SimulatedConnector(...), retries=2, backoff_s=0.5)
    """

    def __init__(self, inner: Connector, *, retries: int = 3, backoff_s: float = 0.5,
                 clock: Clock | None = None) -> None:
        self.inner = inner
        self.retries = retries
        self.backoff_s = backoff_s
        self.clock = clock if clock is not None else RealClock()
        self._validate_params()

    def _validate_params(self) -> None:
        if not isinstance(self.retries, Integral) or isinstance(self.retries, bool) or self.retries < 0:
            raise ValueError(
                f"The 'retries' parameter of RetryingConnector must be an int in the range [0, inf). "
                f"Got {self.retries!r} instead."
            )
        if not isinstance(self.backoff_s, Real) or isinstance(self.backoff_s, bool) or self.backoff_s < 0:
            raise ValueError(
                f"The 'backoff_s' parameter of RetryingConnector must be a float in the range [0.0, inf). "
                f"Got {self.backoff_s!r} instead."
            )

    def __repr__(self) -> str:
        inner = f"{type(self.inner).__name__}(...)"
        return f"RetryingConnector({inner}, retries={self.retries}, backoff_s={self.backoff_s})"

    @property  # type: ignore[override]
    def platform(self) -> str:
        """The inner connector's platform name."""
        return self.inner.platform

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except ConnectorError as exc:
                if not _retryable(exc) or attempt >= self.retries:
                    raise
                wait = self.backoff_s * (2**attempt)
                attempt += 1
                logger.warning("%s on %s failed (%s); try %d of %d in %.2f s", what, self.inner.platform, exc,
                               attempt + 1, self.retries + 1, wait)
                self.clock.sleep(wait)

    def _push(self, batch: Batch) -> Receipt:
        return self._call(f"push of batch {batch.batch_id}", lambda: self.inner.push(batch))

    def pull(self, receipt: Receipt) -> list[Annotation]:
        """The inner connector's :meth:`~Connector.pull`, retried on transient errors."""
        return self._call(f"pull of batch {receipt.batch_id}", lambda: self.inner.pull(receipt))

    def status(self, receipt: Receipt) -> BatchStatus:
        """The inner connector's :meth:`~Connector.status`, retried on transient errors."""
        return self._call(f"status of batch {receipt.batch_id}", lambda: self.inner.status(receipt))

    def close(self) -> None:
        """Close the inner connector."""
        self.inner.close()
