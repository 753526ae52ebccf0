"""One training in several processes (accelerate): where the model goes, each process's rows of a batch, the
stops they make together, and the losses they average."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modeling.checkpoint import RunState
from modeling.device import pick_device
from modeling.sharding import is_sharded

__all__ = ["any_process", "my_rows", "place", "read_losses"]


def place(model, cfg: Any, accelerator) -> tuple[torch.device, int, int, Any]:
    """Move the model to its device: (device, this process's rank, the number of processes, what to call
    forward on: the model itself, or its data-parallel wrapper, whose backward all-reduces the gradients)."""
    if accelerator is None:
        device = pick_device(cfg.device)
        model.to(device)
        return device, 0, 1, model
    if is_sharded(model):  # FSDP: the shards' collectives replace DDP's gradient all-reduce
        return accelerator.device, accelerator.process_index, accelerator.num_processes, model
    model.to(accelerator.device)
    return accelerator.device, accelerator.process_index, accelerator.num_processes, accelerator.prepare_model(model)


def my_rows(idx: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, float]:
    """This process's rows of a batch, and 1.0 (or 0.0 when the batch has fewer rows than processes: the
    process then computes one row with no weight, so that every process takes part in the all-reduce)."""
    mine = idx[rank::world]
    return (mine, 1.0) if len(mine) else (idx[:1], 0.0)


def any_process(accelerator, flag: bool) -> bool:
    """True when ``flag`` is true in any process: a stop every process makes together."""
    if accelerator is None:
        return flag
    t = torch.tensor([float(flag)], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() > 0)


def read_losses(accelerator, pending: list[torch.Tensor], run: RunState) -> None:
    """Move the pending steps' losses into ``run.losses``. Each process holds its part of a step's loss
    times the number of processes, so their mean is the step's loss."""
    if not pending:
        return
    losses = torch.stack(pending).float()
    if accelerator is not None:
        losses = accelerator.reduce(losses, reduction="mean")
    run.losses.extend(float(x) for x in losses.cpu())
    pending.clear()
