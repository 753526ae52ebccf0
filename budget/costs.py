"""Prices of compute phases, measured and estimated, for a project.

The meter in ``modeling`` measures a phase; :meth:`ComputePricer.price` turns that record into
micro-dollars (FLOPs as time on a reference GPU, or metered device-seconds times the device-hour
price). Before a round, :class:`CostModel` estimates what retraining the student or a whole
distillation will cost from parameter counts, tokens per item and epochs, corrected by what the
run's own finished phases actually cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from budget.config import ProjectConfig, check_phase_scale
from budget.prices import compute_cost, flop_cost, token_cost
from modeling.meter import PhaseRecord

__all__ = ["ComputePricer", "CostModel", "training_epochs"]

_DEFAULT_FLOPS_PER_SECOND = {"cpu": 2e11, "mps": 2e12, "cuda": 1e14}  # effective training throughput guesses


def training_epochs(n_items: int, epochs: int, min_steps: int, batch_size: int) -> int:
    """The passes a training over ``n_items`` makes (:func:`modeling.train.train`'s rule): ``epochs``, more when
    they make fewer than ``min_steps`` steps of ``batch_size``."""
    return max(epochs, math.ceil(min_steps / max(1, math.ceil(n_items / batch_size))))


def _price_kind(device: str, known: set[str]) -> str:
    if device in known:
        return device
    return device if device in {"cpu", "mps"} else "cuda"


class ComputePricer:
    """Prices a :class:`~modeling.meter.PhaseRecord` in micro-dollars, as the project file says.

    ``compute = "flops"`` prices FLOPs as time on the reference GPU at its utilisation (the same
    answer on any machine, for simulations); ``compute = "device-hours"`` prices the measured
    seconds at the device kind's hourly price.
    """

    def __init__(self, config: ProjectConfig) -> None:
        self.mode = config.prices.compute
        if self.mode not in {"flops", "device-hours"}:
            raise ValueError(f"[prices] compute must be 'flops' or 'device-hours'; got {self.mode!r}.")
        self.flops = config.flop_pricing()
        self.devices = config.device_prices()
        self.scale = check_phase_scale(config.prices.phase_scale)
        self.tokens = config.llm.token_price()

    def price(self, record: PhaseRecord) -> int:
        """Micro-dollars for one phase (its FLOPs or seconds times ``[prices] phase_scale``, rounded up once); a
        prompted LLM's (kind 'llm') by its tokens at ``[llm]``'s prices, whatever ``compute`` says."""
        scale = self.scale.get(record.name, 1.0)
        if record.kind == "llm":
            return token_cost(self.tokens, record.tokens, record.output_tokens, scale)
        if self.mode == "flops":
            return flop_cost(self.flops, record.flops * scale)
        kind = _price_kind(record.device, set(self.devices.per_hour_micro))
        return compute_cost(self.devices, kind, record.seconds * scale)

    def estimate(self, flops: float, device: str, phase: str = "") -> int:
        """Micro-dollars for ``flops`` of work on ``device`` in ``phase``.

        In device-hours mode the seconds are guessed from a typical throughput of the device kind.
        """
        flops *= self.scale.get(phase, 1.0)
        if self.mode == "flops":
            return flop_cost(self.flops, flops)
        speed = _DEFAULT_FLOPS_PER_SECOND[_price_kind(device, set())]
        kind = _price_kind(device, set(self.devices.per_hour_micro))
        return compute_cost(self.devices, kind, flops / speed)


@dataclass
class CostModel:
    """FLOP estimates of the run's compute, priced by a :class:`ComputePricer`.

    Parameters
    ----------
    student_params, teacher_params : int
        Parameter counts.
    tokens_per_item : float
        Mean tokens of an item after truncation (measured on the pool).
    """

    pricer: ComputePricer
    device: str
    student_params: int
    teacher_params: int
    tokens_per_item: float
    student_epochs: int
    teacher_epochs: int
    distill_epochs: int
    min_steps: int = 0  # trainings run at least this many steps of batch_size
    batch_size: int = 16
    #: the unlabeled items a distillation is over: the student trains on them and the gold labels as one
    #: set, so ``min_steps`` is on their sum (not on each part, which doubled the estimate of a small run)
    pool: int = 0
    #: a prompted LLM teaches instead of a fine-tuned teacher ([models] teacher_mode = "prompt"): no fine-tune,
    #: and its labels cost ``llm_micro_per_item`` micro-dollars an item (its tokens at [llm]'s prices)
    prompted: bool = False
    llm_micro_per_item: float = 0.0
    correction: float = 1.0  # measured cost / estimated cost of finished retraining rounds
    distill_correction: float = 1.0  # the same for finished distillations

    #: dynamic padding computes the longest item of each batch: about this many positions per real token
    padding_factor: float = 1.3

    def _flops_train(self, params: int, n_items: int, epochs: int, *, part_of: int = 0) -> float:
        """``n_items`` items of a training over ``part_of`` items (default: those alone), whose size sets the
        epochs."""
        epochs = training_epochs(part_of or n_items, epochs, self.min_steps, self.batch_size)
        return 6.0 * params * self.tokens_per_item * self.padding_factor * n_items * epochs

    def _flops_student_distill(self, n_train: int, n_items: int) -> float:
        """The student's part of a distillation: ``n_train`` gold and ``n_items`` soft rows, one training."""
        return self._flops_train(self.student_params, n_train + n_items, self.distill_epochs)

    def _flops_infer(self, params: int, n_items: int) -> float:
        return 2.0 * params * self.tokens_per_item * self.padding_factor * n_items

    def _llm_per_1000(self) -> int:
        return int(1000 * self.llm_micro_per_item * self.distill_correction) + 1

    def _price(self, correction: float, **flops_by_phase: float) -> int:
        micro = sum(self.pricer.estimate(f, self.device, phase)
                    for phase, f in flops_by_phase.items())
        return int(micro * correction) + 1

    def phases(self, arm: str, n_train: int, n_eval: int, n_items: int = 0, teachers: int = 1,
               pilot: bool = False) -> dict[str, float]:
        """The estimate of one round's compute, micro-dollars per metered phase (corrected, not rounded).

        ``arm``: 'distill' (over ``n_items`` unlabeled items, with ``teachers`` teacher fine-tunes) or a
        retraining ('baseline', 'annotate'). The same FLOP formulas as :meth:`retrain`,
        :meth:`distill_fixed`, :meth:`distill_per_1000` and :meth:`teacher_fixed`, kept apart so the
        decision study can hold each phase kind to its measured cost. ``pilot``: a retraining that also
        trains and scores a student on half the labels (:attr:`budget.policy.Decision.pilot`).
        """
        t = self.teacher_params
        if arm == "distill":
            teacher = {} if self.prompted else {
                "teacher_finetune": teachers * self._flops_train(t, n_train, self.teacher_epochs),
                "soft_labels": teachers * self._flops_infer(t, n_items)}
            flops = {**teacher, "student_distill": self._flops_student_distill(n_train, n_items),
                     "evaluation": self._flops_eval(n_eval)}
            correction = self.distill_correction
        else:
            flops = self._retrain_flops(n_train, n_eval, pilot)
            correction = self.correction
        out = {phase: self.pricer.estimate(f, self.device, phase) * correction for phase, f in flops.items()}
        if arm == "distill" and self.prompted:  # a prompted teacher's labels are priced by their tokens
            out["llm_labels"] = n_items * self.llm_micro_per_item * correction
        return out

    def _flops_eval(self, n_eval: int) -> float:
        """The round's metered evaluations: its student and the previous one, on the same dev items."""
        return 2 * self._flops_infer(self.student_params, n_eval)

    def retrain(self, n_train: int, n_eval: int, pilot: bool = False) -> int:
        """Student fine-tuned on ``n_train`` gold labels, then it and the previous student scored on ``n_eval``
        dev items (``pilot``: and a student on half the labels, trained and scored too). (The dev
        evaluations inside training are not metered as FLOPs, so not estimated; where compute is priced
        by device time they are in the training phase's time, which the correction by measured costs
        absorbs.)"""
        return self._price(self.correction, **self._retrain_flops(n_train, n_eval, pilot))

    def _retrain_flops(self, n_train: int, n_eval: int, pilot: bool) -> dict[str, float]:
        s, e = self.student_params, self.student_epochs
        if not pilot:
            return {"student_finetune": self._flops_train(s, n_train, e), "evaluation": self._flops_eval(n_eval)}
        return {"student_finetune": self._flops_train(s, n_train, e) + self._flops_train(s, n_train // 2, e),
                "evaluation": 1.5 * self._flops_eval(n_eval)}

    def distill_fixed(self, n_train: int, n_eval: int) -> int:
        """The parts of a distillation that do not grow with the unlabeled items: teacher fine-tune on
        the gold labels, the student's gold part, and evaluations.

        The student's epochs are those of a distillation over the whole ``pool``, so this price plus
        :meth:`distill_per_1000` for the pool is that distillation's estimate. A pilot over part of the
        pool may train more epochs (``min_steps``) than this linear price says; its student part is a
        small share of a distillation (the teacher is 5x its size), and what it needs beyond the
        reservation is asked for as any overrun is."""
        teacher = 0.0 if self.prompted else self._flops_train(self.teacher_params, n_train, self.teacher_epochs)
        return self._price(
            self.distill_correction,
            teacher_finetune=teacher,
            student_distill=self._flops_train(self.student_params, n_train, self.distill_epochs,
                                              part_of=n_train + self.pool),
            evaluation=self._flops_eval(n_eval))

    def teacher_fixed(self, n_train: int) -> int:
        """One more teacher of an ensemble: its fine-tune on the gold labels (see :meth:`teacher_per_1000`); a
        prompted LLM has none (and answers the same way twice: an ensemble of it is never bought)."""
        if self.prompted:
            return 0
        return self._price(self.distill_correction,
                           teacher_finetune=self._flops_train(self.teacher_params, n_train, self.teacher_epochs))

    def teacher_per_1000(self) -> int:
        """What one more teacher of an ensemble adds per 1000 unlabeled items: its pass over them."""
        if self.prompted:
            return self._llm_per_1000()
        return self._price(self.distill_correction, soft_labels=self._flops_infer(self.teacher_params, 1000))

    def distill_per_1000(self, n_train: int) -> int:
        """What 1000 more unlabeled items add: a teacher pass and the student's epochs on each (the epochs
        of a distillation of ``n_train`` gold labels and the whole ``pool``, as in :meth:`distill_fixed`); a
        prompted LLM's labels instead of a teacher's pass when the teacher is prompted."""
        teacher = 0.0 if self.prompted else self._flops_infer(self.teacher_params, 1000)
        student = self._flops_train(self.student_params, 1000, self.distill_epochs, part_of=n_train + self.pool)
        llm = self._llm_per_1000() if self.prompted else 0
        return llm + self._price(self.distill_correction, soft_labels=teacher, student_distill=student)
