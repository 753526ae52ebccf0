"""A chat LLM run in this process: found by short name, GGUF file or folder (one line when not), and answering
a label request with its first token's choices, the labels' own tokens among them."""

import pytest

from modeling.exceptions import ModelNotFoundError
from modeling.prompted import LocalChatModel, resolve_chat_model
from modeling.prompts import LabelPrompt, label_vote


def test_an_unknown_chat_model_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_chat_model(str(tmp_path / "nothing.gguf"))
    assert "fix [llm] model" in str(info.value) and "smollm2-135m" in str(info.value)


def test_a_gguf_file_is_its_folder_and_name(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_chat_model(str(tmp_path / "m.gguf")) == (str(tmp_path), "m.gguf")


@pytest.mark.slow
def test_smollm2_answers_with_the_labels_tokens_and_counts_its_prompt():
    model = LocalChatModel.load("smollm2-135m", device="cpu", batch_size=2)
    prompt = LabelPrompt(("negative", "positive"))
    requests = [prompt.messages(t) for t in ("I loved it.", "Awful, never again.", "Fine.")]
    answers = model.answer(requests, prompt.labels)
    for request, answer in zip(requests, answers, strict=True):
        words = {token.strip().lower() for token, _ in answer.top}
        assert {"negative", "positive"} <= words or {"neg", "pos"} <= words
        assert answer.input_tokens == model.count_tokens(request) and answer.output_tokens == 1
        assert label_vote(answer.top, prompt.labels).matched > 0
