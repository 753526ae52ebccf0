"""What the task is and where its data lives: the ``[task]`` table of ``project.toml``.

Example (the Stanceosaurus file of the Distill-or-Annotate benchmark)::

    spec = TaskSpec(name="stance", data=Path("stanceosaurus_test_all.jsonl"), text_fields=("source",),
                    label_field="target", labels=("Discussing", "Irrelevant", "Supporting", "Refuting", "Querying"),
                    pair_regex=r"^claim: (.*?) tweet: (.*)$", metric="macro_f1")

``data`` is a file or ``save_to_disk`` folder, or a Hugging Face dataset already in the local ``datasets`` cache,
written ``hf:NAME[:CONFIG][@SPLIT]`` (:func:`hub_reference`): ``"hf:SetFit/sst2"``,
``"hf:nyu-mll/glue:sst2@validation"``; it is read offline (:mod:`annotation.datafile`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from annotation.exceptions import TaskDataError
from annotation.records import METRICS

__all__ = ["TaskSpec", "hub_reference"]

#: ``hf:NAME`` or ``hf:NAMESPACE/NAME``, then optionally ``:CONFIG`` and ``@SPLIT``
_HUB_DATA = re.compile(r"hf:(?P<name>[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?)(?::(?P<config>[\w.-]+))?"
                       r"(?:@(?P<split>\w+(?:\.\w+)*))?")


def hub_reference(data: object) -> tuple[str, str | None, str | None] | None:
    """(name, config, split) of a ``[task] data`` value written ``hf:NAME[:CONFIG][@SPLIT]``; None for a path.

    Raises
    ------
    TaskDataError
        If ``data`` starts with ``hf:`` but does not follow that syntax.
    """
    if not isinstance(data, str) or not data.startswith("hf:"):
        return None
    match = _HUB_DATA.fullmatch(data)
    if match is None:
        raise TaskDataError(
            f"[task] data = {data!r} is not a dataset name; write hf:NAME or hf:NAMESPACE/NAME, then optionally "
            ":CONFIG and @SPLIT, e.g. \"hf:nyu-mll/glue:sst2@validation\" (a file named hf:... as \"./hf:...\")."
        )
    return match["name"], match["config"], match["split"]


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What the task is and where its data lives: the ``[task]`` table of ``project.toml``.

    Parameters
    ----------
    name : str
        Task name, used in batch and project names.
    data : Path or str
        A ``.jsonl`` (or ``.ndjson``), ``.json`` (an array of objects), ``.csv``, ``.tsv`` (SST-2 style: tabs,
        no quoting) or ``.parquet`` file, or a folder written by ``Dataset.save_to_disk``; or the string
        ``"hf:NAME[:CONFIG][@SPLIT]"``, a Hugging Face dataset already in the local ``datasets`` cache (kept as
        that string; any other string becomes a Path).
    labels : tuple of str
        The label set, at least two; the order defines the label ids.
    text_fields : tuple of str, default=("text",)
        One text column, or two columns for a pair task.
    label_field : str or None, default="label"
        The gold label column; rows whose label is empty, whitespace-only, null or missing are unlabeled.
        None when the file has no labels.
    pair_regex : str, optional
        A regex with two groups that splits ONE text column into a pair, e.g.
        ``r"^claim: (.*?) tweet: (.*)$"``. Only with a single text field.
    id_field : str, optional
        A column of unique row ids, kept in :attr:`Pool.ids`.
    metric : {'accuracy', 'macro_f1'}, default='accuracy'
        The dev metric decisions are made on.

    Raises
    ------
    TaskDataError
        If the fields contradict each other (fewer than two labels, two text fields and a pair_regex, an unknown
        metric...).
    """

    name: str
    data: Path | str
    labels: tuple[str, ...]
    text_fields: tuple[str, ...] = ("text",)
    label_field: str | None = "label"
    pair_regex: str | None = None
    id_field: str | None = None
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if hub_reference(self.data) is None:
            object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if isinstance(self.text_fields, str):
            object.__setattr__(self, "text_fields", (self.text_fields,))
        object.__setattr__(self, "text_fields", tuple(self.text_fields))
        if not self.labels:
            raise TaskDataError(
                f"Task '{self.name}' declares no labels; set [task] labels, e.g. labels = [\"NO\", \"YES\"]."
            )
        if len(self.labels) == 1:
            raise TaskDataError(
                f"Task '{self.name}' declares one label {list(self.labels)}; a classifier needs at least two: "
                "list every label in [task] labels."
            )
        duplicates = sorted({x for x in self.labels if self.labels.count(x) > 1})
        if duplicates:
            raise TaskDataError(f"Task '{self.name}' declares labels {duplicates} more than once in [task] labels.")
        if len(self.text_fields) not in (1, 2):
            raise TaskDataError(
                f"[task] text_fields must name one column, or two for a pair task; got {list(self.text_fields)}."
            )
        if self.pair_regex is not None:
            if len(self.text_fields) != 1:
                raise TaskDataError(
                    "[task] pair_regex splits one text column into a pair; with two text_fields "
                    f"{list(self.text_fields)} leave it out."
                )
            try:
                groups = re.compile(self.pair_regex).groups
            except re.error as exc:
                raise TaskDataError(f"[task] pair_regex {self.pair_regex!r} is not a valid regex: {exc}.") from exc
            if groups != 2:
                raise TaskDataError(
                    f"[task] pair_regex {self.pair_regex!r} has {groups} groups; it needs exactly two, "
                    "one per half of the pair."
                )
        if self.metric not in METRICS:
            raise TaskDataError(f"[task] metric must be one of {list(METRICS)}; got {self.metric!r}.")

    @property
    def is_pair(self) -> bool:
        """True when the task's texts are pairs."""
        return len(self.text_fields) == 2 or self.pair_regex is not None

    @property
    def batch_text_fields(self) -> tuple[str, ...]:
        """The field names a batch shows on a platform: the text columns, or ``("text1", "text2")``
        when ``pair_regex`` splits one column."""
        return ("text1", "text2") if self.pair_regex is not None else self.text_fields

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base_dir: Path | None = None) -> TaskSpec:
        """Build a spec from a ``[task]`` table; a relative ``data`` path is taken from ``base_dir`` (an
        ``hf:`` dataset name is kept as it is).

        Raises
        ------
        TaskDataError
            On an unknown or missing key.
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise TaskDataError(f"Unknown key(s) {unknown} in [task]; known keys: {', '.join(known)}.")
        missing = [k for k in ("name", "data", "labels") if k not in table]
        if missing:
            raise TaskDataError(f"[task] is missing {missing}; set them in project.toml.")
        for key in ("name", "data"):
            if not isinstance(table[key], str) or not table[key].strip():
                raise TaskDataError(f"[task] {key} = {table[key]!r} must be a non-empty string.")
        for key in ("labels", "text_fields"):
            value = table.get(key, ())
            if not isinstance(value, str | list | tuple) or (
                    not isinstance(value, str) and not all(isinstance(x, str | int) for x in value)):
                raise TaskDataError(f"[task] {key} = {value!r} must be a list of strings, like [\"NO\", \"YES\"].")
        if isinstance(table["labels"], str):
            raise TaskDataError(f"[task] labels = {table['labels']!r} must be a list of every label, like "
                                "[\"NO\", \"YES\"].")
        values = dict(table)
        if hub_reference(values["data"]) is None:
            data = Path(values["data"])
            if base_dir is not None and not data.is_absolute():
                data = Path(base_dir) / data
            values["data"] = data
        for key in ("labels", "text_fields"):
            if key in values and not isinstance(values[key], str):
                values[key] = tuple(values[key])
        return cls(**values)
