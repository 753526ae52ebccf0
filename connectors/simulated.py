"""The simulated annotation platform: our ``MockTransport``.

:class:`SimulatedConnector` behaves like a real platform from the controller's side (idempotent push,
answers that arrive over time, skips, several annotators per item), but its people are
:class:`annotation.simulated.SimulatedAnnotators` and its time is a :class:`SimClock`, so a study of a
thousand rounds runs in seconds. Its state may be kept in a JSON file, so that a controller that was
killed and resumed finds the same platform again, as it would a real server that outlived the crash.

Timing: each annotator works through the items given to them one after another. An answer is ready
at ``max(push time, the time the annotator finishes their earlier work) + lead time``; ``pull`` returns
the answers whose time has come on the connector's clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from annotation.records import Annotation, Batch, BatchItem, BatchStatus, Receipt, Text
from annotation.simulated import SimulatedAnnotators
from connectors.base import Clock, Connector
from connectors.exceptions import ConnectorUsageError, ProtocolError

__all__ = ["SimClock", "SimulatedConnector"]

_STATE_VERSION = 1


class SimClock(Clock):
    """Simulated time: ``sleep`` moves the clock forward at once instead of waiting.

    Parameters
    ----------
    start : float, default=0.0
        The time, in seconds, the clock starts at.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __repr__(self) -> str:
        return f"SimClock(start={self._now})"

    def now(self) -> float:
        """Simulated seconds since the start."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` without waiting.

        Raises
        ------
        ValueError
            If ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"Cannot sleep a negative time: got {seconds} seconds.")
        self._now += float(seconds)

    advance = sleep

    def advance_to(self, t: float) -> None:
        """Move the clock to time ``t`` if that is later than now; time never goes back."""
        self._now = max(self._now, float(t))


GoldSource = Callable[[BatchItem], str] | Mapping[str, str]


class SimulatedConnector(Connector):
    """A platform whose annotators are simulated and whose clock is simulated.

    Parameters
    ----------
    gold : callable or mapping, optional
        The true label of each item: a function of the :class:`BatchItem`, or a mapping from external id
        to label. Needed when ``annotators`` is given.
    annotators : SimulatedAnnotators, optional
        Who answers. Each pushed item gets ``batch.overlap`` of them, chosen deterministically from the
        external id. When None, nobody answers by themselves; answers come only through :meth:`submit`
        (what the connector contract tests use, standing in for people working in a real platform's UI).
    clock : Clock, optional
        The connector's clock; a fresh :class:`SimClock` when None.
    state_path : str or Path, optional
        A JSON file that holds the platform's tasks and answers. It is read when the connector is made
        (if it exists) and rewritten atomically after every change.
    answer_key : callable, optional
        Maps an external id to the key that seeds its answers (default: the id itself). The controller
        passes the item's content hash, so two runs with the same seed get the same answers for the
        same item whatever their run ids are.

    Examples
    --------
    >>> from annotation.simulated import SimulatedAnnotators
    >>> conn = SimulatedConnector({"r-1": "YES"}, SimulatedAnnotators(error_rate=0.0, skip_rate=0.0))
    >>> batch = Batch("b1", "pit", ("NO", "YES"), (BatchItem(0, "r-1", "a text"),), approved=True)
    >>> receipt = conn.push(batch)
    >>> conn.pull(receipt)
    []
    >>> conn.clock.sleep(3600)
    >>> [a.label for a in conn.pull(receipt)]
    ['YES']
    """

    platform = "simulated"

    def __init__(
        self,
        gold: GoldSource | None = None,
        annotators: SimulatedAnnotators | None = None,
        clock: Clock | None = None,
        *,
        state_path: str | os.PathLike[str] | None = None,
        answer_key: Callable[[str], str] | None = None,
    ) -> None:
        if annotators is not None and gold is None:
            raise ConnectorUsageError("SimulatedConnector needs gold labels when it has annotators; pass gold=.")
        self.gold = gold
        self.annotators = annotators
        self.clock = clock if clock is not None else SimClock()
        self.state_path = Path(state_path) if state_path is not None else None
        self.answer_key = answer_key
        # external id -> task record (plain JSON-ready dicts; see _new_task)
        self._tasks: dict[str, dict[str, Any]] = {}
        # annotator name -> simulated time at which they finish the work already given to them
        self._busy_until: dict[str, float] = {}
        if self.state_path is not None and self.state_path.exists():
            self._load()

    def __repr__(self) -> str:
        return (
            f"SimulatedConnector(annotators={self.annotators!r}, clock={self.clock!r}, "
            f"state_path={str(self.state_path) if self.state_path else None!r})"
        )

    # -- the protocol -------------------------------------------------------------------------------

    def _push(self, batch: Batch) -> Receipt:
        n = self.annotators.n_annotators if self.annotators is not None else None
        if batch.overlap < 1 or (n is not None and batch.overlap > n):
            raise ConnectorUsageError(
                f"Batch {batch.batch_id} asks for overlap {batch.overlap}, but the simulated platform has "
                f"{n} annotators; lower the overlap or raise n_annotators."
            )
        new = [item for item in _unique(batch.items) if item.external_id not in self._tasks]
        golds = {item.external_id: self._gold_of(item, batch) for item in new} if self.annotators else {}
        now = self.clock.now()
        for item in new:
            self._tasks[item.external_id] = self._new_task(item, batch, golds.get(item.external_id), now)
        if new:
            self._save()
        ids = tuple(item.external_id for item in _unique(batch.items))
        return Receipt(
            batch_id=batch.batch_id,
            platform=self.platform,
            project_ref=batch.task,
            external_ids=ids,
            task_refs={eid: self._tasks[eid]["task_ref"] for eid in ids},
        )

    def pull(self, receipt: Receipt) -> list[Annotation]:
        """Every answer to the receipt's items that is ready on the connector's clock.

        Items the platform does not have (never pushed, or its state file was deleted) give nothing.
        """
        now = self.clock.now()
        out = []
        for eid in receipt.external_ids:
            for ans in self._answers(eid):
                if ans["ready_at"] <= now:
                    out.append(Annotation(eid, ans["annotator"], ans["label"], ans["lead_time_s"]))
        return out

    def status(self, receipt: Receipt) -> BatchStatus:
        """Counts of the receipt's items: done, skipped by everyone asked, or still waiting.

        ``pushed`` counts only the items the platform has; an unknown external id counts nowhere.
        """
        now = self.clock.now()
        pushed = done = skipped = 0
        for eid in receipt.external_ids:
            task = self._tasks.get(eid)
            if task is None:
                continue
            pushed += 1
            ready = [a for a in task["answers"] if a["ready_at"] <= now]
            if len(ready) >= task["overlap"]:
                if all(a["label"] is None for a in ready):
                    skipped += 1
                else:
                    done += 1
        return BatchStatus(pushed=pushed, done=done, skipped=skipped, waiting=pushed - done - skipped)

    # -- what people do on the platform ------------------------------------------------------------

    def submit(self, external_id: str, annotator: str, label: str | None, *, lead_time_s: float | None = None) -> None:
        """Record one person's answer now, as if they had answered in the platform's UI.

        A second answer by the same annotator to the same item replaces the first.

        Parameters
        ----------
        external_id : str
            The item answered; it must have been pushed.
        annotator : str
            Who answered; reported as :attr:`Annotation.annotator`.
        label : str or None
            One of the item's labels, or None for a skip.
        lead_time_s : float, optional
            Seconds spent on the item.

        Raises
        ------
        ConnectorUsageError
            If the item was never pushed or the label is not one of its labels.
        """
        task = self._tasks.get(external_id)
        if task is None:
            raise ConnectorUsageError(f"Item {external_id!r} was never pushed to the simulated platform.")
        if label is not None and label not in task["labels"]:
            raise ConnectorUsageError(
                f"Label {label!r} for item {external_id!r} is not among its labels {tuple(task['labels'])}."
            )
        answers = [a for a in task["answers"] if a["annotator"] != annotator]
        answers.append({"annotator": annotator, "label": label, "lead_time_s": lead_time_s,
                        "ready_at": self.clock.now()})
        task["answers"] = answers
        self._save()

    def text_of(self, external_id: str) -> Text:
        """The text the platform holds for an item (a tuple for pair tasks)."""
        task = self._tasks.get(external_id)
        if task is None:
            raise ConnectorUsageError(f"Item {external_id!r} was never pushed to the simulated platform.")
        return task["text"]

    def next_ready_at(self, receipt: Receipt) -> float | None:
        """The simulated time at which the next not-yet-ready answer for the receipt arrives, or None."""
        now = self.clock.now()
        times = [a["ready_at"] for eid in receipt.external_ids for a in self._answers(eid) if a["ready_at"] > now]
        return min(times) if times else None

    # -- helpers ----------------------------------------------------------------------------------------

    def _gold_of(self, item: BatchItem, batch: Batch) -> str:
        gold = self.gold
        label = gold(item) if callable(gold) else gold.get(item.external_id)  # type: ignore[union-attr]
        if label is None:
            raise ConnectorUsageError(
                f"No gold label for item {item.external_id!r} of batch {batch.batch_id}; "
                "the simulated platform needs one for every item it is given."
            )
        if label not in batch.labels:
            raise ConnectorUsageError(
                f"Gold label {label!r} of item {item.external_id!r} is not among batch {batch.batch_id}'s "
                f"labels {batch.labels}."
            )
        return label

    def _new_task(self, item: BatchItem, batch: Batch, gold: str | None, now: float) -> dict[str, Any]:
        answers = []
        if self.annotators is not None and gold is not None:
            n = self.annotators.n_annotators
            key = self.answer_key(item.external_id) if self.answer_key else item.external_id
            start = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") % n
            for k in range(batch.overlap):
                index = (start + k) % n
                name = self.annotators.name(index)
                label, lead_time_s = self.annotators.answer(key, gold, batch.labels, index)
                ready_at = max(now, self._busy_until.get(name, now)) + lead_time_s
                self._busy_until[name] = ready_at
                answers.append({"annotator": name, "label": label, "lead_time_s": lead_time_s, "ready_at": ready_at})
        return {
            "task_ref": str(len(self._tasks) + 1),
            "batch_id": batch.batch_id,
            "text": item.text,
            "labels": list(batch.labels),
            "overlap": batch.overlap,
            "pushed_at": now,
            "answers": answers,
        }

    def _answers(self, external_id: str) -> list[dict[str, Any]]:
        task = self._tasks.get(external_id)
        return task["answers"] if task is not None else []

    def _save(self) -> None:
        if self.state_path is None:
            return
        state = {
            "version": _STATE_VERSION,
            "clock_now": self.clock.now(),
            "annotators": repr(self.annotators),
            "busy_until": self._busy_until,
            "tasks": self._tasks,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.state_path.name + ".", suffix=".tmp", dir=self.state_path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load(self) -> None:
        path = self.state_path
        assert path is not None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("version") != _STATE_VERSION:
                raise ValueError(f"version {state.get('version')!r}, expected {_STATE_VERSION}")
            tasks = state["tasks"]
            busy = state["busy_until"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProtocolError(
                f"Simulated platform state {str(path)!r} cannot be read ({exc}); delete it to start a fresh platform."
            ) from exc
        for task in tasks.values():
            if isinstance(task["text"], list):
                task["text"] = tuple(task["text"])
        self._tasks = tasks
        self._busy_until = {k: float(v) for k, v in busy.items()}
        if isinstance(self.clock, SimClock):
            self.clock.advance_to(float(state.get("clock_now", 0.0)))


def _unique(items: tuple[BatchItem, ...]) -> list[BatchItem]:
    """Items in order, keeping the first of any repeated external id."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.external_id not in seen:
            seen.add(item.external_id)
            out.append(item)
    return out
