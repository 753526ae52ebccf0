"""The task's items: load them, split them with a seed, and track what has happened to each one.

Indices everywhere are row indices into the pool (0-based, in file order). ``Pool.gold`` holds label
ids (positions in ``Pool.labels``), with -1 for rows whose label is unknown.

Example (the Stanceosaurus file of the Distill-or-Annotate benchmark)::

    spec = TaskSpec(name="stance", data=Path("stanceosaurus_test_all.jsonl"), text_fields=("source",),
                    label_field="target", labels=("Discussing", "Irrelevant", "Supporting", "Refuting", "Querying"),
                    pair_regex=r"^claim: (.*?) tweet: (.*)$", metric="macro_f1")
    pool = load_pool(spec)
    split = split_pool(pool, seed=0, seed_size=50, test_size=1000)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from annotation.exceptions import (
    DataFileNotFoundError,
    EmptyPoolError,
    EmptyTextError,
    MissingColumnError,
    PairPatternError,
    TaskDataError,
    UnknownLabelError,
    UnsupportedFileError,
)
from annotation.records import BatchItem, Text

__all__ = [
    "METRICS",
    "TaskSpec",
    "Pool",
    "load_pool",
    "PoolSplit",
    "split_pool",
    "dev_membership",
    "ItemState",
    "ItemStates",
]

METRICS = ("accuracy", "macro_f1")
_READERS = {".jsonl": "JSONL", ".ndjson": "JSONL", ".json": "JSON", ".csv": "CSV", ".tsv": "TSV",
            ".parquet": "Parquet"}
_PAIR_SEP = "\x1f"  # joins the two halves of a pair before hashing


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What the task is and where its data lives: the ``[task]`` table of ``project.toml``.

    Parameters
    ----------
    name : str
        Task name, used in batch and project names.
    data : Path
        A ``.jsonl`` (or ``.ndjson``), ``.json`` (an array of objects), ``.csv``, ``.tsv`` (SST-2 style: tabs,
        no quoting) or ``.parquet`` file.
    labels : tuple of str
        The label set; the order defines the label ids.
    text_fields : tuple of str, default=("text",)
        One text column, or two columns for a pair task.
    label_field : str or None, default="label"
        The gold label column (null cells are unlabeled rows); None when the file has no labels.
    pair_regex : str, optional
        A regex with two groups that splits ONE text column into a pair, e.g.
        ``r"^claim: (.*?) tweet: (.*)$"``. Only with a single text field.
    id_field : str, optional
        A column of unique row ids, kept in :attr:`Pool.ids`.
    metric : {'accuracy', 'macro_f1'}, default='accuracy'
        The dev metric decisions are made on.

    Raises
    ------
    TaskDataError
        If the fields contradict each other (two text fields and a pair_regex, an unknown metric...).
    """

    name: str
    data: Path
    labels: tuple[str, ...]
    text_fields: tuple[str, ...] = ("text",)
    label_field: str | None = "label"
    pair_regex: str | None = None
    id_field: str | None = None
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if isinstance(self.text_fields, str):
            object.__setattr__(self, "text_fields", (self.text_fields,))
        object.__setattr__(self, "text_fields", tuple(self.text_fields))
        if not self.labels:
            raise TaskDataError(
                f"Task '{self.name}' declares no labels; set [task] labels, e.g. labels = [\"NO\", \"YES\"]."
            )
        duplicates = sorted({x for x in self.labels if self.labels.count(x) > 1})
        if duplicates:
            raise TaskDataError(f"Task '{self.name}' declares labels {duplicates} more than once in [task] labels.")
        if len(self.text_fields) not in (1, 2):
            raise TaskDataError(
                f"[task] text_fields must name one column, or two for a pair task; got {list(self.text_fields)}."
            )
        if self.pair_regex is not None:
            if len(self.text_fields) != 1:
                raise TaskDataError(
                    "[task] pair_regex splits one text column into a pair; with two text_fields "
                    f"{list(self.text_fields)} leave it out."
                )
            try:
                groups = re.compile(self.pair_regex).groups
            except re.error as exc:
                raise TaskDataError(f"[task] pair_regex {self.pair_regex!r} is not a valid regex: {exc}.") from exc
            if groups != 2:
                raise TaskDataError(
                    f"[task] pair_regex {self.pair_regex!r} has {groups} groups; it needs exactly two, "
                    "one per half of the pair."
                )
        if self.metric not in METRICS:
            raise TaskDataError(f"[task] metric must be one of {list(METRICS)}; got {self.metric!r}.")

    @property
    def is_pair(self) -> bool:
        """True when the task's texts are pairs."""
        return len(self.text_fields) == 2 or self.pair_regex is not None

    @property
    def batch_text_fields(self) -> tuple[str, ...]:
        """The field names a batch shows on a platform: the text columns, or ``("text1", "text2")``
        when ``pair_regex`` splits one column."""
        return ("text1", "text2") if self.pair_regex is not None else self.text_fields

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base_dir: Path | None = None) -> TaskSpec:
        """Build a spec from a ``[task]`` table; a relative ``data`` path is taken from ``base_dir``.

        Raises
        ------
        TaskDataError
            On an unknown or missing key.
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise TaskDataError(f"Unknown key(s) {unknown} in [task]; known keys: {', '.join(known)}.")
        missing = [k for k in ("name", "data", "labels") if k not in table]
        if missing:
            raise TaskDataError(f"[task] is missing {missing}; set them in project.toml.")
        values = dict(table)
        data = Path(values["data"])
        if base_dir is not None and not data.is_absolute():
            data = Path(base_dir) / data
        values["data"] = data
        for key in ("labels", "text_fields"):
            if key in values and not isinstance(values[key], str):
                values[key] = tuple(values[key])
        return cls(**values)


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
    source : Path, optional
        The file the items came from.

    Attributes
    ----------
    content_hash : str
        sha256 (hex) over labels, texts and gold labels: the key of caches built from this pool.
    """

    def __init__(self, texts: list[Text], gold: Sequence[int] | np.ndarray, labels: Sequence[str], *,
                 ids: list[str] | None = None, source: Path | None = None) -> None:
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
        h = hashlib.sha256()
        h.update("\n".join(self.labels).encode("utf-8"))
        for item_hash, g in zip(self._item_hashes, self.gold.tolist(), strict=True):
            h.update(f"\n{item_hash}:{g}".encode())
        self.content_hash = h.hexdigest()

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        where = f", source='{self.source}'" if self.source else ""
        return f"<Pool of {len(self)} items, {len(self.labels)} labels{where}>"

    @property
    def labeled(self) -> np.ndarray:
        """Indices of the items whose gold label is known."""
        return np.flatnonzero(self.gold >= 0)

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


