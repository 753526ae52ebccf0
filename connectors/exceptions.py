"""Errors raised by connectors.

The tree (after httpx)::

    ConnectorError                  anything a platform did wrong
    ├── TransportError              could not talk to it (connection, timeout); retryable
    ├── PlatformError               it answered and refused (status + body); 429 and 5xx retryable
    │   └── AuthError               401 / 403: the key is missing or wrong
    └── ProtocolError               it answered something we cannot read
    ConnectorUsageError(RuntimeError)   our own misuse, never retried
    └── UnapprovedBatchError        push of a batch nobody approved

Every error names the batch id or receipt it was about and, for platform errors, the URL; none of
them ever carries an API key.
"""

from __future__ import annotations

__all__ = [
    "ConnectorError",
    "TransportError",
    "PlatformError",
    "AuthError",
    "ProtocolError",
    "ConnectorUsageError",
    "UnapprovedBatchError",
]


class ConnectorError(Exception):
    """Raised when an annotation platform could not do what was asked."""

    def __init__(self, message: str, *, batch_id: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.batch_id = batch_id
        self.url = url


class TransportError(ConnectorError):
    """Raised when the platform cannot be reached or did not answer in time."""


class PlatformError(ConnectorError):
    """Raised when the platform answered with an error status."""

    def __init__(self, message: str, *, status: int, body: str = "", batch_id: str | None = None,
                 url: str | None = None) -> None:
        super().__init__(message, batch_id=batch_id, url=url)
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """True for 429 and 5xx, which a later try may get past."""
        return self.status == 429 or self.status >= 500


class AuthError(PlatformError):
    """Raised when the platform refuses the key (401 or 403)."""


class ProtocolError(ConnectorError):
    """Raised when the platform's answer is not what the connector can read."""


class ConnectorUsageError(RuntimeError):
    """Raised when a connector is used wrongly by our own code."""


class UnapprovedBatchError(ConnectorUsageError):
    """Raised when a batch that was not approved is pushed."""
