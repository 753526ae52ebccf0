"""The task's items: load them, split them with a seed, and track what has happened to each one.

Indices everywhere are row indices into the pool (0-based, in file order). ``Pool.gold`` holds label
ids (positions in ``Pool.labels``), with -1 for rows whose label is unknown. The ``[task]`` table is
:class:`~annotation.task.TaskSpec`; reading its data file is :mod:`annotation.datafile`.

Example (the Stanceosaurus file of the Distill-or-Annotate benchmark)::

    spec = TaskSpec(name="stance", data=Path("stanceosaurus_test_all.jsonl"), text_fields=("source",),
                    label_field="target", labels=("Discussing", "Irrelevant", "Supporting", "Refuting", "Querying"),
                    pair_regex=r"^claim: (.*?) tweet: (.*)$", metric="macro_f1")
    pool = load_pool(spec)
    split = split_pool(pool, seed=0, seed_size=50, test_size=1000)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from annotation.datafile import read_rows
from annotation.exceptions import EmptyPoolError, TaskDataError, UnknownLabelError
from annotation.records import BatchItem, Text
from annotation.task import TaskSpec

__all__ = [
    "TaskSpec",
    "Pool",
    "load_pool",
    "PoolSplit",
    "split_pool",
    "dev_membership",
    "ItemState",
    "ItemStates",
]

_PAIR_SEP = "\x1f"  # joins the two halves of a pair before hashing


class Pool:
    """The task's items, in file order.

    Parameters
    ----------
    texts : list of Text
        One string per item, or a (first, second) pair.
    gold : array-like of int
        Label id of each item (position in ``labels``), -1 when unknown.
    labels : tuple of str
        The label set.
    ids : list of str, optional
        The data file's own row ids.
    source : Path or str, optional
        The file the items came from.
    """

    def __init__(self, texts: list[Text], gold: Sequence[int] | np.ndarray, labels: Sequence[str], *,
                 ids: list[str] | None = None, source: Path | str | None = None) -> None:
        self.texts = list(texts)
        self.gold = np.asarray(gold, dtype=np.int64)
        self.labels = tuple(labels)
        self.ids = ids
        self.source = source
        if self.gold.shape != (len(self.texts),):
            raise ValueError(f"Pool has {len(self.texts)} texts but gold has shape {self.gold.shape}.")
        if ids is not None and len(ids) != len(self.texts):
            raise ValueError(f"Pool has {len(self.texts)} texts but {len(ids)} ids.")
        if len(self.gold) and (self.gold.min() < -1 or self.gold.max() >= len(self.labels)):
            raise ValueError(f"Gold label ids must be in [-1, {len(self.labels) - 1}].")
        self._item_hashes = _item_hashes(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        where = f", source='{self.source}'" if self.source else ""
        return f"<Pool of {len(self)} items, {len(self.labels)} labels{where}>"

    @property
    def labeled(self) -> np.ndarray:
        """Indices of the items whose gold label is known."""
        return np.flatnonzero(self.gold >= 0)

    @property
    def labels_seen(self) -> tuple[str, ...]:
        """The distinct gold labels of the labeled items, in label order.

        ``len(pool.labels_seen) < 2`` means the data cannot train or test a classifier as it is.
        """
        return tuple(self.labels[i] for i in np.unique(self.gold[self.gold >= 0]))

    def item_hash(self, i: int) -> str:
        """Short hex sha256 of item ``i``'s text (the k-th repeat of a text hashes it with ``#k``)."""
        return self._item_hashes[i]

    def external_id(self, run_id: str, i: int) -> str:
        """The platform id of item ``i`` in run ``run_id``: ``f"{run_id}-{item_hash(i)}"``."""
        return f"{run_id}-{self._item_hashes[i]}"

    def label_of(self, i: int) -> str | None:
        """The gold label of item ``i`` as a string, or None when unknown."""
        g = int(self.gold[i])
        return self.labels[g] if g >= 0 else None

    def label_id(self, label: str) -> int:
        """The id of ``label``; raises :class:`UnknownLabelError` naming the label set."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise UnknownLabelError(f"Label {label!r} is not among the task's labels {list(self.labels)}.") from None

    def batch_items(self, run_id: str, indices: Iterable[int]) -> tuple[BatchItem, ...]:
        """:class:`BatchItem` records for the items at ``indices`` (pool indices), without suggestions."""
        return tuple(BatchItem(int(i), self.external_id(run_id, int(i)), self.texts[int(i)]) for i in indices)


def _item_hashes(texts: list[Text]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for text in texts:
        key = _PAIR_SEP.join(text) if isinstance(text, tuple) else text
        k = seen.get(key, 0)
        seen[key] = k + 1
        payload = key if k == 0 else f"{key}#{k}"
        out.append(hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16])
    return out


# -- loading ---------------------------------------------------------------------------------------------


def load_pool(spec: TaskSpec) -> Pool:
    """Read the task's data file into a :class:`Pool`.

    Parameters
    ----------
    spec : TaskSpec
        The task; its ``data`` suffix picks the reader.

    Returns
    -------
    Pool
        Items in file order; rows with an empty, whitespace-only, null or missing label get gold -1.

    Raises
    ------
    DataFileNotFoundError, UnsupportedFileError, DataParseError, MissingColumnError, UnknownLabelError,
    EmptyTextError, EmptyPoolError, PairPatternError, TaskDataError
        Each with a one-line message naming the file, the line, row or column, and the fix
        (see :func:`annotation.datafile.read_rows`).
    """
    texts, gold, ids = read_rows(spec)
    return Pool(texts, gold, spec.labels, ids=ids, source=spec.data)


# -- splitting -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSplit:
    """Pool indices of the three parts, each sorted.

    ``seed`` is labeled from the start, ``unlabeled`` may be sent for labels or soft-labeled, ``test`` is
    held out for reports only and never seen by a decision.
    """

    seed: np.ndarray
    unlabeled: np.ndarray
    test: np.ndarray


def _count(value: int | float, total: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskDataError(f"{name} must be a count or a fraction in (0, 1); got {value!r}.")
    if isinstance(value, float) and not value.is_integer():
        if not 0.0 < value < 1.0:
            raise TaskDataError(f"{name} must be a count or a fraction in (0, 1); got {value!r}.")
        return int(round(value * total))
    if value < 0:
        raise TaskDataError(f"{name} must not be negative; got {value!r}.")
    return int(value)


def _stratified_pick(candidates: np.ndarray, gold: np.ndarray, k: int, rng: np.random.Generator,
                     *, each_class: bool) -> np.ndarray:
    """``k`` of ``candidates`` with class shares like the candidates' (largest remainder); with
    ``each_class`` every class first gets one item when ``k`` allows."""
    classes, inverse = np.unique(gold[candidates], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    base = np.zeros(len(classes), dtype=np.int64)
    if each_class and k >= len(classes):
        base[:] = 1
    capacity = counts - base
    remaining = k - int(base.sum())
    quota = remaining * capacity / max(int(capacity.sum()), 1)
    alloc = np.floor(quota).astype(np.int64)
    leftover = remaining - int(alloc.sum())
    order = np.argsort(-(quota - alloc), kind="stable")
    alloc[order[:leftover]] += 1
    take = base + alloc
    picked = [rng.permutation(candidates[inverse == c])[: take[c]] for c in range(len(classes))]
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)


def _split_sizes(pool: Pool, seed_size: int, test_size: int | float) -> tuple[int, int]:
    """(seed items, test items) that :func:`split_pool`'s ``seed_size`` and ``test_size`` (a count, or a fraction of
    the labeled items) ask of ``pool``; raises what :func:`split_pool` documents."""
    n_labeled = len(pool.labeled)
    n_test = _count(test_size, n_labeled, "test_size")
    n_seed = _count(seed_size, n_labeled, "seed_size")
    if n_seed + n_test > n_labeled:
        raise TaskDataError(
            f"seed_size {n_seed} + test_size {n_test} = {n_seed + n_test} is more than the {n_labeled} "
            f"labeled items of the pool ({len(pool)} items); lower them."
        )
    if len(pool) - n_seed - n_test == 0:
        raise EmptyPoolError(
            f"seed_size {n_seed} + test_size {n_test} takes all {len(pool)} items; nothing is left to label."
        )
    return n_seed, n_test


def split_pool(pool: Pool, *, seed: int, seed_size: int, test_size: int | float,
               stratify: bool = True) -> PoolSplit:
    """Split the pool into seed, unlabeled and test parts, the same way for the same ``seed``.

    Seed and test items are drawn from the items whose gold label is known; items with no gold label
    always go to the unlabeled part. The test part is drawn first.

    Parameters
    ----------
    pool : Pool
        The task's items.
    seed : int
        Random seed of the split.
    seed_size : int
        Number of labeled seed items.
    test_size : int or float
        Number of held-out test items, or a fraction in (0, 1) of the labeled items.
    stratify : bool, default=True
        Keep class shares in the test part and give every class at least one seed item when
        ``seed_size`` is at least the number of classes present.

    Returns
    -------
    PoolSplit
        Sorted pool indices of each part.

    Raises
    ------
    TaskDataError
        If the sizes are negative or ask for more labeled items than the pool has.
    EmptyPoolError
        If nothing would be left unlabeled.
    """
    labeled = pool.labeled
    n_seed, n_test = _split_sizes(pool, seed_size, test_size)
    rng = np.random.default_rng(seed)
    if stratify:
        test = _stratified_pick(labeled, pool.gold, n_test, rng, each_class=False)
    else:
        test = rng.choice(labeled, size=n_test, replace=False)
    rest = np.setdiff1d(labeled, test)
    if stratify:
        seed_part = _stratified_pick(rest, pool.gold, n_seed, rng, each_class=True)
    else:
        seed_part = rng.choice(rest, size=n_seed, replace=False)
    taken = np.zeros(len(pool), dtype=bool)
    taken[test] = True
    taken[seed_part] = True
    return PoolSplit(
        seed=np.sort(seed_part).astype(np.int64),
        unlabeled=np.flatnonzero(~taken).astype(np.int64),
        test=np.sort(test).astype(np.int64),
    )


def dev_membership(external_id: str, dev_fraction: float) -> bool:
    """Whether a purchased label goes to the dev set, decided by a hash of its external id.

    The same id always gives the same answer, so a resumed run puts the same labels in dev. About
    ``dev_fraction`` of ids are chosen.

    Raises
    ------
    ValueError
        If ``dev_fraction`` is outside [0, 1].
    """
    if not 0.0 <= dev_fraction <= 1.0:
        raise ValueError(f"dev_fraction must be in [0.0, 1.0]; got {dev_fraction!r}.")
    digest = hashlib.sha256(f"dev:{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < dev_fraction


# -- item states -----------------------------------------------------------------------------------------


class ItemState(IntEnum):
    """What has happened to a pool item."""

    UNLABELED = 0  # may be selected for annotation
    IN_BATCH = 1  # in a batch that was proposed or pushed and is not resolved yet
    LABELED = 2  # has a gold label (seed or purchased)
    SKIPPED = 3  # everyone asked skipped it
    HELD_OUT = 4  # test item: never selected, never shown to a decision


class ItemStates:
    """The state of every pool item, as a small-int numpy array indexed by pool index.

    Parameters
    ----------
    n : int
        Pool size; every item starts UNLABELED.

    Examples
    --------
    >>> states = ItemStates(5)
    >>> states.mark([0, 1], "labeled")
    >>> states.indices("unlabeled").tolist()
    [2, 3, 4]
    """

    def __init__(self, n: int) -> None:
        self.states = np.zeros(n, dtype=np.int8)

    def __len__(self) -> int:
        return len(self.states)

    def __repr__(self) -> str:
        return f"<ItemStates of {len(self)} items>"

    @staticmethod
    def _state(state: ItemState | str | int) -> ItemState:
        if isinstance(state, str):
            try:
                return ItemState[state.upper()]
            except KeyError:
                names = [s.name.lower() for s in ItemState]
                raise ValueError(f"Unknown item state {state!r}; states are {names}.") from None
        return ItemState(state)

    @classmethod
    def from_split(cls, n: int, split: PoolSplit) -> ItemStates:
        """States after a split: seed items LABELED, test items HELD_OUT, the rest UNLABELED."""
        states = cls(n)
        states.mark(split.seed, ItemState.LABELED)
        states.mark(split.test, ItemState.HELD_OUT)
        return states

    def mark(self, indices: Iterable[int] | np.ndarray, state: ItemState | str | int) -> None:
        """Set the state of the items at ``indices`` (pool indices).

        Raises
        ------
        ValueError
            If an index is out of range, or a HELD_OUT item would change state.
        """
        target = self._state(state)
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= len(self.states):
            raise ValueError(
                f"Pool index out of range [0, {len(self.states)}): got {int(idx.min())}..{int(idx.max())}."
            )
        held = idx[self.states[idx] == ItemState.HELD_OUT]
        if target != ItemState.HELD_OUT and held.size:
            raise ValueError(
                f"Item {int(held[0])} is held out for testing; it can never be {target.name.lower()}."
            )
        self.states[idx] = int(target)

    def indices(self, state: ItemState | str | int) -> np.ndarray:
        """Sorted pool indices of the items in ``state``."""
        return np.flatnonzero(self.states == int(self._state(state)))
