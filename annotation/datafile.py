"""Reading the task's data file: texts, gold label ids and row ids, checked row by row.

The file's suffix picks the reader (JSONL / JSON / CSV / TSV / Parquet, all via polars). Every problem
is one line naming the file, the line (JSONL, CSV, TSV) or row (JSON array, Parquet), and the fix, e.g.
``Data file 'd.jsonl', line 7: not valid JSON (Expecting ',' delimiter at column 31); fix or remove that
line.`` When polars cannot parse a file, the file is read once more line by line (json / csv modules) only
to find the first bad line. A label cell that is empty, whitespace-only, null or missing marks an unlabeled
row (gold id -1) in every format. :func:`annotation.pool.load_pool` wraps what :func:`read_rows` returns in
a :class:`~annotation.pool.Pool`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

from annotation.exceptions import (
    DataFileNotFoundError,
    DataParseError,
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
_LINE_FORMATS = ("JSONL", "CSV", "TSV")  # formats whose messages name a line of the file; the others name a row
_POLARS_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}
_EXCERPT = 60  # characters of a cell quoted in a message
_DETAIL = 160  # characters of a parser's own message quoted in ours


def read_rows(spec: TaskSpec) -> tuple[list[Text], np.ndarray, list[str] | None]:
    """Read ``spec.data`` into (texts, gold label ids, row ids), in file order.

    Gold label ids are positions in ``spec.labels``, -1 for rows whose label is empty, whitespace-only,
    null or missing; row ids are None unless ``spec.id_field`` is set.

    Raises
    ------
    DataFileNotFoundError, UnsupportedFileError, DataParseError, MissingColumnError, UnknownLabelError,
    EmptyTextError, EmptyPoolError, PairPatternError, TaskDataError
        Each with a one-line message naming the file, the line or row or column, and the fix.
    """
    path = spec.data
    kind = _kind(path)
    frame = _read(path, kind)
    if frame.height == 0:
        raise EmptyPoolError(f"Data file '{path}' has no rows; the task needs items to label.")
    where = _Locator(path, kind)
    columns = [_column(frame, f, "text_fields", where) for f in spec.text_fields]
    raw_labels = _column(frame, spec.label_field, "label_field", where) if spec.label_field else [None] * frame.height
    ids = _column(frame, spec.id_field, "id_field", where) if spec.id_field else None
    texts = _texts(spec, columns, where)
    gold = _gold(spec, raw_labels, where)
    if ids is not None:
        _check_ids(spec, ids, where)
    return texts, gold, ids


# -- messages --------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = _DETAIL) -> str:
    """``text`` with every run of whitespace (newlines too) made one space, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _excerpt(value: Any, limit: int = _EXCERPT) -> str:
    """A short quoted excerpt of a cell for a message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in words: 'an array', 'a string', ..."""
    return _JSON_KINDS.get(type(value), "an object")


class _Locator:
    """Names a data row (0-based index into the frame) the way a person finds it in the file.

    JSONL, CSV and TSV rows are named by their 1-based line in the file (computed only when a message
    needs it, by reading the file again); JSON-array and Parquet rows by their 1-based position.
    """

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind

    def place(self, row: int) -> str:
        """'line 7' or 'row 6' for data row ``row``."""
        if self.kind not in _LINE_FORMATS:
            return f"row {row + 1}"
        line = _jsonl_line_of(self.path, row) if self.kind == "JSONL" else _csv_line_of(self.path, self.kind, row)
        return f"line {line}" if line is not None else f"row {row + 1}"

    def at(self, row: int) -> str:
        """The start of a row-level message: ``Data file 'd.csv', line 4``."""
        return f"Data file '{self.path}', {self.place(row)}"


# -- reading ---------------------------------------------------------------------------------------------


def _kind(path: Path) -> str:
    """The reader for ``path`` ('JSONL', 'CSV', ...), after checking the file exists and has a known suffix."""
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
    return kind


