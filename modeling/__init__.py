"""Models, training, soft labels, metering and metrics (transformers + torch).

Imports nothing of ours but plain record types; prices come in as functions.
"""

from modeling.exceptions import (
    CheckpointError,
    EmptyPoolError,
    EmptyTextError,
    LabelError,
    ModelingError,
    ModelNotFoundError,
    ModelPackageMissingError,
)
from modeling.infer import SoftLabels, evaluate, model_fingerprint, predict_logits, soft_labels, softmax
from modeling.meter import Meter, Phase, PhaseRecord, flops_per_token
from modeling.metrics import METRICS, Scores, score
from modeling.models import KNOWN_MODELS, LoadedModel, load_classifier, resolve_model
from modeling.train import Metering, SoftTargets, TrainConfig, TrainData, TrainResult, train

__all__ = [
    "CheckpointError",
    "EmptyPoolError",
    "EmptyTextError",
    "KNOWN_MODELS",
    "LabelError",
    "LoadedModel",
    "METRICS",
    "Meter",
    "Metering",
    "ModelNotFoundError",
    "ModelPackageMissingError",
    "ModelingError",
    "Phase",
    "PhaseRecord",
    "Scores",
    "SoftLabels",
    "SoftTargets",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "evaluate",
    "flops_per_token",
    "load_classifier",
    "model_fingerprint",
    "predict_logits",
    "resolve_model",
    "score",
    "soft_labels",
    "softmax",
    "train",
]
