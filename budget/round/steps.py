"""The steps rounds are made of: a metered compute step, the student's training, a round's end.

Each compute step is recorded in the ledger before it starts and marked done, with its metered cost
settled, in one transaction after it ends, so a killed run redoes at most the step it was in. In a
study, a step whose content (model, data, settings, seed) another cell already trained is reused
from the store the study plugs in (:class:`budget.round.step_store.StepStore`) and charged what it cost when it ran.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from budget import failpoints
from budget.ledger import Reservation
from budget.ledger.round_records import RoundSummary
from budget.money import format_usd
from budget.round.context import RunContext
from budget.round.results import PilotResult, StepResult, StudentResult
from budget.round.snapshot import Snapshot
from budget.round.step_store import data_fingerprint, folder_digest, step_key
from budget.shipped import right_bits
from modeling.device import device_kind, pick_device
from modeling.encoding import encode
from modeling.meter import PhaseRecord
from modeling.metrics import score as score_predictions
from modeling.models import LoadedModel, load_classifier
from modeling.train import Metering, SoftTargets, TrainConfig, TrainData, train

__all__ = ["Work", "compute_step", "reserve_once", "eval_margin", "cached",
           "train_key", "student_step", "pilot_fields", "student_summary", "finish_round"]

R = TypeVar("R", bound=StepResult)
#: a compute step: ``work(limit_micro, more_money) -> (result, phase records)``
Work = Callable[[int, Callable[[int], int]], tuple[R, list[PhaseRecord]]]


def compute_step(ctx: RunContext, rnd: int, key: str, reservation_id: int, work: Work, kind: type[R]) -> R:
    """Run ``work(limit_micro, more_money)`` once; settle its phases' price and mark the step done atomically.
    A step already done returns its recorded result, read as ``kind``.

    ``limit_micro`` is what the reservation still holds; ``more_money(micro)`` extends it while
    money is available (a phase that needs more than its estimate asks instead of stopping).
    A settlement never kills a run: an excess is reserved first, as far as the cap allows.
    """
    ledger = ctx.ledger
    done = ledger.step_result(key)
    if done is not None:
        return kind.from_json(done)
    ledger.begin_step(key)
    limit = ledger.reservation(reservation_id).remaining_micro

    def more_money(micro: int) -> int:
        return ledger.extend(reservation_id, micro, note=f"more for {key}")

    result, records = work(limit, more_money)
    failpoints.reach("compute-done", f"{rnd}.{key.rsplit(':', 1)[-1]}")
    cost = sum(ctx.pricer.price(r) for r in records)
    result = result.costed(cost, records)
    with ledger.atomic():
        excess = cost - ledger.reservation(reservation_id).remaining_micro
        unpaid = excess - more_money(excess) if excess > 0 else 0
        if unpaid > 0:
            # Phases stop before their limit, with a margin for the evaluation after them; this is
            # reached only if a measure ran far past its projection. The cap holds; the event says so.
            ledger.log_event("compute_overrun", key=key, cost_micro=cost, unpaid_micro=unpaid)
            ctx.say(f"{key}: compute cost {format_usd(unpaid)} more than the cap allows; settled at the cap.")
            cost -= unpaid
        if cost:
            ledger.settle(reservation_id, cost, key=f"settle:{key}")
        ledger.finish_step(key, result.to_json())
    return result


def reserve_once(ctx: RunContext, key: str, amount: int, **kwargs) -> Reservation:
    """The reservation made under ``key`` (a resumed round finds the one it made before), or a new one."""
    existing = next((r for r in ctx.ledger.reservations() if r.key == key), None)
    return existing or ctx.ledger.reserve(amount, key=key, **kwargs)


def eval_margin(ctx: RunContext, model: LoadedModel, texts: list) -> int:
    """Twice the estimated price of evaluating ``model`` on ``texts``: held back from a training's limit so
    that the metered evaluation after it still fits in the reservation."""
    tokens = int(encode(model.tokenizer, texts, max_length=ctx.config.models.max_length).lengths.sum())
    device = device_kind(pick_device(ctx.config.models.device))
    return 2 * ctx.pricer.estimate(2.0 * model.n_params * tokens * 1.5, device, phase="evaluation") + 1


def _hold_for_training(limit: int, more_money: Callable[[int], int], margin: int) -> int:
    """The money a training and its evaluations may hold: the reservation's ``limit``, extended (while money
    is available) to twice ``margin``, the evaluations' price held back after training; 0 when even that
    is not there (the training does not start)."""
    held = limit if limit >= 2 * margin else limit + more_money(2 * margin - limit)
    return held if held >= 2 * margin else 0


def cached(ctx: RunContext, out: Path, key: dict[str, Any] | None, limit: int, more_money: Callable[[int], int],
           run: Callable[[], tuple[R, list[PhaseRecord]]], kind: type[R]) -> tuple[R, list[PhaseRecord]]:
    """Run a training step, or, in a study, reuse the same step another cell finished (same content key), read
    as ``kind``.

    A reused step is charged what its phases cost when they ran, if the reservation holds that (or can
    be extended to it) as it would have for the real run; its FLOPs are reported as saved.
    """
    cache = ctx.phase_cache
    if cache is None or not key:
        return run()
    digest = step_key(**key)
    hit = cache.get(digest)
    if hit is not None:
        cost = sum(ctx.pricer.price(r) for r in hit.records)
        if cost <= limit or more_money(cost - limit) >= cost - limit:
            cache.restore(hit, out)
            return replace(kind.from_json(hit.result), reused_flops=hit.flops), list(hit.records)
    result, records = run()
    if result.stopped != "budget":
        cache.put(digest, result.to_json(), records, out)
    return result, records


def train_key(ctx: RunContext, role: str, cfg: TrainConfig, texts: list, ys: np.ndarray, dev: tuple) -> dict:
    """What fixes a training's outcome: the model it starts from, its data, its settings and seed."""
    m = ctx.config.models
    model = (f"{m.teacher}+lora{m.teacher_lora_rank}" if m.teacher_lora_rank else m.teacher) if role == "teacher" \
        else m.student
    return {"role": role, "model": model,
            "train": data_fingerprint(texts, ys), "dev": data_fingerprint(list(dev[0]), dev[1]),
            "labels": list(ctx.pool.labels), "config": _config_key(cfg)}


