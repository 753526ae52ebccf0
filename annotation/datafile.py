"""Reading the task's data file: texts, gold label ids and row ids, checked row by row.

The file's suffix picks the reader (JSONL / JSON / CSV / TSV / Parquet, all via polars); a folder written by
``datasets``' ``Dataset.save_to_disk`` is read through ``datasets`` (its Arrow table, handed to polars).

``[task] data = "hf:NAME[:CONFIG][@SPLIT]"`` (``"hf:SetFit/sst2"``, ``"hf:nyu-mll/glue:sst2@validation"``) is a
Hugging Face dataset already in the local ``datasets`` cache (``HF_DATASETS_CACHE``, by default
``~/.cache/huggingface/datasets``), loaded by ``datasets.load_dataset`` with offline mode forced for that call:
nothing is downloaded and the hub is never asked, whatever ``HF_HUB_OFFLINE`` says. A dataset of several configs
in the cache needs ``:CONFIG``; one of several splits needs ``@SPLIT``, as a ``save_to_disk`` folder of several
splits needs the split's folder. A ``ClassLabel`` column reads as its integer ids (``labels = ["0", "1"]``).
A name not in the cache is one line naming the folder looked in and the ``load_dataset`` call that fills it.

Every problem
is one line naming the file, the line (JSONL, CSV, TSV) or row (JSON array, Parquet), and the fix, e.g.
``Data file 'd.jsonl', line 7: not valid JSON (Expecting ',' delimiter at column 31); fix or remove that
line.`` When polars cannot parse a file, the file is read once more line by line (json / csv modules) only
to find the first bad line. A label cell that is empty, whitespace-only, null or missing marks an unlabeled
row (gold id -1) in every format. :func:`annotation.pool.load_pool` wraps what :func:`read_rows` returns in
a :class:`~annotation.pool.Pool`.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

from annotation.datalines import Locator, excerpt, one_line, parse_error
from annotation.exceptions import (
    DataFileNotFoundError,
    EmptyPoolError,
    EmptyTextError,
    MissingColumnError,
    PairPatternError,
    TaskDataError,
    UnknownLabelError,
    UnsupportedFileError,
)
from annotation.records import Text
from annotation.task import TaskSpec, hub_reference

__all__ = ["read_rows"]

_READERS = {".jsonl": "JSONL", ".ndjson": "JSONL", ".json": "JSON", ".csv": "CSV", ".tsv": "TSV",
            ".parquet": "Parquet"}
_POLARS_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)
#: what ``Dataset.save_to_disk`` (one split) or ``DatasetDict.save_to_disk`` (several) writes into its folder
_DATASET_FILES = ("state.json", "dataset_dict.json")


def read_rows(spec: TaskSpec) -> tuple[list[Text], np.ndarray, list[str] | None]:
    """Read ``spec.data`` (a file, a ``save_to_disk`` folder or an ``hf:`` dataset in the local cache) into
    (texts, gold label ids, row ids), in file order.

    Gold label ids are positions in ``spec.labels``, -1 for rows whose label is empty, whitespace-only,
    null or missing; row ids are None unless ``spec.id_field`` is set.

    Raises
    ------
    DataFileNotFoundError, UnsupportedFileError, DataParseError, MissingColumnError, UnknownLabelError,
    EmptyTextError, EmptyPoolError, PairPatternError, TaskDataError
        Each with a one-line message naming the file, the line or row or column, and the fix.
    """
    path = spec.data
    reference = hub_reference(path)
    if reference is not None:
        kind, frame = "Dataset", _read_cached_dataset(str(path), *reference)
    else:
        path = Path(path)
        kind = _kind(path)
        frame = _read(path, kind)
    if frame.height == 0:
        raise EmptyPoolError(f"Data file '{path}' has no rows; the task needs items to label.")
    where = Locator(path, kind)
    columns = [_column(frame, f, "text_fields", where) for f in spec.text_fields]
    raw_labels = _column(frame, spec.label_field, "label_field", where) if spec.label_field else [None] * frame.height
    ids = _column(frame, spec.id_field, "id_field", where) if spec.id_field else None
    texts = _texts(spec, columns, where)
    gold = _gold(spec, raw_labels, where)
    if ids is not None:
        _check_ids(spec, ids, where)
    return texts, gold, ids


# -- reading ---------------------------------------------------------------------------------------------


def _kind(path: Path) -> str:
    """The reader for ``path`` ('JSONL', 'CSV', ..., 'Dataset' for a ``save_to_disk`` folder), after checking the
    file exists and has a known suffix."""
    if path.is_dir() and any((path / name).is_file() for name in _DATASET_FILES):
        return "Dataset"
    if not path.is_file():
        raise DataFileNotFoundError(
            f"Data file '{path}' not found; set [task] data in project.toml to an existing JSONL, CSV, TSV or "
            "Parquet file, or a folder written by Dataset.save_to_disk."
        )
    suffix = path.suffix.lower()
    kind = _READERS.get(suffix)
    if kind is None:
        raise UnsupportedFileError(
            f"Data file '{path}' has suffix {suffix!r}, which cannot be read; use a .jsonl, .csv, .tsv or .parquet "
            "file."
        )
    return kind


def _read(path: Path, kind: str) -> pl.DataFrame:
    """The file as a frame; a parse error names the first bad line (or row) and how to fix it."""
    if kind == "Dataset":
        return _read_dataset(path)
    if kind != "Parquet" and path.stat().st_size == 0:
        return pl.DataFrame()
    try:
        if kind == "JSONL":
            return pl.read_ndjson(_without_bom(path), infer_schema_length=None)
        if kind == "JSON":
            return pl.read_json(path, infer_schema_length=None)
        if kind == "CSV":
            frame = pl.read_csv(path, infer_schema_length=0)  # every column as text: labels stay "0", "1"
        elif kind == "TSV":  # SST-2 and GLUE files: tab-separated, quotes are part of the text
            frame = pl.read_csv(path, separator="\t", quote_char=None, infer_schema_length=0)
        else:
            return pl.read_parquet(path)
    except _POLARS_ERRORS as exc:
        raise parse_error(path, kind, exc) from exc
    return _drop_trailing_blank_rows(frame)


def _read_dataset(path: Path) -> pl.DataFrame:
    """A ``save_to_disk`` folder as a frame, without a copy: its Arrow table handed to polars. A folder of
    several splits must name one (each split is a folder of its own inside it)."""
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise TaskDataError(f"Data folder '{path}' cannot be read by datasets.load_from_disk "
                            f"({' '.join(str(exc).split())[:200]}); save it again with Dataset.save_to_disk.") from exc
    if isinstance(data, datasets.DatasetDict):
        splits = list(data)
        if len(splits) != 1:
            raise TaskDataError(f"Data folder '{path}' holds {len(splits)} splits ({', '.join(splits)}); set [task] "
                                f"data to one of them, e.g. '{path / splits[0]}'.")
        data = data[splits[0]]
    return data.to_polars()


def _read_cached_dataset(data: str, name: str, config: str | None, split: str | None) -> pl.DataFrame:
    """An ``hf:NAME[:CONFIG][@SPLIT]`` dataset from the local ``datasets`` cache as a frame (its Arrow table handed
    to polars), offline: a name, config or split the cache lacks is one line saying where it looked and how to
    fill it."""
    import datasets
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    if name in _PACKAGED_DATASETS_MODULES:
        raise TaskDataError(f"[task] data = '{data}' names the datasets builder '{name}', not a dataset; to read "
                            "your own files set [task] data to the file or to a folder written by save_to_disk.")
    # where load_dataset keeps a hub dataset: <cache>/<namespace>___<name>/<config>/<version>/<hash>/
    cache = Path(os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE)))
    *namespace, base = name.split("/")
    folder = cache / "___".join([*namespace, camelcase_to_snakecase(base)])
    configs = _cached_configs(folder)
    if (config not in configs) if config else not configs:
        call = f"datasets.load_dataset(\"{name}\"" + (f", \"{config}\")" if config else ")")
        known = f"; it holds the config(s) {', '.join(configs)}" if configs else ""
        raise DataFileNotFoundError(
            f"Dataset '{data}' is not in the datasets cache (looked in '{folder}'{known}); run `python -c 'import "
            f"datasets; {call}'` on a machine with internet and copy the cache here, or set HF_DATASETS_CACHE to "
            "the cache that holds it."
        )
    if config is None and len(configs) > 1:
        example = f"hf:{name}:{configs[0]}" + (f"@{split}" if split else "")
        raise TaskDataError(f"Dataset '{data}' has {len(configs)} configs in the datasets cache "
                            f"({', '.join(configs)}); set [task] data to one of them, e.g. '{example}'.")
    try:
        with _offline():
            # hf://datasets/ so that a local folder of the same name is never read (nor cached) instead
            loaded = datasets.load_dataset(f"hf://datasets/{name}", config,
                                           download_mode=datasets.DownloadMode.REUSE_DATASET_IF_EXISTS)
    except (OSError, ValueError) as exc:  # ConnectionError and FileNotFoundError are OSErrors
        raise TaskDataError(f"Dataset '{data}' cannot be loaded from the datasets cache '{folder}' "
                            f"({one_line(exc, 200)}); load it again with datasets.load_dataset on a machine with "
                            "internet.") from exc
    splits = list(loaded)
    if split is None and len(splits) != 1:
        raise TaskDataError(f"Dataset '{data}' holds {len(splits)} splits ({', '.join(splits)}); set [task] data to "
                            f"one of them, e.g. '{data}@{splits[0]}'.")
    if split is not None and split not in loaded:
        raise TaskDataError(f"Dataset '{data}' has no split '{split}' in the datasets cache; its splits: "
                            f"{', '.join(splits)}.")
    return loaded[split or splits[0]].to_polars()


def _cached_configs(folder: Path) -> list[str]:
    """The configs of a hub dataset in the cache: each ``<config>/<version>/<hash>/`` whose ``dataset_info.json``
    names that config (what ``load_dataset`` offline picks from; a folder of a config with custom kwargs is not
    one)."""
    found = set()
    for entry in folder.glob("*/*/*/dataset_info.json"):
        try:
            config = json.loads(entry.read_text(encoding="utf-8")).get("config_name")
        except (OSError, ValueError, AttributeError):
            continue
        if config == entry.parts[-4]:
            found.add(config)
    return sorted(found)


@contextmanager
def _offline() -> Iterator[None]:
    """Offline mode for ``datasets`` and ``huggingface_hub`` while the block runs, whatever the environment says:
    ``load_dataset`` then reuses the cache without asking the hub."""
    import datasets.config
    import datasets.utils.logging as logs
    import huggingface_hub.constants as hub

    saved = datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub.HF_HUB_OFFLINE
    verbosity = logs.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = hub.HF_HUB_OFFLINE = True
    logs.set_verbosity_error()  # not "using the latest cached version ... (offline mode is enabled)" each time
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub.HF_HUB_OFFLINE = saved
        logs.set_verbosity(verbosity)


def _without_bom(path: Path) -> Path | io.BytesIO:
    """``path``, or its bytes without the UTF-8 byte order mark some editors write (polars' NDJSON reader
    rejects it)."""
    with path.open("rb") as f:
        if f.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            return path
    return io.BytesIO(path.read_bytes()[len(codecs.BOM_UTF8):])


def _drop_trailing_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without the all-null rows that blank lines at the end of a CSV or TSV file read as."""
    if frame.height == 0 or frame.width == 0:
        return frame
    filled = frame.select(pl.any_horizontal(pl.all().is_not_null())).to_series()
    last = filled.arg_true()
    return frame.head(int(last[-1]) + 1 if len(last) else 0)


