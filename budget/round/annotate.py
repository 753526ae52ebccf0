"""An annotation round: propose a batch, get it approved, push it, wait for people, settle, retrain.

Every stage is recorded in the ledger before the next starts, so a killed run resumes where it was:
the proposal and its reservation are one transaction, a push is idempotent on external ids and its
receipt is stored, answers are stored as they arrive, and the settlement and the batch's ``done``
state are one transaction. The student is then retrained on every label so far; when no distillation
can follow the batch, those labels fine-tune the latest distilled student instead (``Decision.refine``).
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from annotation.aggregate import agreement_rate
from annotation.pool import ItemState
from annotation.records import Batch, BatchItem, Receipt
from annotation.selection import make_strategy
from budget import failpoints
from budget.decision import Decision
from budget.exceptions import AwaitingAnnotators, AwaitingApproval, BatchNotFoundError
from budget.ledger import BatchRecord, LabelRow
from budget.ledger.round_records import BatchPayload, RoundSummary
from budget.prices import label_cost, label_cost_from_time
from budget.round.context import RunContext
from budget.round.distill import teacher_proba
from budget.round.results import StudentResult
from budget.round.snapshot import Snapshot
from budget.round.steps import compute_step, finish_round, pilot_fields, student_step, student_summary
from modeling.infer import predict_logits, softmax

__all__ = ["run_annotate"]

_MAX_SELECTION_CANDIDATES = 4000  # the student scores at most this many unlabeled items per round


def run_annotate(ctx: RunContext, rnd: int, decision: Decision, snap: Snapshot) -> RoundSummary:
    """Propose a batch, get it approved, push it, wait for people, settle what they did, retrain."""
    batch_id = f"{ctx.run_id}-r{rnd:03d}"
    try:
        rec = ctx.ledger.batch(batch_id)
    except BatchNotFoundError:  # not proposed yet; proposing reserves and stores the batch atomically
        _propose(ctx, rnd, batch_id, decision, snap)
        failpoints.reach("propose", rnd)
        rec = ctx.ledger.batch(batch_id)
    rec = _approval(ctx, rnd, rec)
    if rec.state == "rejected":
        return finish_round(ctx, rnd, rec.reservation_id,
                            RoundSummary(n_labels=snap.n_labels, rejected=True))
    receipt = _push(ctx, rnd, rec)
    if rec.state in {"approved", "pushed", "partial"}:
        _wait_and_settle(ctx, rnd, batch_id, receipt)
    # retrain the student on every label so far (labels no distillation follows refine the distilled one)
    snap = ctx.snapshot()
    start = ctx.latest_of_kind(distilled=True) if decision.refine else None
    step = compute_step(ctx, rnd, f"round-{rnd}:student", rec.reservation_id,
                        student_step(ctx, rnd, snap, start=start[0] if start else None), StudentResult)
    # a student on half the labels, for the label-only curve (a refined student is not on that curve)
    pilot, pilot_cost = pilot_fields(ctx, rnd, snap, rec.reservation_id, decision.pilot and start is None, step)
    answers = snap.answers_to(set(receipt.external_ids))
    agreement = agreement_rate(answers)
    return finish_round(ctx, rnd, rec.reservation_id, student_summary(
        step, labels_bought=sum(x.label is not None for x in answers), skipped=sum(x.label is None for x in answers),
        agreement=None if math.isnan(agreement) else agreement, labels_micro=_label_cost(ctx, batch_id),
        compute_micro=step.cost_micro + pilot_cost, batch_id=batch_id, **pilot))


def _propose(ctx: RunContext, rnd: int, batch_id: str, decision: Decision, snap: Snapshot) -> None:
    """Select the batch's items, reserve its money and store it as ``proposed``, in one transaction."""
    candidates = snap.states.indices(ItemState.UNLABELED)
    # A lead rejected these items: offer others first, and them again only when nothing else is left.
    rejected = [i for b in ctx.ledger.batches("rejected") for i in b.payload.item_ids]
    fresh = np.setdiff1d(candidates, rejected)
    if len(fresh):
        candidates = fresh
    round_seed = ctx.seed * 1000 + rnd  # the sample of candidates and the selection's ties, the same on a resume
    rng = np.random.default_rng(round_seed)
    dev_ids = _dev_draw(ctx, rnd, decision.n_items, candidates, snap)
    candidates = np.setdiff1d(candidates, dev_ids)
    if len(candidates) > _MAX_SELECTION_CANDIDATES:
        candidates = np.sort(rng.choice(candidates, _MAX_SELECTION_CANDIDATES, replace=False))
    proba = _student_proba(ctx, candidates)
    strategy = make_strategy(ctx.config.annotation.selection)
    k = min(decision.n_items - len(dev_ids), len(candidates))
    routing = {"teacher_proba": teacher_proba(ctx, candidates) if strategy.uses_teacher and proba is not None else None,
               "texts": [ctx.pool.texts[i] for i in candidates] if strategy.uses_texts else None}
    picked = strategy.select(k, candidates=candidates, proba=proba, rng_seed=round_seed,
                             **routing) if k else []
    chosen = np.concatenate([np.asarray(picked, dtype=int), dev_ids])
    suggestions = {}
    if proba is not None:
        row = {int(c): j for j, c in enumerate(candidates)}
        for i in picked:
            p = proba[row[int(i)]]
            suggestions[str(int(i))] = [ctx.pool.labels[int(p.argmax())], round(float(p.max()), 4)]
    overlap = ctx.config.prices.overlap
    labels_micro = label_cost(ctx.config.label_price(), len(chosen), overlap)
    per_item = ctx.config.label_cost_per_item()
    amount = min(labels_micro + (decision.amount_micro - decision.n_items * per_item), decision.amount_micro)
    available = ctx.ledger.totals().available
    texts = ctx.pool.texts
    payload = BatchPayload(
        item_ids=tuple(int(i) for i in chosen), dev_ids=tuple(int(i) for i in dev_ids), why=decision.reason,
        estimates=decision.estimates,
        suggestions=suggestions, selection=repr(strategy), available_before_micro=available,
        available_after_micro=available - labels_micro,
        sample=tuple(t if isinstance(t, str) else " / ".join(t) for t in (texts[int(i)] for i in chosen[:5])))
    with ctx.ledger.atomic():
        res = ctx.ledger.reserve(amount, key=f"round-{rnd}:annotate", arm="annotate", round=rnd,
                                 purpose=f"{len(chosen)} labels x {overlap} + student retrain",
                                 estimate_micro=decision.amount_micro)
        ctx.ledger.add_batch(batch_id, round=rnd, reservation_id=res.id, payload=payload,
                             price_per_item_micro=per_item, overlap=overlap, total_micro=labels_micro)
        ctx.ledger.log_event("proposed", batch_id=batch_id, n_items=len(chosen), total_micro=labels_micro)


