"""The project file: one TOML file that names the data, the models, the prices and the policy.

Every table and key is listed in :data:`DEFAULTS` with its default; an unknown key is an error
naming the table and the keys it allows. Relative paths are taken from the file's folder.
Example (``examples/stanceosaurus/project.toml``)::

    [task]
    name = "stanceosaurus"
    data = "../../../shared/data/distill-or-annotate/stanceosaurus_test_all.jsonl"
    text_fields = ["source"]
    pair_regex = '^claim: (.*?) tweet: (.*)$'
    label_field = "target"
    labels = ["Discussing", "Irrelevant", "Supporting", "Refuting", "Querying"]
    metric = "macro_f1"

    [prices]
    per_label = "0.364"
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation.pool import TaskSpec
from budget.money import to_micro
from budget.prices import DEFAULT_DEVICE_PRICES, DevicePrice, FlopPricing, LabelPrice
from budget.runfolder import check_keep

__all__ = ["DEFAULTS", "PHASES", "ProjectConfig", "ConfigError", "check_phase_scale", "load_config"]

#: the compute phases a run meters, by the names the meter gives them
PHASES = ("student_finetune", "teacher_finetune", "soft_labels", "student_distill", "evaluation")


def check_phase_scale(value: object) -> dict[str, float]:
    """``[prices] phase_scale`` as {phase: multiplier}; raise ValueError naming the fix."""
    if not isinstance(value, dict):
        raise ValueError(f"[prices] phase_scale must be a table like {{teacher_finetune = 100}}; got {value!r}.")
    out = {}
    for phase, factor in value.items():
        if phase not in PHASES:
            raise ValueError(f"[prices] phase_scale names an unknown phase {phase!r}; use {', '.join(PHASES)}.")
        try:
            out[phase] = float(str(factor))
        except ValueError:
            out[phase] = -1.0
        if not out[phase] > 0 or isinstance(factor, bool):
            raise ValueError(f"[prices] phase_scale {phase} must be a number > 0; got {factor!r}.")
    return out

#: every table and key of a project file with its default ([task] is validated by TaskSpec)
DEFAULTS: dict[str, dict[str, Any]] = {
    "split": {
        "seed_size": 100,  # labeled rows the team starts with; "all" for every labeled row of real data
        "test_size": 0.2,  # held-out test items for reports (simulation only); int or fraction; 0 = none
        "max_unlabeled": 0,  # cap on the unlabeled pool used (0 = all), to bound soft-labelling time
        "dev_fraction": 0.25,  # share of purchased labels (seed included) kept as the dev set
    },
    "models": {
        "student": "minilm-l6",  # folder, known name (minilm-l6, mpnet-base) or hub id
        "teacher": "mpnet-base",
        "max_length": 128,  # tokens per example
        "batch_size": 16,
        "student_lr": 5e-5,
        "teacher_lr": 3e-5,
        "student_epochs": 4,  # fine-tuning on gold labels
        "teacher_epochs": 3,
        "distill_epochs": 2,  # student on gold + soft labels
        "min_steps": 0,  # at least this many optimizer steps per training (small label sets)
        "temperature": 2.0,  # distillation temperature T
        "alpha": 0.5,  # weight of gold CE against the KL to soft labels
        "patience": 2,  # dev evaluations without improvement before early stop
        "precision": "auto",  # auto | bf16 | fp32
        "device": "auto",
        "keep": 1,  # latest students and teachers kept in the run folder besides the best student; "all"
    },
    "prices": {
        "per_label": "0.364",  # dollars per label per annotator (the paper's Stanceosaurus price)
        "hourly_wage": "",  # dollars per hour; when set, labels are paid by time spent
        "seconds_per_label": 30.0,  # estimate used with hourly_wage before the real lead times come
        "overlap": 1,  # annotators per item; multiplies the label price
        "compute": "flops",  # flops: priced as time on a reference GPU; device-hours: metered seconds
        "reference_gpu": "A100-80GB",
        "reference_peak_flops": 312e12,
        "reference_utilisation": 0.4,
        "reference_gpu_hour": "2.00",
        "device_hour": dict(DEFAULT_DEVICE_PRICES),
        # multiply what a phase costs (FLOPs or seconds before pricing), e.g. {teacher_finetune = 100}: the
        # decision study's compute-price regimes (budget/regimes.py); the ledger charges the scaled price
        "phase_scale": {},
    },
    "annotation": {
        "connector": "simulated",  # simulated | labelstudio | argilla
        "batch_size": 50,  # items per annotation round
        "selection": "entropy",  # random | entropy | margin
        "auto_approve_under": "inf",  # dollars; batches costing less are approved without a lead
        "poll_seconds": 30.0,  # how often to look for finished work
        "wait_seconds": 0.0,  # real platforms: how long one run waits before exiting (resume later)
        "suggestions": True,  # send the student's prediction as a pre-annotation
    },
    "annotators": {  # simulation only
        "n": 3,
        "error_rate": 0.1,
        "skip_rate": 0.05,
        "latency_s": [30.0, 120.0],
    },
    "connector": {  # real platforms
        "url": "",
        "api_key_env": "",
        "workspace": "argilla",
        "guidelines": "",
        "timeout": 30.0,  # seconds per HTTP request to the platform
    },
    "policy": {
        "name": "adaptive",  # annotate | distill | split:F | adaptive
        "min_points_per_100usd": 0.5,
        "keep_final_distill": True,
        "redistill_growth": 0.5,  # distil again mid-run once labels grew by half since the last distillation
        "approve_compute_over": "inf",  # dollars; compute reservations above need a lead's approval
    },
}


class ConfigError(ValueError):
    """Raised when a project file is missing, unreadable, or has an unknown key or a bad value."""


@dataclass(frozen=True)
class ProjectConfig:
    """A parsed project file: the task spec plus every other table merged over :data:`DEFAULTS`."""

    task: TaskSpec
    tables: dict[str, dict[str, Any]]
    path: Path | None = None

    def __getitem__(self, table: str) -> dict[str, Any]:
        return self.tables[table]

    @property
    def simulated(self) -> bool:
        return self.tables["annotation"]["connector"] == "simulated"

    def label_price(self) -> LabelPrice:
        p = self.tables["prices"]
        if p["hourly_wage"]:
            return LabelPrice.hourly(str(p["hourly_wage"]), seconds_per_label=float(p["seconds_per_label"]))
        return LabelPrice.per_label(str(p["per_label"]))

    def flop_pricing(self) -> FlopPricing:
        p = self.tables["prices"]
        return FlopPricing(reference_gpu=p["reference_gpu"], peak_flops=float(p["reference_peak_flops"]),
                           utilisation=float(p["reference_utilisation"]),
                           price_per_hour=to_micro(str(p["reference_gpu_hour"])))

    def device_prices(self) -> DevicePrice:
        return DevicePrice.from_dollars({k: str(v) for k, v in self.tables["prices"]["device_hour"].items()})

    def dollars_or_inf(self, table: str, key: str) -> int | None:
        """A dollar setting in micro-dollars, or None for 'inf' (no limit)."""
        value = str(self.tables[table][key])
        return None if value in {"inf", ""} else to_micro(value)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the ledger (paths as strings)."""
        task = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.task).items()}
        return {"task": task, **copy.deepcopy(self.tables)}


