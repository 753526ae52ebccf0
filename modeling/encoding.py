"""Turn texts (single or pairs) into token ids, and group them into batches that pad little.

Tokenising is the tokenizer's job; what is ours is validating inputs with clear errors and the
batch orders: length-sorted for inference, length-bucketed and shuffled for training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from annotation.records import Text
from modeling.exceptions import EmptyPoolError, EmptyTextError, LabelError

__all__ = ["Encoded", "encode", "label_ids", "sorted_batches", "bucketed_batches", "collate"]


@dataclass
class Encoded:
    """Token ids per example (unpadded) and their lengths."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)


def _check_texts(texts: Sequence[Text]) -> None:
    if len(texts) == 0:
        raise EmptyPoolError("No texts given: the pool has no rows; add rows to the data file or check split sizes.")
    for i, text in enumerate(texts):
        parts = text if isinstance(text, tuple) else (text,)
        if any(not isinstance(p, str) or not p.strip() for p in parts):
            raise EmptyTextError(f"Text {i} is empty ({text!r}); remove the row or fill in its text.")


def encode(tokenizer, texts: Sequence[Text], *, max_length: int = 128) -> Encoded:
    """Tokenise ``texts`` without padding; pairs are encoded as the model's sentence pairs.

    Raises
    ------
    EmptyPoolError
        If ``texts`` is empty.
    EmptyTextError
        If a text (or either half of a pair) is empty.
    """
    _check_texts(texts)
    if isinstance(texts[0], tuple):
        first, second = [t[0] for t in texts], [t[1] for t in texts]
        out = tokenizer(first, second, truncation=True, max_length=max_length)
    else:
        out = tokenizer(list(texts), truncation=True, max_length=max_length)
    return Encoded(input_ids=out["input_ids"], token_type_ids=out.get("token_type_ids"))


def label_ids(labels: Sequence[str], label_set: Sequence[str]) -> np.ndarray:
    """Map label strings to ids in the task's order.

    Raises
    ------
    LabelError
        If a label is not in ``label_set``.
    """
    index = {label: i for i, label in enumerate(label_set)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if label not in index:
            raise LabelError(
                f"Label {label!r} (example {i}) is not one of the task's labels {list(label_set)}; "
                "add it to the task's labels or fix the data."
            )
        out[i] = index[label]
    return out


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches of example indices in order of decreasing length (inference: least padding)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length examples (training: little padding, random order).

    Shuffle, cut into chunks of 50 batches, sort each chunk by length, cut into batches, then
    shuffle the batches: the same idea as ``transformers``' ``group_by_length`` sampler.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(encoded: Encoded, idx: np.ndarray, pad_id: int, multiple: int = 8) -> dict[str, torch.Tensor]:
    """Pad the examples ``idx`` to the batch's longest one, rounded up to ``multiple`` (dynamic padding).

    Rounding keeps the number of distinct shapes small: each new shape makes oneDNN (CPU) build
    new kernels, which cost seconds in bf16.
    """
    longest = max(len(encoded.input_ids[i]) for i in idx)
    width = -(-longest // multiple) * multiple
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    types = torch.zeros((len(idx), width), dtype=torch.long) if encoded.token_type_ids is not None else None
    for row, i in enumerate(idx):
        n = len(encoded.input_ids[i])
        ids[row, :n] = torch.tensor(encoded.input_ids[i])
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = torch.tensor(encoded.token_type_ids[i])
    batch = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    return batch
