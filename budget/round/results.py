"""What a round's compute steps produce, one frozen dataclass per kind of step, as the ledger keeps them.

Every step records what it cost (:class:`StepResult`: its metered phases, their price and seconds, and the FLOPs
a study reused instead of running); a student's training (:class:`StudentResult`), a subsample pilot
(:class:`PilotResult`), a teacher's fine-tune (:class:`TeacherResult`) and a teacher's soft labels
(:class:`SoftLabelResult`) add what they made. A result is written to the ledger as JSON
(:meth:`StepResult.to_json`: fields that are None are left out, as they always were) and read back with
:meth:`StepResult.from_json`, which ignores what it does not know and leaves out what a ledger written before a
field existed lacks, so a run resumes across versions. The phase cache keeps the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Self

from modeling.meter import PhaseRecord

__all__ = ["PilotResult", "SoftLabelResult", "StepResult", "StudentResult", "TeacherResult"]


@dataclass(frozen=True)
class StepResult:
    """A finished compute step: how it ended (``stopped``: 'budget' when the money stopped it), its metered
    ``phases``, what they cost (``cost_micro``) and took (``seconds``), and the FLOPs a study reused from another
    cell's identical step instead of running them (``reused_flops``)."""

    stopped: str | None = None
    cost_micro: int | None = None
    seconds: float | None = None
    phases: tuple[PhaseRecord, ...] | None = None
    reused_flops: float | None = None

    #: fields written even when None (a reader tells "measured as nothing" from "not measured")
    KEEP_NONE: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """The result as the ledger stores it: plain JSON, phases as dicts, None fields left out (tuples such as
        ``dev_pred`` are written as JSON arrays)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name not in self.KEEP_NONE:
                continue
            out[f.name] = [asdict(p) for p in value] if f.name == "phases" else value
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Self:
        """The result stored as ``raw`` (fields it lacks stay None; keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if values.get("phases") is not None:
            values["phases"] = tuple(PhaseRecord(**p) for p in values["phases"])
        if isinstance(values.get("dev_pred"), list):
            values["dev_pred"] = tuple(values["dev_pred"])
        return cls(**values)

    def costed(self, cost_micro: int, records: list[PhaseRecord]) -> Self:
        """This result with its phases' price, seconds and records."""
        return replace(self, cost_micro=cost_micro, seconds=sum(r.seconds for r in records), phases=tuple(records))

    @property
    def flops(self) -> float:
        """The FLOPs its phases measured (run, or reused from the cache)."""
        return sum(p.flops for p in self.phases or ())


@dataclass(frozen=True)
class StudentResult(StepResult):
    """A student trained (or distilled, or refined) in a round: its folder, the labels it saw, its scores on dev
    (and test, in simulation) and which dev items it got right, and the paired comparisons with the previous
    student and the last of its own kind on the same dev items (see :class:`RoundSummary`'s fields)."""

    student: str | None = None
    n_labels: int | None = None
    reason: str | None = None
    dev: float | None = None
    dev_accuracy: float | None = None
    dev_macro_f1: float | None = None
    dev_items: int | None = None
    dev_pred: tuple[int, ...] | None = None
    test: float | None = None
    test_accuracy: float | None = None
    test_macro_f1: float | None = None
    dev_right: str | None = None
    prev_dev: float | None = None
    disagree: float | None = None
    arm_prev_dev: float | None = None
    arm_disagree: float | None = None
    arm_prev_labels: int | None = None
    refined: bool | None = None
    refined_from: str | None = None


@dataclass(frozen=True)
class PilotResult(StepResult):
    """A subsample pilot: a student on half the round's training labels, scored on the round's dev items
    (``dev_pred``), and what that says against the round's student (``pilot_*``, see :class:`RoundSummary`)."""

    dev_pred: tuple[int, ...] | None = None
    pilot_dev: float | None = None
    pilot_disagree: float | None = None
    pilot_labels: int | None = None


@dataclass(frozen=True)
class TeacherResult(StepResult):
    """A teacher's fine-tune: its best dev score (None without a dev set) and how many processes trained it."""

    teacher_dev: float | None = None
    processes: int | None = None

    KEEP_NONE: ClassVar[frozenset[str]] = frozenset({"teacher_dev"})


@dataclass(frozen=True)
class SoftLabelResult(StepResult):
    """A teacher's soft labels on the first ``n_items`` of the round's items (0: the money paid for none): the
    logits file, the file of which pool items they are, and how many processes computed them."""

    soft_labels: str | None = None
    n_items: int | None = None
    items: str | None = None
    processes: int | None = None
    teacher_dev: float | None = None  # a prompted teacher's own score on the dev set (it is not fine-tuned)
