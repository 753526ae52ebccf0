"""A distillation round: the teacher fine-tuned on every label so far, soft labels on unlabeled items,
the student distilled from them.

A decision for ``teachers`` above one fine-tunes that many teachers (different seeds) and distils from
the average of their logits; each teacher's fine-tune and soft labels are their own compute steps
(``round-N:teacher-2``, ``round-N:soft_labels-2``, ...), so a killed round resumes at the teacher it
was in. A teacher the money stops leaves the average to the teachers before it.

With ``[compute]`` processes or machines above one, the teacher's fine-tune and its soft labels run in
that many processes (:mod:`modeling.launch`). The round's compute steps share one reservation of twice the policy's
FLOP estimate (as far as the money allows); each phase stops at what the reservation holds and asks for
more before it stops. Each phase leaves the phases after it the money the round's plan expects them to cost:
a teacher whose fine-tune runs past its estimate stops at what leaves its soft labels and the student theirs, and
its best checkpoint so far teaches the student; soft labels that cost more than expected leave the student fewer
soft rows, not a training the money cuts off part-way.
A lead approves compute above ``[policy] approve_compute_micro`` as they approve annotation batches.

With ``[models] teacher_mode = "prompt"`` the teacher is the ``[llm]`` model, prompted with a few seed labels
(:mod:`budget.round.prompted`): one step labels the items, priced by its tokens, and nothing is fine-tuned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from budget.costs import training_epochs
from budget.decision import Decision
from budget.exceptions import AwaitingApproval, BatchNotFoundError
from budget.ledger import Reservation
from budget.ledger.round_records import BatchPayload, RoundSummary
from budget.money import format_usd
from budget.round.compute_steps import compute_steps, teacher_suffix
from budget.round.context import RunContext
from budget.round.prompted import llm_label_step
from budget.round.results import SoftLabelResult, StepResult, StudentResult, TeacherResult
from budget.round.snapshot import Snapshot
from budget.round.steps import (
    Work,
    cached,
    compute_step,
    finish_round,
    reserve_once,
    student_step,
    student_summary,
    train_key,
)
from modeling.device import device_kind, pick_device
from modeling.encoding import encode, sorted_batches
from modeling.infer import DEFAULT_CHUNK_SIZE as CHUNK
from modeling.infer import SoftLabels, model_fingerprint, soft_labels, softmax
from modeling.launch import Processes, SoftLabelJob, TrainJob, launch_soft_labels, launch_training
from modeling.meter import PhaseRecord
from modeling.models import LoadedModel, load_classifier
from modeling.train import Metering, SoftTargets, TrainConfig, TrainData, train

__all__ = ["round_soft_targets", "run_distill", "teacher_proba"]


def run_distill(ctx: RunContext, rnd: int, decision: Decision, snap: Snapshot) -> RoundSummary:
    """Teacher fine-tuned on every label so far, soft labels on unlabeled items (once), student distilled."""
    # Estimates are FLOP-based: reserve twice the estimate (what the money allows); the meter stops at it.
    amount = min(decision.amount_micro * 2, ctx.ledger.totals().available)
    res = reserve_once(ctx, f"round-{rnd}:distill", amount, arm="distill", round=rnd,
                       purpose=f"{_teachers(decision.teachers)} + soft labels on {decision.n_items} items + student",
                       estimate_micro=decision.amount_micro)
    if not _compute_approved(ctx, rnd, decision, res):
        return finish_round(ctx, rnd, res.id, RoundSummary(n_labels=snap.n_labels, rejected=True))
    out = ctx.round_dir(rnd)
    items = snap.unlabeled_for_distill(decision.n_items, ctx.seed)
    texts = [ctx.pool.texts[i] for i in items]
    phases = _plan_phases(ctx, rnd)
    student_need = _student_need(ctx, phases, len(snap.train_dev()[0][1]), len(items))
    teachers = max(1, decision.teachers)
    # a teacher may run past its estimate only into money its soft labels and the student do not need
    teacher_estimate = math.ceil(phases.get("teacher_finetune", 0.0) / teachers)
    after_teacher = math.ceil(phases.get("soft_labels", 0.0) / teachers) + student_need(len(items))
    if ctx.config.prompted:  # the [llm] model teaches: no fine-tune, its answers are the soft labels
        s = compute_step(ctx, rnd, f"round-{rnd}:llm_labels", res.id,
                         llm_label_step(ctx, rnd, out, items, texts, student_need, snap.train_dev()[1]),
                         SoftLabelResult)
        steps, teacher_devs, labelled, held = [s], [s.teacher_dev], [s] if s.n_items else [], s.stopped == "budget"
    else:
        steps, teacher_devs, labelled, held = _teach(ctx, rnd, res.id, snap, out, items, texts, teachers,
                                                     student_need, teacher_estimate, after_teacher)
    cost, seconds = sum(x.cost_micro for x in steps), sum(x.seconds for x in steps)
    if not labelled:  # the cap was reached: the teacher (if trained) is kept, no student this round
        return finish_round(ctx, rnd, res.id, RoundSummary(n_labels=snap.n_labels, stopped="budget",
                                                           compute_micro=cost, seconds=seconds))
    logits, _ = _averaged(labelled)
    soft = SoftTargets(texts[:len(logits)], logits)  # as many as the money paid every teacher for
    st = compute_step(ctx, rnd, f"round-{rnd}:student", res.id, student_step(ctx, rnd, snap, soft), StudentResult)
    for rec in ctx.ledger.batches("approved", round=rnd):  # the lead's approval of this compute is used up
        ctx.ledger.set_batch_state(rec.batch_id, "done")
    devs = [d for d in teacher_devs if d is not None]
    return finish_round(ctx, rnd, res.id, student_summary(
        st, unlabeled_used=len(logits), teacher_dev=sum(devs) / len(devs) if devs else None,
        teachers=len(labelled) if decision.teachers > 1 else None, teacher_stopped="budget" if held else None,
        compute_micro=cost + st.cost_micro, seconds=seconds + st.seconds))


def _teach(ctx: RunContext, rnd: int, reservation: int, snap: Snapshot, out: Path, items: list[int],
           texts: list, teachers: int, student_need: Callable[[int], int], teacher_estimate: int,
           after_teacher: int) -> tuple[list[StepResult], list[float | None], list[SoftLabelResult], bool]:
    """Each teacher's fine-tune and soft labels, one step each, until the ensemble is done or the money is not:
    (every compute step, each labelling teacher's dev score, its soft-label step, whether a teacher stopped
    short for want of money)."""
    steps: list[StepResult] = []  # every compute step of the round so far, for its cost and time
    teacher_devs, labelled = [], []  # each finished teacher's dev score and soft-label step
    held = False  # a teacher stopped short for want of money: the round's cost is no measure of its estimate
    for member in range(teachers):
        trained: list[LoadedModel] = []  # the teacher as trained in this process, handed to the soft-labelling step
        t = compute_step(ctx, rnd, f"round-{rnd}:teacher{teacher_suffix(member)}", reservation,
                         _held_back(_teacher_step(ctx, rnd, snap, out, trained, member), after_teacher,
                                    teacher_estimate), TeacherResult)
        steps.append(t)
        if t.stopped == "budget":
            held = True
            # the first teacher stopped where the money held back starts teaches from its best checkpoint; one
            # stopped before any, one of an ensemble after the first, or one that held nothing back (a plan
            # without phase estimates: the reservation's end) leaves the soft labels to the teachers before it
            if member > 0 or t.teacher_dev is None or not after_teacher:
                break
            ctx.say(f"round {rnd}: the teacher's fine-tune cost {format_usd(t.cost_micro)} against "
                    f"{format_usd(teacher_estimate)} estimated and stopped "
                    f"where the money for its soft labels and the student begins; its best checkpoint "
                    f"(dev {t.teacher_dev:.3f}) teaches the student.")
        s = compute_step(ctx, rnd, f"round-{rnd}:soft_labels{teacher_suffix(member)}", reservation,
                         _soft_label_step(ctx, rnd, out, items, texts, trained, member, student_need),
                         SoftLabelResult)
        steps.append(s)
        if s.n_items == 0:
            if member == 0 and student_need(0):  # the plan's student alone is more than the money left
                ctx.say(f"round {rnd}: the money left after the teacher does not cover the student's distillation "
                        f"(estimated {format_usd(student_need(0))} with no soft labels): no student this round, "
                        f"rather than one the money cuts off part-way; what is left goes back to the budget.")
            break
        if member == 0 and s.n_items < len(items):
            ctx.say(f"round {rnd}: the money left after the teacher pays for soft labels on {s.n_items} of "
                    f"{len(items)} items and the student's distillation on them; the student trains to its end.")
        teacher_devs.append(t.teacher_dev)
        labelled.append(s)
    return steps, teacher_devs, labelled, held


def _teachers(n: int) -> str:
    return "teacher" if n <= 1 else f"{n} teachers"


def _averaged(labelled: list[SoftLabelResult]) -> tuple[np.ndarray, np.ndarray]:
    """The teachers' mean logits on the items every one of them soft-labelled (a prefix of the round's
    items), and which pool items they are, from their soft-label steps' files."""
    logits = [np.load(s.soft_labels) for s in labelled]
    n = min(len(x) for x in logits)
    items = np.load(labelled[0].items)[:n]
    if len(logits) == 1:
        return logits[0], items
    return np.mean([x[:n] for x in logits], axis=0).astype(logits[0].dtype), items


