"""Reading the task's data file: texts, gold label ids and row ids, checked row by row.

The file's suffix picks the reader (JSONL / JSON / CSV / TSV / Parquet, all via polars). Every problem
is one line naming the file, the row or column, and the fix. :func:`annotation.pool.load_pool` wraps
what :func:`read_rows` returns in a :class:`~annotation.pool.Pool`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from annotation.records import Text
from annotation.task import TaskSpec

__all__ = ["read_rows"]

_READERS = {".jsonl": "JSONL", ".ndjson": "JSONL", ".json": "JSON", ".csv": "CSV", ".tsv": "TSV",
            ".parquet": "Parquet"}


def read_rows(spec: TaskSpec) -> tuple[list[Text], np.ndarray, list[str] | None]:
    """Read ``spec.data`` into (texts, gold label ids, row ids), in file order.

    Gold label ids are positions in ``spec.labels``, -1 for rows with a null label; row ids are None
    unless ``spec.id_field`` is set.

    Raises
    ------
    DataFileNotFoundError, UnsupportedFileError, MissingColumnError, UnknownLabelError, EmptyTextError,
    EmptyPoolError, PairPatternError, TaskDataError
        Each with a one-line message naming the file, the row or column, and the fix.
    """
    path = spec.data
    frame = _read(path)
    if frame.height == 0:
        raise EmptyPoolError(f"Data file '{path}' has no rows; the task needs items to label.")
    columns = [_column(frame, f, "text_fields", path) for f in spec.text_fields]
    raw_labels = _column(frame, spec.label_field, "label_field", path) if spec.label_field else [None] * frame.height
    ids = _column(frame, spec.id_field, "id_field", path) if spec.id_field else None
    texts = _texts(spec, columns)
    gold = _gold(spec, raw_labels)
    if ids is not None:
        _check_ids(spec, ids)
    return texts, gold, ids


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


def _texts(spec: TaskSpec, columns: Sequence[list[Any]]) -> list[Text]:
    """One text per row, or a pair: two text columns, or one column split by ``pair_regex``."""
    path = spec.data
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
    return texts


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


def _gold(spec: TaskSpec, raw_labels: Sequence[str | None]) -> np.ndarray:
    """Label ids (positions in ``spec.labels``), -1 where the label is null."""
    label_ids = {label: i for i, label in enumerate(spec.labels)}
    gold = np.full(len(raw_labels), -1, dtype=np.int64)
    for row, label in enumerate(raw_labels):
        if label is None:
            continue
        if label not in label_ids:
            raise UnknownLabelError(
                f"Label {label!r} in row {row} of '{spec.data}' is not among the declared labels "
                f"{list(spec.labels)}; add it to [task] labels or fix the row."
            )
        gold[row] = label_ids[label]
    return gold


def _check_ids(spec: TaskSpec, ids: list[str | None]) -> None:
    if any(x is None for x in ids):
        raise TaskDataError(f"Column '{spec.id_field}' of '{spec.data}' has empty ids; every row needs one.")
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise TaskDataError(f"Column '{spec.id_field}' of '{spec.data}' repeats the id {dup!r}; ids must be unique.")
