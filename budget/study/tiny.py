"""A tiny learnable task and tiny BERT models built from config in about a second.

For ``python -m budget.study --quick`` (a study that needs no files) and for the tests. The task:
each sentence is filler words plus one or two keywords of its class; a model that learns the
keywords gets it right. A pair variant splits the sentence in two texts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABELS", "build_tiny_bert", "build_tiny_chat", "make_task", "tiny_tables", "write_project",
           "write_tiny_project"]

LABELS = ("sports", "music", "weather")
_KEYWORDS = {
    "sports": ["goal", "match", "striker", "referee", "league"],
    "music": ["guitar", "album", "concert", "melody", "drummer"],
    "weather": ["rain", "storm", "forecast", "sunny", "thunder"],
}
_FILLER = ("the a an of to in on at with for from by about this that it was is were are be been yesterday today "
           "people city team report morning evening week said told new old big small many few some every "
           "local national long short first last good great").split()


def make_task(n: int, seed: int = 0, pair: bool = False) -> tuple[list, np.ndarray]:
    """``n`` texts (or text pairs) and their label ids relative to :data:`LABELS`."""
    rng = np.random.default_rng(seed)
    texts, ys = [], []
    for _ in range(n):
        y = int(rng.integers(len(LABELS)))
        words = list(rng.choice(_FILLER, size=int(rng.integers(6, 12))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(_KEYWORDS[LABELS[y]])))
        if pair:
            half = len(words) // 2
            texts.append((" ".join(words[:half]), " ".join(words[half:])))
        else:
            texts.append(" ".join(words))
        ys.append(y)
    return texts, np.array(ys, dtype=np.int64)


def _tiny_tokenizer(input_names: list[str]):
    """A word-level WordPiece tokenizer of the task's words, in sorted order (see :func:`build_tiny_bert`)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for words in _KEYWORDS.values() for w in words} | set(_FILLER))
    pieces = sorted({f"##{c}" for w in words for c in w} | {c for w in words for c in w})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = list(dict.fromkeys(specials + pieces + words))  # a one-letter word is also a piece: once
    tk = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tk.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
                                   model_input_names=input_names)


def build_tiny_bert(out: Path, *, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny random BERT (a word-level WordPiece vocabulary of the task's words) to ``out``; returns ``out``.

    The vocabulary is written in sorted order rather than trained: ``tokenizers``' trainer orders ties
    differently from one process to the next, and the same seed must give the same model everywhere.
    """
    from transformers import BertConfig, BertForSequenceClassification, set_seed

    out = Path(out)
    if (out / "config.json").exists():
        return out
    tok = _tiny_tokenizer(["input_ids", "token_type_ids", "attention_mask"])
    tok.save_pretrained(out)
    set_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=hidden * 2, max_position_embeddings=128, num_labels=2,
                     pad_token_id=tok.pad_token_id)
    BertForSequenceClassification(cfg).save_pretrained(out)
    return out


def build_tiny_llama(out: Path, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """Save a tiny random Llama-style decoder with a classification head (it reads the last real token) to
    ``out``: the shape of an 8B LLM teacher, small enough for a test."""
    from transformers import LlamaConfig, LlamaForSequenceClassification, set_seed

    out = Path(out)
    if (out / "config.json").exists():
        return out
    tok = _tiny_tokenizer(["input_ids", "attention_mask"])
    tok.save_pretrained(out)
    set_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=128,
                      num_labels=2, pad_token_id=tok.pad_token_id)
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    return out


_CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}<assistant>{% endif %}")


def build_tiny_chat(out: Path, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """Save a tiny random chat LLM (a Llama-style causal LM with a chat template, the task's word vocabulary) to
    ``out``: a prompted teacher that knows nothing, whose labels are about as good as a guess."""
    from transformers import LlamaConfig, LlamaForCausalLM, set_seed

    out = Path(out)
    if (out / "config.json").exists():
        return out
    tok = _tiny_tokenizer(["input_ids", "attention_mask"])
    tok.chat_template = _CHAT_TEMPLATE
    tok.save_pretrained(out)
    set_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


# --- a tiny simulated project on disk: the keyword task as JSONL, tiny student and teacher, a TOML file ---

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def tiny_tables(data: Path, student: Path, teacher: Path, policy: str = "adaptive") -> dict[str, dict[str, Any]]:
    """The tiny project's tables; tests change them before :func:`write_project`."""
    return {
        "task": {"name": "keywords", "data": str(data), "labels": list(LABELS), "metric": "accuracy"},
        "split": {"seed_size": 40, "test_size": 150, "dev_fraction": 0.3},
        "models": {"student": str(student), "teacher": str(teacher), "max_length": 32, "batch_size": 8,
                   "student_lr": 3e-3, "teacher_lr": 2e-3, "student_epochs": 15, "teacher_epochs": 15,
                   "distill_epochs": 6, "precision": "fp32", "patience": 6},
        # Tiny models cost next to nothing on an A100; a pricier reference makes compute visible.
        "prices": {"per_label": "0.50", "overlap": 1, "reference_gpu_hour": "20000.00"},
        "annotation": {"batch_size": 30, "selection": "entropy"},
        "annotators": {"n": 3, "error_rate": 0.1, "skip_rate": 0.05},
        "policy": {"name": policy, "min_points_per_100usd": 0.5},
    }


def write_project(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """Write ``tables`` as a TOML project file at ``path``."""
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)


def write_tiny_project(root: Path, *, n: int = 600, policy: str = "adaptive", models_dir: Path | None = None,
                       overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write data, models and ``project.toml`` under ``root``; returns the project file's path.

    ``overrides`` updates tables key by key, e.g. ``{"annotation": {"connector": "labelstudio"}}``.
    """
    root = Path(root)
    models_dir = Path(models_dir or root / "models")
    student = build_tiny_bert(models_dir / "student", hidden=32, layers=2)
    teacher = build_tiny_bert(models_dir / "teacher", hidden=64, layers=3, heads=4)
    texts, ys = make_task(n, seed=11)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": LABELS[y]}) + "\n" for t, y in zip(texts, ys, strict=True)))
    tables = tiny_tables(Path(data.name), student, teacher, policy)  # relative to the project file
    for table, values in (overrides or {}).items():
        tables.setdefault(table, {}).update(values)
    return write_project(root / "project.toml", tables)
