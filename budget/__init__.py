"""Money and the loop: prices, the ledger, the policy and the controller.

Money is int micro-dollars everywhere (:mod:`budget.money`); the ledger (:mod:`budget.ledger`) is the
only place it is reserved, settled and released.
"""

from budget.exceptions import (
    BatchNotFoundError,
    CapExceededError,
    IdempotencyConflictError,
    InvalidTransitionError,
    LedgerError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from budget.ledger import (
    BATCH_STATES,
    Approval,
    BatchRecord,
    Entry,
    Event,
    LabelRow,
    Ledger,
    LedgerSnapshot,
    Reservation,
    RoundRecord,
    Totals,
)
from budget.ledger.migrations import LEDGER_MIGRATIONS, AppliedMigration, Migrations
from budget.money import MICRO_PER_USD, format_usd, parse_usd, to_decimal, to_micro
from budget.prices import (
    DEFAULT_DEVICE_PRICES,
    PAPER_LABEL_PRICES,
    DevicePrice,
    FlopPricing,
    LabelPrice,
    compute_cost,
    flop_cost,
    flop_seconds,
    label_cost,
    label_cost_from_time,
)

__all__ = [
    # money
    "MICRO_PER_USD",
    "to_micro",
    "to_decimal",
    "format_usd",
    "parse_usd",
    # prices
    "PAPER_LABEL_PRICES",
    "DEFAULT_DEVICE_PRICES",
    "LabelPrice",
    "DevicePrice",
    "FlopPricing",
    "label_cost",
    "label_cost_from_time",
    "compute_cost",
    "flop_seconds",
    "flop_cost",
    # ledger
    "BATCH_STATES",
    "Ledger",
    "Entry",
    "Reservation",
    "Totals",
    "BatchRecord",
    "Approval",
    "LabelRow",
    "RoundRecord",
    "Event",
    "LedgerSnapshot",
    # migrations
    "Migrations",
    "AppliedMigration",
    "LEDGER_MIGRATIONS",
    # exceptions
    "LedgerError",
    "CapExceededError",
    "BatchNotFoundError",
    "ReservationNotFoundError",
    "InvalidTransitionError",
    "IdempotencyConflictError",
    "ReservationClosedError",
]