def _merge(raw: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    unknown = sorted(set(raw) - set(DEFAULTS) - {"task"})
    if unknown:
        raise ConfigError(f"Unknown table(s) {unknown} in {where}; allowed: [task], "
                          + ", ".join(f"[{t}]" for t in DEFAULTS) + ".")
    tables = copy.deepcopy(DEFAULTS)
    for table, values in raw.items():
        if table == "task":
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"[{table}] in {where} must be a table.")
        bad = sorted(set(values) - set(DEFAULTS[table]))
        if bad:
            raise ConfigError(f"Unknown key(s) {bad} in [{table}] of {where}; allowed: "
                              f"{', '.join(DEFAULTS[table])}.")
        for key, value in values.items():
            if isinstance(value, float) and table == "prices" and key in {"per_label", "hourly_wage",
                                                                          "reference_gpu_hour"}:
                raise ConfigError(f"[prices] {key} in {where} must be a string like \"0.364\": money is never "
                                  "a binary float.")
            tables[table][key] = value
    return tables


def load_config(path: str | Path | None = None, *, raw: dict[str, Any] | None = None,
                base_dir: Path | None = None) -> ProjectConfig:
    """Read a project file (or an already-parsed ``raw`` dict) into a :class:`ProjectConfig`.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or a table or key is unknown.
    TaskDataError
        If ``[task]`` is incomplete or inconsistent.
    """
    where = "the project"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"Project file '{path}' not found; pass --config with an existing TOML file.")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Project file '{path}' is not valid TOML: {exc}.") from exc
        base_dir = path.parent
    if raw is None or "task" not in raw:
        raise ConfigError(f"{where} has no [task] table; it needs at least name, data and labels.")
    tables = _merge(raw, where)
    task = TaskSpec.from_dict(raw["task"], base_dir=base_dir)
    for key in ("per_label", "reference_gpu_hour"):
        to_micro(str(tables["prices"][key]))  # fails early on a bad amount
    try:
        check_keep(tables["models"]["keep"])
        check_phase_scale(tables["prices"]["phase_scale"])
    except ValueError as exc:
        raise ConfigError(f"{exc} ({where})") from exc
    return ProjectConfig(task=task, tables=tables, path=path)
