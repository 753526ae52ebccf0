"""Measure what each compute phase used, and price it with a function the caller passes in.

A phase (teacher fine-tune, soft-labelling, student training, evaluation) reports its device kind,
wall seconds, examples, tokens and an estimate of FLOPs: about 6 x parameters x tokens to train and
2 x parameters x tokens to infer (tokens counted as the padded positions actually computed).
``modeling`` does not import ``budget``: ``price`` maps a :class:`PhaseRecord` to integer
micro-dollars, and ``limit_micro`` lets a training loop stop before its reservation runs out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

__all__ = ["PhaseRecord", "Phase", "Meter", "flops_per_token"]

Price = Callable[["PhaseRecord"], int]


def flops_per_token(n_params: int, kind: str) -> int:
    """FLOPs per token: 6N to train (forward + backward), 2N to infer."""
    if kind not in {"train", "infer"}:
        raise ValueError(f"The 'kind' parameter must be 'train' or 'infer'. Got {kind!r} instead.")
    return (6 if kind == "train" else 2) * n_params


@dataclass(frozen=True)
class PhaseRecord:
    """What one phase used. ``cost_micro`` is None when no price function was given."""

    name: str
    kind: str
    device: str
    n_params: int
    seconds: float = 0.0
    examples: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    flops: float = 0.0
    cost_micro: int | None = None
    stopped_by_limit: bool = False
    output_tokens: int = 0  # tokens a prompted LLM wrote (kind 'llm': ``tokens`` are its prompts' tokens)


class Phase:
    """A running phase: the loop calls :meth:`add` after each step and :meth:`would_pass_limit` before."""

    def __init__(self, record: PhaseRecord, price: Price | None, limit_micro: int | None, clock) -> None:
        self._record = record
        self._price = price
        self._limit = limit_micro
        self._clock = clock
        self._start = clock()
        self._steps = 0
        self.stopped_by_limit = False

    def add(self, examples: int, tokens: int, padded_tokens: int | None = None) -> None:
        """Count one step's examples and tokens (``padded_tokens`` defaults to ``tokens``)."""
        padded = tokens if padded_tokens is None else padded_tokens
        r = self._record
        self._record = replace(
            r,
            examples=r.examples + examples,
            tokens=r.tokens + tokens,
            padded_tokens=r.padded_tokens + padded,
            flops=r.flops + flops_per_token(r.n_params, r.kind) * padded,
        )
        self._steps += 1

    @property
    def record(self) -> PhaseRecord:
        """The phase so far, with its seconds and price up to now."""
        r = replace(self._record, seconds=self._clock() - self._start, stopped_by_limit=self.stopped_by_limit)
        return replace(r, cost_micro=self._price(r) if self._price else None)

    def would_pass_limit(self) -> bool:
        """True when one more step like the average so far would cost more than the limit.

        With no limit or no price it is always False. A loop that sees True stops (keeping its
        checkpoint) and marks the phase ``stopped_by_limit``.
        """
        if self._limit is None or self._price is None:
            return False
        now = self.record
        if self._steps == 0:
            return now.cost_micro > self._limit
        grow = (self._steps + 1) / self._steps  # linear projection of every measure by one average step
        projected = replace(
            now,
            seconds=now.seconds * grow,
            examples=round(now.examples * grow),
            tokens=round(now.tokens * grow),
            padded_tokens=round(now.padded_tokens * grow),
            flops=now.flops * grow,
        )
        return self._price(projected) > self._limit

    def ask_for_more(self, more: Callable[[int], int] | None, steps_left: int) -> bool:
        """At the limit, ask ``more(micro)`` for what the ``steps_left`` steps are projected to cost beyond it.

        ``more`` returns the micro-dollars it could add (0 when there are none); the limit grows by
        that much. True when the limit now covers the next step, so the loop may go on.
        """
        if more is None or self._limit is None or self._price is None:
            return False
        now = self.record
        per_step = now.cost_micro / max(1, self._steps)
        need = math.ceil(now.cost_micro + per_step * max(1, steps_left) * 1.1) - self._limit
        self._limit += more(max(1, need))
        return not self.would_pass_limit()

    def carry(self, earlier: PhaseRecord) -> None:
        """Continue a phase that an earlier, interrupted process began: add its counts and seconds."""
        r = self._record
        self._record = replace(r, examples=r.examples + earlier.examples, tokens=r.tokens + earlier.tokens,
                               padded_tokens=r.padded_tokens + earlier.padded_tokens, flops=r.flops + earlier.flops)
        self._start -= earlier.seconds
        self._steps += max(1, earlier.examples)  # only its share in the per-step average matters, roughly

    def stop_for_limit(self) -> None:
        """Mark that the phase stopped before passing its limit."""
        self.stopped_by_limit = True


class Meter:
    """Collects a :class:`PhaseRecord` per phase of a run.

    Parameters
    ----------
    price : callable, optional
        ``price(record) -> int`` micro-dollars; e.g. device-hours or FLOPs priced by ``budget.prices``.
    clock : callable
        Seconds, monotonic; injectable for tests.
    """

    def __init__(self, price: Price | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.price = price
        self.clock = clock
        self.records: list[PhaseRecord] = []

    @contextmanager
    def phase(
        self, name: str, *, kind: str, device: str, n_params: int, limit_micro: int | None = None
    ) -> Iterator[Phase]:
        """Measure the block as one phase; its record is appended when the block ends, even on error."""
        flops_per_token(n_params, kind)  # validates kind
        running = Phase(PhaseRecord(name, kind, device, n_params), self.price, limit_micro, self.clock)
        try:
            yield running
        finally:
            self.records.append(running.record)

    def total(self) -> PhaseRecord:
        """All phases added up (device and kind joined when they differ)."""
        rs = self.records
        costs = [r.cost_micro for r in rs]
        return PhaseRecord(
            name="total",
            kind="+".join(sorted({r.kind for r in rs})),
            device="+".join(sorted({r.device for r in rs})),
            n_params=max((r.n_params for r in rs), default=0),
            seconds=sum(r.seconds for r in rs),
            examples=sum(r.examples for r in rs),
            tokens=sum(r.tokens for r in rs),
            padded_tokens=sum(r.padded_tokens for r in rs),
            flops=sum(r.flops for r in rs),
            cost_micro=None if any(c is None for c in costs) else sum(costs),
            stopped_by_limit=any(r.stopped_by_limit for r in rs),
        )
