"""A training in two CPU processes (torchrun + accelerate, gloo) against the same training in one.

Tolerance: the tiny Llama has no dropout, so the two-process run computes the same sums split in two
and all-reduced; its per-step losses match the one-process run within 1e-4 (measured: 3e-7).
"""

from __future__ import annotations

import operator
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from budget.study.tiny import LABELS, build_tiny_llama, make_task
from modeling.infer import soft_labels
from modeling.launch import (
    LaunchError,
    Processes,
    SoftLabelJob,
    TrainJob,
    _first_error,
    launch_soft_labels,
    launch_training,
)
from modeling.lora import is_adapter, with_lora
from modeling.models import load_classifier
from modeling.train import TrainConfig, TrainData, train
from tests.utils.kills import DiesOnceAfterCheckpoint

TOLERANCE = 1e-4
TWO = Processes(processes=2, threads=1)
SHARDED = Processes(processes=2, threads=1, strategy="fsdp")


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "model")


@pytest.fixture(scope="module")
def data():
    texts, y = make_task(240, seed=3)
    return texts[:180], y[:180], (texts[180:], y[180:])


@pytest.fixture(scope="module")
def alone(llama, data):
    """The one-process training the two-process ones are compared with: its result and trained model."""
    texts, y, dev = data
    one = load_classifier(str(llama), list(LABELS), seed=0)
    result = train(one.model, one.tokenizer, TrainData(texts, y, LABELS, dev=dev), _config())
    return result, one.model


@pytest.fixture(scope="module")
def full(llama, data, tmp_path_factory):
    """``full(where)``: the uninterrupted two-process training of ``data`` on ``where`` (priced at a
    micro-dollar per example), launched once for every test that compares with it; (folder, result, records)."""
    runs = {}

    def launched(where: Processes):
        if where not in runs:
            out = tmp_path_factory.mktemp(where.strategy) / "model"
            runs[where] = (out, *launch_training(_job(llama, data, out, price=per_example), where))
        return runs[where]

    return launched


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "lr": 2e-3, "seed": 0, "device": "cpu",
                          "precision": "fp32", "progress": False, "patience": 0, **kw})


def _job(llama: Path, data, out: Path, **kw) -> TrainJob:
    texts, y, dev = data
    return TrainJob(**{"model": str(llama), "labels": tuple(LABELS), "texts": texts, "y": y, "dev": dev,
                       "out_dir": out, "config": _config(), **kw})


#: a price of one micro-dollar per example trained (each process pays for its share); picklable
per_example = operator.attrgetter("examples")


def test_two_processes_follow_the_one_process_loss_curve_and_save_the_same_model(alone, full):
    (single, model), (out, result, _) = alone, full(TWO)

    assert result.steps == single.steps == result.total_steps
    np.testing.assert_allclose(result.losses, single.losses, atol=TOLERANCE)
    assert result.best_dev == pytest.approx(single.best_dev)
    saved = load_classifier(str(out), list(LABELS), seed=0)  # the main process wrote the folder
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(saved.model.state_dict()[name], weight, atol=1e-4, rtol=1e-3)


def test_sharded_processes_each_hold_half_the_weights_and_follow_the_one_process_curve(llama, data, alone, full):
    (single, model), (out, result, _) = alone, full(SHARDED)

    np.testing.assert_allclose(result.losses, single.losses, atol=TOLERANCE)
    assert result.best_dev == pytest.approx(single.best_dev)
    total = sum(p.numel() for p in model.parameters())
    lines = re.findall(r"\[rank(\d+)\] attempt \d+: fsdp: this process holds ([\d,]+) of ([\d,]+) weights",
                       (out / "launch" / "launch.log").read_text())
    # torchrun starts the processes again if one is lost (a busy machine), so a rank may print more than
    # once: its last line is the process that trained the model
    held = {int(rank): (int(h.replace(",", "")), int(of.replace(",", ""))) for rank, h, of in lines}
    assert sorted(held) == [0, 1] and all(of == total for _, of in held.values())
    assert all(h < 0.55 * total for h, _ in held.values())  # each about half, not all
    assert sum(h for h, _ in held.values()) == total  # and together all of it, once
    saved = load_classifier(str(out), list(LABELS), seed=0)  # gathered into one model folder
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(saved.model.state_dict()[name], weight, atol=1e-4, rtol=1e-3)
    again, _ = launch_training(_job(llama, data, out, price=per_example), SHARDED)  # finished: loaded, not trained
    assert again.steps == result.steps and again.best_dev == result.best_dev


def test_a_sharded_lora_teacher_trains_its_adapters_as_one_process_does(llama, data, tmp_path):
    texts, y, dev = data
    one = with_lora(load_classifier(str(llama), list(LABELS), seed=0), 4)
    alone = train(one.model, one.tokenizer, TrainData(texts, y, LABELS, dev=dev), _config())

    result, _ = launch_training(_job(llama, data, tmp_path / "lora", lora_rank=4), SHARDED)

    np.testing.assert_allclose(result.losses, alone.losses, atol=TOLERANCE)
    assert is_adapter(tmp_path / "lora")  # saved as an adapter, as one process saves it


