"""Loading a task's data, splitting it, and tracking item states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
from annotation.pool import (
    ItemState,
    ItemStates,
    Pool,
    TaskSpec,
    dev_membership,
    load_pool,
    split_pool,
)
from tests.utils.pools import make_pool, make_rows, write_rows

DATA = Path("/work/shared/data/distill-or-annotate")
if not DATA.exists():  # a checkout may carry its own copy under shared/
    DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "distill-or-annotate"
STANCE_LABELS = ("Discussing", "Irrelevant", "Supporting", "Refuting", "Querying")


def _spec(path: Path, **kwargs) -> TaskSpec:
    params = {"name": "toy", "data": path, "labels": ("neg", "pos")}
    params.update(kwargs)
    return TaskSpec(**params)


# -- real data -------------------------------------------------------------------------------------------

needs_data = pytest.mark.skipif(not DATA.exists(), reason="benchmark data not found")


@needs_data
def test_load_stanceosaurus_as_claim_tweet_pairs():
    spec = TaskSpec(name="stance", data=DATA / "stanceosaurus_test_all.jsonl", text_fields=("source",),
                    label_field="target", labels=STANCE_LABELS, pair_regex=r"^claim: (.*?) tweet: (.*)$",
                    metric="macro_f1")
    pool = load_pool(spec)
    assert len(pool) == 4750
    counts = np.bincount(pool.gold, minlength=5)
    assert dict(zip(STANCE_LABELS, counts.tolist(), strict=True)) == {
        "Discussing": 2160, "Irrelevant": 1674, "Supporting": 592, "Refuting": 270, "Querying": 54}
    claim, tweet = pool.texts[0]
    assert claim == "Easter is a celebration for the Mediterranean Goddess Ishtar"
    assert tweet.startswith("@USER you mean inanna")
    # The file repeats some texts; external ids stay unique anyway.
    assert len({pool.external_id("r", i) for i in range(len(pool))}) == 4750
    split = split_pool(pool, seed=0, seed_size=20, test_size=1000)
    assert set(pool.gold[split.seed].tolist()) == set(range(5))  # even Querying (54 of 4750)


@needs_data
def test_load_multipit_as_sentence_pairs():
    spec = TaskSpec(name="multipit", data=DATA / "multipit_id_test_all.jsonl", text_fields=("source",),
                    label_field="target", labels=("NO", "YES"), pair_regex=r"^sentence1: (.*?) sentence2: (.*)$")
    pool = load_pool(spec)
    assert len(pool) == 11530
    assert np.bincount(pool.gold).tolist() == [5410, 6120]
    assert pool.texts[0] == ("Another terror act of stabbing in Raanana .",
                             "#BREAKING another stabbing attack in #Raanana")
    assert spec.batch_text_fields == ("text1", "text2")


# -- formats ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".parquet"])
def test_load_each_format(tmp_path: Path, suffix: str):
    rows = make_rows(12)
    path = write_rows(tmp_path / f"data{suffix}", rows)
    pool = load_pool(_spec(path))
    assert pool.texts == [r["text"] for r in rows]
    assert [pool.label_of(i) for i in range(12)] == [r["label"] for r in rows]
    assert pool.source == path


def test_same_rows_in_any_format_give_the_same_pool(tmp_path: Path):
    rows = make_rows(10)
    paths = [write_rows(tmp_path / f"d{s}", rows) for s in (".jsonl", ".csv", ".tsv", ".parquet")]
    pools = [load_pool(_spec(p)) for p in paths]
    assert len({(tuple(p.texts), tuple(p.gold.tolist()), p.external_id("r", 3)) for p in pools}) == 1


def test_csv_labels_that_look_like_numbers_stay_strings(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfirst,0\nsecond,1\n")
    pool = load_pool(_spec(path, labels=("0", "1")))
    assert pool.gold.tolist() == [0, 1]


def test_two_text_columns_make_pairs(tmp_path: Path):
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": "pos"} for i in range(3)]
    pool = load_pool(_spec(write_rows(tmp_path / "d.jsonl", rows), text_fields=("sentence1", "sentence2")))
    assert pool.texts[1] == ("a 1", "b 1")


def test_null_labels_are_unlabeled_items(tmp_path: Path):
    rows = [{"text": "a", "label": "pos"}, {"text": "b", "label": None}, {"text": "c", "label": "neg"}]
    pool = load_pool(_spec(write_rows(tmp_path / "d.jsonl", rows)))
    assert pool.gold.tolist() == [1, -1, 0]
    assert pool.label_of(1) is None
    assert pool.labeled.tolist() == [0, 2]


def test_pool_without_label_column(tmp_path: Path):
    pool = load_pool(_spec(write_rows(tmp_path / "d.jsonl", [{"text": "a"}, {"text": "b"}]), label_field=None))
    assert pool.gold.tolist() == [-1, -1]


def test_id_field_is_kept(tmp_path: Path):
    rows = [{"id": "x1", "text": "a", "label": "pos"}, {"id": "x2", "text": "b", "label": "neg"}]
    pool = load_pool(_spec(write_rows(tmp_path / "d.jsonl", rows), id_field="id"))
    assert pool.ids == ["x1", "x2"]


# -- errors ----------------------------------------------------------------------------------------------


def test_missing_file_names_the_fix(tmp_path: Path):
    with pytest.raises(DataFileNotFoundError, match=r"Data file '.*x\.jsonl' not found; set \[task\] data"):
        load_pool(_spec(tmp_path / "x.jsonl"))


def test_unsupported_suffix(tmp_path: Path):
    path = tmp_path / "data.txt"
    path.write_text("hello")
    with pytest.raises(UnsupportedFileError, match=r"suffix '\.txt'.*use a \.jsonl, \.csv, \.tsv or \.parquet file"):
        load_pool(_spec(path))


def test_missing_column_lists_the_available_ones(tmp_path: Path):
    path = write_rows(tmp_path / "d.jsonl", [{"source": "a", "target": "pos"}])
    message = r"Column 'text' \(\[task\] text_fields\).*available columns: source, target"
    with pytest.raises(MissingColumnError, match=message):
        load_pool(_spec(path))
    with pytest.raises(MissingColumnError, match=r"Column 'label' \(\[task\] label_field\)"):
        load_pool(_spec(path, text_fields=("source",)))


def test_unknown_label_names_label_row_and_labels(tmp_path: Path):
    rows = [{"text": "a", "label": "pos"}, {"text": "b", "label": "Neutral"}]
    path = write_rows(tmp_path / "d.jsonl", rows)
    message = r"d\.jsonl', line 2: label 'Neutral' is not among the declared labels \['neg', 'pos'\]; add it to"
    with pytest.raises(UnknownLabelError, match=message):
        load_pool(_spec(path))


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_names_the_row(tmp_path: Path, text):
    rows = [{"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}, {"text": text, "label": "neg"}]
    with pytest.raises(EmptyTextError, match="line 3: empty text in column 'text'"):
        load_pool(_spec(write_rows(tmp_path / "d.jsonl", rows)))


def test_empty_file(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text("")
    with pytest.raises(EmptyPoolError, match="has no rows"):
        load_pool(_spec(path))


def test_pair_regex_that_does_not_match_names_the_row(tmp_path: Path):
    rows = [{"text": "claim: a tweet: b", "label": "pos"}, {"text": "just a tweet", "label": "neg"}]
    with pytest.raises(PairPatternError, match="line 2: text 'just a tweet' does not match pair_regex"):
        load_pool(_spec(write_rows(tmp_path / "d.jsonl", rows), pair_regex=r"^claim: (.*?) tweet: (.*)$"))


def test_unreadable_file(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "pos"}\n{broken\n')
    with pytest.raises(TaskDataError, match=r"d\.jsonl', line 2: not valid JSON \(Expecting property name"):
        load_pool(_spec(path))


def test_duplicate_ids(tmp_path: Path):
    rows = [{"id": "x", "text": "a", "label": "pos"}, {"id": "x", "text": "b", "label": "neg"}]
    with pytest.raises(TaskDataError, match="repeats the id 'x'"):
        load_pool(_spec(write_rows(tmp_path / "d.jsonl", rows), id_field="id"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": ()}, "declares no labels"),
        ({"labels": ("a",)}, r"declares one label \['a'\]; a classifier needs at least two"),
        ({"labels": ("a", "a")}, r"\['a'\] more than once"),
        ({"text_fields": ("a", "b", "c")}, "one column, or two"),
        ({"text_fields": ("a", "b"), "pair_regex": "(a)(b)"}, "leave it out"),
        ({"pair_regex": "(a)"}, "has 1 groups; it needs exactly two"),
        ({"pair_regex": "(a"}, "not a valid regex"),
        ({"metric": "f1"}, r"metric must be one of \['accuracy', 'macro_f1'\]"),
    ],
)
def test_task_spec_rejects_contradictions(kwargs, match):
    with pytest.raises(TaskDataError, match=match):
        _spec(Path("x.jsonl"), **kwargs)


def test_task_spec_from_config_table(tmp_path: Path):
    spec = TaskSpec.from_dict({"name": "t", "data": "d.jsonl", "labels": ["NO", "YES"], "text_fields": ["source"]},
                              base_dir=tmp_path)
    assert spec.data == tmp_path / "d.jsonl"
    assert spec.labels == ("NO", "YES") and spec.text_fields == ("source",)
    with pytest.raises(TaskDataError, match=r"Unknown key\(s\) \['lables'\] in \[task\]"):
        TaskSpec.from_dict({"name": "t", "data": "d.jsonl", "lables": ["a"]})
    with pytest.raises(TaskDataError, match=r"missing \['labels'\]"):
        TaskSpec.from_dict({"name": "t", "data": "d.jsonl"})


# -- pool ------------------------------------------------------------------------------------------------


def test_external_ids_are_stable_and_content_based():
    a = Pool(["x", "y", "x"], [0, 1, 0], ("neg", "pos"))
    b = Pool(["y", "x"], [1, 0], ("neg", "pos"))
    assert a.external_id("run", 0) == b.external_id("run", 1) == f"run-{a.item_hash(0)}"
    assert len(a.item_hash(0)) == 16
    assert a.item_hash(2) != a.item_hash(0)  # a repeated text gets its own id


def test_batch_items_carry_pool_indices_and_external_ids():
    pool = make_pool(6, pair=True)
    items = pool.batch_items("r1", np.array([4, 1]))
    assert [i.item_id for i in items] == [4, 1]
    assert items[0].external_id == pool.external_id("r1", 4)
    assert items[0].text == pool.texts[4]


def test_label_id_of_unknown_label():
    with pytest.raises(UnknownLabelError, match="'maybe' is not among"):
        make_pool(4).label_id("maybe")


# -- split -----------------------------------------------------------------------------------------------


def test_split_is_deterministic_and_disjoint():
    pool = make_pool(200, ("a", "b", "c"), n_unlabeled=20)
    s1 = split_pool(pool, seed=3, seed_size=12, test_size=50)
    s2 = split_pool(pool, seed=3, seed_size=12, test_size=50)
    s3 = split_pool(pool, seed=4, seed_size=12, test_size=50)
    for a, b in zip((s1.seed, s1.unlabeled, s1.test), (s2.seed, s2.unlabeled, s2.test), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(s1.test, s3.test)
    parts = np.concatenate([s1.seed, s1.unlabeled, s1.test])
    assert sorted(parts.tolist()) == list(range(200))
    assert (len(s1.seed), len(s1.test), len(s1.unlabeled)) == (12, 50, 138)
    assert (pool.gold[s1.seed] >= 0).all() and (pool.gold[s1.test] >= 0).all()
    assert set(range(180, 200)) <= set(s1.unlabeled.tolist())  # unlabeled rows never go to seed or test


def test_stratified_seed_has_every_class_and_test_keeps_shares():
    labels = ("big", "mid", "rare")
    gold = np.array([0] * 900 + [1] * 90 + [2] * 10)
    pool = Pool([f"t{i}" for i in range(1000)], gold, labels)
    split = split_pool(pool, seed=0, seed_size=3, test_size=100)
    assert sorted(pool.gold[split.seed].tolist()) == [0, 1, 2]
    assert np.bincount(pool.gold[split.test], minlength=3).tolist() == [90, 9, 1]


def test_test_size_as_a_fraction():
    split = split_pool(make_pool(100), seed=0, seed_size=10, test_size=0.2)
    assert len(split.test) == 20


def test_unstratified_split():
    split = split_pool(make_pool(100), seed=0, seed_size=10, test_size=20, stratify=False)
    assert (len(split.seed), len(split.test), len(split.unlabeled)) == (10, 20, 70)


def test_split_sizes_are_checked_with_the_numbers():
    pool = make_pool(50, n_unlabeled=10)
    with pytest.raises(TaskDataError, match="seed_size 20 \\+ test_size 30 = 50 is more than the 40 labeled items"):
        split_pool(pool, seed=0, seed_size=20, test_size=30)
    with pytest.raises(TaskDataError, match="must not be negative; got -1"):
        split_pool(pool, seed=0, seed_size=-1, test_size=5)
    with pytest.raises(TaskDataError, match="fraction in \\(0, 1\\); got 1.5"):
        split_pool(pool, seed=0, seed_size=1, test_size=1.5)
    with pytest.raises(EmptyPoolError, match="nothing is left to label"):
        split_pool(make_pool(10), seed=0, seed_size=5, test_size=5)


# -- dev membership --------------------------------------------------------------------------------------


def test_dev_membership_is_stable_and_near_the_fraction():
    ids = [f"run-{i:05d}" for i in range(5000)]
    chosen = [dev_membership(x, 0.2) for x in ids]
    assert chosen == [dev_membership(x, 0.2) for x in ids]
    assert 0.18 < np.mean(chosen) < 0.22
    assert not any(dev_membership(x, 0.0) for x in ids[:100])
    assert all(dev_membership(x, 1.0) for x in ids[:100])
    # A larger fraction keeps every id a smaller one chose.
    assert all(dev_membership(x, 0.5) for x, c in zip(ids, chosen, strict=True) if c)
    with pytest.raises(ValueError, match="dev_fraction must be in"):
        dev_membership("x", 1.5)


# -- item states -----------------------------------------------------------------------------------------


def test_item_states_mark_and_list():
    states = ItemStates(6)
    states.mark([0, 1], "in_batch")
    states.mark(np.array([1]), ItemState.LABELED)
    states.mark([2], ItemState.SKIPPED)
    assert states.indices("unlabeled").tolist() == [3, 4, 5]
    assert states.indices(ItemState.IN_BATCH).tolist() == [0]
    assert states.indices("labeled").tolist() == [1]
    states.mark([], "labeled")
    assert states.states.dtype == np.int8


def test_item_states_from_split():
    pool = make_pool(40)
    split = split_pool(pool, seed=0, seed_size=4, test_size=10)
    states = ItemStates.from_split(len(pool), split)
    assert states.indices("labeled").tolist() == split.seed.tolist()
    assert states.indices("held_out").tolist() == split.test.tolist()
    assert states.indices("unlabeled").tolist() == split.unlabeled.tolist()


def test_held_out_items_never_change_state():
    states = ItemStates(3)
    states.mark([2], "held_out")
    with pytest.raises(ValueError, match="Item 2 is held out for testing; it can never be in_batch"):
        states.mark([1, 2], "in_batch")


def test_item_states_reject_bad_input():
    states = ItemStates(3)
    with pytest.raises(ValueError, match="Unknown item state 'done'"):
        states.mark([0], "done")
    with pytest.raises(ValueError, match="out of range"):
        states.mark([3], "labeled")


def test_sst2_style_tsv_with_quotes_in_the_text_reads_as_written(tmp_path: Path):
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\nit \'s a "charming" film \t1\nhide new secretions\t0\n')
    pool = load_pool(TaskSpec(name="sst2", data=path, text_fields=("sentence",), labels=("0", "1")))
    assert pool.texts == ['it \'s a "charming" film ', "hide new secretions"]
    assert [pool.label_of(i) for i in range(2)] == ["1", "0"]
