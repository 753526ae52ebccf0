"""GPU checks for when a GPU is lent (``bash benchmarks/gpu_check.sh``): under five minutes on one GPU.

Records, into ``$OUT/gpu_check.json`` (default ``benchmarks/gpu``):

1. **Teacher fine-tuning MFU** with our training loop (:func:`modeling.train.train`, bf16 autocast):
   model FLOPs (6 x parameters x real tokens, as the meter counts them) per second over the GPU's
   dense bf16 peak, for a BERT-base-sized (110M) and a large (335M, DeBERTa-v3-large-sized) encoder
   built from config (MFU does not need pretrained weights), at the largest batch in ``--batches``
   that fits. Target on an H100/H200: at least 40%.
2. **Soft-labelling throughput**: items/s of :func:`modeling.infer.predict_logits` on 100,000 texts.
3. **One quick study cell end to end** (tiny task, tiny models) on the GPU, with its wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

#: dense bf16 peak FLOP/s by device name fragment (NVIDIA datasheets, without sparsity)
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def _peak(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def _encoder(hidden: int, layers: int, heads: int, out: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    from budget.study.tiny import _tiny_tokenizer

    if not (out / "config.json").exists():
        tok = _tiny_tokenizer(["input_ids", "token_type_ids", "attention_mask"])
        tok.save_pretrained(out)
        cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=4 * hidden, max_position_embeddings=512, num_labels=3)
        BertForSequenceClassification(cfg).save_pretrained(out)
    return out


def _texts(n: int, words: int, seed: int = 0) -> list[str]:
    from budget.study.tiny import make_task

    base, _ = make_task(2000, seed=seed)
    rng = np.random.default_rng(seed)
    return [" ".join(base[j] for j in rng.integers(0, len(base), max(1, words // 8))) for _ in range(n)]


def finetune_mfu(name: str, hidden: int, layers: int, heads: int, batches: list[int], work: Path) -> dict:
    from modeling.meter import Meter
    from modeling.models import load_classifier
    from modeling.train import Metering, TrainConfig, TrainData, train

    folder = _encoder(hidden, layers, heads, work / name)
    texts = _texts(4096, 120)
    ys = np.random.default_rng(0).integers(0, 3, len(texts))
    best = {}
    for batch in batches:
        try:
            m = load_classifier(folder, ["a", "b", "c"])
            meter = Meter()
            steps = 30
            cfg = TrainConfig(epochs=1, min_steps=steps, batch_size=batch, max_length=128, precision="bf16",
                              progress=False, eval_every=10_000)
            n = min(len(texts), steps * batch)
            train(m.model, m.tokenizer, TrainData(texts[:n], ys[:n], ["a", "b", "c"]), cfg, metering=Metering(meter))
            rec = meter.records[-1]
            torch.cuda.synchronize()
            flops_s = rec.flops / rec.seconds
            peak = _peak(torch.cuda.get_device_name())
            row = {"batch": batch, "params": m.n_params, "seconds": rec.seconds, "tokens": rec.tokens,
                   "padded_tokens": rec.padded_tokens, "tflops": flops_s / 1e12,
                   "mfu": None if peak is None else flops_s / peak}
            print(f"{name} batch {batch}: {row['tflops']:.1f} TFLOP/s, MFU {row['mfu'] or float('nan'):.1%}")
            if not best or row["tflops"] > best["tflops"]:
                best = row
        except torch.cuda.OutOfMemoryError:
            print(f"{name} batch {batch}: out of memory")
            torch.cuda.empty_cache()
            break
    return best


def soft_label_throughput(work: Path, n: int) -> dict:
    from modeling.infer import predict_logits
    from modeling.models import load_classifier

    m = load_classifier(_encoder(768, 12, 12, work / "base"), ["a", "b", "c"])
    texts = _texts(n, 24)
    started = time.perf_counter()
    predict_logits(m.model, m.tokenizer, texts, batch_size=512, max_length=64, precision="bf16", progress=False)
    seconds = time.perf_counter() - started
    return {"items": n, "seconds": seconds, "items_per_s": n / seconds}


def quick_cell(work: Path) -> dict:
    from budget.config import load_config
    from budget.study.cells import Cell, run_cell
    from budget.study.run import quick_study

    study = quick_study(work / "study")
    cell = Cell("keywords", study.projects[0], "cheap", "16", 0, "adaptive")
    started = time.perf_counter()
    result = run_cell(cell, load_config(study.projects[0]), work / "study" / "cell", work / "study")
    return {"seconds": time.perf_counter() - started, "final_test": result.final_test, "rounds": result.rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/gpu")
    parser.add_argument("--batches", default="32,64,128", help="batch sizes to try for the fine-tune")
    parser.add_argument("--soft-label-items", type=int, default=100_000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run this on a GPU machine (bash benchmarks/gpu_check.sh).")
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "peak_bf16_tflops": (_peak(torch.cuda.get_device_name()) or 0) / 1e12}
    report["finetune_base_110m"] = finetune_mfu("base", 768, 12, 12, batches, work)
    report["finetune_large_335m"] = finetune_mfu("large", 1024, 24, 16, batches, work)
    report["soft_labels"] = soft_label_throughput(work, args.soft_label_items)
    report["quick_cell"] = quick_cell(work)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
