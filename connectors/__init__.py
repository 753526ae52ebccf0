"""Connectors: one protocol to push batches to annotation platforms and pull answers back.

Platform connectors that need optional SDKs (``connectors.labelstudio``, ``connectors.argilla``) and
what they share (``connectors.platform``, which needs httpx and pydantic) are imported from their
modules, not from here, so this package imports without the ``connectors`` extra.
"""

from connectors.base import Clock, Connector, RealClock
from connectors.exceptions import (
    AuthError,
    ConnectorError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
    UnapprovedBatchError,
)
from connectors.retry import RetryingConnector
from connectors.simulated import SimClock, SimulatedConnector

__all__ = [
    "Clock",
    "RealClock",
    "Connector",
    "SimClock",
    "SimulatedConnector",
    "RetryingConnector",
    "ConnectorError",
    "TransportError",
    "PlatformError",
    "AuthError",
    "ProtocolError",
    "ConnectorUsageError",
    "UnapprovedBatchError",
]
