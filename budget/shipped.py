"""Which student a run ships: the latest on the current dev set, unless an earlier one is better beyond the
dev set's noise.

Reads only round records (:class:`budget.ledger.records.RoundRecord`, or anything with their ``round``, ``state`` and
``summary``), so the report, the run folder's pruning and the study (replaying a cell from its ``cell.json``)
choose the same student.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["SHIP_Z", "best_round", "right_bits"]


#: how sure the run must be that an earlier student beats the latest before it ships the earlier one: the
#: one-sided z of a 95% bound on their paired difference (a 90% interval that lies wholly above zero)
SHIP_Z = 1.645


def right_bits(correct: Sequence[bool]) -> str:
    """``correct`` (one bool per dev item, in the dev set's order) as :attr:`RoundSummary.dev_right`."""
    return format(sum(1 << i for i, ok in enumerate(correct) if ok), "x")


def _paired_lead(earlier: str, latest: str) -> tuple[int, int]:
    """(items only the earlier student got right, items only the latest got right), from their ``dev_right``."""
    a, b = int(earlier, 16), int(latest, 16)
    return (a & ~b).bit_count(), (b & ~a).bit_count()


def best_round(rounds: list) -> tuple[int, float] | None:
    """The round whose student the run ships, with its score on the run's current dev set.

    Only students scored on the current (largest) dev set are compared; the dev set grows by random items
    until it is full, so a score on an earlier, smaller one is not comparable. The latest of them ships, as
    the student trained on the most labels (and soft labels), unless an earlier one beats it on those dev
    items beyond their noise: a paired test on the items exactly one of the two gets right (an earlier
    student ships when ``wins - losses > SHIP_Z * sqrt(wins + losses)``); of several such, the one with the
    largest lead. An argmax over many students on a few dozen items picks the luckiest, not the best.

    Rounds scored before item-level results were kept (no ``dev_right``) are chosen as before: the highest
    dev score on the current dev set (the student before the first of them re-scored as its ``prev_dev``),
    the earliest on a tie. ``rounds`` are :class:`budget.ledger.records.RoundRecord`.
    """
    done = [r for r in rounds if r.state == "done" and r.summary and r.summary.dev is not None]
    if not done:
        return None
    largest = max(r.summary.dev_items or 0 for r in done)
    current = [r for r in done if (r.summary.dev_items or 0) == largest]
    if all(r.summary.dev_right is not None for r in current):
        latest = current[-1]
        leads = []
        for r in current[:-1]:
            wins, losses = _paired_lead(r.summary.dev_right, latest.summary.dev_right)
            if wins - losses > SHIP_Z * math.sqrt(wins + losses):
                leads.append((wins - losses, r.round, r.summary.dev))
        if leads:
            _, rnd, dev = max(leads)
            return rnd, dev
        return latest.round, latest.summary.dev
    scored = [(r.round, r.summary.dev) for r in current]
    before = [r for r in done if r.round < current[0].round]
    if before and current[0].summary.prev_dev is not None:
        scored.append((before[-1].round, current[0].summary.prev_dev))
    return max(sorted(scored), key=lambda rs: rs[1])
