"""What one round does: the baseline student, an annotation round, a distillation round.

Each round is a list of steps recorded in the ledger before they start and marked done after they
end, so a killed run resumes where it was: a pushed batch is never pushed twice (the push is
idempotent on external ids and its receipt is stored), labels are stored as they arrive, and each
compute step settles its metered cost in the same transaction that marks it done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from annotation.aggregate import agreement_rate, majority_vote
from annotation.pool import ItemState, ItemStates, Pool, PoolSplit, dev_membership
from annotation.records import Annotation, Batch, BatchItem, Receipt
from annotation.selection import make_strategy
from budget import failpoints
from budget.config import ProjectConfig
from budget.costs import ComputePricer
from budget.exceptions import BatchNotFoundError
from budget.ledger import LabelRow, Ledger, Reservation
from budget.money import format_usd
from budget.phase_cache import PhaseCache, data_fingerprint
from budget.policy import Decision
from budget.prices import label_cost, label_cost_from_time
from connectors.base import Connector
from modeling.device import device_kind, pick_device
from modeling.encoding import encode, sorted_batches
from modeling.infer import evaluate, predict_logits, soft_labels, softmax
from modeling.meter import Meter, PhaseRecord
from modeling.models import LoadedModel, load_classifier
from modeling.train import SoftTargets, TrainConfig, train

__all__ = ["RunContext", "AwaitingApproval", "AwaitingAnnotators", "run_baseline", "run_annotate", "run_distill"]

_MAX_SELECTION_CANDIDATES = 4000  # the student scores at most this many unlabeled items per round

#: a compute step: ``work(limit_micro, more_money) -> (result, phase records)``
Work = Callable[[int, Callable[[int], int]], tuple[dict, list[PhaseRecord]]]


class AwaitingApproval(Exception):
    """Raised when a batch waits for a project lead's approval; the run exits and resumes later."""

    def __init__(self, batch_id: str, total_micro: int, n_items: int) -> None:
        super().__init__(f"Batch {batch_id} ({n_items} items, {format_usd(total_micro)}) waits for approval.")
        self.batch_id, self.total_micro, self.n_items = batch_id, total_micro, n_items


class AwaitingAnnotators(Exception):
    """Raised when a pushed batch is not finished within the configured wait; the run resumes later."""

    def __init__(self, batch_id: str, waiting: int) -> None:
        super().__init__(f"Batch {batch_id}: {waiting} items still wait for annotators.")
        self.batch_id, self.waiting = batch_id, waiting


