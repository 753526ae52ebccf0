"""Batched class probabilities: soft labels (cached once per teacher and pool), uncertainty, evaluation.

Batches are sorted by length so padding is small, and run under bf16 autocast where the device
supports it. The teacher's soft labels are stored as logits on disk, keyed by the teacher's
weights and the pool's content, so a second call on the same pool and checkpoint never runs the
teacher; the distillation temperature is applied when they are used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from annotation.records import Text
from modeling.device import autocast, device_kind, pick_device
from modeling.encoding import collate, encode, sorted_batches
from modeling.meter import Meter, PhaseRecord
from modeling.metrics import Scores, score

__all__ = ["predict_logits", "softmax", "SoftLabels", "soft_labels", "model_fingerprint", "pool_fingerprint",
           "evaluate"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64 for stable sums)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@torch.inference_mode()  # measured: half the memory growth of no_grad under bf16 autocast, same speed
def predict_logits(
    model,
    tokenizer,
    texts: Sequence[Text],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    precision: str = "auto",
    device: str = "auto",
    meter: Meter | None = None,
    phase_name: str = "inference",
    progress: bool = True,
) -> np.ndarray:
    """Logits for ``texts``, shape (n_texts, n_labels), rows in the order of ``texts``.

    Parameters
    ----------
    meter : Meter, optional
        When given, the pass is recorded as one ``infer`` phase named ``phase_name``.
    """
    dev = pick_device(device)
    model.to(dev).eval()
    encoded = encode(tokenizer, texts, max_length=max_length)
    n_params = sum(p.numel() for p in model.parameters())
    out = np.empty((len(encoded), model.config.num_labels), dtype=np.float32)
    meter = meter or Meter()
    with meter.phase(phase_name, kind="infer", device=device_kind(dev), n_params=n_params) as phase:
        bar = tqdm(total=len(encoded), desc=phase_name, unit="ex", disable=not progress, leave=False)
        for idx in sorted_batches(encoded.lengths, batch_size):
            batch = {k: v.to(dev) for k, v in collate(encoded, idx, tokenizer.pad_token_id).items()}
            with autocast(dev, precision):
                logits = model(**batch).logits
            out[idx] = logits.float().cpu().numpy()
            phase.add(len(idx), int(batch["attention_mask"].sum()), batch["input_ids"].numel())
            bar.update(len(idx))
        bar.close()
    return out


def model_fingerprint(model) -> str:
    """A short hash of a model's weights: the cache key of its soft labels."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pool_fingerprint(texts: Sequence[Text]) -> str:
    """A short hash of the texts, in order."""
    h = hashlib.blake2b(digest_size=16)
    for text in texts:
        h.update(json.dumps(text).encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class SoftLabels:
    """The teacher's logits for a pool; ``cached`` says whether they came from disk.

    ``phase`` is what computing them used, also when they came from the cache (stored beside them),
    so a run that resumes after a crash still knows what the pass cost.
    """

    logits: np.ndarray
    path: Path
    cached: bool
    phase: PhaseRecord | None = None

    def proba(self, temperature: float = 1.0) -> np.ndarray:
        """Class probabilities at ``temperature``."""
        return softmax(self.logits, temperature)


def soft_labels(
    model,
    tokenizer,
    texts: Sequence[Text],
    *,
    cache_dir: str | os.PathLike,
    checkpoint_id: str | None = None,
    max_length: int = 128,
    **predict_kwargs,
) -> SoftLabels:
    """The teacher's logits for the whole pool, computed once and cached on disk.

    Parameters
    ----------
    checkpoint_id : str, optional
        Identifies the teacher's weights; default :func:`model_fingerprint` (hashes every weight).
    cache_dir : path
        Folder of ``<key>.npy`` files; the key joins the checkpoint, the pool's content and ``max_length``.
    """
    key = hashlib.blake2b(
        f"{checkpoint_id or model_fingerprint(model)}|{pool_fingerprint(texts)}|{max_length}".encode(), digest_size=16
    ).hexdigest()
    path = Path(cache_dir) / f"soft-{key}.npy"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return SoftLabels(np.load(path), path, cached=True, phase=PhaseRecord(**json.loads(meta.read_text())))
    meter = predict_kwargs.pop("meter", None) or Meter()
    logits = predict_logits(model, tokenizer, texts, max_length=max_length, phase_name="soft_labels", meter=meter,
                            **predict_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, write in ((path, lambda f: np.save(f, logits)),
                          (meta, lambda f: f.write(json.dumps(asdict(meter.records[-1])).encode()))):
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, target)  # a killed run never leaves a half-written cache entry
    return SoftLabels(logits, path, cached=False, phase=meter.records[-1])


def evaluate(model, tokenizer, texts: Sequence[Text], gold: np.ndarray, labels: Sequence[str], **predict_kwargs
             ) -> Scores:
    """Scores of the model's argmax predictions on ``texts`` against label ids ``gold``."""
    predict_kwargs.setdefault("phase_name", "evaluation")
    logits = predict_logits(model, tokenizer, texts, **predict_kwargs)
    return score(gold, logits.argmax(axis=1), labels)
