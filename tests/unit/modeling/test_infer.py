"""Soft labels are computed once per teacher checkpoint and pool; batches are length-sorted."""

import numpy as np
import pytest

from modeling.exceptions import EmptyPoolError, EmptyTextError
from modeling.infer import predict_logits, soft_labels
from modeling.meter import Meter
from modeling.models import load_classifier
from tests.utils.tiny_models import LABELS, make_task


@pytest.fixture
def teacher(teacher_dir):
    return load_classifier(teacher_dir, LABELS)


def test_second_soft_label_call_on_same_pool_and_checkpoint_does_not_run_the_teacher(teacher, tmp_path):
    texts, _ = make_task(50, seed=1)
    meter = Meter()
    first = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, meter=meter, progress=False)
    calls = []
    teacher.model.register_forward_hook(lambda *a: calls.append(1))
    second = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, meter=meter, progress=False)
    assert (first.cached, second.cached) == (False, True)
    assert calls == [] and len(meter.records) == 1
    np.testing.assert_array_equal(first.logits, second.logits)
    np.testing.assert_allclose(second.proba().sum(axis=1), 1.0)


def test_soft_labels_are_recomputed_for_another_pool_or_checkpoint(teacher, tmp_path):
    texts, _ = make_task(20, seed=1)
    soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, progress=False)
    assert not soft_labels(teacher.model, teacher.tokenizer, texts[:-1], cache_dir=tmp_path, progress=False).cached
    for p in teacher.model.parameters():
        p.data.add_(0.01)  # a fine-tuned teacher is a new checkpoint
        break
    assert not soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, progress=False).cached


def test_rows_come_back_in_input_order_despite_length_sorting(teacher):
    texts, _ = make_task(40, seed=2)
    together = predict_logits(teacher.model, teacher.tokenizer, texts, batch_size=8, precision="fp32", progress=False)
    one_by_one = np.vstack([predict_logits(teacher.model, teacher.tokenizer, [t], precision="fp32", progress=False)
                            for t in texts[:5]])
    np.testing.assert_allclose(together[:5], one_by_one, atol=1e-5)


def test_inference_is_metered_with_tokens_and_flops(teacher):
    texts, _ = make_task(30, seed=3)
    meter = Meter(price=lambda r: int(r.flops // 1e6))
    predict_logits(teacher.model, teacher.tokenizer, texts, meter=meter, phase_name="soft_labels", progress=False)
    (rec,) = meter.records
    assert rec.name == "soft_labels" and rec.kind == "infer" and rec.examples == 30
    assert rec.tokens <= rec.padded_tokens and rec.flops == 2 * rec.n_params * rec.padded_tokens
    assert rec.cost_micro == int(rec.flops // 1e6)


def test_empty_text_and_empty_pool_are_refused(teacher):
    with pytest.raises(EmptyTextError, match="Text 1 is empty"):
        predict_logits(teacher.model, teacher.tokenizer, ["fine", "  "], progress=False)
    with pytest.raises(EmptyTextError, match="Text 0 is empty"):
        predict_logits(teacher.model, teacher.tokenizer, [("claim", "")], progress=False)
    with pytest.raises(EmptyPoolError, match="the pool has no rows"):
        predict_logits(teacher.model, teacher.tokenizer, [], progress=False)