def _compute_approved(ctx: RunContext, rnd: int, decision: Decision, res: Reservation) -> bool:
    """Whether the round's compute may run: True under the approval amount or once a lead approved it,
    False when a lead rejected it; while it waits, the run exits (:class:`AwaitingApproval`)."""
    limit = ctx.config.policy.approve_compute_micro
    if limit is None or res.amount_micro <= limit:
        return True
    batch_id = f"{ctx.run_id}-r{rnd:03d}-compute"
    try:
        rec = ctx.ledger.batch(batch_id)
    except BatchNotFoundError:
        left = ctx.ledger.totals().available
        payload = BatchPayload(item_ids=(), why=decision.reason, estimates=decision.estimates, kind="compute",
                               purpose=res.purpose, available_before_micro=left + res.amount_micro,
                               available_after_micro=left)
        rec = ctx.ledger.add_batch(batch_id, round=rnd, reservation_id=res.id, payload=payload,
                                   price_per_item_micro=0, overlap=1, total_micro=res.amount_micro)
    if rec.state == "proposed":
        raise AwaitingApproval(batch_id, rec.total_micro, 0)
    return rec.state != "rejected"


def _teacher_step(ctx: RunContext, rnd: int, snap: Snapshot, out: Path, trained: list[LoadedModel],
                  member: int = 0) -> Work:
    """Teacher ``member`` of the round (0: the only one, or the first of an ensemble; the others draw
    other seeds) fine-tuned on the snapshot's labels; appends the trained model to ``trained``."""
    def work(limit: int, more_money: Callable[[int], int]) -> tuple[TeacherResult, list[PhaseRecord]]:
        (tr_texts, tr_y), dev = snap.train_dev()
        seed = ctx.seed + _SEED_STEP * member
        cfg = ctx.train_config("teacher", seed)
        folder = out / f"teacher{teacher_suffix(member)}"

        def run() -> tuple[TeacherResult, list[PhaseRecord]]:
            if ctx.config.compute.world > 1:
                return _launched_teacher(ctx, folder, cfg, (tr_texts, tr_y), dev, limit, more_money)
            teacher = ctx.fresh("teacher", seed)
            result = train(teacher.model, teacher.tokenizer, TrainData(tr_texts, tr_y, ctx.pool.labels, dev=dev), cfg,
                           metering=Metering(ctx.meter(f"{rnd}.teacher{teacher_suffix(member)}"), "teacher_finetune",
                                             limit, more_money), out_dir=folder)
            trained.append(teacher)
            return TeacherResult(stopped=result.stopped, teacher_dev=result.best_dev), [result.phase]

        key = ctx.phase_cache and train_key(ctx, "teacher", cfg, tr_texts, tr_y, dev)
        return cached(ctx, folder, key, limit, more_money, run, TeacherResult)
    return work


