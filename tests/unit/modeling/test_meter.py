"""The meter's phases add up to the run and stop a phase before its money limit."""

import time

import pytest

from modeling.infer import evaluate, soft_labels
from modeling.meter import Meter, flops_per_token
from modeling.models import load_classifier
from modeling.train import Metering, SoftTargets, TrainConfig, TrainData, train
from tests.utils.tiny_models import LABELS, make_task


def test_phases_of_a_distillation_run_add_up_to_the_run(student_dir, teacher_dir, tmp_path):
    seed_texts, seed_ys = make_task(40, seed=1)
    unlabeled, _ = make_task(120, seed=2)
    test_texts, test_ys = make_task(40, seed=3)
    cfg = TrainConfig(lr=1e-3, epochs=1, progress=False)
    meter = Meter()
    teacher = load_classifier(teacher_dir, LABELS)
    student = load_classifier(student_dir, LABELS)
    start = time.perf_counter()
    train(teacher.model, teacher.tokenizer, TrainData(seed_texts, seed_ys, LABELS), cfg,
          metering=Metering(meter, phase_name="teacher_finetune"))
    soft = soft_labels(teacher.model, teacher.tokenizer, unlabeled, cache_dir=tmp_path, meter=meter, progress=False)
    distil = TrainData(seed_texts, seed_ys, LABELS, soft=SoftTargets(unlabeled, soft.logits))
    train(student.model, student.tokenizer, distil, cfg, metering=Metering(meter, phase_name="student_train"))
    evaluate(student.model, student.tokenizer, test_texts, test_ys, LABELS, meter=meter, progress=False)
    wall = time.perf_counter() - start

    names = [r.name for r in meter.records]
    assert names == ["teacher_finetune", "soft_labels", "student_train", "evaluation"]
    total = meter.total()
    assert total.examples == 40 + 120 + (40 + 120) + 40
    assert total.tokens == sum(r.tokens for r in meter.records)
    assert total.flops == sum(r.flops for r in meter.records)
    # every phase is timed and the total is their sum, never more than the run (a lower bound on the share
    # they cover is a timing figure for benchmarks: on a loaded 2-core machine the glue between them varies)
    assert all(r.seconds > 0 for r in meter.records)
    assert total.seconds == pytest.approx(sum(r.seconds for r in meter.records)) and total.seconds <= wall
    assert all(r.device == "cpu" for r in meter.records)
    teacher_rec = meter.records[0]
    assert teacher_rec.flops == 6 * teacher_rec.n_params * teacher_rec.padded_tokens


def test_limit_stops_a_phase_before_the_step_that_would_pass_it(student_dir):
    texts, ys = make_task(160, seed=1)
    # 1 micro-dollar per example: 10 steps of 16 would cost 160; the limit allows 100.
    meter = Meter(price=lambda r: r.examples)
    m = load_classifier(student_dir, LABELS)
    result = train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), TrainConfig(epochs=1, progress=False),
                   metering=Metering(meter, limit_micro=100))
    rec = meter.records[-1]
    assert result.stopped == "budget" and rec.stopped_by_limit
    assert rec.cost_micro <= 100 and rec.cost_micro + 16 > 100


def test_flops_per_token_rejects_unknown_kind():
    assert flops_per_token(10, "train") == 60 and flops_per_token(10, "infer") == 20
    with pytest.raises(ValueError, match="must be 'train' or 'infer'"):
        flops_per_token(10, "eval")
