"""LoRA for a teacher too large to fine-tune whole (peft): only low-rank adapters and the head train.

A teacher with LoRA trains a few million parameters instead of all of them, so its optimizer state
and gradients fit where a full fine-tune would not, and a large teacher's fixed cost drops. Any
``AutoModelForSequenceClassification`` model works, encoders and decoder LLMs alike (Llama, Qwen,
Mistral: their classification head reads the last real token). A trained teacher is saved as its
adapter (``adapter_config.json`` + weights, a few MB); :func:`modeling.models.load_classifier` puts it
back on its base model and merges it, so soft-labelling runs at the base model's speed.
"""

from __future__ import annotations

from pathlib import Path

from modeling.models import LoadedModel, load_adapter

__all__ = ["with_lora", "is_adapter", "load_adapter"]


def with_lora(loaded: LoadedModel, rank: int, *, alpha: int | None = None, dropout: float = 0.0) -> LoadedModel:
    """``loaded`` with LoRA adapters of ``rank`` on every linear layer; the classification head trains whole.

    Parameters
    ----------
    rank : int
        The adapters' rank (8-64 is usual); ``alpha`` defaults to twice the rank.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"The 'rank' parameter of with_lora must be an int >= 1. Got {rank!r} instead.")
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout,
                        target_modules="all-linear")
    model = get_peft_model(loaded.model, config)
    return LoadedModel(model=model, tokenizer=loaded.tokenizer, name=loaded.name, source=loaded.source)


def is_adapter(folder: str | Path) -> bool:
    """True when ``folder`` holds a saved LoRA adapter rather than a whole model."""
    return (Path(folder) / "adapter_config.json").exists()
