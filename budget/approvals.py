"""What a project lead sees and decides: proposals, approvals and rejections of a run's batches.

The command line (``proposals``, ``approve``, ``reject``) and the web page (:mod:`budget.web`) are two
clients of these functions, so a decision means the same wherever it is made: approving twice pushes
once, and rejecting releases the batch's money in the same transaction.
"""

from __future__ import annotations

from pathlib import Path

from budget.exceptions import DecisionError, LedgerError, RunNotFoundError
from budget.ledger import Ledger
from budget.ledger.records import BatchRecord
from budget.money import format_usd

__all__ = ["LEDGER_FILE", "RunNotFoundError", "DecisionError", "open_ledger", "proposal_lines", "decide"]

LEDGER_FILE = "ledger.sqlite"


def open_ledger(run_dir: str | Path) -> Ledger:
    """The ledger of an existing run folder.

    Raises
    ------
    RunNotFoundError
        If the folder has no ledger, with the command that starts a run there.
    """
    path = Path(run_dir) / LEDGER_FILE
    if not path.exists():
        raise RunNotFoundError(f"No run in '{run_dir}': {LEDGER_FILE} not found; start one with "
                               f"`python -m budget.controller --spend AMOUNT --run-dir {run_dir}`.")
    return Ledger(path)


def proposal_lines(rec: BatchRecord) -> list[str]:
    """A pending proposal as a lead reads it: what, how much, money before and after, why, a sample."""
    p = rec.payload
    if p.is_compute:
        what = f"compute: {p.purpose or ''}, {format_usd(rec.total_micro)}"
    else:
        what = (f"{len(p.item_ids)} items x {format_usd(rec.price_per_item_micro // max(rec.overlap, 1))} x "
                f"{rec.overlap} annotators = {format_usd(rec.total_micro)}")
    lines = [f"{rec.batch_id} (round {rec.round}): {what}",
             f"  money left: {format_usd(p.available_before_micro)} before, "
             f"{format_usd(p.available_after_micro)} after",
             f"  why: {p.why}"]  # the policy's reason carries each arm's expected gain, in units a lead reads
    lines += [f"  - {text[:100]}" for text in p.sample]
    return lines


def decide(ledger: Ledger, batch_id: str, verb: str, *, by: str, why: str = "") -> tuple[bool, str]:
    """Approve (``verb='approved'``) or reject (``'rejected'``) a proposed batch, recording who and why.

    Returns
    -------
    (changed, message)
        ``changed`` is False when the batch already had this decision (nothing is done twice).

    Raises
    ------
    DecisionError
        If the batch does not exist, or was already decided the other way or pushed.
    """
    if verb not in {"approved", "rejected"}:
        raise ValueError(f"verb must be 'approved' or 'rejected'; got {verb!r}.")
    try:
        rec = ledger.batch(batch_id)
    except LedgerError as exc:
        raise DecisionError(str(exc)) from exc
    if rec.state not in {"proposed", verb}:
        raise DecisionError(f"Batch {batch_id} is already {rec.state}; only a proposed batch can be {verb}.")
    try:
        changed = (ledger.approve(batch_id, by=by) if verb == "approved"
                   else ledger.reject(batch_id, by=by, why=why))
    except LedgerError as exc:  # decided by someone else between our read and our write
        raise DecisionError(str(exc)) from exc
    total = format_usd(rec.total_micro)
    if not changed:
        return False, f"Batch {batch_id} was already {verb}; nothing changed."
    ledger.log_event(verb, batch_id=batch_id, by=by, why=why)
    if verb == "approved":
        return True, f"Approved {batch_id} ({total}) by {by}."
    return True, f"Rejected {batch_id} by {by}: {why}. Its {total} is released."
