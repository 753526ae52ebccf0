"""A prompted LLM's label distributions over many texts: chunked, cached on disk, stopped by money, resumable.

Each chunk of texts is asked of the model (:class:`modeling.prompts.LabelScorer`) and its answers are written
to an SQLite file in ``cache_dir`` (one row per model, prompt and text) before the next chunk starts, so a
pass killed half-way, or stopped by money and given more, resumes at the first text not answered and never
asks the model twice (a provider would bill twice). What the pass costs is priced from the tokens the model
was charged for, cached answers included: the caller charges the whole pass once, when it is recorded, as
it does a teacher's logits (:func:`modeling.infer.soft_labels`). Before a request is sent its tokens are
estimated (``estimate_tokens``), and the pass stops where the next request would take the money past
``limit_micro``.

``modeling`` does not import ``budget``: ``price(input_tokens, output_tokens)`` turns tokens into
micro-dollars.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from modeling.prompts import LabelPrompt, LabelScorer, Message, label_vote

__all__ = ["DEFAULT_CHUNK", "LLMVotes", "llm_votes", "rough_tokens"]

DEFAULT_CHUNK = 32  # texts asked between two writes to disk: what a kill can lose


@dataclass(frozen=True)
class LLMVotes:
    """What the model said of a prefix of the texts asked.

    ``proba`` (n x labels) and ``matched`` (n) per answered text (:class:`modeling.prompts.LabelVote`),
    the tokens every answer was charged for (read back from disk for ``cached`` of them), and ``stopped``:
    'budget' when the money stopped the pass before the last text.
    """

    proba: np.ndarray
    matched: np.ndarray
    input_tokens: int
    output_tokens: int
    cached: int = 0
    stopped: str | None = None

    @property
    def n_items(self) -> int:
        """Texts answered."""
        return len(self.matched)

    @property
    def hard(self) -> np.ndarray:
        """The most likely label of each answered text."""
        return self.proba.argmax(axis=1)


def rough_tokens(messages: Sequence[Message]) -> int:
    """A generous count of a request's input tokens for a model whose tokenizer is not here: a token per
    three bytes of text (English runs about four), and eight per message for the chat template's markers."""
    return sum(-(-len(m.content.encode()) // 3) + 8 for m in messages)


class _AnswerStore:
    """Answers kept in one SQLite file, one row per (model, prompt, text): a chunk is written in one
    transaction, so a kill keeps every chunk before it and none of the one it interrupted."""

    def __init__(self, cache_dir: Path, model: str, prompt: LabelPrompt) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(cache_dir / "llm-answers.sqlite", timeout=60)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, proba TEXT NOT NULL, "
                         "matched REAL NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL)")
        self._prefix = json.dumps([model, prompt.fingerprint])

    def key(self, text: str) -> str:
        return hashlib.sha256((self._prefix + text).encode()).hexdigest()[:32]

    def get(self, keys: Sequence[str]) -> dict[str, tuple[list[float], float, int, int]]:
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(f"SELECT key, proba, matched, input_tokens, output_tokens FROM answers "  # noqa: S608
                                f"WHERE key IN ({marks})", list(keys)).fetchall()
        return {k: (json.loads(p), m, i, o) for k, p, m, i, o in rows}

    def put(self, rows: Sequence[tuple[str, list[float], float, int, int]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                                 [(k, json.dumps(p), m, i, o) for k, p, m, i, o in rows])

    def close(self) -> None:
        self._db.close()


def _affordable(estimates: Sequence[int], spent: int, limit: int | None) -> int:
    """How many of the next requests (costing ``estimates``) fit under ``limit`` after ``spent``."""
    if limit is None:
        return len(estimates)
    total, n = spent, 0
    for cost in estimates:
        if total + cost > limit:
            break
        total, n = total + cost, n + 1
    return n


def llm_votes(scorer: LabelScorer, prompt: LabelPrompt, texts: Sequence[str], *, cache_dir: Path,
              price: Callable[[int, int], int], limit_micro: int | None = None,
              estimate_tokens: Callable[[Sequence[Message]], int] = rough_tokens,
              chunk_size: int = DEFAULT_CHUNK, progress: bool = False) -> LLMVotes:
    """The model's label distribution for each of ``texts``, as far as ``limit_micro`` pays.

    Parameters
    ----------
    scorer : LabelScorer
        The model: in this process or behind an OpenAI-compatible server.
    prompt : LabelPrompt
        How a text becomes a request.
    texts : sequence of str
        What to label, in order; the pass answers a prefix of them.
    cache_dir : Path
        Where answered chunks are kept (shared by runs and passes: the key is the model, prompt and texts).
    price : callable
        ``price(input_tokens, output_tokens) -> micro-dollars``.
    limit_micro : int, optional
        The most the pass may cost, cached chunks included; None for no limit.
    estimate_tokens : callable, default=rough_tokens
        Input tokens of a request, counted before it is sent (the model's own tokenizer when it is here).
    chunk_size : int, default=DEFAULT_CHUNK
        Texts per chunk.
    progress : bool, default=False
        Show a progress bar.
    """
    store = _AnswerStore(cache_dir, scorer.name, prompt)
    answered: list[tuple[list[float], float, int, int]] = []
    cached, stopped = 0, None
    try:
        for start in tqdm(range(0, len(texts), chunk_size), desc=f"LLM labels ({scorer.name.split('@')[0]})",
                          unit="chunk", disable=not progress):
            chunk = list(texts[start:start + chunk_size])
            keys = [store.key(t) for t in chunk]
            known = store.get(keys)
            missing = [j for j, k in enumerate(keys) if k not in known]
            requests = [prompt.messages(chunk[j]) for j in missing]
            spent = price(sum(a[2] for a in answered), sum(a[3] for a in answered))
            estimates = [price(estimate_tokens(r), 1) for r in requests]
            # the chunk's cached answers are charged with it: they count against the money before new ones
            spent += sum(price(known[k][2], known[k][3]) for k in keys if k in known)
            n = _affordable(estimates, spent, limit_micro)
            if n < len(missing):
                stopped = "budget"
                missing, requests = missing[:n], requests[:n]
            new = []
            if requests:
                for j, a in zip(missing, scorer.answer(requests, prompt.labels), strict=True):
                    vote = label_vote(a.top, prompt.labels)
                    new.append((keys[j], list(vote.proba), vote.matched, a.input_tokens, a.output_tokens))
                store.put(new)
                known.update({k: rest for k, *rest in new})
            asked_now = {row[0] for row in new}
            for k in keys:  # the answered prefix of the chunk, in order
                if k not in known:
                    break
                answered.append(known[k])
                cached += k not in asked_now
            if stopped or len(answered) < start + len(chunk):
                stopped = stopped or "budget"
                break
    finally:
        store.close()
    k = len(prompt.labels)
    return LLMVotes(np.array([a[0] for a in answered]).reshape(-1, k), np.array([a[1] for a in answered]),
                    sum(a[2] for a in answered), sum(a[3] for a in answered), cached, stopped)
