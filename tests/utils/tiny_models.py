"""Builders for tiny models and a small learnable task, made from config in about a second.

The task: each sentence is filler words plus one or two keywords of its class; a model that
learns the keywords gets it right. A pair variant splits the sentence in two texts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def build_tiny_bert(out: Path, *, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """Save a tiny random BERT (tokenizer trained on the task's words) to ``out``; returns ``out``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast, set_seed

    out = Path(out)
    if (out / "config.json").exists():
        return out
    corpus = [t if isinstance(t, str) else " ".join(t) for t in make_task(2000, seed=99)[0]]
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tk.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tk.decoder = decoders.WordPiece()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
                                  model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    tok.save_pretrained(out)
    set_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=hidden * 2, max_position_embeddings=128, num_labels=2,
                     pad_token_id=tok.pad_token_id)
    BertForSequenceClassification(cfg).save_pretrained(out)
    return out