def _config_key(cfg: TrainConfig) -> dict:
    """The settings that fix a training's outcome; ``class_weight`` only when set, so that steps stored
    before the setting existed are still found."""
    return {k: v for k, v in asdict(cfg).items() if k != "progress" and not (k == "class_weight" and v == "none")}


def student_step(ctx: RunContext, rnd: int, snap: Snapshot, soft: SoftTargets | None = None,
                 start: str | None = None) -> Work:
    """The student trained on the snapshot's labels (and distilled from ``soft`` targets when given), scored
    on dev (and test, in simulation) next to the previous round's student on the same dev items; it does
    not start without money for training and its evaluations.

    With ``start`` (a distilled student's folder) the labels fine-tune that student instead of a fresh one,
    and the start itself is kept where no epoch beats it on dev: labels that no distillation follows refine
    the distilled student rather than replace it with one that saw the labels alone."""
    def work(limit: int, more_money: Callable[[int], int]) -> tuple[StudentResult, list[PhaseRecord]]:
        (texts, ys), dev = snap.train_dev()
        cfg = ctx.train_config("distill" if soft else "student")
        out = ctx.round_dir(rnd) / "student"
        previous = ctx.latest_student_path()

        def run() -> tuple[StudentResult, list[PhaseRecord]]:
            student = ctx.fresh("student") if start is None else load_classifier(start, ctx.pool.labels,
                                                                                  seed=ctx.seed)
            meter = ctx.meter(f"{rnd}.student")
            # Hold back the evaluation after training; with less than twice that, do not start at all.
            margin = eval_margin(ctx, student, list(dev[0])) * (2 if previous else 1)
            held = _hold_for_training(limit, more_money, margin)
            if not held:
                return StudentResult(stopped="budget", n_labels=len(ys) + len(dev[1]),
                                     reason="no money left to train the student"), []
            phase = "student_distill" if soft else "student_finetune"
            result = train(student.model, student.tokenizer, TrainData(texts, ys, ctx.pool.labels, dev=dev, soft=soft),
                           cfg, metering=Metering(meter, phase, held - margin, more_money), out_dir=out,
                           keep_start=start is not None)
            scores = ctx.score(student, snap, meter)
            return (replace(scores, student=str(out), stopped=result.stopped, n_labels=len(ys) + len(dev[1])),
                    [result.phase, *meter.records[-1:]])

        key = ctx.phase_cache and {
            **train_key(ctx, "distill" if soft else "student", cfg, texts, ys, dev),
            "soft": data_fingerprint(list(soft.texts), soft.logits) if soft else None,
            **({"start": folder_digest(Path(start))} if start else {}),
            "test": data_fingerprint([int(i) for i in ctx.split.test])}
        result, records = cached(ctx, out, key, limit, more_money, run, StudentResult)
        if result.student is None:
            return result, records
        result = replace(result, student=str(out), **({"refined": True, "refined_from": start} if start else {}))
        if result.dev_pred is not None:  # which dev items it got right: the shipped student's choice
            result = replace(result, dev_right=right_bits(np.asarray(result.dev_pred) == dev[1]))
        if previous and result.dev_pred is not None:
            compared, phase = _compare_with(ctx, rnd, snap, previous, np.asarray(result.dev_pred))
            result = replace(result, prev_dev=compared.prev_dev, disagree=compared.disagree)
            records = [*records, phase]
            same, more = _compare_along_kind(ctx, rnd, snap, previous, soft is not None or start is not None,
                                             result)
            result, records = replace(result, **same), [*records, *more]
        return result, records
    return work


