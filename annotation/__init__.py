"""Which items to label, and what comes back: pools, selection, aggregation, simulated annotators."""

from annotation.aggregate import Resolved, agreement_rate, majority_vote
from annotation.exceptions import (
    AnnotationError,
    DataFileNotFoundError,
    EmptyPoolError,
    EmptyTextError,
    InvalidParameterError,
    MissingColumnError,
    PairPatternError,
    PoolExhaustedError,
    SelectionError,
    TaskDataError,
    UnknownLabelError,
    UnknownStrategyError,
    UnsupportedFileError,
)
from annotation.pool import (
    ItemState,
    ItemStates,
    Pool,
    PoolSplit,
    TaskSpec,
    dev_membership,
    load_pool,
    split_pool,
)
from annotation.records import Annotation, Batch, BatchItem, BatchStatus, Receipt, Text
from annotation.selection import (
    EntropySelection,
    MarginSelection,
    RandomSelection,
    ScoreBasedSelection,
    SelectionStrategy,
    make_strategy,
)
from annotation.simulated import SimulatedAnnotators

__all__ = [
    # records
    "Text",
    "BatchItem",
    "Batch",
    "Receipt",
    "Annotation",
    "BatchStatus",
    # pool
    "TaskSpec",
    "Pool",
    "load_pool",
    "PoolSplit",
    "split_pool",
    "dev_membership",
    "ItemState",
    "ItemStates",
    # selection
    "SelectionStrategy",
    "ScoreBasedSelection",
    "RandomSelection",
    "EntropySelection",
    "MarginSelection",
    "make_strategy",
    # aggregation
    "Resolved",
    "majority_vote",
    "agreement_rate",
    # simulated people
    "SimulatedAnnotators",
    # errors
    "AnnotationError",
    "TaskDataError",
    "DataFileNotFoundError",
    "UnsupportedFileError",
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
