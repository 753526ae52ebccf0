"""A tiny simulated project on disk: the keyword task as JSONL, tiny BERT student and teacher, a TOML file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.utils.tiny_models import LABELS, build_tiny_bert, make_task


def write_tiny_project(root: Path, *, n: int = 600, policy: str = "adaptive", models_dir: Path | None = None,
                       extra: str = "") -> Path:
    """Write data, models and ``project.toml`` under ``root``; returns the project file's path."""
    root = Path(root)
    models_dir = Path(models_dir or root / "models")
    student = build_tiny_bert(models_dir / "student", hidden=32, layers=2)
    teacher = build_tiny_bert(models_dir / "teacher", hidden=64, layers=3, heads=4)
    texts, ys = make_task(n, seed=11)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": LABELS[y]}) + "\n" for t, y in zip(texts, ys, strict=True)))
    project = root / "project.toml"
    project.write_text(f"""
[task]
name = "keywords"
data = "data.jsonl"
labels = {json.dumps(list(LABELS))}
metric = "accuracy"

[split]
seed_size = 40
test_size = 150
dev_fraction = 0.3

[models]
student = "{student}"
teacher = "{teacher}"
max_length = 32
batch_size = 8
student_lr = 3e-3
teacher_lr = 2e-3
student_epochs = 15
teacher_epochs = 15
distill_epochs = 6
precision = "fp32"
patience = 6

[prices]
per_label = "0.50"
overlap = 1
# Tiny models cost next to nothing on an A100; a pricier reference makes compute visible in the ledger.
reference_gpu_hour = "20000.00"

[annotation]
batch_size = 30
selection = "entropy"

[annotators]
n = 3
error_rate = 0.1
skip_rate = 0.05

[policy]
name = "{policy}"
min_points_per_100usd = 0.5
{extra}
""")
    return project