def _pilot_step(ctx: RunContext, rnd: int, snap: Snapshot, dev_pred: list[int]) -> Work:
    """A student trained on a random half of the snapshot's training labels and scored on the same dev items
    as the round's student (whose dev predictions are ``dev_pred``): a subsample pilot, one more point on
    the label-only learning curve from labels already bought.

    A batch moves the labels from n to n + k, a span of ln((n + k) / n) that shrinks as labels grow (0.08 at
    285 -> 309), so its paired gain says little about the curve's slope; the pilot's span is ln 2 in every
    round, from a retrain on half the labels. Nothing is kept of the pilot's model (the run folder stays
    small). Without money for it (none left to extend its reservation) it does not run: the result is empty.
    """
    def work(limit: int, more_money: Callable[[int], int]) -> tuple[PilotResult, list[PhaseRecord]]:
        (texts, ys), dev = snap.train_dev()
        half = len(ys) // 2
        if half < 2 or not len(dev[1]):
            return PilotResult(), []
        keep = np.sort(np.random.default_rng([ctx.seed, rnd, 13]).choice(len(ys), half, replace=False))
        texts, ys = [texts[i] for i in keep], ys[keep]
        cfg = ctx.train_config("student")
        out = ctx.round_dir(rnd) / "pilot"

        def run() -> tuple[PilotResult, list[PhaseRecord]]:
            student = ctx.fresh("student")
            meter = ctx.meter(f"{rnd}.pilot")
            margin = eval_margin(ctx, student, list(dev[0]))
            held = _hold_for_training(limit, more_money, margin)
            if not held:
                return PilotResult(stopped="budget"), []
            result = train(student.model, student.tokenizer, TrainData(texts, ys, ctx.pool.labels, dev=dev), cfg,
                           metering=Metering(meter, "student_finetune", held - margin, more_money), out_dir=out)
            pred = ctx.dev_predictions(student, snap, meter)
            shutil.rmtree(out, ignore_errors=True)  # only its predictions are kept
            out.mkdir(parents=True)
            return (PilotResult(stopped=result.stopped, dev_pred=tuple(int(p) for p in pred)),
                    [result.phase, *meter.records[-1:]])

        key = ctx.phase_cache and {**train_key(ctx, "student", cfg, texts, ys, dev), "pilot": True}
        result, records = cached(ctx, out, key, limit, more_money, run, PilotResult)
        shutil.rmtree(out, ignore_errors=True)
        if result.dev_pred is None or result.stopped == "budget":
            return PilotResult(), records
        pilot, main, dev_y = np.asarray(result.dev_pred), np.asarray(dev_pred), dev[1]
        return PilotResult(pilot_dev=score_predictions(dev_y, pilot, ctx.pool.labels).get(ctx.config.task.metric),
                           pilot_disagree=float(np.mean((pilot == dev_y) != (main == dev_y))),
                           pilot_labels=half + len(dev_y)), records
    return work


