"""Fine-tuning and distillation on tiny models built from config."""

import numpy as np
import pytest
import torch

from modeling.exceptions import CheckpointError, EmptyPoolError, LabelError
from modeling.infer import evaluate, predict_logits, soft_labels
from modeling.meter import Meter
from modeling.models import load_classifier
from modeling.train import Metering, SoftTargets, TrainConfig, TrainData, train
from tests.utils.tiny_models import LABELS, make_task

FAST = dict(lr=1e-3, batch_size=16, progress=False, precision="fp32")


def _fit(model_dir, texts, ys, *, seed=0, **overrides):
    m = load_classifier(model_dir, LABELS, seed=seed)
    cfg = TrainConfig(**{**FAST, "epochs": 3, "seed": seed, **overrides})
    result = train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), cfg)
    return m, result


def test_fine_tuning_beats_chance_by_a_wide_margin(student_dir):
    texts, ys = make_task(480, seed=1)
    test_texts, test_ys = make_task(300, seed=2)
    m, result = _fit(student_dir, texts, ys, epochs=4)
    acc = evaluate(m.model, m.tokenizer, test_texts, test_ys, LABELS, progress=False).accuracy
    assert result.stopped == "completed" and result.steps == result.total_steps
    assert acc >= 0.85  # chance is 1/3


def test_pair_inputs_are_learned_as_pairs(student_dir):
    texts, ys = make_task(480, seed=1, pair=True)
    test_texts, test_ys = make_task(200, seed=2, pair=True)
    m, _ = _fit(student_dir, texts, ys, epochs=4)
    encoded = m.tokenizer(*test_texts[0])
    assert 1 in encoded["token_type_ids"]  # the second text is a real second segment
    assert evaluate(m.model, m.tokenizer, test_texts, test_ys, LABELS, progress=False).accuracy >= 0.8


def test_distilled_student_beats_student_trained_on_seed_labels_alone(student_dir, teacher_dir, tmp_path):
    seed_texts, seed_ys = make_task(24, seed=3)
    unlabeled, _ = make_task(900, seed=4)
    test_texts, test_ys = make_task(300, seed=5)
    # The teacher stands in for the paper's large fine-tuned model: here it learns from more labels,
    # so that what is tested is the transfer through soft labels, not a tiny model's capacity.
    teacher_texts, teacher_ys = make_task(600, seed=6)
    teacher, _ = _fit(teacher_dir, teacher_texts, teacher_ys, epochs=4)
    soft = soft_labels(teacher.model, teacher.tokenizer, unlabeled, cache_dir=tmp_path, progress=False)

    alone, _ = _fit(student_dir, seed_texts, seed_ys, epochs=8)
    m = load_classifier(student_dir, LABELS)
    train(m.model, m.tokenizer, TrainData(seed_texts, seed_ys, LABELS, soft=SoftTargets(unlabeled, soft.logits)),
          TrainConfig(**FAST, epochs=3))
    acc_alone = evaluate(alone.model, alone.tokenizer, test_texts, test_ys, LABELS, progress=False).accuracy
    acc_distilled = evaluate(m.model, m.tokenizer, test_texts, test_ys, LABELS, progress=False).accuracy
    assert acc_distilled > acc_alone + 0.15, (acc_alone, acc_distilled)


def test_same_seed_gives_the_same_model(student_dir):
    texts, ys = make_task(96, seed=1)
    a, _ = _fit(student_dir, texts, ys, seed=7, epochs=1)
    b, _ = _fit(student_dir, texts, ys, seed=7, epochs=1)
    c, _ = _fit(student_dir, texts, ys, seed=8, epochs=1)
    la, lb, lc = (predict_logits(m.model, m.tokenizer, texts[:20], progress=False) for m in (a, b, c))
    np.testing.assert_array_equal(la, lb)
    assert not np.allclose(la, lc)


def test_early_stopping_keeps_the_best_dev_model(student_dir):
    texts, ys = make_task(160, seed=1)
    dev = make_task(60, seed=9)
    # A learning rate far too high makes dev accuracy fall after its first peak.
    m2 = load_classifier(student_dir, LABELS)
    result = train(m2.model, m2.tokenizer, TrainData(texts, ys, LABELS, dev=dev),
                   TrainConfig(**{**FAST, "epochs": 12, "patience": 2, "lr": 3e-2}))
    best = max(v for _, v in result.dev_history)
    assert result.best_dev == best
    if result.stopped == "early_stop":
        assert result.steps < result.total_steps
    final = evaluate(m2.model, m2.tokenizer, dev[0], dev[1], LABELS, progress=False, precision="fp32").accuracy
    assert final == pytest.approx(best)