def _column(frame: pl.DataFrame, name: str, role: str, where: Locator) -> list[str | None]:
    """The cells of column ``name`` as strings (None where null); numbers read as they are written."""
    if name not in frame.columns:
        raise MissingColumnError(
            f"Column '{name}' ([task] {role}) is not in '{where.path}'; available columns: {', '.join(frame.columns)}."
        )
    series = frame[name]
    if series.dtype.is_nested() or series.dtype == pl.Object:
        row = _first_filled(series)
        cell = excerpt(series.to_list()[row])
        raise TaskDataError(
            f"{where.at(row)}: column '{name}' holds {cell}, not text; [task] {role} must name a column of strings."
        )
    if series.dtype.is_float():
        return [_float_text(x) for x in series.to_list()]
    if series.dtype != pl.String:
        series = series.cast(pl.String, strict=False)
    return series.to_list()


def _first_filled(series: pl.Series) -> int:
    """The index of the first non-null cell (0 when all are null)."""
    filled = series.is_not_null().arg_true()
    return int(filled[0]) if len(filled) else 0


def _float_text(value: float | None) -> str | None:
    """A float cell as text: 1.0 -> '1' (so labels ["0", "1"] match), NaN -> None (unlabeled)."""
    if value is None or math.isnan(value):
        return None
    return str(int(value)) if value.is_integer() else str(value)


