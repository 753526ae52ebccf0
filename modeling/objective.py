"""What a training minimises: its rows (gold, then the teacher's soft targets) and one batch's loss.

Gold rows carry a label id and are trained with cross-entropy (optionally class-balanced); soft rows carry the
teacher's probabilities at temperature T and are trained with KL(teacher || student) x T^2 (Hinton et al.
2015); the batch's loss weighs the two by ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modeling.device import autocast
from modeling.encoding import Encoded, encode
from modeling.infer import softmax

__all__ = ["Examples", "examples", "loss"]


@dataclass(frozen=True)
class Examples:
    """A training's rows, gold first then soft (``n``), tokenised; ``hard``: a gold row's label id (-1 on soft
    rows); ``targets``: a soft row's teacher probabilities at the temperature; ``w_gold``: the gold loss's
    weight; ``class_w``: balanced class weights or None; the steps an epoch and the whole training make, and
    the steps between dev evaluations."""

    encoded: Encoded
    n: int
    hard: torch.Tensor
    targets: torch.Tensor
    w_gold: float
    class_w: torch.Tensor | None
    steps_per_epoch: int
    total_steps: int
    eval_interval: int


def examples(data: Any, tokenizer, cfg: Any, device: torch.device) -> Examples:
    """The rows of ``data`` (a :class:`modeling.train.TrainData`) under ``cfg`` (its :class:`TrainConfig`): gold
    rows carry a label id, soft rows carry the teacher's probabilities at the temperature."""
    soft = data.soft
    all_texts = list(data.texts) + (list(soft.texts) if soft else [])
    encoded = encode(tokenizer, all_texts, max_length=cfg.max_length)
    n_gold = len(data.texts)
    hard = torch.tensor(np.concatenate([data.labels, -np.ones(len(all_texts) - n_gold, dtype=np.int64)]))
    targets = torch.zeros((len(all_texts), len(data.label_names)))
    if soft is not None:
        targets[n_gold:] = torch.from_numpy(softmax(soft.logits, cfg.temperature)).float()
    class_w = (_class_weights(data.labels, len(data.label_names)).to(device) if cfg.class_weight == "balanced"
               else None)
    steps_per_epoch = math.ceil(len(all_texts) / cfg.batch_size)
    total_steps = steps_per_epoch * max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    # a few labels make many tiny epochs: evaluate on whole epochs, but about 10 times at most
    eval_interval = cfg.eval_every or steps_per_epoch * math.ceil(total_steps / steps_per_epoch / 10)
    return Examples(encoded, len(all_texts), hard, targets, cfg.alpha if soft is not None else 1.0, class_w,
                    steps_per_epoch, total_steps, eval_interval)


def loss(forward, batch: dict[str, torch.Tensor], ex: Examples, cfg: Any, mine: np.ndarray,
         device: torch.device) -> torch.Tensor:
    """The summed loss of this process's rows ``mine`` of a batch: gold cross-entropy and the soft rows' KL."""
    y, q = ex.hard[mine].to(device), ex.targets[mine].to(device)
    gold = y >= 0
    # 2. forward under autocast; the loss is computed in fp32
    with autocast(device, cfg.precision):
        logits = forward(**batch).logits.float()
    # 3. gold cross-entropy, summed over the labeled rows of the batch
    ce = (F.cross_entropy(logits[gold], y[gold], weight=ex.class_w, reduction="sum") if gold.any()
          else logits.new_zeros(()))
    # 4. KL(teacher || student) at temperature T on soft rows, x T^2 to keep gradient scale (Hinton 2015)
    t = cfg.temperature
    kl = (F.kl_div(F.log_softmax(logits[~gold] / t, dim=-1), q[~gold], reduction="sum") * t * t
          if (~gold).any() else logits.new_zeros(()))
    # 5. one mean over the whole batch (the caller divides), so gold and soft rows weigh by their count; with
    #    several processes each scales its part by their number, and the all-reduce averages them back
    return ex.w_gold * ce + (1 - ex.w_gold) * kl


def _class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """scikit-learn's ``class_weight='balanced'``: each class present weighs n / (k x its count), so every class
    counts as much in the loss as in a macro-averaged metric, and a row weighs 1 on average."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)
