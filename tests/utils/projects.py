"""A tiny simulated project on disk: the keyword task as JSONL, tiny BERT student and teacher, a TOML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.utils.tiny_models import LABELS, build_tiny_bert, make_task


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def tiny_tables(data: Path, student: Path, teacher: Path, policy: str = "adaptive") -> dict[str, dict[str, Any]]:
    """The tiny project's tables; tests change them before :func:`write_project`."""
    return {
        "task": {"name": "keywords", "data": str(data), "labels": list(LABELS), "metric": "accuracy"},
        "split": {"seed_size": 40, "test_size": 150, "dev_fraction": 0.3},
        "models": {"student": str(student), "teacher": str(teacher), "max_length": 32, "batch_size": 8,
                   "student_lr": 3e-3, "teacher_lr": 2e-3, "student_epochs": 15, "teacher_epochs": 15,
                   "distill_epochs": 6, "precision": "fp32", "patience": 6},
        # Tiny models cost next to nothing on an A100; a pricier reference makes compute visible.
        "prices": {"per_label": "0.50", "overlap": 1, "reference_gpu_hour": "20000.00"},
        "annotation": {"batch_size": 30, "selection": "entropy"},
        "annotators": {"n": 3, "error_rate": 0.1, "skip_rate": 0.05},
        "policy": {"name": policy, "min_points_per_100usd": 0.5},
    }


def write_project(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """Write ``tables`` as a TOML project file at ``path``."""
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)


def write_tiny_project(root: Path, *, n: int = 600, policy: str = "adaptive", models_dir: Path | None = None,
                       overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write data, models and ``project.toml`` under ``root``; returns the project file's path.

    ``overrides`` updates tables key by key, e.g. ``{"annotation": {"connector": "labelstudio"}}``.
    """
    root = Path(root)
    models_dir = Path(models_dir or root / "models")
    student = build_tiny_bert(models_dir / "student", hidden=32, layers=2)
    teacher = build_tiny_bert(models_dir / "teacher", hidden=64, layers=3, heads=4)
    texts, ys = make_task(n, seed=11)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": LABELS[y]}) + "\n" for t, y in zip(texts, ys, strict=True)))
    tables = tiny_tables(Path(data.name), student, teacher, policy)  # relative to the project file
    for table, values in (overrides or {}).items():
        tables.setdefault(table, {}).update(values)
    return write_project(root / "project.toml", tables)