@dataclass
class RunContext:
    """Everything a round needs; built once per run by the controller."""

    config: ProjectConfig
    ledger: Ledger
    pool: Pool
    split: PoolSplit
    run_id: str
    run_dir: Path
    connector: Connector
    pricer: ComputePricer
    seed: int
    progress: bool = True
    say: Callable[[str], None] = print
    phase_cache: PhaseCache | None = None  # a study's finished steps, shared between its cells
    model_cache_dir: Path | None = None  # where models joined from packages are kept (default: beside run_dir)
    _models: dict[str, LoadedModel] = field(default_factory=dict)

    # --- labels ---------------------------------------------------------------------------------
    def answers(self) -> list[Annotation]:
        """Every bought answer so far, as connector annotations."""
        return [Annotation(r.external_id, r.annotator, r.label, r.lead_time_s) for r in self.ledger.labels()]

    def gold_labels(self) -> dict[int, int]:
        """Pool index -> label id of every labeled item: the seed plus purchased, majority-voted labels."""
        out = {int(i): int(self.pool.gold[i]) for i in self.split.seed}
        by_ext = {self.pool.external_id(self.run_id, int(i)): int(i)
                  for b in self.ledger.batches() for i in b.payload["item_ids"]}
        for resolved in majority_vote(self.answers(), self.pool.labels):
            if resolved.label is not None and resolved.external_id in by_ext:
                out[by_ext[resolved.external_id]] = self.pool.label_id(resolved.label)
        return out

    def train_dev(self) -> tuple[tuple[list, np.ndarray], tuple[list, np.ndarray]]:
        """(texts, label ids) for training and for dev; dev is carved from the labels by a hash of the id."""
        labels = self.gold_labels()
        frac = self.config.split.dev_fraction
        train_ids, dev_ids = [], []
        for i in sorted(labels):
            (dev_ids if dev_membership(self.pool.item_hash(i), frac) else train_ids).append(i)  # same in any run
        if not dev_ids or not train_ids:
            raise ValueError(f"{len(labels)} labels give {len(train_ids)} for training and {len(dev_ids)} for dev; "
                             "raise [split] seed_size or set dev_fraction between 0.1 and 0.5.")
        texts = self.pool.texts
        return (([texts[i] for i in train_ids], np.array([labels[i] for i in train_ids])),
                ([texts[i] for i in dev_ids], np.array([labels[i] for i in dev_ids])))

    def item_states(self) -> ItemStates:
        """Pool item states rebuilt from the split and the ledger."""
        states = ItemStates.from_split(len(self.pool), self.split)
        in_run = np.concatenate([self.split.seed, self.split.unlabeled, self.split.test])
        states.mark(np.setdiff1d(np.arange(len(self.pool)), in_run), ItemState.HELD_OUT)  # cut by max_unlabeled
        answered = {a.external_id for a in self.answers()}
        labeled = set(self.gold_labels())
        for b in self.ledger.batches():
            ids = b.payload["item_ids"]
            if b.state == "rejected":
                continue
            for i in ids:
                if i in labeled:
                    states.mark([i], ItemState.LABELED)
                elif b.state == "done" and self.pool.external_id(self.run_id, i) in answered:
                    states.mark([i], ItemState.SKIPPED)
                else:
                    states.mark([i], ItemState.IN_BATCH)
        return states

    def unlabeled_for_distill(self, n: int) -> np.ndarray:
        """The first ``n`` of a seeded order of the unlabeled items that have no label."""
        states = self.item_states()
        free = np.flatnonzero(np.isin(states.states, [ItemState.UNLABELED, ItemState.IN_BATCH, ItemState.SKIPPED]))
        order = np.random.default_rng(self.seed).permutation(len(self.pool))
        ranked = order[np.isin(order, free)]
        return np.sort(ranked[:n])

    # --- models ---------------------------------------------------------------------------------
    def train_config(self, role: str) -> TrainConfig:
        """Training settings of the student ('student'), teacher ('teacher') or distillation ('distill')."""
        return self.config.models.train_config(role, seed=self.seed, metric=self.config.task.metric,
                                               progress=self.progress)

    def fresh(self, role: str) -> LoadedModel:
        """A newly loaded student or teacher with the task's labels (never a trained one)."""
        return load_classifier(getattr(self.config.models, role), self.pool.labels, seed=self.seed,
                               cache_dir=self.model_cache_dir or self.run_dir.parent / ".model-cache")

    def latest_student(self) -> LoadedModel | None:
        """The student trained by the last finished round, or None before the baseline."""
        rounds = [r for r in self.ledger.rounds() if r.state == "done" and r.summary and r.summary.get("student")]
        if not rounds:
            return None
        path = rounds[-1].summary["student"]
        if path not in self._models:
            self._models.clear()
            self._models[path] = load_classifier(path, self.pool.labels, seed=self.seed)
        return self._models[path]

    # --- steps ----------------------------------------------------------------------------------
    def meter(self, where: str) -> Meter:
        """A meter that prices each phase as the project says (each pricing is a crash point for tests)."""
        def price(record: PhaseRecord) -> int:
            failpoints.reach("compute", where)
            return self.pricer.price(record)
        return Meter(price=price)

    def compute_step(self, rnd: int, key: str, reservation_id: int, work: Work) -> dict[str, Any]:
        """Run ``work(limit_micro, more_money)`` once; settle its phases' price and mark the step done atomically.

        ``limit_micro`` is what the reservation still holds; ``more_money(micro)`` extends it while
        money is available (a phase that needs more than its estimate asks instead of stopping).
        A settlement never kills a run: an excess is reserved first, as far as the cap allows.
        """
        done = self.ledger.step_result(key)
        if done is not None:
            return done
        self.ledger.begin_step(key)
        limit = self.ledger.reservation(reservation_id).remaining_micro

        def more_money(micro: int) -> int:
            return self.ledger.extend(reservation_id, micro, note=f"more for {key}")

        result, records = work(limit, more_money)
        failpoints.reach("compute-done", f"{rnd}.{key.rsplit(':', 1)[-1]}")
        cost = sum(self.pricer.price(r) for r in records)
        result = {**result, "cost_micro": cost, "seconds": sum(r.seconds for r in records),
                  "phases": [asdict(r) for r in records]}
        with self.ledger.atomic():
            excess = cost - self.ledger.reservation(reservation_id).remaining_micro
            unpaid = excess - more_money(excess) if excess > 0 else 0
            if unpaid > 0:
                # Phases stop before their limit, with a margin for the evaluation after them; this is
                # reached only if a measure ran far past its projection. The cap holds; the event says so.
                self.ledger.log_event("compute_overrun", key=key, cost_micro=cost, unpaid_micro=unpaid)
                self.say(f"{key}: compute cost {format_usd(unpaid)} more than the cap allows; settled at the cap.")
                cost -= unpaid
            if cost:
                self.ledger.settle(reservation_id, cost, key=f"settle:{key}")
            self.ledger.finish_step(key, result)
        return result

    def score(self, model: LoadedModel, rnd: int, meter: Meter) -> dict[str, float]:
        """Dev score (metered, decisions use it) and, in simulation, test scores (reports only)."""
        _, (dev_texts, dev_y) = self.train_dev()
        kw = dict(max_length=self.config.models.max_length, progress=False)
        dev = evaluate(model.model, model.tokenizer, dev_texts, dev_y, self.pool.labels, meter=meter, **kw)
        out = {"dev": dev.get(self.config.task.metric), "dev_accuracy": dev.accuracy, "dev_macro_f1": dev.macro_f1}
        if len(self.split.test):
            test_texts = [self.pool.texts[i] for i in self.split.test]
            test = evaluate(model.model, model.tokenizer, test_texts, self.pool.gold[self.split.test],
                            self.pool.labels, **kw)  # not metered: the test set exists only in simulation
            out.update(test=test.get(self.config.task.metric), test_accuracy=test.accuracy,
                       test_macro_f1=test.macro_f1)
        return out