def _texts(spec: TaskSpec, columns: Sequence[list[str | None]], where: Locator) -> list[Text]:
    """One text per row, or a pair: two text columns, or one column split by ``pair_regex``."""
    pattern = re.compile(spec.pair_regex, re.DOTALL) if spec.pair_regex else None
    texts: list[Text] = []
    for row, values in enumerate(zip(*columns, strict=True)):
        for field_name, value in zip(spec.text_fields, values, strict=True):
            if value is None or not value.strip():
                raise EmptyTextError(
                    f"{where.at(row)}: empty text in column '{field_name}'; fill it or remove the row."
                )
        if pattern is not None:
            texts.append(_split_pair(pattern, values[0], row, where))
        elif len(values) == 2:
            texts.append((values[0], values[1]))
        else:
            texts.append(values[0])
    return texts


def _split_pair(pattern: re.Pattern[str], text: str, row: int, where: Locator) -> tuple[str, str]:
    """The two halves of ``text`` by ``pair_regex``."""
    match = pattern.search(text)
    if match is None:
        raise PairPatternError(
            f"{where.at(row)}: text {excerpt(text)} does not match pair_regex {pattern.pattern!r}; "
            "fix the row or [task] pair_regex."
        )
    first, second = (g.strip() if g is not None else "" for g in match.groups())
    if not first or not second:
        raise EmptyTextError(
            f"{where.at(row)}: pair_regex {pattern.pattern!r} splits the text into an empty half; "
            "fix the row or [task] pair_regex."
        )
    return first, second


