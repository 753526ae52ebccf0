"""The run's labels and items at one moment: read from the ledger once per round and passed on.

A :class:`Snapshot` holds the gold labels (seed plus majority-voted purchases), the train/dev split
of them, and every pool item's state.

The dev set is random and stable: the seed's share of it (the seed is a random draw; an item's
hash decides, the same in any run) plus the items annotation batches drew at random for it
(``BatchPayload.dev_ids``). Items a selection strategy picked always train, never judge: a dev set
carved from uncertain items would score students on the hardest items only, and differently each
round. The dev set only grows, so a round's student and the one before it are compared on the
same items (:func:`budget.round.steps.student_step`). The controller takes one when a round starts (the policy, the
proposal and the distillation read it) and one after a batch settles (the retrain reads it), instead
of every caller rebuilding labels from the whole ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotation.aggregate import majority_vote
from annotation.pool import ItemState, ItemStates, Pool, PoolSplit, dev_membership
from annotation.records import Annotation
from budget.ledger import Ledger

__all__ = ["Snapshot", "take_snapshot"]

#: item states whose items may be soft-labelled by a teacher (they have no gold label)
_FREE = (ItemState.UNLABELED, ItemState.IN_BATCH, ItemState.SKIPPED)


@dataclass(frozen=True)
class Snapshot:
    """Labels and item states read from the ledger at one moment.

    ``gold`` maps a pool index to its label id; ``train_ids`` and ``dev_ids`` split those indices
    (``dev_ids``: random items only, see the module's docstring); ``states`` is every pool item's
    :class:`ItemState`.
    """

    pool: Pool
    gold: dict[int, int]
    train_ids: tuple[int, ...]
    dev_ids: tuple[int, ...]
    states: ItemStates
    answers: tuple[Annotation, ...]

    @property
    def n_labels(self) -> int:
        """Labeled items: the seed plus purchased items with a majority label."""
        return len(self.gold)

    def train_dev(self) -> tuple[tuple[list, np.ndarray], tuple[list, np.ndarray]]:
        """(texts, label ids) for training and for dev; raises ValueError when either side is empty."""
        if not self.dev_ids or not self.train_ids:
            raise ValueError(f"{self.n_labels} labels give {len(self.train_ids)} for training and "
                             f"{len(self.dev_ids)} for dev; raise [split] seed_size or set dev_fraction "
                             "between 0.1 and 0.5.")
        texts = self.pool.texts
        return (([texts[i] for i in self.train_ids], np.array([self.gold[i] for i in self.train_ids])),
                ([texts[i] for i in self.dev_ids], np.array([self.gold[i] for i in self.dev_ids])))

    def unlabeled_for_distill(self, n: int, seed: int) -> np.ndarray:
        """The first ``n`` of a seeded order of the items that have no gold label (sorted)."""
        free = np.flatnonzero(np.isin(self.states.states, _FREE))
        order = np.random.default_rng(seed).permutation(len(self.pool))
        return np.sort(order[np.isin(order, free)][:n])

    def answers_to(self, external_ids: set[str]) -> list[Annotation]:
        """The answers given to the items with these external ids."""
        return [a for a in self.answers if a.external_id in external_ids]


def take_snapshot(ledger: Ledger, pool: Pool, split: PoolSplit, run_id: str, dev_fraction: float) -> Snapshot:
    """Read the batches and labels once and derive gold labels, the train/dev split and item states.

    ``dev_fraction`` is the share of the seed kept for dev.
    """
    batches = ledger.batches()
    answers = tuple(Annotation(r.external_id, r.annotator, r.label, r.lead_time_s) for r in ledger.labels())
    gold = {int(i): int(pool.gold[i]) for i in split.seed}
    by_ext = {pool.external_id(run_id, i): i for b in batches for i in b.payload.item_ids}
    for resolved in majority_vote(list(answers), pool.labels):
        if resolved.label is not None and resolved.external_id in by_ext:
            gold[by_ext[resolved.external_id]] = pool.label_id(resolved.label)
    seed = {int(i) for i in split.seed}
    drawn = {i for b in batches for i in b.payload.dev_ids}
    train_ids, dev_ids = [], []
    for i in sorted(gold):
        in_dev = i in drawn if i not in seed else dev_membership(pool.item_hash(i), dev_fraction)
        (dev_ids if in_dev else train_ids).append(i)
    states = ItemStates.from_split(len(pool), split)
    in_run = np.concatenate([split.seed, split.unlabeled, split.test])
    states.mark(np.setdiff1d(np.arange(len(pool)), in_run), ItemState.HELD_OUT)  # cut by max_unlabeled
    answered = {a.external_id for a in answers}
    for b in batches:
        if b.state == "rejected":
            continue
        for i in b.payload.item_ids:
            if i in gold:
                states.mark([i], ItemState.LABELED)
            elif b.state == "done" and pool.external_id(run_id, i) in answered:
                states.mark([i], ItemState.SKIPPED)
            else:
                states.mark([i], ItemState.IN_BATCH)
    return Snapshot(pool, gold, tuple(train_ids), tuple(dev_ids), states, answers)