def _trained(student_dir, folder):
    """A student trained well, saved in ``folder``; a dev set and its accuracy there."""
    texts, ys = make_task(480, seed=1)
    dev = make_task(90, seed=9)
    good, _ = _fit(student_dir, texts, ys, epochs=4)
    good.model.save_pretrained(folder)
    good.tokenizer.save_pretrained(folder)
    return dev, evaluate(good.model, good.tokenizer, dev[0], dev[1], LABELS, progress=False, precision="fp32").accuracy


def test_fine_tuning_a_trained_model_with_keep_start_never_ends_worse_on_dev(student_dir, tmp_path):
    dev, start = _trained(student_dir, tmp_path / "good")
    # a few labels and a learning rate far too high wreck the trained model within one epoch
    few, few_ys = make_task(24, seed=3)
    bad = {**FAST, "epochs": 2, "lr": 0.3, "patience": 0}
    wrecked = load_classifier(tmp_path / "good", LABELS)
    train(wrecked.model, wrecked.tokenizer, TrainData(few, few_ys, LABELS, dev=dev), TrainConfig(**bad))
    after = evaluate(wrecked.model, wrecked.tokenizer, dev[0], dev[1], LABELS, progress=False, precision="fp32")
    assert after.accuracy < start - 0.1, (start, after.accuracy)  # the scenario keep_start guards against
    kept = load_classifier(tmp_path / "good", LABELS)
    result = train(kept.model, kept.tokenizer, TrainData(few, few_ys, LABELS, dev=dev), TrainConfig(**bad),
                   keep_start=True)
    assert result.dev_history[0] == (0, pytest.approx(start))  # the start is scored before the first step
    final = evaluate(kept.model, kept.tokenizer, dev[0], dev[1], LABELS, progress=False, precision="fp32").accuracy
    assert final == pytest.approx(result.best_dev) and final >= start


def test_select_last_keeps_the_end_of_the_schedule_scored_once_on_dev(student_dir):
    texts, ys = make_task(160, seed=1)
    dev = make_task(60, seed=9)
    # the learning rate that makes the best evaluation beat the end (above) trains to the end all the same
    m = load_classifier(student_dir, LABELS)
    result = train(m.model, m.tokenizer, TrainData(texts, ys, LABELS, dev=dev),
                   TrainConfig(**{**FAST, "epochs": 12, "patience": 2, "lr": 3e-2, "select": "last"}))
    assert result.stopped == "completed" and result.steps == result.total_steps
    assert result.dev_history == [(result.total_steps, pytest.approx(result.best_dev))]  # dev only reports the end
    final = evaluate(m.model, m.tokenizer, dev[0], dev[1], LABELS, progress=False, precision="fp32").accuracy
    assert final == pytest.approx(result.best_dev)


def test_select_last_with_keep_start_keeps_the_start_when_training_wrecks_it(student_dir, tmp_path):
    dev, start = _trained(student_dir, tmp_path / "good")
    few, few_ys = make_task(24, seed=3)
    kept = load_classifier(tmp_path / "good", LABELS)
    result = train(kept.model, kept.tokenizer, TrainData(few, few_ys, LABELS, dev=dev),
                   TrainConfig(**{**FAST, "epochs": 2, "lr": 0.3, "select": "last"}), keep_start=True)
    (s0, v0), (s1, v1) = result.dev_history  # the start and the end, nothing between
    assert (s0, s1) == (0, result.total_steps) and v0 == pytest.approx(start) and v1 < start - 0.1
    final = evaluate(kept.model, kept.tokenizer, dev[0], dev[1], LABELS, progress=False, precision="fp32").accuracy
    assert final == pytest.approx(start) == pytest.approx(result.best_dev)


def _long_tail(n: int, seed: int, rare: int) -> tuple[list, np.ndarray]:
    """The tiny task with every label but the first cut to ``rare`` examples."""
    texts, ys = make_task(n, seed=seed)
    keep = [i for i, y in enumerate(ys) if y == 0 or (ys[: i + 1] == y).sum() <= rare]
    return [texts[i] for i in keep], ys[keep]


