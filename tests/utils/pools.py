"""Builders of tiny batches, pools and task files for tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotation.pool import Pool
from annotation.records import Batch, BatchItem, Text

__all__ = ["new_run_id", "make_items", "make_batch", "make_pool", "write_rows", "make_rows"]

PAIR_FIELDS = ("sentence1", "sentence2")


def new_run_id() -> str:
    """A fresh run id, so tests sharing one real server never reuse an external id."""
    return f"t{uuid.uuid4().hex[:10]}"


def make_items(n: int, *, run_id: str = "test", start: int = 0, pair: bool = False) -> tuple[BatchItem, ...]:
    """``n`` items with pool indices ``start .. start + n - 1`` and external ids ``{run_id}-item{index:04d}``.

    Texts are ``"text number {i}"``, or ``("first sentence {i}", "second sentence {i}")`` when ``pair``.
    The same ``run_id`` and index always give the same item, so overlapping batches share items.
    """
    items = []
    for i in range(start, start + n):
        text = (f"first sentence {i}", f"second sentence {i}") if pair else f"text number {i}"
        items.append(BatchItem(item_id=i, external_id=f"{run_id}-item{i:04d}", text=text))
    return tuple(items)


def make_batch(
    n: int,
    labels: Sequence[str] = ("neg", "pos"),
    approved: bool = True,
    *,
    run_id: str = "test",
    start: int = 0,
    pair: bool = False,
    overlap: int = 1,
    batch_id: str | None = None,
    task: str = "toy",
) -> Batch:
    """A batch of ``n`` items from :func:`make_items`.

    Parameters
    ----------
    n : int
        Number of items.
    labels : sequence of str, default=("neg", "pos")
        The label set.
    approved : bool, default=True
        Whether the batch may be pushed.
    run_id : str, default="test"
        Prefix of the external ids; use :func:`new_run_id` against real servers.
    start : int, default=0
        Pool index of the first item; batches with overlapping ranges share items.
    pair : bool, default=False
        Pair texts with ``text_fields=("sentence1", "sentence2")``.
    overlap : int, default=1
        Annotators wanted per item.
    batch_id : str, optional
        Defaults to ``{run_id}-b{start}-{n}``.
    task : str, default="toy"
        Task name.
    """
    return Batch(
        batch_id=batch_id or f"{run_id}-b{start}-{n}",
        task=task,
        labels=tuple(labels),
        items=make_items(n, run_id=run_id, start=start, pair=pair),
        text_fields=PAIR_FIELDS if pair else ("text",),
        overlap=overlap,
        approved=approved,
    )


def make_pool(n: int, labels: Sequence[str] = ("neg", "pos"), *, pair: bool = False, n_unlabeled: int = 0,
              seed: int = 0) -> Pool:
    """An in-memory :class:`Pool` of ``n`` items with labels in a seeded shuffled cycle over ``labels``.

    The last ``n_unlabeled`` items have gold -1. Texts mention their label, so a tiny model can learn them.
    """
    rows = make_rows(n, labels, seed=seed)
    texts: list[Text] = [(f"left {i}", r["text"]) if pair else r["text"] for i, r in enumerate(rows)]  # type: ignore[misc]
    gold = np.array([list(labels).index(r["label"]) for r in rows], dtype=np.int64)
    if n_unlabeled:
        gold[n - n_unlabeled:] = -1
    return Pool(texts, gold, tuple(labels))


def make_rows(
    n: int, labels: Sequence[str] = ("neg", "pos"), *, seed: int = 0, pair_in_one_column: bool = False
) -> list[dict[str, object]]:
    """``n`` rows ``{"text": ..., "label": ...}`` with labels cycling through ``labels`` (shuffled by ``seed``).

    With ``pair_in_one_column`` the text reads ``"sentence1: ... sentence2: ..."`` like MultiPIT.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    rows = []
    for i in range(n):
        label = labels[int(order[i]) % len(labels)]
        if pair_in_one_column:
            text = f"sentence1: left words {i} sentence2: right words {i} {label}"
        else:
            text = f"row {i} says {label} words"
        rows.append({"text": text, "label": label})
    return rows


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` to ``path`` as JSONL, CSV, TSV or Parquet, chosen by the suffix; returns ``path``."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    import polars as pl

    frame = pl.DataFrame(rows) if rows else pl.DataFrame({"text": [], "label": []}, schema={"text": pl.String,
                                                                                          "label": pl.String})
    if suffix == ".csv":
        frame.write_csv(path)
    elif suffix == ".tsv":
        frame.write_csv(path, separator="\t", quote_style="never")
    elif suffix == ".parquet":
        frame.write_parquet(path)
    else:
        raise ValueError(f"write_rows cannot write {suffix!r}; use .jsonl, .csv, .tsv or .parquet.")
    return path