#: an ensemble's teacher ``k`` fine-tunes with the run's seed + k * this (its head, batch order and dropout)
_SEED_STEP = 1000


def _launched_teacher(ctx: RunContext, out: Path, cfg: TrainConfig, data: tuple[list, np.ndarray], dev: tuple,
                      limit: int, more_money: Callable[[int], int]) -> tuple[TeacherResult, list[PhaseRecord]]:
    """The teacher's fine-tune in ``[compute]``'s processes; every process's phase is charged."""
    m = ctx.config.models
    job = TrainJob(model=m.teacher, labels=tuple(ctx.pool.labels), texts=data[0], y=data[1], dev=dev, config=cfg,
                   out_dir=out, phase_name="teacher_finetune", lora_rank=m.teacher_lora_rank,
                   cache_dir=ctx.model_cache, price=ctx.pricer.price)
    result, records = launch_training(job, Processes(**asdict(ctx.config.compute)), limit_micro=limit,
                                      more_money=more_money)
    return TeacherResult(stopped=result.stopped, teacher_dev=result.best_dev, processes=len(records)), records


def _plan_phases(ctx: RunContext, rnd: int) -> dict[str, float]:
    """The round plan's estimate of each phase's cost (empty in ledgers from before phase estimates)."""
    plan = next((r.plan for r in ctx.ledger.rounds() if r.round == rnd), None)
    return dict(plan.compute_estimate_phases) if plan else {}