def _dev_draw(ctx: RunContext, rnd: int, n_items: int, candidates: np.ndarray, snap: Snapshot) -> np.ndarray:
    """Items drawn uniformly at random to grow the dev set toward ``[split] dev_size``: at most
    ``dev_share`` of the batch, none once the dev set is that large."""
    s = ctx.config.split
    n = min(max(0, s.dev_size - len(snap.dev_ids)), int(s.dev_share * n_items), len(candidates))
    if n <= 0:
        return np.array([], dtype=int)
    rng = np.random.default_rng([ctx.seed, rnd, 7])  # its own stream: the strategy's draws do not move it
    return np.sort(rng.choice(candidates, n, replace=False)).astype(int)


def _student_proba(ctx: RunContext, candidates: np.ndarray) -> np.ndarray | None:
    """The latest student's class probabilities on the candidates (None before the baseline)."""
    student = ctx.latest_student()
    if student is None or not len(candidates):
        return None
    logits = predict_logits(student.model, student.tokenizer, [ctx.pool.texts[i] for i in candidates],
                            max_length=ctx.config.models.max_length, progress=ctx.progress, phase_name="selection")
    return softmax(logits)


def _approval(ctx: RunContext, rnd: int, rec: BatchRecord) -> BatchRecord:
    """Approve a batch under the auto-approval amount; above it, wait for a lead (the run exits meanwhile)."""
    if rec.state != "proposed":
        return rec
    limit = ctx.config.annotation.auto_approve_micro
    if limit is not None and rec.total_micro >= limit:
        raise AwaitingApproval(rec.batch_id, rec.total_micro, len(rec.payload.item_ids))
    ctx.ledger.approve(rec.batch_id, by="auto", why="under the auto-approval limit")
    failpoints.reach("approve", rnd)
    return ctx.ledger.batch(rec.batch_id)


