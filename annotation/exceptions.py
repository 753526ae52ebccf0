"""Errors raised by the annotation package.

The tree (after httpx and small-text)::

    AnnotationError                     anything in annotation/ went wrong
    ├── TaskDataError(ValueError)       the task's data file or its config is wrong
    │   ├── DataFileNotFoundError       [task] data names no file, or an hf: dataset not in the cache
    │   ├── UnsupportedFileError        the file is not .jsonl / .json / .csv / .parquet
    │   ├── DataParseError              a line of the file is not valid JSON / CSV / TSV
    │   ├── MissingColumnError          a configured column is not in the file
    │   ├── UnknownLabelError           a row's label is not among [task] labels
    │   ├── EmptyTextError              a row's text is empty or null
    │   ├── EmptyPoolError              the file has no rows, or a split leaves a part empty
    │   └── PairPatternError            pair_regex does not split a row into two texts
    ├── InvalidParameterError(ValueError)   a constructor parameter is out of range
    └── SelectionError                  a selection strategy cannot pick
        ├── PoolExhaustedError          no candidates are left
        └── UnknownStrategyError(ValueError)    make_strategy got a name it does not know

Every message says what was given, what is allowed, and what to do.
"""

from __future__ import annotations

__all__ = [
    "AnnotationError",
    "TaskDataError",
    "DataFileNotFoundError",
    "UnsupportedFileError",
    "DataParseError",
    "MissingColumnError",
    "UnknownLabelError",
    "EmptyTextError",
    "EmptyPoolError",
    "PairPatternError",
    "InvalidParameterError",
    "SelectionError",
    "PoolExhaustedError",
    "UnknownStrategyError",
]


class AnnotationError(Exception):
    """Raised when choosing, loading or resolving annotation items fails."""


class TaskDataError(AnnotationError, ValueError):
    """Raised when the task's data file does not match its configuration."""


class DataFileNotFoundError(TaskDataError):
    """Raised when the configured data file does not exist."""


class UnsupportedFileError(TaskDataError):
    """Raised when the data file's suffix is not one polars is asked to read."""


class DataParseError(TaskDataError):
    """Raised when a line of the data file cannot be parsed (not JSON, an unclosed quote, extra fields...)."""


class MissingColumnError(TaskDataError):
    """Raised when a configured text, label or id column is not in the data file."""


class UnknownLabelError(TaskDataError):
    """Raised when a row's label is not among the task's declared labels."""


class EmptyTextError(TaskDataError):
    """Raised when a row's text is empty or null."""


class EmptyPoolError(TaskDataError):
    """Raised when the data file has no rows, or a split would leave a required part empty."""


class PairPatternError(TaskDataError):
    """Raised when ``pair_regex`` does not split a row's text into two parts."""


class InvalidParameterError(AnnotationError, ValueError):
    """Raised when a parameter is outside its allowed range or options."""


class SelectionError(AnnotationError):
    """Raised when a selection strategy cannot choose items."""


class PoolExhaustedError(SelectionError):
    """Raised when a selection is asked for items but no candidates are left."""


class UnknownStrategyError(SelectionError, ValueError):
    """Raised when a selection strategy is asked for by a name that does not exist."""