def _read(path: Path, kind: str) -> pl.DataFrame:
    """The file as a frame; a parse error names the first bad line (or row) and how to fix it."""
    if kind != "Parquet" and path.stat().st_size == 0:
        return pl.DataFrame()
    try:
        if kind == "JSONL":
            return pl.read_ndjson(_without_bom(path), infer_schema_length=None)
        if kind == "JSON":
            return pl.read_json(path, infer_schema_length=None)
        if kind == "CSV":
            frame = pl.read_csv(path, infer_schema_length=0)  # every column as text: labels stay "0", "1"
        elif kind == "TSV":  # SST-2 and GLUE files: tab-separated, quotes are part of the text
            frame = pl.read_csv(path, separator="\t", quote_char=None, infer_schema_length=0)
        else:
            return pl.read_parquet(path)
    except _POLARS_ERRORS as exc:
        raise _parse_error(path, kind, exc) from exc
    return _drop_trailing_blank_rows(frame)


def _without_bom(path: Path) -> Path | io.BytesIO:
    """``path``, or its bytes without the UTF-8 byte order mark some editors write (polars' NDJSON reader
    rejects it)."""
    with path.open("rb") as f:
        if f.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            return path
    return io.BytesIO(path.read_bytes()[len(codecs.BOM_UTF8):])


def _drop_trailing_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without the all-null rows that blank lines at the end of a CSV or TSV file read as."""
    if frame.height == 0 or frame.width == 0:
        return frame
    filled = frame.select(pl.any_horizontal(pl.all().is_not_null())).to_series()
    last = filled.arg_true()
    return frame.head(int(last[-1]) + 1 if len(last) else 0)


def _parse_error(path: Path, kind: str, exc: Exception) -> TaskDataError:
    """The error for a file polars could not parse: the first bad line found by the json / csv modules,
    or polars' own message cut to one line."""
    try:
        if kind == "JSONL" and not _has_content(path):
            return EmptyPoolError(f"Data file '{path}' has no rows; the task needs items to label.")
        problem = _find_problem(path, kind)
    except OSError:  # the file cannot be opened at all: polars' message says why
        problem = None
    if problem is not None:
        return DataParseError(f"Data file '{path}'{problem}")
    return TaskDataError(
        f"Data file '{path}' could not be read as {kind} ({_one_line(str(exc))}); check that it is a {kind} file "
        "and that each column holds one kind of value."
    )


# -- finding the bad line after polars failed ------------------------------------------------------------


def _find_problem(path: Path, kind: str) -> str | None:
    """``", line 7: ..."`` (or ``", row 2: ..."``) for the first bad line or item of the file, or None."""
    if kind == "JSONL":
        return _jsonl_problem(path)
    if kind == "JSON":
        return _json_problem(path)
    if kind in ("CSV", "TSV"):
        return _csv_problem(path, kind)
    return None


def _has_content(path: Path) -> bool:
    """Whether the file has a line that is not blank."""
    with path.open("rb") as f:
        return any(line.strip() for line in f)


def _jsonl_problem(path: Path) -> str | None:
    """``", line 7: ..."`` for the first line that is not UTF-8, not JSON, or not a JSON object; None if
    every line is fine. Blank lines are skipped, as polars skips them."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            problem = _jsonl_line_problem(raw, first=number == 1)
            if problem is not None:
                return f", line {number}: {problem}"
    return None


def _utf8_problem(raw: bytes) -> str | None:
    """What is wrong with one line's bytes as UTF-8, or None."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); save the file as UTF-8."
    return None