def _reserve_once(ctx: RunContext, key: str, amount: int, **kwargs) -> Reservation:
    """The reservation made under ``key`` (a resumed round finds the one it made before), or a new one."""
    existing = next((r for r in ctx.ledger.reservations() if r.key == key), None)
    return existing or ctx.ledger.reserve(amount, key=key, **kwargs)


def _eval_margin(ctx: RunContext, model: LoadedModel, texts: list) -> int:
    """Twice the estimated price of evaluating ``model`` on ``texts``: held back from a training's limit so
    that the metered evaluation after it still fits in the reservation."""
    tokens = int(encode(model.tokenizer, texts, max_length=ctx.config.models.max_length).lengths.sum())
    device = device_kind(pick_device(ctx.config.models.device))
    return 2 * ctx.pricer.estimate(2.0 * model.n_params * tokens * 1.5, device, phase="evaluation") + 1


def _cached(ctx: RunContext, out: Path, key: dict[str, Any] | None, limit: int, more_money: Callable[[int], int],
            run: Callable[[], tuple[dict, list[PhaseRecord]]]) -> tuple[dict, list[PhaseRecord]]:
    """Run a training step, or, in a study, reuse the same step another cell finished (same content key).

    A reused step is charged what its phases cost when they ran, if the reservation holds that (or can
    be extended to it) as it would have for the real run; its FLOPs are reported as saved.
    """
    cache = ctx.phase_cache
    if cache is None or not key:
        return run()
    digest = cache.key(**key)
    hit = cache.get(digest)
    if hit is not None:
        cost = sum(ctx.pricer.price(r) for r in hit.records)
        if cost <= limit or more_money(cost - limit) >= cost - limit:
            cache.restore(hit, out)
            return {**hit.result, "reused_flops": hit.flops}, list(hit.records)
    result, records = run()
    if result.get("stopped") != "budget":
        cache.put(digest, result, records, out)
    return result, records


