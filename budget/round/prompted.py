"""A distillation's teacher when it is a prompted chat LLM (``[models] teacher_mode = "prompt"``): no fine-tune;
the ``[llm]`` model labels the round's unlabeled items from a prompt with a few of the team's labels, and its
label distributions are the soft labels the student is distilled from.

The prompt's examples are the seed's training items (never its dev items: the dev set judges the student the
LLM teaches), every label shown before any is shown twice, in a draw fixed by the run's seed; so every round
asks the same prompt and an item asked once is never asked (nor paid for) again (:mod:`modeling.llm_labels`
keeps the answers). Its answers are charged by the tokens the model counted, at ``[llm]``'s prices, as one
compute step: a kill during the pass resumes with the answers already on disk and charges the pass once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from annotation.pool import Pool, PoolSplit, dev_membership
from budget.config import ProjectConfig
from budget.prices import token_cost
from budget.round.context import RunContext
from budget.round.results import SoftLabelResult
from modeling.llm_labels import llm_votes, rough_tokens
from modeling.meter import PhaseRecord
from modeling.metrics import score
from modeling.prompts import DEFAULT_USER, Example, LabelPrompt, LabelScorer, Message

__all__ = ["chat_model", "item_text", "label_prompt", "llm_label_step", "request_tokens"]

#: a floor under an LLM's probabilities before they become logits: a label it gave nothing stays possible
_FLOOR = 1e-4
_LOADED: dict[tuple[str, str, int], LabelScorer] = {}  # in-process models, loaded once per process


def item_text(text: str | Sequence[str], max_chars: int = 0) -> str:
    """An item as the prompt shows it: a pair's two texts on two lines, each cut to ``max_chars`` characters
    (at a word's end, marked with '...'; 0: whole)."""
    parts = [text] if isinstance(text, str) else list(text)
    if max_chars:
        parts = [p if len(p) <= max_chars else p[:max_chars].rsplit(" ", 1)[0] + " ..." for p in parts]
    return "\n".join(parts)


def seed_examples(config: ProjectConfig, pool: Pool, split: PoolSplit, seed: int) -> tuple[Example, ...]:
    """Up to ``[llm] examples`` of the seed's training items, every label before any twice, in a seeded order."""
    train = [int(i) for i in split.seed
             if not dev_membership(pool.item_hash(int(i)), config.split.dev_fraction) and pool.gold[int(i)] >= 0]
    order = [train[j] for j in np.random.default_rng(seed).permutation(len(train))]
    by_label: dict[int, list[int]] = {}
    for i in order:
        by_label.setdefault(int(pool.gold[i]), []).append(i)
    picked: list[int] = []
    while len(picked) < min(config.llm.examples, len(order)):
        for items in by_label.values():
            if items and len(picked) < config.llm.examples:
                picked.append(items.pop(0))
    cut = config.llm.max_chars
    return tuple(Example(item_text(pool.texts[i], cut), pool.labels[pool.gold[i]]) for i in picked)


def label_prompt(config: ProjectConfig, pool: Pool, split: PoolSplit, seed: int) -> LabelPrompt:
    """The run's prompt: the task's labels, the seed's examples, ``[llm] instructions`` and ``[llm] prompt``
    (a Jinja2 file beside the project file) or the built-in template."""
    user = DEFAULT_USER
    if config.llm.prompt:
        path = Path(config.llm.prompt)
        if not path.is_absolute() and config.path is not None:
            path = config.path.parent / path
        user = path.read_text(encoding="utf-8")
    return LabelPrompt(tuple(pool.labels), seed_examples(config, pool, split, seed), user=user,
                       instructions=config.llm.instructions)


def chat_model(config: ProjectConfig) -> LabelScorer:
    """The ``[llm]`` model: over the OpenAI-compatible API at ``url``, or loaded in this process (once)."""
    llm = config.llm
    if llm.url:
        from connectors.llm_api import ChatEndpoint

        return ChatEndpoint(llm.url, llm.model, api_key_env=llm.api_key_env, timeout=llm.timeout,
                            retries=llm.retries)
    key = (llm.model, llm.device, llm.batch_size)
    if key not in _LOADED:
        from modeling.prompted import LocalChatModel

        _LOADED[key] = LocalChatModel.load(llm.model, device=llm.device, batch_size=llm.batch_size)
    return _LOADED[key]


def _counter(config: ProjectConfig) -> Callable[[Sequence[Message]], int]:
    """Counts a request's input tokens: the model's own tokenizer in this process, else generously."""
    if config.llm.url:
        return rough_tokens
    return chat_model(config).count_tokens  # type: ignore[attr-defined]


def request_tokens(config: ProjectConfig, prompt: LabelPrompt, texts: Sequence) -> float:
    """Mean input tokens of the requests for ``texts`` (for cost estimates; at least one text)."""
    count = _counter(config)
    cut = config.llm.max_chars
    return float(np.mean([count(prompt.messages(item_text(t, cut))) for t in texts])) if texts else 0.0


def llm_label_step(ctx: RunContext, rnd: int, out: Path, items: np.ndarray, texts: list,
                   student_need: Callable[[int], int], dev: tuple[list, np.ndarray]):
    """The compute step of a prompted teacher: its labels on the ``dev`` items first (its own dev score, which a
    fine-tuned teacher gets from its training: a few dozen requests), then its label distributions on as many of
    ``texts`` (pool ``items``) as the money pays for beside the ``student_need`` of a distillation over them,
    saved as logits where a fine-tuned teacher's are (so the round's student, routing and reports read them
    alike)."""
    def work(limit: int, more_money: Callable[[int], int]) -> tuple[SoftLabelResult, list[PhaseRecord]]:
        config = ctx.config
        scale = ctx.pricer.scale.get("llm_labels", 1.0)
        prices = config.llm.token_price()

        def price(i: int, o: int) -> int:
            return token_cost(prices, i, o, scale)

        prompt = label_prompt(config, ctx.pool, ctx.split, ctx.seed)
        count = _counter(config)
        cut = config.llm.max_chars
        asked, dev_asked = [item_text(t, cut) for t in texts], [item_text(t, cut) for t in dev[0]]
        whole = sum(price(count(prompt.messages(t)), 1) for t in [*dev_asked, *asked]) + student_need(len(asked))
        if whole > limit:
            limit += more_money(whole - limit)
        cache = ctx.phase_cache.soft_labels_dir if ctx.phase_cache else ctx.run_dir / "cache"
        model = chat_model(config)
        judged = llm_votes(model, prompt, dev_asked, cache_dir=cache, price=price,
                           limit_micro=max(0, limit - student_need(len(asked))), estimate_tokens=count)
        spent = price(judged.input_tokens, judged.output_tokens)
        votes = llm_votes(model, prompt, asked, cache_dir=cache, price=price,
                          limit_micro=max(0, limit - spent - student_need(len(asked))), estimate_tokens=count,
                          progress=ctx.progress)
        phase = PhaseRecord("llm_labels", "llm", model.name, 0, examples=judged.n_items + votes.n_items,
                            tokens=judged.input_tokens + votes.input_tokens,
                            output_tokens=judged.output_tokens + votes.output_tokens)
        if votes.n_items == 0:
            return SoftLabelResult(n_items=0, stopped="budget"), [phase]
        teacher_dev = (score(dev[1], judged.hard, ctx.pool.labels).get(config.task.metric)
                       if judged.n_items == len(dev_asked) and dev_asked else None)
        folder = out / "llm"
        folder.mkdir(parents=True, exist_ok=True)
        logits_file, items_file = folder / "soft-labels.npy", folder / "items.npy"
        np.save(logits_file, np.log(np.clip(votes.proba, _FLOOR, 1.0)).astype(np.float32))
        np.save(items_file, np.asarray(items[:votes.n_items], dtype=np.int64))
        return SoftLabelResult(soft_labels=str(logits_file), n_items=votes.n_items, items=str(items_file),
                               processes=1, stopped=votes.stopped, teacher_dev=teacher_dev), [phase]
    return work
