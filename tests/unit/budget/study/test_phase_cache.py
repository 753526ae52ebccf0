"""The study's phase cache: entries appear whole, and pruning drops the least recently used ones."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from budget.round import step_store
from budget.round.results import StudentResult
from budget.round.step_store import step_key
from budget.round.steps import cached
from budget.study.phase_cache import PhaseCache
from modeling.meter import PhaseRecord

RECORD = PhaseRecord(name="student_finetune", kind="train", device="cpu", n_params=10, flops=5.0)


def _model(tmp_path: Path, name: str, n_bytes: int) -> Path:
    folder = tmp_path / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(n_bytes))
    (folder / "ckpt.pt").write_bytes(b"x" * 10)  # a resumable checkpoint: never stored
    return folder


def _store(cache: PhaseCache, tmp_path: Path, key: str, n_bytes: int = 1000, used: float = 0.0) -> None:
    cache.put(key, {"n_labels": 10}, [RECORD], _model(tmp_path, key, n_bytes))
    os.utime(cache.root / key, (used, used))  # last used at ``used`` (seconds since the epoch)


def test_put_stores_a_whole_entry_without_checkpoints_and_get_reads_it_back(tmp_path):
    cache = PhaseCache(tmp_path / "cache")
    assert cache.get("a") is None and cache.size_bytes() == 0
    _store(cache, tmp_path, "a", 1000)
    hit = cache.get("a")
    assert hit.result == {"n_labels": 10} and hit.records == (RECORD,) and hit.flops == 5.0
    assert sorted(p.name for p in hit.model_dir.iterdir()) == ["model.safetensors"]
    assert 1000 < cache.size_bytes() < 1500  # the model and its result.json
    assert not [p for p in cache.root.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_get_marks_an_entry_as_used_now(tmp_path):
    cache = PhaseCache(tmp_path / "cache")
    _store(cache, tmp_path, "a", used=1_000)
    cache.get("a")
    assert (cache.root / "a").stat().st_mtime > 1_000_000


def test_prune_keeps_the_most_recently_used_entries_and_frees_space(tmp_path):
    cache = PhaseCache(tmp_path / "cache")
    for key, used in (("a", 1_000), ("b", 2_000), ("c", 3_000), ("d", 4_000)):
        _store(cache, tmp_path, key, 10_000, used)
    cache.get("a")  # the oldest stored, but used last
    before = cache.size_bytes()
    entry = before // 4
    freed = cache.prune(2 * entry + 100)  # room for two entries
    assert sorted(p.name for p in cache.root.iterdir()) == ["a", "d"]
    assert freed == before - cache.size_bytes() >= 2 * 10_000
    assert cache.size_bytes() <= 2 * entry + 100
    assert cache.prune(2 * entry + 100) == 0  # it fits already: nothing to do
    assert cache.prune(0) == 2 * entry and not any(cache.root.iterdir())


def test_prune_never_removes_a_step_still_being_written_nor_the_soft_labels(tmp_path):
    cache = PhaseCache(tmp_path / "cache")
    _store(cache, tmp_path, "a", used=1_000)
    writing = cache.root / ".b.12345"  # how put() writes: a hidden folder, renamed once whole
    (writing / "model").mkdir(parents=True)
    (writing / "model" / "model.safetensors").write_bytes(b"x" * 5000)
    soft = cache.root / "soft-labels"
    soft.mkdir()
    (soft / "soft-1234.npy").write_bytes(b"x" * 5000)
    (soft / "soft-1234.json").write_text("{}")
    cache.prune(0)
    assert sorted(p.name for p in cache.root.iterdir()) == [".b.12345", "soft-labels"]
    assert (writing / "model" / "model.safetensors").exists() and (soft / "soft-1234.npy").exists()
    assert cache.size_bytes() == 10_002


def test_prune_of_a_missing_cache_is_nothing_and_keep_bytes_is_checked(tmp_path):
    cache = PhaseCache(tmp_path / "none")
    assert cache.size_bytes() == 0 and cache.prune(0) == 0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="'keep_bytes' parameter must be an int >= 0"):
            cache.prune(bad)


def test_a_pruned_step_is_a_cache_miss_and_runs_again(tmp_path):
    cache = PhaseCache(tmp_path / "cache")
    ctx = SimpleNamespace(phase_cache=cache, pricer=SimpleNamespace(price=lambda record: 7))
    runs = []

    def run():
        runs.append(1)
        out = tmp_path / "run" / "student"
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"w" * 100)
        return StudentResult(n_labels=10), [RECORD]

    def step():
        return cached(ctx, tmp_path / "run" / "student", {"role": "student", "seed": 0}, limit=100,
                      more_money=lambda extra: 0, run=run, kind=StudentResult)

    assert step() == (StudentResult(n_labels=10), [RECORD]) and len(runs) == 1  # computed and stored
    assert step() == (StudentResult(n_labels=10, reused_flops=5.0), [RECORD]) and len(runs) == 1  # reused
    assert cache.prune(0) > 0 and not any(cache.root.iterdir())
    assert step() == (StudentResult(n_labels=10), [RECORD]) and len(runs) == 2  # a miss: computed again, no error
    assert step()[0].reused_flops == 5.0 and len(runs) == 2  # and stored again


def test_a_step_computed_by_other_training_code_is_a_cache_miss(tmp_path, monkeypatch):
    # a study folder's cache outlives code changes: a training recipe changed since a step was stored must
    # train again, not serve the old recipe's model to the cells run after the change
    train = tmp_path / "train.py"
    train.write_text("EPOCHS = 4\n")
    digest = step_store.code_digest.__wrapped__  # read the file every time (a process reads it once)
    monkeypatch.setattr(step_store, "code_digest", lambda: digest((train,)))
    key = step_key(model="student", data="abc", seed=0)
    assert step_key(model="student", data="abc", seed=0) == key  # the same step, the same code
    train.write_text("EPOCHS = 5\n")
    assert step_key(model="student", data="abc", seed=0) != key


def test_the_code_digest_covers_the_training_code():
    names = {f.name for f in step_store.CODE_FILES}
    assert {"train.py", "infer.py", "models.py", "steps.py"} <= names
    assert all(f.exists() for f in step_store.CODE_FILES)
