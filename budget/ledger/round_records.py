"""What a run writes into the ledger, typed: what it measured when it was created, and each round's plan,
summary and batch payload.

The ledger keeps these as JSON (the ``run:init`` step, ``rounds.decision``, ``rounds.summary``,
``batches.payload``); every reader (the controller, the report, ``status``, the web page, the study)
goes through these types, never through string keys. ``to_json`` writes only the fields that are set,
so a ledger written before a field existed reads back with its default. Money is integer micro-dollars,
scores 0-1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from budget.decision import Decision

__all__ = ["RunInit", "RoundPlan", "RoundSummary", "BatchPayload"]


def _set_fields(obj: object) -> dict[str, Any]:
    """The fields of a record that are not None, in declaration order."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) is not None}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class RunInit:
    """What a run fixed when it was created: its id, the project and seed it belongs to (``config_hash``:
    task, split and models), and the sizes its compute estimates are computed from (parameters of both
    models, tokens per item) and of its pool."""

    run_id: str
    config_hash: str
    seed: int
    student_params: int
    teacher_params: int
    tokens_per_item: float
    pool: int
    seed_items: int
    unlabeled: int
    test: int
    llm_tokens_per_item: float = 0.0  # a prompted teacher's input tokens per request (0: the teacher is fine-tuned)

    STEP: ClassVar[str] = "run:init"  # the ledger step whose result it is

    @classmethod
    def read(cls, ledger: Any) -> RunInit | None:
        """The run's record in ``ledger`` (a :class:`budget.ledger.Ledger`), or None before the run is created."""
        stored = ledger.step_result(cls.STEP)
        return None if stored is None else cls.from_json(stored)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInit:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class RoundPlan:
    """A round as it starts: the policy's decision and what its compute was expected to cost.

    ``compute_estimate_micro`` is the corrected estimate the policy saw, ``compute_estimate_raw`` the
    plain FLOP estimate (later estimates are corrected by actual / raw), ``compute_estimate_phases``
    the estimate per metered phase kind.
    """

    decision: Decision
    compute_estimate_micro: int | None = None
    compute_estimate_raw: float | None = None
    compute_estimate_phases: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ledger's JSON (the decision's fields at the top level, as ledgers always kept them)."""
        return {**asdict(self.decision), "compute_estimate": self.compute_estimate_micro,
                "compute_estimate_raw": self.compute_estimate_raw,
                "compute_estimate_phases": dict(self.compute_estimate_phases)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundPlan:
        decision = Decision(data["arm"], int(data.get("n_items", 0)), int(data.get("amount_micro", 0)),
                            data.get("reason", ""), dict(data.get("estimates") or {}), int(data.get("teachers", 1)),
                            bool(data.get("refine", False)), bool(data.get("pilot", False)))
        raw = data.get("compute_estimate_raw", data.get("compute_estimate"))
        return cls(decision, data.get("compute_estimate"), None if raw is None else float(raw),
                   dict(data.get("compute_estimate_phases") or {}))


@dataclass(frozen=True)
class RoundSummary:
    """A finished round: what it bought, what it cost, how its student scored.

    ``dev`` and ``test`` are the task's metric (``test`` exists only in simulation and is never read
    by a decision); ``stopped`` is ``'budget'`` when a training stopped at the cap; ``rejected`` when a
    lead rejected the round's batch or compute. ``compute_micro`` and ``labels_micro`` are what the
    round's compute and labels cost; ``seconds`` the device time of its compute.

    ``prev_dev`` is the previous round's student scored on this round's dev set (``dev_items``
    items), ``disagree`` the share of those items on which exactly one of the two students is right:
    together with ``dev`` they measure what the round bought on the same items. ``arm_prev_dev`` and
    ``arm_disagree`` do the same against the last student of the round's own kind (label-only or
    distilled), trained on ``arm_prev_labels`` labels: how the labels bought since moved that curve.
    ``pilot_dev`` and ``pilot_disagree`` compare in the same way with a student trained on a random half of
    the round's training labels (``pilot_labels`` labels, dev items counted as in ``n_labels``): one more
    point on the label-only learning curve, from labels already bought.
    """

    n_labels: int = 0
    labels_bought: int = 0
    student: str | None = None
    dev: float | None = None
    test: float | None = None
    seconds: float | None = None
    stopped: str | None = None
    rejected: bool | None = None
    compute_micro: int | None = None
    labels_micro: int | None = None
    skipped: int | None = None
    agreement: float | None = None
    batch_id: str | None = None
    unlabeled_used: int | None = None
    teacher_dev: float | None = None
    teachers: int | None = None  # an ensemble's size (the soft labels averaged its teachers); None: one teacher
    refined: bool | None = None  # labels no distillation follows fine-tuned the latest distilled student
    dev_items: int | None = None
    prev_dev: float | None = None
    disagree: float | None = None
    arm_prev_dev: float | None = None
    arm_disagree: float | None = None
    arm_prev_labels: int | None = None
    pilot_dev: float | None = None
    pilot_disagree: float | None = None
    pilot_labels: int | None = None
    teacher_stopped: str | None = None  # 'budget': a teacher stopped where the money held for later phases began
    # which dev items the student got right, in the dev set's order (item i is bit i), as hex: any two students
    # scored on the same dev set can then be compared item by item (budget.shipped.best_round)
    dev_right: str | None = None

    @property
    def stopped_at_cap(self) -> bool:
        """True when the round's training stopped at the money cap."""
        return self.stopped == "budget"

    @property
    def cut_short(self) -> bool:
        """True when some of the round's training stopped before its end for want of money (its student at the
        cap, or a teacher where the money held for its soft labels and student began): what the round cost then
        says how much money there was, not how far off its estimate was."""
        return self.stopped_at_cap or self.teacher_stopped == "budget"

    def to_json(self) -> dict[str, Any]:
        return _set_fields(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RoundSummary:
        return cls(**_known(cls, data or {}))


@dataclass(frozen=True)
class BatchPayload:
    """What a lead sees of a proposed batch: its items, why it was proposed, and the money before and after.

    ``dev_ids`` are the items drawn at random to grow the dev set (never selected by a strategy).
    ``kind`` is ``'labels'`` for an annotation batch and ``'compute'`` for a distillation waiting for
    approval (no items); ``suggestions`` maps a pool index (as a string) to the student's
    ``[label, probability]``; ``sample`` is the first few texts, shown on the approval page.
    """

    item_ids: tuple[int, ...]
    why: str
    available_before_micro: int
    available_after_micro: int
    estimates: dict[str, float | None] = field(default_factory=dict)
    sample: tuple[str, ...] = ()
    suggestions: dict[str, list] = field(default_factory=dict)
    selection: str | None = None
    kind: str | None = None
    purpose: str | None = None
    dev_ids: tuple[int, ...] = ()

    @property
    def is_compute(self) -> bool:
        """True for a distillation's compute waiting for approval."""
        return self.kind == "compute"

    def to_json(self) -> dict[str, Any]:
        out = _set_fields(self)
        out["item_ids"], out["sample"] = list(self.item_ids), list(self.sample)
        if self.dev_ids:
            out["dev_ids"] = list(self.dev_ids)
        else:
            out.pop("dev_ids", None)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchPayload:
        known = _known(cls, data)
        known["item_ids"] = tuple(int(i) for i in known.get("item_ids", ()))
        known["sample"] = tuple(known.get("sample", ()))
        known["dev_ids"] = tuple(int(i) for i in known.get("dev_ids", ()))
        return cls(**known)
