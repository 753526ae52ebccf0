"""What every round needs from its run: config, ledger, pool, platform, clock, pricer, models.

:class:`RunContext` is built once per run by :class:`budget.controller.Controller`. It holds no state
that changes during a run: labels and item states come from a :class:`budget.round.snapshot.Snapshot`,
models from their folders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from annotation.pool import Pool, PoolSplit
from budget import failpoints
from budget.config import ProjectConfig
from budget.costs import ComputePricer
from budget.ledger import Ledger
from budget.ledger.records import RoundRecord
from budget.round.results import StudentResult
from budget.round.snapshot import Snapshot, take_snapshot
from budget.round.step_store import StepStore
from connectors.base import Clock, Connector
from modeling.infer import evaluate, predict_logits
from modeling.lora import with_lora
from modeling.meter import Meter, PhaseRecord
from modeling.metrics import Scores
from modeling.metrics import score as score_predictions
from modeling.models import LoadedModel, load_classifier
from modeling.train import TrainConfig

__all__ = ["RunContext"]


@dataclass(frozen=True)
class RunContext:
    """Everything a round needs; built once per run by the controller.

    ``clock`` is what the controller waits on while people label (simulated in a simulation, shared
    with the simulated platform); ``phase_cache`` is the store of finished steps a study shares between
    its cells (:class:`~budget.round.step_store.StepStore`; None outside a study); ``model_cache_dir`` is
    where models joined from packages are kept (default: beside run_dir).
    """

    config: ProjectConfig
    ledger: Ledger
    pool: Pool
    split: PoolSplit
    run_id: str
    run_dir: Path
    connector: Connector
    clock: Clock
    pricer: ComputePricer
    seed: int
    progress: bool = True
    say: Callable[[str], None] = print
    phase_cache: StepStore | None = None
    model_cache_dir: Path | None = None

    @property
    def model_cache(self) -> Path:
        """Where models joined from PyPI packages are kept: ``model_cache_dir``, or ``.model-cache`` beside the
        run folder."""
        return self.model_cache_dir or self.run_dir.parent / ".model-cache"

    def round_dir(self, rnd: int) -> Path:
        """The folder of round ``rnd``'s models (its student, and a distillation's teacher)."""
        return self.run_dir / "models" / f"round-{rnd:03d}"

    def snapshot(self) -> Snapshot:
        """The labels and item states as the ledger has them now (read once; pass it on)."""
        return take_snapshot(self.ledger, self.pool, self.split, self.run_id, self.config.split.dev_fraction)

    # --- models ---------------------------------------------------------------------------------
    def train_config(self, role: str, seed: int | None = None) -> TrainConfig:
        """Training settings of the student ('student'), teacher ('teacher') or distillation ('distill'), with
        the run's seed or ``seed`` (another teacher of an ensemble)."""
        return self.config.models.train_config(role, seed=self.seed if seed is None else seed,
                                               metric=self.config.task.metric, progress=self.progress)

    def fresh(self, role: str, seed: int | None = None) -> LoadedModel:
        """A newly loaded student or teacher with the task's labels (never a trained one), its new head drawn
        with the run's seed or ``seed``; a teacher with ``[models] teacher_lora_rank`` gets LoRA adapters,
        the only weights its fine-tune trains."""
        model = load_classifier(getattr(self.config.models, role), self.pool.labels,
                                seed=self.seed if seed is None else seed, cache_dir=self.model_cache)
        rank = self.config.models.teacher_lora_rank
        return with_lora(model, rank) if role == "teacher" and rank else model

    def latest_student_path(self) -> str | None:
        """The folder of the student trained by the last finished round, or None before the baseline."""
        rounds = self._students()
        return rounds[-1].summary.student if rounds else None

    def latest_of_kind(self, distilled: bool) -> tuple[str, int] | None:
        """The folder and label count of the last distilled (or label-only) student, or None (a student refined
        from a distilled one by later labels is a distilled one)."""
        rounds = [r for r in self._students() if r.distilled == distilled]
        return (rounds[-1].summary.student, rounds[-1].summary.n_labels) if rounds else None

    def _students(self) -> list[RoundRecord]:
        return [r for r in self.ledger.rounds() if r.state == "done" and r.summary and r.summary.student]

    def latest_student(self) -> LoadedModel | None:
        """The student trained by the last finished round (loaded from its folder), or None before the baseline."""
        path = self.latest_student_path()
        return None if path is None else load_classifier(path, self.pool.labels, seed=self.seed)

    # --- measuring ------------------------------------------------------------------------------
    def meter(self, where: str) -> Meter:
        """A meter that prices each phase as the project says (each pricing is a crash point for tests)."""
        def price(record: PhaseRecord) -> int:
            failpoints.reach("compute", where)
            return self.pricer.price(record)
        return Meter(price=price)

    def dev_predictions(self, model: LoadedModel, snap: Snapshot, meter: Meter) -> np.ndarray:
        """The model's predicted label ids on the snapshot's dev items (a metered evaluation)."""
        _, (dev_texts, _) = snap.train_dev()
        logits = predict_logits(model.model, model.tokenizer, dev_texts, max_length=self.config.models.max_length,
                                progress=False, meter=meter, phase_name="evaluation")
        return logits.argmax(axis=1)

    def score(self, model: LoadedModel, snap: Snapshot, meter: Meter) -> StudentResult:
        """A student's scores: on dev (metered, decisions use it) with the dev predictions, and, in simulation, on
        test (reports only); the other fields of the result are left for the caller."""
        _, (_, dev_y) = snap.train_dev()
        pred = self.dev_predictions(model, snap, meter)
        dev = score_predictions(dev_y, pred, self.pool.labels)
        out = StudentResult(dev=dev.get(self.config.task.metric), dev_accuracy=dev.accuracy, dev_macro_f1=dev.macro_f1,
                            dev_items=len(dev_y), dev_pred=tuple(int(p) for p in pred))
        test = self.test_scores(model)
        if test is not None:
            out = replace(out, test=test.get(self.config.task.metric), test_accuracy=test.accuracy,
                          test_macro_f1=test.macro_f1)
        return out

    def test_scores(self, model: LoadedModel) -> Scores | None:
        """The model's scores on the simulated test set (reports and studies only: not metered, never read by a
        decision), or None outside a simulation."""
        if not len(self.split.test):
            return None
        texts = [self.pool.texts[i] for i in self.split.test]
        return evaluate(model.model, model.tokenizer, texts, self.pool.gold[self.split.test], self.pool.labels,
                        max_length=self.config.models.max_length, progress=False)