@pytest.mark.parametrize("where", [TWO, SHARDED], ids=["ddp", "fsdp"])
def test_the_meter_charges_every_process_and_stops_them_together_at_the_money_limit(llama, data, full, tmp_path,
                                                                                     where):
    _, whole, records = full(where)
    assert len(records) == 2 and all(r.examples > 0 and r.seconds > 0 for r in records)
    assert sum(r.examples for r in records) == 2 * len(data[0])  # two epochs, each row once per epoch
    assert sum(r.cost_micro for r in records) == 2 * len(data[0])  # both processes are charged

    # money for about half the examples: every process stops before passing its share, checkpoint kept
    half, records = launch_training(_job(llama, data, tmp_path / "half", price=per_example), where,
                                    limit_micro=len(data[0]))
    assert half.stopped == "budget" and 0 < half.steps < half.total_steps
    assert sum(r.cost_micro for r in records) <= len(data[0])
    assert (tmp_path / "half" / "ckpt.pt").exists()

    # more money resumes the processes from it and finishes
    asked = []
    done, records = launch_training(_job(llama, data, tmp_path / "half", price=per_example), where,
                                    limit_micro=len(data[0]), more_money=lambda m: asked.append(m) or m)
    assert asked and done.stopped == "completed" and done.steps == done.total_steps
    np.testing.assert_allclose(done.losses, whole.losses, atol=TOLERANCE)