def test_balanced_class_weights_lift_the_rare_classes_on_a_long_tailed_task(student_dir):
    texts, ys = _long_tail(600, seed=1, rare=50)  # about 200 of the first label, 50 of each other
    test_texts, test_ys = make_task(300, seed=2)  # every label alike, as a macro-averaged metric weighs them
    scores = {}
    for weighting in ("none", "balanced"):
        m, _ = _fit(student_dir, texts, ys, epochs=8, class_weight=weighting)
        scores[weighting] = evaluate(m.model, m.tokenizer, test_texts, test_ys, LABELS, progress=False).macro_f1
    # unweighted, the student predicts the common label only (macro-F1 0.18); balanced, it learns them all
    assert scores["balanced"] > scores["none"] + 0.3, scores


def test_checkpoint_resumes_and_finished_run_is_not_trained_again(student_dir, tmp_path):
    texts, ys = make_task(64, seed=1)
    cfg = TrainConfig(**FAST, epochs=2)
    full = load_classifier(student_dir, LABELS)
    train(full.model, full.tokenizer, TrainData(texts, ys, LABELS), cfg)

    # Stop after the first epoch with a budget limit of one epoch's steps, then resume.
    meter = Meter(price=lambda r: 0 if r.examples < 64 else 10)
    part = load_classifier(student_dir, LABELS)
    first = train(part.model, part.tokenizer, TrainData(texts, ys, LABELS), cfg, out_dir=tmp_path,
                  metering=Metering(meter, limit_micro=5))
    assert first.stopped == "budget" and 0 < first.steps < first.total_steps
    assert meter.records[-1].stopped_by_limit
    resumed = load_classifier(student_dir, LABELS)
    second = train(resumed.model, resumed.tokenizer, TrainData(texts, ys, LABELS), cfg, out_dir=tmp_path)
    assert second.stopped == "completed" and second.steps == second.total_steps
    probe = texts[:16]
    exact = dict(progress=False, precision="fp32")
    np.testing.assert_allclose(predict_logits(resumed.model, resumed.tokenizer, probe, **exact),
                               predict_logits(full.model, full.tokenizer, probe, **exact), atol=1e-5)
    again = load_classifier(student_dir, LABELS)
    calls = []
    again.model.register_forward_hook(lambda *a: calls.append(1))
    third = train(again.model, again.tokenizer, TrainData(texts, ys, LABELS), cfg, out_dir=tmp_path)
    assert calls == []  # returned from the checkpoint, no training ran
    # the phase record spans both processes: the interrupted part is carried into the resumed one
    assert second.phase.examples == third.phase.examples == 2 * 64


def test_resume_with_other_settings_is_refused(student_dir, tmp_path):
    texts, ys = make_task(32, seed=1)
    m = load_classifier(student_dir, LABELS)
    train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), TrainConfig(**FAST, epochs=1), out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="other settings or data; use a new out_dir"):
        train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), TrainConfig(**FAST, epochs=2), out_dir=tmp_path)


def test_a_checkpoint_written_before_select_existed_resumes_as_best(student_dir, tmp_path):
    texts, ys = make_task(32, seed=1)
    cfg = TrainConfig(**FAST, epochs=1)
    m = load_classifier(student_dir, LABELS)
    first = train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), cfg, out_dir=tmp_path)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    del ckpt["config"]["select"]  # as an older version wrote it
    torch.save(ckpt, tmp_path / "ckpt.pt")
    again = train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), cfg, out_dir=tmp_path)
    assert again.stopped == first.stopped and again.steps == first.steps  # finished, not refused
    with pytest.raises(CheckpointError, match="other settings"):
        train(m.model, m.tokenizer, TrainData(texts, ys, LABELS), TrainConfig(**FAST, epochs=1, select="last"),
              out_dir=tmp_path)


def test_bad_input_gets_a_clear_error(student_dir):
    m = load_classifier(student_dir, LABELS)
    # bad data is refused when the TrainData is built, a bad setting when train() validates its config
    with pytest.raises(EmptyPoolError, match="No training examples"):
        TrainData([], np.array([], dtype=int), LABELS)
    with pytest.raises(LabelError, match="outside the task's 3 labels"):
        TrainData(["a b c"], np.array([5]), LABELS)
    with pytest.raises(ValueError, match="The 'alpha' parameter of TrainConfig must be a float in the range"):
        train(m.model, m.tokenizer, TrainData(["a b c"], np.array([0]), LABELS), TrainConfig(alpha=1.5))