def _gold(spec: TaskSpec, raw_labels: Sequence[str | None], where: Locator) -> np.ndarray:
    """Label ids (positions in ``spec.labels``), -1 where the label is empty, whitespace-only or null."""
    label_ids = {label: i for i, label in enumerate(spec.labels)}
    gold = np.full(len(raw_labels), -1, dtype=np.int64)
    for row, label in enumerate(raw_labels):
        if label is None or not label.strip():
            continue
        label_id = label_ids.get(label, label_ids.get(label.strip()))
        if label_id is None:
            raise UnknownLabelError(
                f"{where.at(row)}: label {excerpt(label)} is not among the declared labels {list(spec.labels)}; "
                "add it to [task] labels, fix the row, or leave the label empty for an unlabeled row."
            )
        gold[row] = label_id
    return gold


def _check_ids(spec: TaskSpec, ids: list[str | None], where: Locator) -> None:
    """Every row has an id, and no two rows have the same one."""
    first_row: dict[str, int] = {}
    for row, value in enumerate(ids):
        if value is None or not value.strip():
            raise TaskDataError(f"{where.at(row)}: empty id in column '{spec.id_field}'; every row needs one.")
        if value in first_row:
            raise TaskDataError(
                f"{where.at(row)}: repeats the id {excerpt(value)} of {where.place(first_row[value])}; ids in "
                f"column '{spec.id_field}' must be unique."
            )
        first_row[value] = row