def _train_key(ctx: RunContext, role: str, cfg: TrainConfig, texts: list, ys: np.ndarray, dev: tuple) -> dict:
    """What fixes a training's outcome: the model it starts from, its data, its settings and seed."""
    return {"role": role, "model": ctx.config.models.teacher if role == "teacher" else ctx.config.models.student,
            "train": data_fingerprint(texts, ys), "dev": data_fingerprint(list(dev[0]), dev[1]),
            "labels": list(ctx.pool.labels), "config": {k: v for k, v in asdict(cfg).items() if k != "progress"}}


def _affordable_prefix(ctx: RunContext, teacher: LoadedModel, texts: list, limit: int,
                       more_money: Callable[[int], int]) -> int:
    """How many of ``texts`` the teacher can soft-label with the money held (extended while there is more).

    The price of a prefix is computed as the meter will measure it: 2N FLOPs per padded position, with
    the batches :func:`modeling.infer.predict_logits` makes (length-sorted, padded to multiples of 8).
    """
    lengths = encode(teacher.tokenizer, texts, max_length=ctx.config.models.max_length).lengths
    device = device_kind(pick_device(ctx.config.models.device))

    def cost(n: int) -> int:
        padded = sum(len(b) * -(-int(lengths[b].max()) // 8) * 8 for b in sorted_batches(lengths[:n], 64))
        return ctx.pricer.estimate(2.0 * teacher.n_params * padded, device, phase="soft_labels")

    if cost(len(texts)) > limit:
        limit += more_money(cost(len(texts)) - limit)
    lo, hi = 0, len(texts)  # the largest n with cost(n) <= limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= limit else (lo, mid - 1)
    return lo


def _student_step(ctx: RunContext, rnd: int, soft: SoftTargets | None = None) -> Work:
    def work(limit: int, more_money: Callable[[int], int]) -> tuple[dict, list[PhaseRecord]]:
        (texts, ys), dev = ctx.train_dev()
        cfg = ctx.train_config("distill" if soft else "student")
        out = ctx.run_dir / "models" / f"round-{rnd:03d}" / "student"

        def run() -> tuple[dict, list[PhaseRecord]]:
            student = ctx.fresh("student")
            meter = ctx.meter(f"{rnd}.student")
            # Hold back the evaluation after training; with less than twice that, do not start at all.
            margin = _eval_margin(ctx, student, list(dev[0]))
            held = limit if limit >= 2 * margin else limit + more_money(2 * margin - limit)
            if held < 2 * margin:
                return {"stopped": "budget", "n_labels": len(ys) + len(dev[1]),
                        "skipped": "no money left to train the student"}, []
            result = train(student.model, student.tokenizer, texts, ys, label_names=ctx.pool.labels, dev=dev,
                           soft=soft, config=cfg, out_dir=out, meter=meter,
                           phase_name="student_distill" if soft else "student_finetune",
                           limit_micro=held - margin, more_money=more_money)
            scores = ctx.score(student, rnd, meter)
            return ({"student": str(out), "stopped": result.stopped, "n_labels": len(ys) + len(dev[1]), **scores},
                    [result.phase, *meter.records[-1:]])

        key = ctx.phase_cache and {
            **_train_key(ctx, "distill" if soft else "student", cfg, texts, ys, dev),
            "soft": data_fingerprint(list(soft.texts), soft.logits) if soft else None,
            "test": data_fingerprint([int(i) for i in ctx.split.test])}
        result, records = _cached(ctx, out, key, limit, more_money, run)
        ctx._models.clear()  # the next round loads this student from its folder
        return ({**result, "student": str(out)} if "student" in result else result), records
    return work


def _finish_round(ctx: RunContext, rnd: int, reservation_id: int, summary: dict[str, Any]) -> dict[str, Any]:
    with ctx.ledger.atomic():  # one transaction: a kill leaves the round either open or wholly finished
        if ctx.ledger.reservation(reservation_id).state == "open":  # a rejection already released and closed it
            ctx.ledger.close(reservation_id, key=f"close:round-{rnd}")
        for split in ("dev", "test"):
            if summary.get(split) is not None:
                ctx.ledger.record_metric(rnd, ctx.config.task.metric, float(summary[split]), split=split)
        ctx.ledger.finish_round(rnd, summary)
    return summary


def run_baseline(ctx: RunContext, rnd: int, decision: Decision) -> dict[str, Any]:
    """Round 0: the student fine-tuned on the seed labels, the point every arm is measured from."""
    res = ctx.ledger.reserve(decision.amount_micro, key=f"round-{rnd}:baseline", arm="baseline", round=rnd,
                             purpose="student on the seed labels", estimate_micro=decision.amount_micro)
    step = ctx.compute_step(rnd, f"round-{rnd}:student", res.id, _student_step(ctx, rnd))
    summary = {k: step[k] for k in ("student", "n_labels", "dev", "test", "seconds", "stopped") if k in step}
    return _finish_round(ctx, rnd, res.id, {**summary, "labels_bought": 0, "compute_micro": step["cost_micro"]})


# --- annotation round -------------------------------------------------------------------------------

def _propose(ctx: RunContext, rnd: int, batch_id: str, decision: Decision) -> None:
    states = ctx.item_states()
    candidates = states.indices(ItemState.UNLABELED)
    # A lead rejected these items: offer others first, and them again only when nothing else is left.
    rejected = [i for b in ctx.ledger.batches("rejected") for i in b.payload["item_ids"]]
    fresh = np.setdiff1d(candidates, rejected)
    if len(fresh):
        candidates = fresh
    rng = np.random.default_rng(ctx.seed * 1000 + rnd)
    if len(candidates) > _MAX_SELECTION_CANDIDATES:
        candidates = np.sort(rng.choice(candidates, _MAX_SELECTION_CANDIDATES, replace=False))
    student = ctx.latest_student()
    proba = None
    if student is not None and len(candidates):
        logits = predict_logits(student.model, student.tokenizer, [ctx.pool.texts[i] for i in candidates],
                                max_length=ctx.config.models.max_length, progress=ctx.progress,
                                phase_name="selection")
        proba = softmax(logits)
    strategy = make_strategy(ctx.config.annotation.selection)
    chosen = strategy.select(decision.n_items, candidates=candidates, proba=proba, rng_seed=ctx.seed * 1000 + rnd)
    row = {int(c): j for j, c in enumerate(candidates)}
    suggestions = {}
    if proba is not None:
        for i in chosen:
            p = proba[row[int(i)]]
            suggestions[int(i)] = [ctx.pool.labels[int(p.argmax())], round(float(p.max()), 4)]
    price = ctx.config.label_price()
    overlap = ctx.config.prices.overlap
    labels_micro = label_cost(price, len(chosen), overlap)
    per_item = label_cost(price, 1, overlap)
    amount = min(labels_micro + (decision.amount_micro - decision.n_items * per_item), decision.amount_micro)
    totals = ctx.ledger.totals()
    payload = {
        "item_ids": [int(i) for i in chosen],
        "suggestions": {str(k): v for k, v in suggestions.items()},
        "why": decision.reason,
        "estimates": decision.estimates,
        "selection": repr(strategy),
        "available_before_micro": totals.available,
        "available_after_micro": totals.available - labels_micro,
        "sample": [ctx.pool.texts[int(i)] if isinstance(ctx.pool.texts[int(i)], str)
                   else " / ".join(ctx.pool.texts[int(i)]) for i in chosen[:5]],
    }
    with ctx.ledger.atomic():
        res = ctx.ledger.reserve(amount, key=f"round-{rnd}:annotate", arm="annotate", round=rnd,
                                 purpose=f"{len(chosen)} labels x {overlap} + student retrain",
                                 estimate_micro=decision.amount_micro)
        ctx.ledger.add_batch(batch_id, round=rnd, reservation_id=res.id, payload=payload,
                             price_per_item_micro=per_item, overlap=overlap, total_micro=labels_micro)
        ctx.ledger.log_event("proposed", batch_id=batch_id, n_items=len(chosen), total_micro=labels_micro)


def _batch_for_platform(ctx: RunContext, batch_id: str) -> Batch:
    rec = ctx.ledger.batch(batch_id)
    items = []
    for i in rec.payload["item_ids"]:
        sug = rec.payload["suggestions"].get(str(i)) if ctx.config.annotation.suggestions else None
        items.append(BatchItem(i, ctx.pool.external_id(ctx.run_id, i), ctx.pool.texts[i],
                               suggestion=sug[0] if sug else None, suggestion_score=sug[1] if sug else None))
    return Batch(batch_id, ctx.config.task.name, ctx.pool.labels, tuple(items),
                 text_fields=ctx.config.task.batch_text_fields, overlap=rec.overlap,
                 approved=rec.state in {"approved", "pushed", "partial", "done"},
                 guidelines=ctx.config.connector.guidelines)


def _store_answers(ctx: RunContext, batch_id: str, receipt: Receipt, annotations: list[Annotation]) -> None:
    by_ext = {ctx.pool.external_id(ctx.run_id, i): i for i in ctx.ledger.batch(batch_id).payload["item_ids"]}
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


def run_annotate(ctx: RunContext, rnd: int, decision: Decision) -> dict[str, Any]:
    """Propose a batch, get it approved, push it, wait for people, settle what they did, retrain."""
    batch_id = f"{ctx.run_id}-r{rnd:03d}"
    a = ctx.config.annotation
    try:
        rec = ctx.ledger.batch(batch_id)
    except BatchNotFoundError:  # not proposed yet; proposing reserves and stores the batch atomically
        _propose(ctx, rnd, batch_id, decision)
        failpoints.reach("propose", rnd)
        rec = ctx.ledger.batch(batch_id)
    # 1. approval: auto under the configured amount, else a lead decides while we are not running
    if rec.state == "proposed":
        limit = ctx.config.annotation.auto_approve_micro
        if limit is None or rec.total_micro < limit:
            ctx.ledger.approve(batch_id, by="auto", why="under the auto-approval limit")
            failpoints.reach("approve", rnd)
        else:
            raise AwaitingApproval(batch_id, rec.total_micro, len(rec.payload["item_ids"]))
    rec = ctx.ledger.batch(batch_id)
    if rec.state == "rejected":
        summary = {"rejected": True, "labels_bought": 0, "n_labels": len(ctx.gold_labels())}
        return _finish_round(ctx, rnd, rec.reservation_id, summary)
    # 2. push once: the connector skips items already on the platform, the receipt is stored
    if rec.state == "approved":
        receipt = ctx.connector.push(_batch_for_platform(ctx, batch_id))
        failpoints.reach("push", rnd)  # pushed, but the ledger does not know yet: the lost-receipt case
        ctx.ledger.set_batch_state(batch_id, "pushed", receipt=asdict(receipt))
        ctx.ledger.log_event("pushed", batch_id=batch_id, platform=receipt.platform, n_items=len(receipt.external_ids))
        rec = ctx.ledger.batch(batch_id)
    receipt = Receipt(**{**rec.receipt, "external_ids": tuple(rec.receipt["external_ids"])})
    # 3. wait for people; store every answer as it arrives
    if rec.state in {"pushed", "partial"}:
        clock = ctx.connector.clock
        started = clock.now()
        while True:
            status = ctx.connector.status(receipt)
            _store_answers(ctx, batch_id, receipt, ctx.connector.pull(receipt))
            failpoints.reach("pull", rnd)
            if status.finished:
                break
            if status.done or status.skipped:
                ctx.ledger.set_batch_state(batch_id, "partial")
            if clock.now() - started >= float(a.wait_seconds) and not ctx.config.simulated:
                raise AwaitingAnnotators(batch_id, status.waiting)
            clock.sleep(float(a.poll_seconds))
        # 4. settle what people did, atomically with the batch being done
        cost = _label_cost(ctx, batch_id)
        with ctx.ledger.atomic():
            if cost:
                ctx.ledger.settle(rec.reservation_id, cost, key=f"settle:{batch_id}:labels")
            ctx.ledger.set_batch_state(batch_id, "done")
        ctx.ledger.log_event("settled", batch_id=batch_id, cost_micro=cost)
        failpoints.reach("settle", rnd)
    # 5. retrain the student on every label so far
    step = ctx.compute_step(rnd, f"round-{rnd}:student", rec.reservation_id, _student_step(ctx, rnd))
    answers = [x for x in ctx.answers() if x.external_id in set(receipt.external_ids)]
    agreement = agreement_rate(answers)
    summary = {k: step[k] for k in ("student", "n_labels", "dev", "test", "seconds", "stopped") if k in step}
    summary.update(labels_bought=sum(x.label is not None for x in answers),
                   skipped=sum(x.label is None for x in answers),
                   agreement=None if math.isnan(agreement) else agreement, labels_micro=_label_cost(ctx, batch_id),
                   compute_micro=step["cost_micro"], batch_id=batch_id)
    return _finish_round(ctx, rnd, rec.reservation_id, summary)


# --- distillation round -----------------------------------------------------------------------------

def run_distill(ctx: RunContext, rnd: int, decision: Decision) -> dict[str, Any]:
    """Teacher fine-tuned on every label so far, soft labels on unlabeled items (once), student distilled."""
    # Estimates are FLOP-based: reserve twice the estimate (what the money allows); the meter stops at it.
    amount = min(decision.amount_micro * 2, ctx.ledger.totals().available)
    res = _reserve_once(ctx, f"round-{rnd}:distill", amount, arm="distill", round=rnd,
                        purpose=f"teacher + soft labels on {decision.n_items} items + student",
                        estimate_micro=decision.amount_micro)
    # A lead approves compute above the configured amount, as for annotation batches.
    limit = ctx.config.policy.approve_compute_micro
    if limit is not None and res.amount_micro > limit:
        batch_id = f"{ctx.run_id}-r{rnd:03d}-compute"
        try:
            rec = ctx.ledger.batch(batch_id)
        except BatchNotFoundError:
            left = ctx.ledger.totals().available
            payload = {"kind": "compute", "item_ids": [], "why": decision.reason, "estimates": decision.estimates,
                       "purpose": res.purpose, "available_before_micro": left + res.amount_micro,
                       "available_after_micro": left, "sample": []}
            rec = ctx.ledger.add_batch(batch_id, round=rnd, reservation_id=res.id, payload=payload,
                                       price_per_item_micro=0, overlap=1, total_micro=res.amount_micro)
        if rec.state == "proposed":
            raise AwaitingApproval(batch_id, rec.total_micro, 0)
        if rec.state == "rejected":
            return _finish_round(ctx, rnd, res.id, {"rejected": True, "labels_bought": 0,
                                                    "n_labels": len(ctx.gold_labels())})
    out = ctx.run_dir / "models" / f"round-{rnd:03d}"
    items = ctx.unlabeled_for_distill(decision.n_items)
    texts = [ctx.pool.texts[i] for i in items]

    def fit_teacher(limit: int, more_money: Callable[[int], int]) -> tuple[dict, list[PhaseRecord]]:
        (tr_texts, tr_y), dev = ctx.train_dev()
        cfg = ctx.train_config("teacher")

        def run() -> tuple[dict, list[PhaseRecord]]:
            teacher = ctx.fresh("teacher")
            result = train(teacher.model, teacher.tokenizer, tr_texts, tr_y, label_names=ctx.pool.labels, dev=dev,
                           config=cfg, out_dir=out / "teacher", meter=ctx.meter(f"{rnd}.teacher"),
                           phase_name="teacher_finetune", limit_micro=limit, more_money=more_money)
            ctx._models["teacher"] = teacher
            return {"stopped": result.stopped, "teacher_dev": result.best_dev}, [result.phase]

        key = ctx.phase_cache and _train_key(ctx, "teacher", cfg, tr_texts, tr_y, dev)
        return _cached(ctx, out / "teacher", key, limit, more_money, run)

    def label_pool(limit: int, more_money: Callable[[int], int]) -> tuple[dict, list[PhaseRecord]]:
        teacher = ctx._models.get("teacher") or load_classifier(out / "teacher", ctx.pool.labels)
        cache_dir = ctx.phase_cache.root / "soft-labels" if ctx.phase_cache else ctx.run_dir / "cache"
        n = _affordable_prefix(ctx, teacher, texts, limit, more_money)
        if n == 0:
            return {"n_items": 0, "stopped": "budget"}, []
        soft = soft_labels(teacher.model, teacher.tokenizer, texts[:n], cache_dir=cache_dir,
                           max_length=ctx.config.models.max_length, progress=ctx.progress)
        phase, result = soft.phase, {"soft_labels": str(soft.path), "n_items": n}
        if soft.cached and ctx.phase_cache is None:  # outside a study, work that did not run costs nothing
            phase = replace(phase, seconds=0.0, examples=0, tokens=0, padded_tokens=0, flops=0.0)
        elif soft.cached:
            result["reused_flops"] = phase.flops
        return result, [phase]

    t = ctx.compute_step(rnd, f"round-{rnd}:teacher", res.id, fit_teacher)
    if t["stopped"] == "budget":
        summary = {"stopped": "budget", "n_labels": len(ctx.gold_labels()), "labels_bought": 0,
                   "compute_micro": t["cost_micro"], "seconds": t["seconds"]}
        return _finish_round(ctx, rnd, res.id, summary)
    s = ctx.compute_step(rnd, f"round-{rnd}:soft_labels", res.id, label_pool)
    ctx._models.pop("teacher", None)
    if s["n_items"] == 0:  # the cap was reached: the teacher is kept, no student this round
        return _finish_round(ctx, rnd, res.id, {"stopped": "budget", "n_labels": len(ctx.gold_labels()),
                                                "labels_bought": 0, "compute_micro": t["cost_micro"],
                                                "seconds": t["seconds"]})
    logits = np.load(s["soft_labels"])
    used = texts[:s["n_items"]]  # as many as the money paid the teacher for
    st = ctx.compute_step(rnd, f"round-{rnd}:student", res.id, _student_step(ctx, rnd, SoftTargets(used, logits)))
    summary = {k: st[k] for k in ("student", "n_labels", "dev", "test", "stopped") if k in st}
    for rec in ctx.ledger.batches("approved", round=rnd):  # the lead's approval of this compute is used up
        ctx.ledger.set_batch_state(rec.batch_id, "done")
    summary.update(labels_bought=0, unlabeled_used=len(used), teacher_dev=t.get("teacher_dev"),
                   compute_micro=t["cost_micro"] + s["cost_micro"] + st["cost_micro"],
                   seconds=t["seconds"] + s["seconds"] + st["seconds"])
    return _finish_round(ctx, rnd, res.id, summary)

