"""The project file: one TOML file that names the data, the models, the prices and the policy.

Each table is a frozen dataclass below, every key a field with its default and a comment; only
``[task]`` is required (:class:`annotation.pool.TaskSpec`). :func:`load_config` validates everything
once: unknown tables and keys, each value's type against its default, ranges and allowed words. A
bad value is one :class:`ConfigError` line naming the table, the key, the value and what it must be.
Relative paths are taken from the file's folder. Example::

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

from budget.config.project import TABLES, ProjectConfig, load_config
from budget.config.tables import (
    PHASES,
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
    check_keep,
    check_phase_scale,
)

__all__ = ["PHASES", "TABLES", "Split", "Models", "Prices", "Annotation", "Annotators", "ConnectorSettings",
           "PolicySettings", "Compute", "LLMSettings", "ProjectConfig", "ConfigError", "check_keep",
           "check_phase_scale", "load_config"]
