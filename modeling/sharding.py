"""Shard a teacher's weights, gradients and optimizer state over the processes of a launch (FSDP2).

With ``[compute] strategy = "fsdp"`` each process of :mod:`modeling.launch` holds 1/world of every
weight, gradient and AdamW moment: a full fine-tune needs about 16 bytes a parameter (fp32 weight,
gradient and two moments), so an 8B teacher that needs 128 GB in one process needs 16 GB in each of 8.
Each transformer block is one FSDP unit (gathered for its forward and backward, then freed), and the
model's root holds the rest (embeddings, head).

We call ``torch.distributed.fsdp.fully_shard`` ourselves, the function accelerate's FSDP2 plugin calls,
with the same wrapping (the model's ``_no_split_modules``), because accelerate 1.15 applies its FSDP
plugin only on GPUs: on CPU processes (gloo) it silently falls back to DDP, so the CI's two-process
test could not exercise the path a GPU run takes. Mixed precision stays the loop's autocast.

Checkpoints stay whole (one ``ckpt.pt`` and a normal model folder, as without sharding): the full state
is gathered to the main process on the CPU, and restored by broadcasting it from there. A teacher so large
that its whole state does not fit the main machine's memory needs sharded checkpoints
(``torch.distributed.checkpoint``), which are not built.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["shard", "is_sharded", "full_state", "load_full_state", "optimizer_state", "load_optimizer_state"]


def shard(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """Shard ``model`` in place over every process of the current process group, block by block.

    The blocks are the modules named in the model's ``_no_split_modules`` (a transformers model's
    decoder or encoder layer); a model that names none has each entry of its largest ``ModuleList``
    sharded. Call it after the process group exists (an ``accelerate.Accelerator`` was built) and
    before the optimizer is made.
    """
    from torch.distributed.fsdp import fully_shard

    if device is not None:
        model.to(device)
    for block in _blocks(model):
        fully_shard(block)
    fully_shard(model)
    return model


def is_sharded(model: nn.Module) -> bool:
    """True when :func:`shard` (or FSDP2) sharded ``model``."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _blocks(model: nn.Module) -> list[nn.Module]:
    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if blocks:
        return blocks
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def _options(**kw: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s whole state dict on the CPU.

    Of a sharded model, every process must call it (it gathers the shards); only the main process
    receives the state, the others an empty dict.
    """
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_options(cpu_offload=True))
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def load_full_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a whole state dict into ``model``; of a sharded model, every process calls it and the main
    process's ``state`` is the one loaded (the others may pass an empty dict)."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        # a copy: loading replaces the dict's values with this process's shards
        set_model_state_dict(model, dict(state), options=_options(broadcast_from_rank0=True))
    else:
        model.load_state_dict(state)


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's whole state (of a sharded model: gathered, on the main process only)."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    return optimizer.state_dict()


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Restore what :func:`optimizer_state` returned (of a sharded model: in every process, from the main one's)."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=_options(broadcast_from_rank0=True))
    else:
        optimizer.load_state_dict(state)
