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


class _Killed(Exception):
    pass


def _count_rows(model, rows: list, kill_after: int | None = None):
    """Count the rows the model predicts; raise once ``kill_after`` rows are done (a killed process)."""
    def hook(module, args, kwargs):
        if kill_after is not None and sum(rows) >= kill_after:
            raise _Killed
        rows.append(kwargs["input_ids"].shape[0])
    return model.register_forward_pre_hook(hook, with_kwargs=True)


def test_chunked_soft_labels_match_one_pass_in_fp32(teacher, tmp_path):
    texts, _ = make_task(45, seed=4)
    whole = predict_logits(teacher.model, teacher.tokenizer, texts, batch_size=8, precision="fp32", progress=False)
    chunked = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, chunk_size=10, batch_size=8,
                          precision="fp32", progress=False)
    np.testing.assert_allclose(chunked.logits, whole, atol=1e-5)
    assert chunked.phase.examples == 45 and not list(tmp_path.glob("*.partial.npy"))


def test_a_killed_pass_resumes_at_its_last_chunk_and_is_charged_for_all_rows(teacher, tmp_path):
    texts, _ = make_task(50, seed=5)
    kw = {"chunk_size": 12, "batch_size": 4, "progress": False}
    whole = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path / "whole", **kw)
    rows: list[int] = []
    handle = _count_rows(teacher.model, rows, kill_after=2 * 12 + 4)  # killed in the third chunk
    with pytest.raises(_Killed):
        soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, **kw)
    handle.remove()
    assert list(tmp_path.glob("*.progress.json")) and not list(tmp_path.glob("soft-*[0-9a-f].npy"))
    rows.clear()
    handle = _count_rows(teacher.model, rows)
    meter = Meter(price=lambda r: int(r.flops // 1e3))
    resumed = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, meter=meter, **kw)
    handle.remove()
    assert sum(rows) == 50 - 2 * 12 and not resumed.cached
    np.testing.assert_array_equal(resumed.logits, whole.logits)  # same chunks, same batches: the same bits
    p, w = resumed.phase, whole.phase
    assert (p.examples, p.tokens, p.padded_tokens, p.flops) == (w.examples, w.tokens, w.padded_tokens, w.flops)
    assert meter.records == [p] and p.cost_micro == int(w.flops // 1e3)  # the whole pass is charged, once
    assert not list(tmp_path.glob("*.progress.json")) and not list(tmp_path.glob("*.partial.npy"))


def test_a_streamed_source_hits_the_cache_of_the_same_texts_without_predicting(teacher, tmp_path):
    texts, _ = make_task(30, seed=6)
    first = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, chunk_size=8, progress=False)
    rows: list[int] = []
    handle = _count_rows(teacher.model, rows)
    again = soft_labels(teacher.model, teacher.tokenizer, lambda: iter(texts), cache_dir=tmp_path, progress=False)
    handle.remove()
    assert again.cached and rows == [] and again.phase == first.phase
    np.testing.assert_array_equal(again.logits, first.logits)


def test_a_streamed_source_is_predicted_chunk_by_chunk(teacher, tmp_path):
    texts, _ = make_task(30, seed=7)
    streamed = soft_labels(teacher.model, teacher.tokenizer, lambda: (t for t in texts), cache_dir=tmp_path / "s",
                           chunk_size=8, precision="fp32", progress=False)
    listed = soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path / "l", chunk_size=8,
                         precision="fp32", progress=False)
    np.testing.assert_array_equal(streamed.logits, listed.logits)
    assert streamed.path.name == listed.path.name


def test_an_empty_text_is_refused_with_its_row_in_the_pool_before_any_prediction(teacher, tmp_path):
    texts, _ = make_task(20, seed=8)
    texts[13] = " "
    with pytest.raises(EmptyTextError, match="Text 13 is empty"):
        soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, chunk_size=5, progress=False)
    with pytest.raises(EmptyPoolError):
        soft_labels(teacher.model, teacher.tokenizer, lambda: iter([]), cache_dir=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_soft_labels_run_the_teacher_only_through_predict_logits(teacher, tmp_path, monkeypatch):
    """What a test that forbids teacher passes patches (tests/unit/budget/study/test_study.py)."""
    import modeling.infer

    texts, _ = make_task(20, seed=9)
    soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the teacher ran")

    monkeypatch.setattr(modeling.infer, "predict_logits", must_not_run)
    assert soft_labels(teacher.model, teacher.tokenizer, texts, cache_dir=tmp_path, progress=False).cached
    with pytest.raises(AssertionError, match="the teacher ran"):
        soft_labels(teacher.model, teacher.tokenizer, texts[1:], cache_dir=tmp_path, progress=False)
