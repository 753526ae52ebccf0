"""A project file read into a validated :class:`ProjectConfig` (:func:`load_config`)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from annotation.pool import TaskSpec
from budget.config.tables import (
    Annotation,
    Annotators,
    Compute,
    ConfigError,
    ConnectorSettings,
    LLMSettings,
    Models,
    PolicySettings,
    Prices,
    Split,
    check_phase_scale,
)
from budget.money import to_micro
from budget.prices import DevicePrice, FlopPricing, LabelPrice, label_cost

__all__ = ["TABLES", "ProjectConfig", "load_config"]


#: table name -> its dataclass, in the order of a project file
TABLES: dict[str, type] = {"split": Split, "models": Models, "prices": Prices, "annotation": Annotation,
                           "annotators": Annotators, "connector": ConnectorSettings, "policy": PolicySettings,
                           "compute": Compute, "llm": LLMSettings}
_MONEY_KEYS = {"per_label", "hourly_wage", "reference_gpu_hour", "auto_approve_under", "approve_compute_over",
               "input_per_million", "output_per_million"}


@dataclass(frozen=True)
class ProjectConfig:
    """A parsed, validated project file: the task and one frozen dataclass per table."""

    task: TaskSpec
    split: Split = field(default_factory=Split)
    models: Models = field(default_factory=Models)
    prices: Prices = field(default_factory=Prices)
    annotation: Annotation = field(default_factory=Annotation)
    annotators: Annotators = field(default_factory=Annotators)
    connector: ConnectorSettings = field(default_factory=ConnectorSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    compute: Compute = field(default_factory=Compute)
    llm: LLMSettings = field(default_factory=LLMSettings)
    path: Path | None = None

    @property
    def simulated(self) -> bool:
        return self.annotation.connector == "simulated"

    def label_price(self) -> LabelPrice:
        p = self.prices
        if p.hourly_wage:
            return LabelPrice.hourly(p.hourly_wage, seconds_per_label=float(p.seconds_per_label))
        return LabelPrice.per_label(p.per_label)

    def label_cost_per_item(self) -> int:
        """What one item costs to label, in micro-dollars: the price of a label times ``[prices] overlap``
        (by hourly wage: the estimate from ``seconds_per_label``)."""
        return label_cost(self.label_price(), 1, self.prices.overlap)

    def flop_pricing(self) -> FlopPricing:
        p = self.prices
        return FlopPricing(reference_gpu=p.reference_gpu, peak_flops=float(p.reference_peak_flops),
                           utilisation=float(p.reference_utilisation), price_per_hour=to_micro(p.reference_gpu_hour))

    def device_prices(self) -> DevicePrice:
        return DevicePrice.from_dollars(dict(self.prices.device_hour))

    def replace(self, **tables: Any) -> ProjectConfig:
        """A copy with some tables' keys changed, validated: ``config.replace(prices={"phase_scale": {...}})``."""
        changed = {name: dataclasses.replace(getattr(self, name), **values) for name, values in tables.items()}
        out = dataclasses.replace(self, **changed)
        for name in changed:
            _validate(name, getattr(out, name), "the project")
        _check_across(out, "the project")
        return out

    @property
    def prompted(self) -> bool:
        """Whether a distillation's teacher is the [llm] model, prompted (no fine-tune)."""
        return self.models.teacher_mode == "prompt"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the ledger and ``project.json`` (paths as strings)."""
        task = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.task).items()}
        return {"task": task, **{name: asdict(getattr(self, name)) for name in TABLES}}


def _validate(name: str, table: Any, where: str) -> None:
    for key, ok, allowed in table.checks():
        if not ok:
            value = getattr(table, key)
            fix = " (money is never a binary float)" if key in _MONEY_KEYS and isinstance(value, float) else ""
            raise ConfigError(f"[{name}] {key} = {value!r} in {where} must be {allowed}{fix}.")
    if name == "prices":
        try:
            check_phase_scale(table.phase_scale)
        except ValueError as exc:
            raise ConfigError(f"{exc} ({where})") from exc


def _table(name: str, values: object, where: str) -> Any:
    cls = TABLES[name]
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] in {where} must be a table.")
    allowed = [f.name for f in fields(cls)]
    bad = sorted(set(values) - set(allowed))
    if bad:
        raise ConfigError(f"Unknown key(s) {bad} in [{name}] of {where}; allowed: {', '.join(allowed)}.")
    table = cls(**values)
    _validate(name, table, where)
    return table


def load_config(path: str | Path | None = None, *, raw: dict[str, Any] | None = None,
                base_dir: Path | None = None) -> ProjectConfig:
    """Read a project file (or an already-parsed ``raw`` dict) into a validated :class:`ProjectConfig`.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, a table or key is unknown, or a value has the wrong type
        or is out of range (one line naming the table, key, value and what it must be).
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
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Project file '{path}' is not valid TOML: {exc}.") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Project file '{path}' is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc
        except OSError as exc:
            raise ConfigError(f"Project file '{path}' cannot be read ({exc.strerror or exc}).") from exc
        base_dir = path.parent
    if raw is None or "task" not in raw:
        raise ConfigError(f"{where} has no [task] table; it needs at least name, data and labels.")
    unknown = sorted(set(raw) - set(TABLES) - {"task"})
    if unknown:
        raise ConfigError(f"Unknown table(s) {unknown} in {where}; allowed: [task], "
                          + ", ".join(f"[{t}]" for t in TABLES) + ".")
    tables = {name: _table(name, raw[name], where) for name in TABLES if name in raw}
    task = TaskSpec.from_dict(raw["task"], base_dir=base_dir)
    config = ProjectConfig(task=task, **tables, path=path)
    _check_across(config, where)
    return config


def _check_across(config: ProjectConfig, where: str) -> None:
    """What one table asks of another."""
    if config.models.teacher_mode == "prompt" and not config.llm.enabled:
        raise ConfigError(f"[models] teacher_mode = 'prompt' in {where} needs the [llm] table: set [llm] model "
                          f"and its input_per_million and output_per_million prices.")
