"""Where in a data file a problem is: the line a person opens the file at, and one line saying what is wrong.

Polars reads the data (:mod:`annotation.datafile`); when it refuses a file, or a row holds a bad value,
this module reads the file again, line by line with the json and csv modules, only to name the first bad
line, or the line of a row. Written by hand because no reader reports where its own error is in terms a
person can open the file at: polars names byte offsets or nothing, and the csv module counts physical lines
only as it goes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from annotation.exceptions import (
    DataParseError,
    EmptyPoolError,
    TaskDataError,
)

__all__ = ["LINE_FORMATS", "Locator", "parse_error", "one_line", "excerpt", "json_kind"]

LINE_FORMATS = ("JSONL", "CSV", "TSV")  # formats whose messages name a line of the file; the others name a row
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}
_EXCERPT = 60  # characters of a cell quoted in a message
_DETAIL = 160  # characters of a parser's own message quoted in ours


# -- messages --------------------------------------------------------------------------------------------


def one_line(text: str, limit: int = _DETAIL) -> str:
    """``text`` with every run of whitespace (newlines too) made one space, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def excerpt(value: Any, limit: int = _EXCERPT) -> str:
    """A short quoted excerpt of a cell for a message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in words: 'an array', 'a string', ..."""
    return _JSON_KINDS.get(type(value), "an object")


class Locator:
    """Names a data row (0-based index into the frame) the way a person finds it in the file.

    JSONL, CSV and TSV rows are named by their 1-based line in the file (computed only when a message
    needs it, by reading the file again); JSON-array and Parquet rows by their 1-based position.
    """

    def __init__(self, path: Path | str, kind: str) -> None:
        self.path = path
        self.kind = kind

    def place(self, row: int) -> str:
        """'line 7' or 'row 6' for data row ``row``."""
        if self.kind not in LINE_FORMATS:
            return f"row {row + 1}"
        line = _jsonl_line_of(self.path, row) if self.kind == "JSONL" else _csv_line_of(self.path, self.kind, row)
        return f"line {line}" if line is not None else f"row {row + 1}"

    def at(self, row: int) -> str:
        """The start of a row-level message: ``Data file 'd.csv', line 4``."""
        return f"Data file '{self.path}', {self.place(row)}"


def parse_error(path: Path, kind: str, exc: Exception) -> TaskDataError:
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
        f"Data file '{path}' could not be read as {kind} ({one_line(str(exc))}); check that it is a {kind} file "
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
        return f"not valid JSON ({one_line(exc.msg)} at column {exc.colno}); fix or remove that line."
    if not isinstance(value, dict):
        return (f"{json_kind(value)} ({excerpt(text.strip())}), not a JSON object; each line must be one "
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
        return f", line {exc.lineno}: not valid JSON ({one_line(exc.msg)} at column {exc.colno}); fix that line."
    if isinstance(value, dict):
        return None
    if not isinstance(value, list):
        return f" holds {json_kind(value)}; a .json file must be an array of objects (or use .jsonl)."
    for row, item in enumerate(value):
        if not isinstance(item, dict):
            return f", row {row + 1}: {json_kind(item)} ({excerpt(item)}), not a JSON object; every item must be one."
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
            raise _BadRecord(start, one_line(str(exc))) from exc
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