def pilot_fields(ctx: RunContext, rnd: int, snap: Snapshot, reservation_id: int, wanted: bool,
                 step: StudentResult) -> tuple[dict[str, Any], int]:
    """Run the round's subsample pilot (:func:`_pilot_step`) after its student ``step`` when the decision
    asked for one (``wanted``); its summary fields (:class:`RoundSummary` keywords) and what it cost (nothing
    without a pilot)."""
    if not wanted or step.dev_pred is None:
        return {}, 0
    pilot = compute_step(ctx, rnd, f"round-{rnd}:pilot", reservation_id,
                         _pilot_step(ctx, rnd, snap, list(step.dev_pred)), PilotResult)
    fields = {k: getattr(pilot, k) for k in ("pilot_dev", "pilot_disagree", "pilot_labels")}
    return {k: v for k, v in fields.items() if v is not None}, pilot.cost_micro


def _compare_along_kind(ctx: RunContext, rnd: int, snap: Snapshot, previous: str, distilled: bool,
                        result: StudentResult) -> tuple[dict[str, Any], list[PhaseRecord]]:
    """The comparison with the last student of the same kind (distilled or label-only): the previous
    round's when it was one (no second evaluation), else that student scored on this round's dev items."""
    last = ctx.latest_of_kind(distilled)
    if last is None:
        return {}, []
    path, n_labels = last
    if path == previous:
        return {"arm_prev_dev": result.prev_dev, "arm_disagree": result.disagree, "arm_prev_labels": n_labels}, []
    compared, phase = _compare_with(ctx, rnd, snap, path, np.asarray(result.dev_pred))
    return {"arm_prev_dev": compared.prev_dev, "arm_disagree": compared.disagree, "arm_prev_labels": n_labels}, [phase]


@dataclass(frozen=True)
class _Paired:
    """An earlier student on this round's dev items: its score (``prev_dev``), and the share of those items on
    which exactly one of it and this round's student is right (``disagree``)."""

    prev_dev: float | None
    disagree: float


def _compare_with(ctx: RunContext, rnd: int, snap: Snapshot, previous: str,
                  pred: np.ndarray) -> tuple[_Paired, PhaseRecord]:
    """The previous student scored on this round's dev items next to this round's predictions ``pred``: a
    paired measure of the round's gain."""
    _, (_, dev_y) = snap.train_dev()
    meter = ctx.meter(f"{rnd}.compare")
    before = ctx.dev_predictions(load_classifier(previous, ctx.pool.labels, seed=ctx.seed), snap, meter)
    prev = score_predictions(dev_y, before, ctx.pool.labels).get(ctx.config.task.metric)
    disagree = float(np.mean((before == dev_y) != (pred == dev_y)))
    return _Paired(prev, disagree), meter.records[-1]


def student_summary(step: StudentResult, **more: Any) -> RoundSummary:
    """A round's summary from its student step's result, plus the round's own fields."""
    keys = ("student", "n_labels", "dev", "test", "seconds", "stopped", "dev_items", "prev_dev", "disagree",
            "arm_prev_dev", "arm_disagree", "arm_prev_labels", "refined", "dev_right")
    picked = {k: getattr(step, k) for k in keys if getattr(step, k) is not None}
    return RoundSummary(**{**picked, **more})


def finish_round(ctx: RunContext, rnd: int, reservation_id: int, summary: RoundSummary) -> RoundSummary:
    """Close the round's reservation and mark it done with its summary, in one transaction."""
    with ctx.ledger.atomic():  # a kill leaves the round either open or wholly finished
        if ctx.ledger.reservation(reservation_id).state == "open":  # a rejection already released and closed it
            ctx.ledger.close_reservation(reservation_id, key=f"close:round-{rnd}")
        ctx.ledger.finish_round(rnd, summary)
    return summary