def _push(ctx: RunContext, rnd: int, rec: BatchRecord) -> Receipt:
    """Push an approved batch once (the platform skips items it has; the receipt is stored); its receipt."""
    if rec.state == "approved":
        receipt = ctx.connector.push(_batch_for_platform(ctx, rec))
        failpoints.reach("push", rnd)  # pushed, but the ledger does not know yet: the lost-receipt case
        ctx.ledger.set_batch_state(rec.batch_id, "pushed", receipt=asdict(receipt))
        ctx.ledger.log_event("pushed", batch_id=rec.batch_id, platform=receipt.platform,
                             n_items=len(receipt.external_ids))
        return receipt
    return Receipt(**{**rec.receipt, "external_ids": tuple(rec.receipt["external_ids"])})


def _wait_and_settle(ctx: RunContext, rnd: int, batch_id: str, receipt: Receipt) -> None:
    """Store answers as they arrive until the batch is finished (or the wait is over: the run exits and
    resumes later), then settle what people did, atomically with the batch being done."""
    a = ctx.config.annotation
    started = ctx.clock.now()
    while True:
        status = ctx.connector.status(receipt)
        _store_answers(ctx, batch_id, ctx.connector.pull(receipt))
        failpoints.reach("pull", rnd)
        if status.finished:
            break
        if status.done or status.skipped:
            ctx.ledger.set_batch_state(batch_id, "partial")
        if ctx.clock.now() - started >= float(a.wait_seconds) and not ctx.config.simulated:
            raise AwaitingAnnotators(batch_id, status.waiting)
        ctx.clock.sleep(float(a.poll_seconds))
    cost = _label_cost(ctx, batch_id)
    reservation_id = ctx.ledger.batch(batch_id).reservation_id
    with ctx.ledger.atomic():
        if cost:
            ctx.ledger.settle(reservation_id, cost, key=f"settle:{batch_id}:labels")
        ctx.ledger.set_batch_state(batch_id, "done")
    ctx.ledger.log_event("settled", batch_id=batch_id, cost_micro=cost)
    failpoints.reach("settle", rnd)


def _batch_for_platform(ctx: RunContext, rec: BatchRecord) -> Batch:
    items = []
    for i in rec.payload.item_ids:
        sug = rec.payload.suggestions.get(str(i)) if ctx.config.annotation.suggestions else None
        items.append(BatchItem(i, ctx.pool.external_id(ctx.run_id, i), ctx.pool.texts[i],
                               suggestion=sug[0] if sug else None, suggestion_score=sug[1] if sug else None))
    return Batch(rec.batch_id, ctx.config.task.name, ctx.pool.labels, tuple(items),
                 text_fields=ctx.config.task.batch_text_fields, overlap=rec.overlap,
                 approved=rec.state in {"approved", "pushed", "partial", "done"},
                 guidelines=ctx.config.connector.guidelines)


def _store_answers(ctx: RunContext, batch_id: str, annotations: list) -> None:
    by_ext = {ctx.pool.external_id(ctx.run_id, i): i for i in ctx.ledger.batch(batch_id).payload.item_ids}
    rows = [LabelRow(by_ext[a.external_id], a.external_id, a.annotator, a.label, a.lead_time_s)
            for a in annotations if a.external_id in by_ext]
    ctx.ledger.record_labels(batch_id, rows)


def _label_cost(ctx: RunContext, batch_id: str) -> int:
    """What the batch's answers cost: each label given (skips are free), at most ``overlap`` per item."""
    rec = ctx.ledger.batch(batch_id)
    per_item: dict[str, list[LabelRow]] = {}
    for row in ctx.ledger.labels(batch_id):
        if row.label is not None:
            per_item.setdefault(row.external_id, []).append(row)
    paid = [r for rows in per_item.values() for r in rows[: rec.overlap]]
    price = ctx.config.label_price()
    if price.per_label_micro is not None:
        return label_cost(price, len(paid), 1)
    seconds = sum(r.lead_time_s if r.lead_time_s is not None else price.seconds_per_label for r in paid)
    return label_cost_from_time(price, seconds)
