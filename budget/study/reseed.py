"""The decision study's final students trained again with other training seeds: what a policy's purchases are
worth, less the luck of one training run.

A student fine-tuned on a hundred labels is a lottery: trained on the same labels (the same soft targets, the
same dev set for early stopping) with other seeds for its new head, batch order and dropout, its test score
moves by 1.4-2.4 points (standard deviation, Stanceosaurus at 128 labels), as much as the regrets the study
is asked to tell apart. A training seed is not a decision, so a study can take it out of the comparison:
:func:`reseeded_tests` trains a finished run's final student again with each of several seeds, on exactly
the data the run trained it on, and scores each on the simulated test set. The run's own student, trained
with the run's seed, is the first of them (and reproduces the run's ``final_test``).

This is measurement, not spending: nothing is metered or charged, the run's ledger and models are left as
they are, and the models trained here go in the run's ``models/reseed`` folder, which a study removes with
the rest of the cell's models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from budget.ledger.records import RoundRecord
from budget.round.compute_steps import compute_steps
from budget.round.context import RunContext
from budget.round.distill import round_soft_targets
from budget.round.results import StudentResult
from modeling.meter import Meter
from modeling.models import load_classifier
from modeling.train import Metering, TrainData, train

__all__ = ["SEED_STEP", "reseeded_tests"]

#: the run's seed plus ``j * SEED_STEP`` is the ``j``-th training seed (j = 0: the run's own)
SEED_STEP = 7919


def reseeded_tests(ctx: RunContext, n_seeds: int) -> tuple[float, ...]:
    """Test scores (0-1, the task's metric) of the run's final student trained with ``n_seeds`` seeds, the
    run's own seed first; empty when the final student cannot be trained again as it was.

    The final student is the last finished round's with a test score (the study's ``final_test``). It is
    trained again from its round's data: the labels and dev set of the run's last snapshot (which must hold
    as many labels as that round's student saw), the round's soft targets for a distilled student, and the
    distilled student it started from for one that later labels refined (only that last training is done again:
    the start keeps the luck of its own; a study cell keeps every model until then, see
    :func:`budget.study.cells.run_cell`). Where those are gone (a pruned start, soft labels removed) nothing
    is trained. A student whose training the run stopped at its money limit (a last distillation that got
    less than it needed) is trained again with the same money, priced as the run priced it, so each seed
    stops where the run's did: the run bought a cut-short training, and that is what the study scores.
    """
    final = _final_round(ctx)
    if final is None or n_seeds < 1:
        return ()
    snap = ctx.snapshot()
    if snap.n_labels != final.summary.n_labels:
        return ()
    soft = round_soft_targets(ctx, final.round) if final.arm == "distill" else None
    start = _refined_from(ctx, final.round) if final.summary.refined else None
    if (final.arm == "distill" and soft is None) or (final.summary.refined and start is None):
        return ()
    (texts, ys), dev = snap.train_dev()
    role, phase = ("distill", "student_distill") if soft else ("student", "student_finetune")
    limit = _money_it_stopped_at(ctx, final.round, phase, ctx.train_config(role).batch_size)
    folder = ctx.run_dir / "models" / "reseed"
    scores = []
    for j in range(n_seeds):
        seed = ctx.seed + j * SEED_STEP
        model = ctx.fresh("student", seed) if start is None else load_classifier(start, ctx.pool.labels, seed=seed)
        shutil.rmtree(folder, ignore_errors=True)  # a killed study's half-trained model would resume otherwise
        train(model.model, model.tokenizer, TrainData(texts, ys, ctx.pool.labels, dev=dev, soft=soft),
              ctx.train_config(role, seed), out_dir=folder, keep_start=start is not None,
              metering=Metering(None if limit is None else Meter(price=ctx.pricer.price), phase, limit))
        test = ctx.test_scores(model)
        if test is None:
            return ()
        scores.append(test.get(ctx.config.task.metric))
    shutil.rmtree(folder, ignore_errors=True)
    return tuple(scores)


def _money_it_stopped_at(ctx: RunContext, rnd: int, phase: str, batch_size: int) -> int | None:
    """Where round ``rnd``'s student training stopped at its money limit (the run's last distillation got less
    than it needed), a limit that stops a training on the same data at the same step: what the run's training
    cost plus half a step (it stops before a step projected to pass it). None when it was not stopped so."""
    step = next((s for s in compute_steps(ctx.ledger, rnd) if isinstance(s, StudentResult) and s.student), None)
    if step is None or step.stopped != "budget":
        return None
    run = next(p for p in step.phases if p.name == phase)
    return run.cost_micro + run.cost_micro * batch_size // (2 * max(1, run.examples))


def _final_round(ctx: RunContext) -> RoundRecord | None:
    """The last finished round whose student has a test score: the student a study calls final."""
    rounds = [r for r in ctx.ledger.rounds() if r.state == "done" and r.summary and r.summary.test is not None]
    return rounds[-1] if rounds else None


def _refined_from(ctx: RunContext, rnd: int) -> str | None:
    """The folder of the distilled student round ``rnd``'s student was refined from, if it is still on disk."""
    path = next((s.refined_from for s in compute_steps(ctx.ledger, rnd)
                 if isinstance(s, StudentResult) and s.refined_from), None)
    return path if path and Path(path).exists() else None
