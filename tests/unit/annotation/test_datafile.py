"""Reading a newcomer's own data file: what counts as unlabeled, and one clear line for every bad file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from annotation.exceptions import (
    DataFileNotFoundError,
    DataParseError,
    EmptyPoolError,
    EmptyTextError,
    MissingColumnError,
    PairPatternError,
    TaskDataError,
    UnknownLabelError,
)
from annotation.pool import Pool, TaskSpec, load_pool

LABELS = ("neg", "pos")
PAIR = r"^claim: (.*?) tweet: (.*)$"


def _spec(path: Path, **kwargs) -> TaskSpec:
    params = {"name": "toy", "data": path, "labels": LABELS}
    params.update(kwargs)
    return TaskSpec(**params)


def _write(path: Path, content: str | bytes | dict[str, list]) -> Path:
    """Text or bytes as they are; a dict of columns as a Parquet file."""
    if isinstance(content, dict):
        pl.DataFrame(content).write_parquet(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# -- bad files: one line naming the file, the line (or row) and the fix ----------------------------------

OK = '{"text": "a", "label": "pos"}\n'

BAD_FILES = [
    # (name, content, spec kwargs, error, place, words)
    pytest.param("d.jsonl", OK + OK + '{"text": "c" "label": "neg"}\n' + OK, {}, DataParseError, "line 3",
                 r"not valid JSON \(Expecting ',' delimiter at column 14\); fix or remove that line",
                 id="jsonl-corrupt-line-3"),
    pytest.param("d.jsonl", "\n" + OK + "  \n" + '{"text": "b", \n', {}, DataParseError, "line 4",
                 "not valid JSON", id="jsonl-blank-lines-are-counted"),
    pytest.param("d.jsonl", OK + OK + '["c", "neg"]\n', {}, DataParseError, "line 3",
                 "an array .* not a JSON object; each line must be one object", id="jsonl-line-is-a-list"),
    pytest.param("d.jsonl", OK + '"just text"\n', {}, DataParseError, "line 2", "a string .* not a JSON object",
                 id="jsonl-line-is-a-string"),
    pytest.param("d.jsonl", OK + "[" + ", ".join(["123456789"] * 100) + "]\n", {}, DataParseError, "line 2",
                 r"an array \('\[123456789, .*\.\.\.\)", id="jsonl-long-line-is-cut"),
    pytest.param("d.jsonl", OK.encode() + b'{"text": "caf\xe9", "label": "pos"}\n', {}, DataParseError, "line 2",
                 r"not valid UTF-8 \(byte 0xe9 at column 14\); save the file as UTF-8", id="jsonl-not-utf8"),
    pytest.param("d.csv", 'text,label\na,pos\nb,neg\n"never closed,pos\nd,neg\n', {}, DataParseError, "line 4",
                 "a quoted field starts on this line and its closing quote is missing", id="csv-unterminated-quote"),
    pytest.param("d.csv", 'text,label\n"two\nlines",pos\nb,neg\nc,"open\nd,neg\n', {}, DataParseError, "line 5",
                 "closing quote is missing", id="csv-unterminated-quote-after-a-quoted-newline"),
    pytest.param("d.csv", "text,label\na,pos\nb, c,neg\nd,pos\n", {}, DataParseError, "line 3",
                 "3 fields but the header has 2; put a text that contains a comma in double quotes",
                 id="csv-too-many-fields"),
    pytest.param("d.csv", 'text,label\na,pos\n"b"c,neg\n', {}, DataParseError, "line 3", "not valid CSV",
                 id="csv-text-after-a-closing-quote"),
    pytest.param("d.csv", b"text,label\na,pos\nb,pos\n\xff,neg\n", {}, DataParseError, "line 4",
                 "not valid UTF-8", id="csv-not-utf8"),
    pytest.param("d.tsv", "text\tlabel\na\tpos\nb\tc\tneg\n", {}, DataParseError, "line 3",
                 "3 fields but the header has 2; remove the extra tabs", id="tsv-too-many-fields"),
    pytest.param("d.json", '[{"text": "a", "label": "pos"},\n {"text": "b" "label": "neg"}]', {}, DataParseError,
                 "line 2", r"not valid JSON \(Expecting ',' delimiter", id="json-corrupt-line-2"),
    pytest.param("d.json", '[{"text": "a", "label": "pos"}, ["b", "neg"]]', {}, DataParseError, "row 2",
                 "an array .* not a JSON object", id="json-item-is-a-list"),
    pytest.param("d.jsonl", '{"text": "b", "label": 1}\n{"text": "c", "label": [1]}\n', {}, TaskDataError,
                 None, r"could not be read as JSONL \(.*\); check that", id="jsonl-polars-message-on-one-line"),
    pytest.param("d.jsonl", OK + "\n" + '{"text": "", "label": "pos"}\n', {}, EmptyTextError, "line 3",
                 "empty text in column 'text'; fill it or remove the row", id="jsonl-empty-text"),
    pytest.param("d.jsonl", OK + '{"label": "pos"}\n', {}, EmptyTextError, "line 2", "empty text",
                 id="jsonl-missing-text"),
    pytest.param("d.csv", 'text,label\n"two\nlines",pos\n  ,neg\n', {}, EmptyTextError, "line 4",
                 "empty text in column 'text'", id="csv-empty-text-after-a-quoted-newline"),
    pytest.param("d.csv", "text,label\na,pos\n\nb,neg\n", {}, EmptyTextError, "line 3", "empty text",
                 id="csv-blank-line-in-the-middle"),
    pytest.param("d.tsv", "text\tlabel\na\tpos\n\tneg\n", {}, EmptyTextError, "line 3", "empty text",
                 id="tsv-empty-text"),
    pytest.param("d.parquet", {"text": ["a", "", "c"], "label": ["pos", "neg", "pos"]}, {}, EmptyTextError,
                 "row 2", "empty text", id="parquet-empty-text"),
    pytest.param("d.jsonl", OK + OK + '{"text": "c", "label": "Neutral"}\n', {}, UnknownLabelError, "line 3",
                 r"label 'Neutral' is not among the declared labels \['neg', 'pos'\]; add it to \[task\] labels",
                 id="jsonl-unknown-label"),
    pytest.param("d.csv", "text,label\na,pos\nb,Pos\n", {}, UnknownLabelError, "line 3", "label 'Pos'",
                 id="csv-unknown-label"),
    pytest.param("d.parquet", {"text": ["a", "b"], "label": ["pos", "maybe"]}, {}, UnknownLabelError, "row 2",
                 "label 'maybe'", id="parquet-unknown-label"),
    pytest.param("d.csv", "sentence,label\na,pos\n", {}, MissingColumnError, None,
                 r"Column 'text' \(\[task\] text_fields\) is not in .*; available columns: sentence, label",
                 id="csv-missing-column"),
    pytest.param("d.jsonl", '{"text": null, "label": "pos"}\n{"text": ["a", "b"], "label": "pos"}\n', {},
                 TaskDataError, "line 2", r"column 'text' holds \['a', 'b'\], not text; \[task\] text_fields",
                 id="jsonl-text-is-a-list"),
    pytest.param("d.jsonl", '{"text": {"a": "b\\nc"}, "label": "pos"}\n', {}, TaskDataError, "line 1",
                 r"column 'text' holds \{'a': 'b\\nc'\}, not text", id="jsonl-text-is-an-object"),
    pytest.param("d.jsonl", '{"text": "a", "label": ["pos"]}\n', {}, TaskDataError, "line 1",
                 r"column 'label' holds \['pos'\], not text; \[task\] label_field", id="jsonl-label-is-a-list"),
    pytest.param("d.csv", 'text,label\n"claim: a tweet: b",pos\n"no\npair",neg\n', {"pair_regex": PAIR},
                 PairPatternError, "line 3", r"text 'no\\npair' does not match pair_regex", id="csv-pair-regex"),
    pytest.param("d.jsonl", '{"text": "claim:  tweet: b", "label": "pos"}\n', {"pair_regex": PAIR},
                 EmptyTextError, "line 1", "splits the text into an empty half", id="jsonl-pair-empty-half"),
    pytest.param("d.csv", "id,text,label\nx,a,pos\ny,b,neg\nx,c,pos\n", {"id_field": "id"}, TaskDataError,
                 "line 4", "repeats the id 'x' of line 2; ids in column 'id' must be unique", id="csv-duplicate-id"),
    pytest.param("d.jsonl", '{"id": "x", "text": "a", "label": "pos"}\n{"text": "b", "label": "pos"}\n',
                 {"id_field": "id"}, TaskDataError, "line 2", "empty id in column 'id'", id="jsonl-missing-id"),
    pytest.param("d.jsonl", "\n  \n", {}, EmptyPoolError, None, "has no rows", id="jsonl-only-blank-lines"),
    pytest.param("d.csv", "text,label\n\n\n", {}, EmptyPoolError, None, "has no rows", id="csv-header-only"),
]


@pytest.mark.parametrize(("name", "content", "kwargs", "error", "place", "words"), BAD_FILES)
def test_bad_file_gives_one_line_naming_file_and_line(tmp_path: Path, name, content, kwargs, error, place, words):
    path = _write(tmp_path / name, content)
    with pytest.raises(error) as info:
        load_pool(_spec(path, **kwargs))
    message = str(info.value)
    assert type(info.value) is error
    assert "\n" not in message and "\r" not in message
    assert len(message) < 400
    head = f"Data file '{path}', {place}: " if place else f"'{path}'"
    assert head in message
    assert re.search(words, message), message


def test_one_declared_label_is_refused():
    with pytest.raises(TaskDataError) as info:
        TaskSpec(name="x", data=Path("d.jsonl"), labels=("a",))
    assert str(info.value) == (
        "Task 'x' declares one label ['a']; a classifier needs at least two: list every label in [task] labels."
    )


# -- good files: empty, whitespace-only, null or missing labels are the unlabeled pool --------------------

GOOD_FILES = [
    pytest.param("d.jsonl",
                 '{"text": "a", "label": "pos"}\n{"text": "b", "label": ""}\n{"text": "c", "label": null}\n'
                 '{"text": "d", "label": "  "}\n{"text": "e"}\n{"text": "f", "label": "neg"}\n',
                 id="jsonl"),
    pytest.param("d.csv", 'text,label\na,pos\nb,""\nc,\nd,  \ne\nf,neg\n', id="csv"),
    pytest.param("d.tsv", "text\tlabel\na\tpos\nb\t\nc\t\nd\t  \ne\nf\tneg\n", id="tsv"),
    pytest.param("d.json",
                 '[{"text": "a", "label": "pos"}, {"text": "b", "label": ""}, {"text": "c", "label": null},'
                 ' {"text": "d", "label": " "}, {"text": "e"}, {"text": "f", "label": "neg"}]',
                 id="json"),
    pytest.param("d.parquet", {"text": list("abcdef"), "label": ["pos", "", None, "  ", None, "neg"]}, id="parquet"),
]


@pytest.mark.parametrize(("name", "content"), GOOD_FILES)
def test_empty_missing_null_and_blank_labels_are_unlabeled(tmp_path: Path, name, content):
    pool = load_pool(_spec(_write(tmp_path / name, content)))
    assert pool.texts == list("abcdef")
    assert pool.gold.tolist() == [1, -1, -1, -1, -1, 0]
    assert pool.labeled.tolist() == [0, 5]


@pytest.mark.parametrize(
    ("name", "content", "labels", "gold"),
    [
        pytest.param("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n', ("0", "1"), [1, 0],
                     id="jsonl-integer-labels"),
        pytest.param("d.jsonl", '{"text": "a", "label": 1.0}\n{"text": "b", "label": 0}\n', ("0", "1"), [1, 0],
                     id="jsonl-float-labels"),
        pytest.param("d.parquet", {"text": ["a", "b", "c"], "label": [1.0, float("nan"), 0.0]}, ("0", "1"),
                     [1, -1, 0], id="parquet-float-labels-with-nan"),
        pytest.param("d.jsonl", "\ufeff" + OK, LABELS, [1], id="jsonl-with-byte-order-mark"),
        pytest.param("d.csv", "\ufefftext,label\na,pos\n", LABELS, [1], id="csv-with-byte-order-mark"),
        pytest.param("d.csv", "text,label\na,pos\r\nb,neg\r\n\r\n\r\n", LABELS, [1, 0], id="csv-trailing-blank-lines"),
        pytest.param("d.csv", "text,label\na, pos \n", LABELS, [1], id="csv-label-with-spaces"),
        pytest.param("d.jsonl", "\n" + OK + "\n\n" + OK, LABELS, [1, 1], id="jsonl-blank-lines-skipped"),
    ],
)
def test_labels_read_as_written(tmp_path: Path, name, content, labels, gold):
    pool = load_pool(_spec(_write(tmp_path / name, content), labels=labels))
    assert pool.gold.tolist() == gold


def test_labels_seen_counts_the_labels_in_use(tmp_path: Path):
    path = _write(tmp_path / "d.jsonl", OK + '{"text": "b", "label": ""}\n' + OK)
    pool = load_pool(_spec(path, labels=("neg", "pos", "neutral")))
    assert pool.labels_seen == ("pos",)
    assert Pool(["a", "b", "c", "d"], [2, -1, 0, 2], ("x", "y", "z")).labels_seen == ("x", "z")
    assert Pool(["a"], [-1], LABELS).labels_seen == ()


def test_a_folder_written_by_dataset_save_to_disk_is_read_like_a_file(tmp_path: Path):
    import datasets

    columns = {"text": list("abcdef"), "label": ["pos", "", None, "  ", None, "neg"], "id": list("uvwxyz")}
    datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "one"))
    pool = load_pool(_spec(tmp_path / "one", id_field="id"))
    assert pool.texts == list("abcdef") and pool.gold.tolist() == [1, -1, -1, -1, -1, 0]
    assert pool.ids == list("uvwxyz")
    # a DatasetDict of one split is that split; of several, the message names them and the folder to set
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns)}).save_to_disk(str(tmp_path / "dict"))
    assert load_pool(_spec(tmp_path / "dict")).texts == list("abcdef")
    both = datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns),
                                 "test": datasets.Dataset.from_dict(columns)})
    both.save_to_disk(str(tmp_path / "two"))
    with pytest.raises(TaskDataError, match=r"holds 2 splits \(train, test\); set \[task\] data to one of them") as e:
        load_pool(_spec(tmp_path / "two"))
    assert "\n" not in str(e.value)
    assert load_pool(_spec(tmp_path / "two" / "test")).texts == list("abcdef")
    # a folder that is not a dataset is not found, as before
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataFileNotFoundError, match="or a folder written by Dataset.save_to_disk"):
        load_pool(_spec(tmp_path / "plain"))


# -- a Hugging Face dataset already in the local datasets cache: [task] data = "hf:NAME[:CONFIG][@SPLIT]" --------

ROWS = {"text": list("abcdef"), "label": ["pos", "", None, "  ", None, "neg"], "id": list("uvwxyz")}


def _rows():
    """ROWS one dict a row."""
    yield from (dict(zip(ROWS, row, strict=True)) for row in zip(*ROWS.values(), strict=True))


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch) -> tuple[Path, list]:
    """A datasets cache holding what ``load_dataset`` leaves behind for two hub datasets, written by the library's
    own builders, offline; the environment says offline and every socket the test process opens is refused and
    recorded (the returned list), since ``load_dataset`` would fall back to the cache after a refused connection.

    'toy' (no namespace; configs coarse and fine, splits train and test) is a dataset folder with a README.md
    ``configs:`` block, loaded once by ``load_dataset``: the json builder writes
    ``<cache>/toy/<config>/0.0.0/<hash>/toy-<split>.arrow`` and ``dataset_info.json``, the layout a hub dataset
    without a namespace gets. 'acme/sst' (one config, one split) is written by the generator builder given what
    the hub loader gives a builder (repo_id, dataset_name, a commit hash): ``<cache>/acme___sst/default/0.0.0/
    <commit>/sst-train.arrow``. The source folder is deleted, and the working directory holds a decoy folder
    'toy' that a name resolved as a local path would read instead.
    """
    import socket

    import datasets
    from datasets.packaged_modules.generator.generator import Generator

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the test cuts the network")

    for name in ("getaddrinfo", "create_connection"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    cache = tmp_path / "cache"
    source = tmp_path / "source" / "toy"
    readme = ["---", "configs:"]
    for config in ("coarse", "fine"):
        (source / config).mkdir(parents=True)
        readme += [f"- config_name: {config}", "  data_files:"]
        for split in ("train", "test"):
            rows = [{**row, "text": f"{config}-{split}-{row['text']}"} for row in _rows()]
            _write(source / config / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            readme += [f"  - split: {split}", f"    path: {config}/{split}.jsonl"]
    _write(source / "README.md", "\n".join([*readme, "---", ""]))
    for config in ("coarse", "fine"):
        datasets.load_dataset(str(source), config, cache_dir=str(cache))

    Generator(cache_dir=str(cache), dataset_name="sst", repo_id="acme/sst", config_name="default", config_id="default",
              hash="0123456789abcdef", generator=_rows, split="train").download_and_prepare()
    shutil.rmtree(source.parent)
    (tmp_path / "work" / "toy").mkdir(parents=True)
    _write(tmp_path / "work" / "toy" / "d.jsonl", '{"text": "LOCAL", "label": "pos"}\n')
    monkeypatch.chdir(tmp_path / "work")

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return cache, attempts


def _arrow_files(cache: Path) -> set[Path]:
    return set(cache.rglob("*.arrow")) | set(cache.rglob("dataset_info.json"))


@pytest.mark.parametrize(
    ("data", "texts"),
    [
        pytest.param("hf:toy:coarse@train", [f"coarse-train-{c}" for c in "abcdef"], id="name-config-split"),
        pytest.param("hf:toy:fine@test", [f"fine-test-{c}" for c in "abcdef"], id="other-config-and-split"),
        pytest.param("hf:acme/sst", list("abcdef"), id="namespace-one-config-one-split"),
        pytest.param("hf:acme/sst@train", list("abcdef"), id="namespace-split"),
        pytest.param("hf:acme/sst:default", list("abcdef"), id="namespace-config"),
    ],
)
def test_a_dataset_in_the_cache_loads_offline_by_name(hub_cache, data, texts):
    cache, attempts = hub_cache
    before = _arrow_files(cache)
    pool = load_pool(_spec(data, id_field="id"))
    assert pool.texts == texts
    assert pool.gold.tolist() == [1, -1, -1, -1, -1, 0]
    assert pool.ids == list("uvwxyz") and pool.source == data
    assert attempts == []
    assert _arrow_files(cache) == before  # nothing generated, nothing fetched


def test_offline_is_forced_by_the_loader_not_only_by_the_environment(hub_cache, monkeypatch):
    import datasets
    import huggingface_hub.constants

    _, attempts = hub_cache
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert load_pool(_spec("hf:acme/sst")).texts == list("abcdef")
    with pytest.raises(DataFileNotFoundError):
        load_pool(_spec("hf:acme/elsewhere"))
    assert attempts == []
    assert datasets.config.HF_HUB_OFFLINE is False and huggingface_hub.constants.HF_HUB_OFFLINE is False


BAD_HUB_DATA = [
    # (data, spec kwargs, error, words)
    pytest.param("hf:acme/nope", {}, DataFileNotFoundError,
                 r"^Dataset 'hf:acme/nope' is not in the datasets cache \(looked in '.*/cache/acme___nope'\); run "
                 r"`python -c 'import datasets; datasets.load_dataset\(\"acme/nope\"\)'` on a machine with internet"
                 r".* or set HF_DATASETS_CACHE", id="not-cached"),
    pytest.param("hf:CamelCase@train", {}, DataFileNotFoundError, r"looked in '.*/cache/camel_case'",
                 id="not-cached-names-the-folder-load-dataset-uses"),
    pytest.param("hf:toy:nope", {}, DataFileNotFoundError,
                 r"'hf:toy:nope' is not in the datasets cache \(looked in '.*/cache/toy'; it holds the config\(s\) "
                 r"coarse, fine\); run `python -c 'import datasets; datasets.load_dataset\(\"toy\", \"nope\"\)'`",
                 id="config-not-cached"),
    pytest.param("hf:toy", {}, TaskDataError,
                 r"^Dataset 'hf:toy' has 2 configs in the datasets cache \(coarse, fine\); set \[task\] data to one "
                 r"of them, e.g. 'hf:toy:coarse'\.$", id="several-configs"),
    pytest.param("hf:toy@test", {}, TaskDataError, r"one of them, e.g. 'hf:toy:coarse@test'\.$",
                 id="several-configs-keeps-the-split"),
    pytest.param("hf:toy:coarse", {}, TaskDataError,
                 r"^Dataset 'hf:toy:coarse' holds 2 splits \(train, test\); set \[task\] data to one of them, e.g. "
                 r"'hf:toy:coarse@train'\.$", id="several-splits"),
    pytest.param("hf:toy:coarse@dev", {}, TaskDataError,
                 r"^Dataset 'hf:toy:coarse@dev' has no split 'dev' in the datasets cache; its splits: train, test\.$",
                 id="unknown-split"),
    pytest.param("hf:json", {}, TaskDataError, r"names the datasets builder 'json', not a dataset",
                 id="a-builder-name"),
    pytest.param("hf:acme/sst", {"text_fields": ("sentence",)}, MissingColumnError,
                 r"Column 'sentence' \(\[task\] text_fields\) is not in 'hf:acme/sst'; available columns: text, "
                 r"label, id", id="missing-column"),
    pytest.param("hf:acme/sst", {"labels": ("neg", "positive")}, UnknownLabelError,
                 r"^Data file 'hf:acme/sst', row 1: label 'pos' is not among the declared labels",
                 id="unknown-label-names-the-row"),
    pytest.param("hf:", {}, TaskDataError, r"^\[task\] data = 'hf:' is not a dataset name; write hf:NAME",
                 id="syntax-no-name"),
    pytest.param("hf:a/b/c", {}, TaskDataError, "is not a dataset name", id="syntax-two-slashes"),
    pytest.param("hf:toy@", {}, TaskDataError, "is not a dataset name", id="syntax-empty-split"),
    pytest.param("hf:toy:coarse:x", {}, TaskDataError, "is not a dataset name", id="syntax-two-configs"),
    pytest.param("hf:toy@train[:10]", {}, TaskDataError, "is not a dataset name", id="syntax-split-slice"),
]


@pytest.mark.parametrize(("data", "kwargs", "error", "words"), BAD_HUB_DATA)
def test_a_bad_hub_dataset_gives_one_line(hub_cache, data, kwargs, error, words):
    _, attempts = hub_cache
    with pytest.raises(error) as info:
        load_pool(_spec(data, **kwargs))
    message = str(info.value)
    assert type(info.value) is error
    assert "\n" not in message and len(message) < 400
    assert re.search(words, message), message
    assert attempts == []


def test_an_hf_name_is_kept_as_written_and_not_joined_to_the_project_folder(tmp_path: Path):
    table = {"name": "t", "data": "hf:nyu-mll/glue:sst2@validation", "labels": ["0", "1"]}
    assert TaskSpec.from_dict(table, base_dir=tmp_path).data == "hf:nyu-mll/glue:sst2@validation"
    assert TaskSpec.from_dict({**table, "data": "d.jsonl"}, base_dir=tmp_path).data == tmp_path / "d.jsonl"
    with pytest.raises(TaskDataError, match="is not a dataset name"):
        TaskSpec.from_dict({**table, "data": "hf:a b"}, base_dir=tmp_path)