def _held_back(work: Work, hold: int, estimate: int) -> Work:
    """``work`` given what its reservation holds less ``hold`` (the phases after it keep their money), but never
    less than its own ``estimate`` while the reservation holds that; more money it asks for is added from the
    budget as for any phase."""
    return lambda limit, more_money: work(max(min(limit, estimate), limit - hold), more_money)


def _student_need(ctx: RunContext, phases: dict[str, float], n_gold: int, n_planned: int) -> Callable[[int], int]:
    """What the round's plan expects the student's distillation over ``n_gold`` labels and ``n`` soft rows to
    cost, with its evaluations: the plan's estimate for ``n_planned`` soft rows scaled by rows x epochs.

    The teacher and the soft labels leave this much for the student: soft labels that cost more than their
    estimate then leave the student fewer soft rows to train on to the end, not all of them and a training the
    money cuts short (on MultiPIT such a student predicted one class). Where the student's steps are set by
    ``min_steps`` (a small pool) fewer rows do not make it cheaper: when even none leave it its estimate, no
    student is trained and the money left goes back to the budget. A plan without phase estimates (ledgers from
    before them) holds back nothing."""
    student = phases.get("student_distill", 0.0)
    if not student:
        return lambda n: 0
    m = ctx.config.models

    def rows_x_epochs(n: int) -> int:
        rows = n_gold + n
        return rows * training_epochs(rows, m.distill_epochs, m.min_steps, m.batch_size)

    per = student / max(1, rows_x_epochs(n_planned))
    return lambda n: math.ceil(per * rows_x_epochs(n) + 2 * phases.get("evaluation", 0.0))


def _soft_label_step(ctx: RunContext, rnd: int, out: Path, items: np.ndarray, texts: list,
                     trained: list[LoadedModel], member: int = 0,
                     student_need: Callable[[int], int] = lambda n: 0) -> Work:
    """Teacher ``member``'s logits on as many of ``texts`` (pool ``items``) as the money pays for, beside the
    ``student_need`` of a distillation over them (cached on disk by content); which pool items they are is
    kept beside them for routing (:func:`teacher_proba`)."""
    def work(limit: int, more_money: Callable[[int], int]) -> tuple[SoftLabelResult, list[PhaseRecord]]:
        folder = out / f"teacher{teacher_suffix(member)}"
        teacher = trained[-1] if trained else load_classifier(folder, ctx.pool.labels)
        cache_dir = ctx.phase_cache.soft_labels_dir if ctx.phase_cache else ctx.run_dir / "cache"
        n = _affordable_prefix(ctx, teacher, texts, limit, more_money, student_need)
        if n == 0:
            return SoftLabelResult(n_items=0, stopped="budget"), []
        soft, phases = _soft_labels(ctx, folder, teacher, texts[:n], cache_dir)
        items_file = ctx.run_dir / "cache" / f"round-{rnd:03d}-soft-label-items{teacher_suffix(member)}.npy"
        items_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(items_file, np.asarray(items[:n], dtype=np.int64))
        result = SoftLabelResult(soft_labels=str(soft.path), n_items=n, items=str(items_file), processes=len(phases))
        # Soft labels found on disk are charged what their pass cost when it ran (kept beside them). Outside a
        # study only this round's teacher made them, before a kill that came ahead of this step's record: the
        # work ran and was never charged. In a study another cell may have run it: its FLOPs were reused.
        if soft.cached and ctx.phase_cache is not None:
            result = replace(result, reused_flops=sum(p.flops for p in phases))
        return result, phases
    return work