def _read(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise DataFileNotFoundError(
            f"Data file '{path}' not found; set [task] data in project.toml to an existing JSONL, CSV, TSV or "
            "Parquet file."
        )
    suffix = path.suffix.lower()
    kind = _READERS.get(suffix)
    if kind is None:
        raise UnsupportedFileError(
            f"Data file '{path}' has suffix {suffix!r}, which cannot be read; use a .jsonl, .csv, .tsv or .parquet "
            "file."
        )
    try:
        if kind == "JSONL":
            if path.stat().st_size == 0:
                return pl.DataFrame()
            return pl.read_ndjson(path, infer_schema_length=None)
        if kind == "JSON":
            return pl.read_json(path, infer_schema_length=None)
        if kind == "CSV":
            return pl.read_csv(path, infer_schema_length=0)  # every column as text: labels stay "0", "1"
        if kind == "TSV":  # SST-2 and GLUE files: tab-separated, quotes are part of the text
            return pl.read_csv(path, separator="\t", quote_char=None, infer_schema_length=0)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise TaskDataError(f"Data file '{path}' could not be read as {kind}: {exc}") from exc


def _column(frame: pl.DataFrame, name: str, role: str, path: Path) -> list[Any]:
    if name not in frame.columns:
        raise MissingColumnError(
            f"Column '{name}' ([task] {role}) is not in '{path}'; available columns: {', '.join(frame.columns)}."
        )
    series = frame[name]
    if series.dtype != pl.String:
        series = series.cast(pl.String, strict=False)
    return series.to_list()


def load_pool(spec: TaskSpec) -> Pool:
    """Read the task's data file into a :class:`Pool`.

    Parameters
    ----------
    spec : TaskSpec
        The task; its ``data`` suffix picks the reader.

    Returns
    -------
    Pool
        Items in file order; rows with a null label get gold -1.

    Raises
    ------
    DataFileNotFoundError, UnsupportedFileError, MissingColumnError, UnknownLabelError, EmptyTextError,
    EmptyPoolError, PairPatternError
        Each with a one-line message naming the file, the row or column, and the fix.
    """
    path = spec.data
    frame = _read(path)
    if frame.height == 0:
        raise EmptyPoolError(f"Data file '{path}' has no rows; the task needs items to label.")
    columns = [_column(frame, f, "text_fields", path) for f in spec.text_fields]
    raw_labels = _column(frame, spec.label_field, "label_field", path) if spec.label_field else [None] * frame.height
    ids = _column(frame, spec.id_field, "id_field", path) if spec.id_field else None

    pattern = re.compile(spec.pair_regex, re.DOTALL) if spec.pair_regex else None
    texts: list[Text] = []
    for row, values in enumerate(zip(*columns, strict=True)):
        for field_name, value in zip(spec.text_fields, values, strict=True):
            if value is None or not value.strip():
                raise EmptyTextError(
                    f"Row {row} of '{path}' has an empty text in column '{field_name}'; fill it or remove the row."
                )
        if pattern is not None:
            texts.append(_split_pair(pattern, values[0], row, path))
        elif len(values) == 2:
            texts.append((values[0], values[1]))
        else:
            texts.append(values[0])

    label_ids = {label: i for i, label in enumerate(spec.labels)}
    gold = np.full(frame.height, -1, dtype=np.int64)
    for row, label in enumerate(raw_labels):
        if label is None:
            continue
        if label not in label_ids:
            raise UnknownLabelError(
                f"Label {label!r} in row {row} of '{path}' is not among the declared labels "
                f"{list(spec.labels)}; add it to [task] labels or fix the row."
            )
        gold[row] = label_ids[label]

    if ids is not None:
        if any(x is None for x in ids):
            raise TaskDataError(f"Column '{spec.id_field}' of '{path}' has empty ids; every row needs one.")
        if len(set(ids)) != len(ids):
            dup = next(x for x in ids if ids.count(x) > 1)
            raise TaskDataError(f"Column '{spec.id_field}' of '{path}' repeats the id {dup!r}; ids must be unique.")
    return Pool(texts, gold, spec.labels, ids=ids, source=path)


def _split_pair(pattern: re.Pattern[str], text: str, row: int, path: Path) -> tuple[str, str]:
    match = pattern.search(text)
    if match is None:
        raise PairPatternError(
            f"Row {row} of '{path}' does not match pair_regex {pattern.pattern!r}: {text[:60]!r}; "
            "fix the row or [task] pair_regex."
        )
    first, second = (g.strip() if g is not None else "" for g in match.groups())
    if not first or not second:
        raise EmptyTextError(f"Row {row} of '{path}' splits into an empty half with pair_regex {pattern.pattern!r}.")
    return first, second


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
    n_test = _count(test_size, len(labeled), "test_size")
    n_seed = _count(seed_size, len(labeled), "seed_size")
    if n_seed + n_test > len(labeled):
        raise TaskDataError(
            f"seed_size {n_seed} + test_size {n_test} = {n_seed + n_test} is more than the {len(labeled)} "
            f"labeled items of the pool ({len(pool)} items); lower them."
        )
    if len(pool) - n_seed - n_test == 0:
        raise EmptyPoolError(
            f"seed_size {n_seed} + test_size {n_test} takes all {len(pool)} items; nothing is left to label."
        )
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
        counts = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"<ItemStates of {len(self)} items: {counts}>"

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

    @classmethod
    def from_rows(cls, n: int, rows: Iterable[tuple[int, ItemState | str | int]],
                  split: PoolSplit | None = None) -> ItemStates:
        """Rebuild states by replaying ``(pool index, state)`` rows in order (e.g. from the ledger)."""
        states = cls.from_split(n, split) if split is not None else cls(n)
        for index, state in rows:
            states.mark([index], state)
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

    def state_of(self, index: int) -> ItemState:
        """The state of one item."""
        return ItemState(int(self.states[index]))

    def counts(self) -> dict[str, int]:
        """Number of items in each state, by lower-case state name."""
        found = np.bincount(self.states, minlength=len(ItemState))
        return {s.name.lower(): int(found[s]) for s in ItemState}
