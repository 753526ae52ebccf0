"""Prompts that ask a chat LLM for one of a task's labels, and the label distribution read off its answer.

A prompted LLM labels an item with one chat request: a system message naming the labels, a few of the team's
labelled examples as earlier turns (the text from the user, the label from the assistant), then the item,
ending in ``Label:``. Its answer is read from the
log-probabilities of the *first* token it would write (``logprobs`` with ``top_logprobs`` in the OpenAI chat
API; the next-token distribution of a model run in-process): each of the top tokens that begins one label's
name gives that label its probability (a token that begins several shares it among them). One token is all
an OpenAI-compatible server returns probabilities for without generating more, so the local model and a
server read the same thing and the same model gives the same labels either way.

The labels' share of the answer (``matched``) says how well the model followed the prompt: a model that
answers with text outside the label set leaves little of its probability on labels, and the distribution it
gives them is mostly what the few tokens that did match say.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import jinja2
import numpy as np

__all__ = ["DEFAULT_SYSTEM", "DEFAULT_USER", "Example", "LabelPrompt", "LabelScorer", "LabelVote", "Message",
           "TokenAnswer", "label_vote"]

#: the system message: what the model does, the task's description and the only answers it may give
DEFAULT_SYSTEM = ("You label texts for a classification task.{% if instructions %} {{ instructions }}{% endif %} "
                  "Answer with exactly one label from this list and nothing else: {{ labels | join(', ') }}.")
#: the user message: the item (a template of your own may also show ``examples`` here, in one message)
DEFAULT_USER = ("{% for ex in examples %}Text: {{ ex.text }}\nLabel: {{ ex.label }}\n\n{% endfor %}"
                "Text: {{ text }}\nLabel:")

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class Message:
    """One chat message: ``role`` is 'system', 'user' or 'assistant'."""

    role: str
    content: str


@dataclass(frozen=True)
class Example:
    """A labelled example shown in the prompt."""

    text: str
    label: str


@dataclass(frozen=True)
class LabelPrompt:
    """How an item becomes a chat request: the labels, the examples shown and the two Jinja2 templates.

    Parameters
    ----------
    labels : tuple of str
        The task's labels, as the model must answer them.
    examples : tuple of Example, default=()
        Labelled examples shown before the item (few-shot); the same ones for every item.
    user : str, default=DEFAULT_USER
        Jinja2 template of the user message; it sees ``text``, ``labels``, ``examples`` and ``instructions``.
    system : str, default=DEFAULT_SYSTEM
        Jinja2 template of the system message (same variables); empty for none.
    instructions : str, default=""
        What the task is, in a sentence or two (the annotators' guidelines).

    Examples
    --------
    >>> p = LabelPrompt(labels=("negative", "positive"), examples=(Example("Great film.", "positive"),))
    >>> [m.role for m in p.messages("Dull.")]
    ['system', 'user', 'assistant', 'user']
    >>> p.messages("Dull.")[-1].content.splitlines()
    ['Text: Dull.', 'Label:']
    """

    labels: tuple[str, ...]
    examples: tuple[Example, ...] = ()
    user: str = DEFAULT_USER
    system: str = DEFAULT_SYSTEM
    instructions: str = ""
    _compiled: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise ValueError(f"A label prompt needs at least two labels; got {list(self.labels)!r}.")
        try:
            compiled = (_ENV.from_string(self.system) if self.system else None, _ENV.from_string(self.user))
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"The prompt template does not parse (line {exc.lineno}: {exc.message}); fix [llm] "
                             f"prompt.") from exc
        object.__setattr__(self, "_compiled", compiled)

    @property
    def turns(self) -> bool:
        """Whether the examples are earlier turns of the chat (the built-in template: each example a user message
        and the assistant's answer, which a chat model follows far better than examples inside one message); a
        template of your own gets them as ``examples`` instead."""
        return self.user == DEFAULT_USER

    def messages(self, text: str) -> tuple[Message, ...]:
        """The chat request that asks for ``text``'s label."""
        values = {"labels": list(self.labels), "instructions": self.instructions,
                  "examples": [] if self.turns else list(self.examples)}
        system, user = self._compiled
        try:
            out = [Message("system", system.render(**values, text=text))] if system is not None else []
            for ex in self.examples if self.turns else ():
                out += [Message("user", user.render(**values, text=ex.text)), Message("assistant", ex.label)]
            out.append(Message("user", user.render(**values, text=text)))
        except jinja2.UndefinedError as exc:
            raise ValueError(f"The prompt template uses a name it is not given ({exc.message}); it may use text, "
                             f"labels, examples and instructions; fix [llm] prompt.") from exc
        return tuple(out)

    @property
    def fingerprint(self) -> str:
        """16 hex digits naming everything that decides the requests (a cache key)."""
        body = json.dumps([self.labels, [(e.text, e.label) for e in self.examples], self.user, self.system,
                           self.instructions])
        return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenAnswer:
    """What a model said to one request: its first answer token's most likely choices as (token text,
    log-probability), most likely first, and the tokens the request was charged for."""

    top: tuple[tuple[str, float], ...]
    input_tokens: int
    output_tokens: int


class LabelScorer(Protocol):
    """A chat model that answers label requests: in-process (:class:`modeling.prompted.LocalChatModel`) or
    over the OpenAI-compatible API (:class:`connectors.llm_api.ChatEndpoint`)."""

    #: names the model for cache keys: the same name must give the same answers
    name: str

    def answer(self, requests: Sequence[Sequence[Message]], candidates: Sequence[str] = ()) -> list[TokenAnswer]:
        """The first answer token's top choices for each request, in order; a model that can also returns
        the log-probabilities of the tokens that begin ``candidates`` (the labels)."""
        ...


@dataclass(frozen=True)
class LabelVote:
    """The label distribution read from one answer: ``proba`` over the labels (sums to 1) and ``matched``, the
    share of the answer's probability that began a label (0 when none did; ``proba`` is then uniform)."""

    proba: tuple[float, ...]
    matched: float

    @property
    def label(self) -> int:
        """The most likely label's index."""
        return int(np.argmax(self.proba))


def _norm(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


def label_vote(top: Sequence[tuple[str, float]], labels: Sequence[str]) -> LabelVote:
    """The labels' distribution in an answer's top first tokens.

    A token (spaces and case ignored) counts for every label whose name begins with it, or that it begins
    with (``"Pos"`` for ``positive``, ``"entity."`` for ``entity``); one that fits several labels shares its
    probability equally among them, and one that fits none is not counted.

    Examples
    --------
    >>> v = label_vote([(" positive", math.log(0.6)), (" negative", math.log(0.2)), ("The", math.log(0.1))],
    ...                ["negative", "positive"])
    >>> [round(p, 2) for p in v.proba], round(v.matched, 2)
    ([0.25, 0.75], 0.8)
    """
    names = [_norm(label) for label in labels]
    mass = np.zeros(len(names))
    seen: set[str] = set()
    for token, logprob in top:
        t = _norm(token).strip(" \"'`*:.,")
        if not t or token in seen:
            continue
        seen.add(token)
        fits = [k for k, name in enumerate(names) if name.startswith(t) or t.startswith(name)]
        if fits:
            mass[fits] += math.exp(logprob) / len(fits)
    total = float(mass.sum())
    if total <= 0:
        return LabelVote(tuple([1.0 / len(names)] * len(names)), 0.0)
    return LabelVote(tuple(float(x) for x in mass / total), min(1.0, total))