def _soft_labels(ctx: RunContext, folder: Path, teacher: LoadedModel, texts: list,
                 cache_dir: Path) -> tuple[SoftLabels, list[PhaseRecord]]:
    """The logits on ``texts`` of the teacher saved in ``folder``, in this process or in ``[compute]``'s
    processes (each metered)."""
    m, compute = ctx.config.models, ctx.config.compute
    if compute.world == 1:
        soft = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=cache_dir, max_length=m.max_length,
                           progress=ctx.progress)
        return soft, [soft.phase]
    job = SoftLabelJob(model=str(folder), labels=tuple(ctx.pool.labels), texts=texts, cache_dir=cache_dir,
                       out_dir=folder.parent, checkpoint_id=model_fingerprint(teacher.model), max_length=m.max_length,
                       chunk_size=min(CHUNK, -(-len(texts) // compute.world)),  # every process gets chunks
                       device=m.device, price=ctx.pricer.price)
    return launch_soft_labels(job, Processes(**asdict(compute)))


def _affordable_prefix(ctx: RunContext, teacher: LoadedModel, texts: list, limit: int,
                       more_money: Callable[[int], int], after: Callable[[int], int] = lambda n: 0) -> int:
    """How many of ``texts`` the teacher can soft-label with the money held (extended while there is more),
    leaving ``after(n)`` for what follows a prefix of ``n`` (the student's distillation over it).

    The price of a prefix is computed as the meter will measure it: 2N FLOPs per padded position, with
    the batches :func:`modeling.infer.soft_labels` makes (length-sorted within chunks, padded to multiples of 8).
    """
    lengths = encode(teacher.tokenizer, texts, max_length=ctx.config.models.max_length).lengths
    device = device_kind(pick_device(ctx.config.models.device))

    def cost(n: int) -> int:  # soft_labels sorts and batches within chunks of CHUNK texts
        padded = sum(len(b) * -(-int(lengths[s:s + CHUNK][b].max()) // 8) * 8
                     for s in range(0, n, CHUNK) for b in sorted_batches(lengths[s:min(n, s + CHUNK)], 64))
        return ctx.pricer.estimate(2.0 * teacher.n_params * padded, device, phase="soft_labels")

    def need(n: int) -> int:
        return cost(n) + after(n)

    if need(len(texts)) > limit:
        limit += more_money(need(len(texts)) - limit)
    lo, hi = 0, len(texts)  # the largest n with need(n) <= limit (need grows with n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= limit else (lo, mid - 1)
    return lo


def teacher_proba(ctx: RunContext, candidates: np.ndarray) -> np.ndarray | None:
    """The latest distillation's teacher probabilities for ``candidates`` (rows of NaN for items it did not
    soft-label), read from its soft labels (an ensemble's averaged as the student saw them): no compute.
    None before the first distillation."""
    for r in reversed(ctx.ledger.rounds()):
        labelled = _soft_label_steps(ctx, r.round) if r.arm == "distill" else []
        if not labelled:
            continue
        logits, items = _averaged(labelled)
        row = {int(i): j for j, i in enumerate(items)}
        out = np.full((len(candidates), len(ctx.pool.labels)), np.nan)
        known = [(k, row[int(c)]) for k, c in enumerate(candidates) if int(c) in row]
        if known:
            rows, src = map(list, zip(*known, strict=True))
            out[rows] = softmax(logits[src])
        return out
    return None


def round_soft_targets(ctx: RunContext, rnd: int) -> SoftTargets | None:
    """The soft targets distillation round ``rnd``'s student was distilled from (its teachers' mean logits on the
    pool items they soft-labelled), read back from the round's files; None when they are no longer on disk."""
    labelled = _soft_label_steps(ctx, rnd)
    if not labelled:
        return None
    logits, items = _averaged(labelled)
    return SoftTargets([ctx.pool.texts[i] for i in items], logits)


def _soft_label_steps(ctx: RunContext, rnd: int) -> list[SoftLabelResult]:
    """The round's finished soft-label steps whose files are still on disk, one per teacher."""
    return [s for s in compute_steps(ctx.ledger, rnd) if isinstance(s, SoftLabelResult) and s.items
            and Path(s.items).exists() and Path(s.soft_labels).exists()]