def _launch_and_kill(launcher: str, job, tmp_path: Path, ready, where: Processes = TWO) -> None:
    """Run ``modeling.launch.<launcher>(job)`` on two processes in a child process, and SIGKILL the whole
    process group (the launcher, torchrun and both workers) once ``ready()`` (or after two minutes)."""
    spec = tmp_path / "job.pkl"
    spec.write_bytes(pickle.dumps((job, where)))
    script = (f"import pickle, sys; from modeling.launch import {launcher}; "
              f"{launcher}(*pickle.load(open(sys.argv[1], 'rb')))")
    proc = subprocess.Popen([sys.executable, "-c", script, str(spec)], start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("where", [TWO, SHARDED], ids=["ddp", "fsdp"])
def test_a_two_process_training_killed_part_way_resumes_to_the_same_curve(llama, data, tmp_path, where):
    big = make_task(1603, seed=5)  # the last batch splits unevenly: each process meters its own share
    job = _job(llama, (big[0], big[1], data[2]), tmp_path / "killed", config=_config(epochs=3, checkpoint_every_s=0))
    uninterrupted, _ = launch_training(_job(llama, (big[0], big[1], data[2]), tmp_path / "whole",
                                            config=_config(epochs=3, checkpoint_every_s=0)), where)
    ckpt = tmp_path / "killed" / "ckpt.pt"
    _launch_and_kill("launch_training", job, tmp_path, ckpt.exists, where)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["stopped"] is None and 0 < state["step"] < uninterrupted.total_steps  # killed part way

    resumed, records = launch_training(job, where)
    assert resumed.stopped == "completed" and resumed.steps == uninterrupted.steps
    np.testing.assert_allclose(resumed.losses, uninterrupted.losses, atol=TOLERANCE)
    assert sum(r.examples for r in records) == 3 * 1603  # every row of every epoch metered once, after a kill
    assert all(r.seconds > 0 for r in records)


def test_a_process_lost_part_way_is_started_again_and_the_training_ends_as_if_it_never_was(llama, data, tmp_path):
    config = _config(epochs=3, checkpoint_every_s=0)
    whole, _ = launch_training(_job(llama, data, tmp_path / "whole", config=config, price=per_example), TWO,
                               limit_micro=10**9)
    out = tmp_path / "lost"
    done, records = launch_training(_job(llama, data, out, config=config, price=DiesOnceAfterCheckpoint(
        out / "ckpt.pt")), TWO, limit_micro=10**9)

    log = (out / "launch" / "launch.log").read_text()
    # it did die, and torchrun started both again; which process torchrun names first is a race: the lost one
    # (code 1), or its peer, whose collective broke when the lost one went (the peer's exception, or the
    # SIGTERM torchrun sent it)
    assert re.search(r"failed \(exitcode: -?\d+\) local_rank: [01]", log)
    assert re.match(  # and the launch says so, with the cause
        r"==> launch: its processes were started again 1 time\(s\) and then finished; the first failure: "
        r"process [01] exited with code -?\d+; the first exception printed: \S", log.strip().splitlines()[-1])
    assert done.stopped == "completed" and done.steps == whole.steps
    np.testing.assert_allclose(done.losses, whole.losses, atol=TOLERANCE)
    with pytest.raises(LaunchError, match="exited with code 1"):  # with no restarts left, the loss is an error
        launch_training(_job(llama, data, tmp_path / "unlucky", config=config, price=DiesOnceAfterCheckpoint(
            tmp_path / "unlucky" / "ckpt.pt")), Processes(processes=2, threads=1, restarts=0), limit_micro=10**9)


def test_the_cause_of_a_failure_is_an_exception_line_not_a_process_s_own_output():
    lines = ["Traceback (most recent call last):",  # torchrun's own, unprefixed
             "  File \"run.py\", line 1, in <module>",
             "[rank1] attempt 1: fsdp: this process holds 11,120 of 22,272 weights",  # a process's print between
             "RuntimeError: the store closed",
             "[rank0]: Traceback (most recent call last):",
             "[rank0]:   File \"train.py\", line 9, in step",
             "[rank0]: ValueError: a bad batch"]
    assert _first_error(lines) == "ValueError: a bad batch"  # a process's own exception comes first
    assert _first_error(lines[:4]) == "RuntimeError: the store closed"


def test_a_failing_process_is_one_error_with_its_last_lines(llama, data, tmp_path):
    job = _job(llama, data, tmp_path / "bad", labels=tuple(LABELS[:2]))  # the data has a third label
    with pytest.raises(LaunchError, match="exited with code") as err:
        launch_training(job, TWO)
    assert "LabelError: Label id 2 is outside" in str(err.value)


def test_a_run_with_two_compute_processes_fine_tunes_and_soft_labels_and_pays_for_both(llama, tmp_path):
    from budget.config import load_config
    from budget.controller import Controller
    from budget.money import to_micro
    from tests.utils.projects import write_tiny_project

    project = write_tiny_project(tmp_path, policy="distill", overrides={
        "models": {"teacher": str(llama), "teacher_lora_rank": 4}, "compute": {"processes": 2, "threads": 1}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.fund(to_micro("40"))
        run.run()
        distill = next(r for r in run.ledger.rounds() if r.arm == "distill")
        teacher = run.ledger.step_result(f"round-{distill.round}:teacher")
        soft = run.ledger.step_result(f"round-{distill.round}:soft_labels")
    assert distill.state == "done" and distill.summary.unlabeled_used > 0
    for step in (teacher, soft):  # the fine-tune and the soft labels: both processes metered and paid for
        assert step["processes"] == 2 and len(step["phases"]) == 2 and step["cost_micro"] > 0
    assert all(p["examples"] > 0 for p in teacher["phases"] + soft["phases"])  # the pool is split in two
    assert sum(p["examples"] for p in soft["phases"]) == soft["n_items"]


def _soft_job(llama: Path, texts, tmp_path: Path, **kw) -> SoftLabelJob:
    return SoftLabelJob(**{"model": str(llama), "labels": tuple(LABELS), "texts": texts, "cache_dir": tmp_path / "two",
                           "out_dir": tmp_path / "out", "checkpoint_id": "tiny-llama", "max_length": 32,
                           "chunk_size": 64, "device": "cpu", "price": per_example, **kw})


def test_two_processes_soft_label_a_pool_as_one_does_and_each_pays_for_its_chunks(llama, tmp_path):
    texts, _ = make_task(300, seed=7)
    teacher = load_classifier(str(llama), list(LABELS), seed=0)
    one = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path / "one", max_length=32,
                      chunk_size=64, progress=False, device="cpu")

    two, records = launch_soft_labels(_soft_job(llama, texts, tmp_path), TWO)
    np.testing.assert_allclose(two.logits, one.logits, atol=1e-5)
    # five chunks of 64 rows (the last 44): chunks 0, 2, 4 to the first process, 1 and 3 to the second
    assert sorted(r.examples for r in records) == [128, 172] and all(r.cost_micro == r.examples for r in records)
    again, records = launch_soft_labels(_soft_job(llama, texts, tmp_path), TWO)
    assert again.cached and [r.examples for r in records] == [300]  # the whole pass, as first computed


def test_a_two_process_soft_labelling_killed_part_way_resumes_each_process_s_chunks(llama, tmp_path):
    texts, _ = make_task(12_000, seed=8)
    job = _soft_job(llama, texts, tmp_path, chunk_size=500)
    _launch_and_kill("launch_soft_labels", job, tmp_path,
                     lambda: bool(list((tmp_path / "two").glob("*.progress-1of2.json"))))
    assert not list((tmp_path / "two").glob("soft-*[0-9a-f].npy"))  # killed before the pass finished

    resumed, records = launch_soft_labels(job, TWO)
    teacher = load_classifier(str(llama), list(LABELS), seed=0)
    one = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path / "one", max_length=32,
                      chunk_size=500, progress=False, device="cpu")
    np.testing.assert_allclose(resumed.logits, one.logits, atol=1e-5)
    assert sum(r.examples for r in records) == 12_000  # every row metered once, across the kill
