"""LoRA teachers (peft): a tiny Llama-style decoder, adapters only, saved small and loaded back merged."""

import numpy as np
import torch

from budget.study.tiny import build_tiny_llama
from modeling.infer import evaluate, predict_logits
from modeling.lora import is_adapter, with_lora
from modeling.models import load_classifier
from modeling.train import TrainConfig, TrainData, train
from tests.utils.tiny_models import LABELS, make_task


def test_a_decoder_llm_teacher_learns_with_lora_and_comes_back_merged_from_its_small_folder(tmp_path):
    base = build_tiny_llama(tmp_path / "llama")
    texts, ys = make_task(480, seed=1)
    test_texts, test_ys = make_task(200, seed=2)
    teacher = with_lora(load_classifier(base, LABELS), rank=4)
    trainable = sum(p.numel() for p in teacher.model.parameters() if p.requires_grad)
    frozen = [p.clone() for n, p in teacher.model.named_parameters() if "lora_" not in n and not p.requires_grad]
    assert trainable < 0.5 * teacher.n_params  # adapters and the head, not the whole model
    cfg = TrainConfig(epochs=6, lr=1e-2, batch_size=16, progress=False, precision="fp32", seed=0)
    result = train(teacher.model, teacher.tokenizer, TrainData(texts, ys, LABELS), cfg, out_dir=tmp_path / "teacher")
    assert result.stopped == "completed"
    after = [p for n, p in teacher.model.named_parameters() if "lora_" not in n and not p.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(frozen, after, strict=True))  # the base never moved
    acc = evaluate(teacher.model, teacher.tokenizer, test_texts, test_ys, LABELS, progress=False).accuracy
    assert acc >= 0.6  # chance is 1/3
    # the folder holds the adapter, and loading it gives the same predictions from a merged model
    folder = tmp_path / "teacher"
    assert is_adapter(folder) and not (folder / "model.safetensors").exists()
    back = load_classifier(folder, LABELS)
    assert not hasattr(back.model, "peft_config")  # merged: soft labels run at the base model's speed
    kw = dict(max_length=32, progress=False, precision="fp32")
    np.testing.assert_allclose(predict_logits(back.model, back.tokenizer, test_texts[:20], **kw),
                               predict_logits(teacher.model, teacher.tokenizer, test_texts[:20], **kw), atol=1e-4)


def test_a_run_distils_from_a_lora_llm_teacher(tmp_path):
    from budget.config import load_config
    from budget.controller import Controller
    from budget.money import to_micro
    from tests.utils.projects import write_tiny_project

    llama = build_tiny_llama(tmp_path / "llama")
    project = write_tiny_project(tmp_path, policy="distill",
                                 overrides={"models": {"teacher": str(llama), "teacher_lora_rank": 4}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.fund(to_micro("40"))
        run.run()
        rounds = run.ledger.rounds()
    distill = next(r for r in rounds if r.arm == "distill")
    assert distill.state == "done" and distill.summary.dev is not None and distill.summary.unlabeled_used > 0
    assert is_adapter(tmp_path / "run" / "models" / f"round-{distill.round:03d}" / "teacher")
