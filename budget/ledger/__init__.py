"""The ledger: every cent of a run and its state, in SQLite (:class:`Ledger`).

``db`` (the connection and its transactions), ``journal`` (grants,
reservations, settlements, releases), ``batches`` (annotation batches, approvals, labels), ``runlog`` (steps,
rounds, events), ``records`` and ``round_records`` (the typed rows), ``migrations`` (the schema's versions).
Nothing here imports anything of the package above it.
"""

from budget.ledger.ledger import (
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

__all__ = ["BATCH_STATES", "Ledger", "Entry", "Reservation", "Totals", "BatchRecord", "Approval", "LabelRow",
           "RoundRecord", "Event", "LedgerSnapshot"]