def _jsonl_line_problem(raw: bytes, *, first: bool) -> str | None:
    """What is wrong with one JSONL line, or None."""
    problem = _utf8_problem(raw)
    if problem is not None:
        return problem
    text = raw.decode("utf-8-sig" if first else "utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({_one_line(exc.msg)} at column {exc.colno}); fix or remove that line."
    if not isinstance(value, dict):
        return (f"{_json_kind(value)} ({_excerpt(text.strip())}), not a JSON object; each line must be one "
                "object such as {\"text\": \"...\", \"label\": \"...\"}.")
    return None


def _json_problem(path: Path) -> str | None:
    """``", line 3: ..."`` where a JSON file is not valid JSON, or ``", row 2: ..."`` for the first array item
    that is not an object; None if neither."""
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        return f" is not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8."
    except json.JSONDecodeError as exc:
        return f", line {exc.lineno}: not valid JSON ({_one_line(exc.msg)} at column {exc.colno}); fix that line."
    if isinstance(value, dict):
        return None
    if not isinstance(value, list):
        return f" holds {_json_kind(value)}; a .json file must be an array of objects (or use .jsonl)."
    for row, item in enumerate(value):
        if not isinstance(item, dict):
            return f", row {row + 1}: {_json_kind(item)} ({_excerpt(item)}), not a JSON object; every item must be one."
    return None


_CSV_DIALECTS: dict[str, dict[str, Any]] = {
    "CSV": {"delimiter": ","},
    "TSV": {"delimiter": "\t", "quoting": csv.QUOTE_NONE},  # read as polars reads it: quotes are text
}


class _BadRecord(Exception):
    """A record the csv module cannot parse, with the line it starts on."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@contextmanager
def _csv_file(path: Path) -> Iterator[IO[str]]:
    """``path`` opened for the csv module, with no limit on a field's size for as long as it is open."""
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # the most a C long holds everywhere
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            yield f
    finally:
        csv.field_size_limit(limit)


def _csv_records(f: IO[str], kind: str, *, strict: bool) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, its fields) for every record, the header and blank lines included.

    Raises
    ------
    _BadRecord
        When a record cannot be parsed (``strict``); its line is where the record starts.
    """
    reader = csv.reader(f, strict=strict, **_CSV_DIALECTS[kind])
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _BadRecord(start, _one_line(str(exc))) from exc
        yield start, fields


def _csv_problem(path: Path, kind: str) -> str | None:
    """``", line 4: ..."`` for the first line of a CSV / TSV file that is not UTF-8, or the first record that
    cannot be parsed or has more fields than the header; None if there is none."""
    with path.open("rb") as raw_lines:
        for number, raw in enumerate(raw_lines, start=1):
            problem = _utf8_problem(raw)
            if problem is not None:
                return f", line {number}: {problem}"
    try:
        with _csv_file(path) as f:
            return _csv_field_counts(_csv_records(f, kind, strict=True), kind)
    except _BadRecord as bad:
        return f", line {bad.line}: {_csv_record_problem(bad.reason)}"


def _csv_field_counts(records: Iterator[tuple[int, list[str]]], kind: str) -> str | None:
    """``", line N: ..."`` for the first record with more fields than the header, or None."""
    header = next(records, None)
    if header is None:
        return None
    expected = len(header[1])
    for line, fields in records:
        if len(fields) > expected:
            fix = ("remove the extra tabs (a TSV text may not contain a tab)" if kind == "TSV"
                   else "put a text that contains a comma in double quotes, or remove the extra commas")
            return f", line {line}: {len(fields)} fields but the header has {expected}; {fix}."
    return None


def _csv_record_problem(reason: str) -> str:
    """The message for a record the csv module could not parse."""
    if "unexpected end of data" in reason:
        return ("a quoted field starts on this line and its closing quote is missing; close it, and double "
                "every quote inside it (\"\").")
    return (f"not valid CSV ({reason}); a field that starts with a quote must end with one, with every quote "
            "inside it doubled (\"\").")


# -- line of a data row ----------------------------------------------------------------------------------


def _jsonl_line_of(path: Path, row: int) -> int | None:
    """The 1-based line of data row ``row`` of a JSONL file: its ``row``-th non-blank line (0-based)."""
    seen = -1
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                seen += 1
                if seen == row:
                    return number
    return None


def _csv_line_of(path: Path, kind: str, row: int) -> int | None:
    """The 1-based line where data row ``row`` of a CSV / TSV file starts (quoted newlines counted)."""
    try:
        with _csv_file(path) as f:
            for index, (line, _) in enumerate(_csv_records(f, kind, strict=False)):
                if index == row + 1:  # record 0 is the header
                    return line
    except _BadRecord:
        return None
    return None


# -- columns and rows ------------------------------------------------------------------------------------


def _column(frame: pl.DataFrame, name: str, role: str, where: _Locator) -> list[str | None]:
    """The cells of column ``name`` as strings (None where null); numbers read as they are written."""
    if name not in frame.columns:
        raise MissingColumnError(
            f"Column '{name}' ([task] {role}) is not in '{where.path}'; available columns: {', '.join(frame.columns)}."
        )
    series = frame[name]
    if series.dtype.is_nested() or series.dtype == pl.Object:
        row = _first_filled(series)
        cell = _excerpt(series.to_list()[row])
        raise TaskDataError(
            f"{where.at(row)}: column '{name}' holds {cell}, not text; [task] {role} must name a column of strings."
        )
    if series.dtype.is_float():
        return [_float_text(x) for x in series.to_list()]
    if series.dtype != pl.String:
        series = series.cast(pl.String, strict=False)
    return series.to_list()


def _first_filled(series: pl.Series) -> int:
    """The index of the first non-null cell (0 when all are null)."""
    filled = series.is_not_null().arg_true()
    return int(filled[0]) if len(filled) else 0


def _float_text(value: float | None) -> str | None:
    """A float cell as text: 1.0 -> '1' (so labels ["0", "1"] match), NaN -> None (unlabeled)."""
    if value is None or math.isnan(value):
        return None
    return str(int(value)) if value.is_integer() else str(value)


def _texts(spec: TaskSpec, columns: Sequence[list[str | None]], where: _Locator) -> list[Text]:
    """One text per row, or a pair: two text columns, or one column split by ``pair_regex``."""
    pattern = re.compile(spec.pair_regex, re.DOTALL) if spec.pair_regex else None
    texts: list[Text] = []
    for row, values in enumerate(zip(*columns, strict=True)):
        for field_name, value in zip(spec.text_fields, values, strict=True):
            if value is None or not value.strip():
                raise EmptyTextError(
                    f"{where.at(row)}: empty text in column '{field_name}'; fill it or remove the row."
                )
        if pattern is not None:
            texts.append(_split_pair(pattern, values[0], row, where))
        elif len(values) == 2:
            texts.append((values[0], values[1]))
        else:
            texts.append(values[0])
    return texts


def _split_pair(pattern: re.Pattern[str], text: str, row: int, where: _Locator) -> tuple[str, str]:
    """The two halves of ``text`` by ``pair_regex``."""
    match = pattern.search(text)
    if match is None:
        raise PairPatternError(
            f"{where.at(row)}: text {_excerpt(text)} does not match pair_regex {pattern.pattern!r}; "
            "fix the row or [task] pair_regex."
        )
    first, second = (g.strip() if g is not None else "" for g in match.groups())
    if not first or not second:
        raise EmptyTextError(
            f"{where.at(row)}: pair_regex {pattern.pattern!r} splits the text into an empty half; "
            "fix the row or [task] pair_regex."
        )
    return first, second


def _gold(spec: TaskSpec, raw_labels: Sequence[str | None], where: _Locator) -> np.ndarray:
    """Label ids (positions in ``spec.labels``), -1 where the label is empty, whitespace-only or null."""
    label_ids = {label: i for i, label in enumerate(spec.labels)}
    gold = np.full(len(raw_labels), -1, dtype=np.int64)
    for row, label in enumerate(raw_labels):
        if label is None or not label.strip():
            continue
        label_id = label_ids.get(label, label_ids.get(label.strip()))
        if label_id is None:
            raise UnknownLabelError(
                f"{where.at(row)}: label {_excerpt(label)} is not among the declared labels {list(spec.labels)}; "
                "add it to [task] labels, fix the row, or leave the label empty for an unlabeled row."
            )
        gold[row] = label_id
    return gold


def _check_ids(spec: TaskSpec, ids: list[str | None], where: _Locator) -> None:
    """Every row has an id, and no two rows have the same one."""
    first_row: dict[str, int] = {}
    for row, value in enumerate(ids):
        if value is None or not value.strip():
            raise TaskDataError(f"{where.at(row)}: empty id in column '{spec.id_field}'; every row needs one.")
        if value in first_row:
            raise TaskDataError(
                f"{where.at(row)}: repeats the id {_excerpt(value)} of {where.place(first_row[value])}; ids in "
                f"column '{spec.id_field}' must be unique."
            )
        first_row[value] = row
