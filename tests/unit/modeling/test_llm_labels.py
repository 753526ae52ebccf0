"""A prompted LLM's labelling pass: never past its money, never asks (and so never bills) a text twice, and a
pass killed half-way resumes to the same labels and the same tokens as one that ran through."""

from collections.abc import Sequence

import numpy as np
import pytest

from budget.prices import TokenPrice, token_cost
from modeling.llm_labels import llm_votes, rough_tokens
from modeling.prompts import LabelPrompt, Message, TokenAnswer

LABELS = ("negative", "positive")
PRICE = TokenPrice.per_million("2.50", "10.00")  # a hosted model's list price: 2.5 micro-dollars an input token
TEXTS = [f"item {i} is {'good' if i % 3 else 'bad'}" for i in range(50)]


class Killed(Exception):
    pass


class WordModel:
    """A deterministic chat model that reads the item's last line: 'good' → positive. It counts the requests
    it answered and can be killed after ``die_after`` of them."""

    name = "word-model@test"

    def __init__(self, die_after: int | None = None) -> None:
        self.asked: list[str] = []
        self.die_after = die_after

    def answer(self, requests: Sequence[Sequence[Message]], candidates: Sequence[str] = ()) -> list[TokenAnswer]:
        out = []
        for messages in requests:
            if self.die_after is not None and len(self.asked) >= self.die_after:
                raise Killed()
            text = messages[-1].content.splitlines()[-2].removeprefix("Text: ")
            self.asked.append(text)
            good = "good" in text
            out.append(TokenAnswer(((" positive", np.log(0.9 if good else 0.2)),
                                    (" negative", np.log(0.1 if good else 0.8))),
                                   input_tokens=rough_tokens(messages), output_tokens=1))
        return out


def _price(i: int, o: int) -> int:
    return token_cost(PRICE, i, o)


def _pass(model, tmp_path, limit=None, chunk_size=8):
    return llm_votes(model, LabelPrompt(LABELS), TEXTS, cache_dir=tmp_path / "cache", price=_price,
                     limit_micro=limit, chunk_size=chunk_size)


def test_a_pass_labels_every_text_and_counts_the_tokens_it_was_charged(tmp_path):
    model = WordModel()
    votes = _pass(model, tmp_path)
    assert votes.n_items == len(TEXTS) and votes.stopped is None and votes.cached == 0
    assert list(votes.hard) == [int("good" in t) for t in TEXTS]
    assert votes.input_tokens == sum(rough_tokens(LabelPrompt(LABELS).messages(t)) for t in TEXTS)
    assert votes.output_tokens == len(TEXTS) and len(model.asked) == len(TEXTS)


@pytest.mark.parametrize("die_after", [0, 5, 8, 21, 49])
def test_a_pass_killed_half_way_resumes_asking_only_what_it_had_not_and_costs_the_same(tmp_path, die_after):
    whole = _pass(WordModel(), tmp_path / "whole")
    with pytest.raises(Killed):
        _pass(WordModel(die_after=die_after), tmp_path)
    again = WordModel()
    resumed = _pass(again, tmp_path)
    kept = die_after // 8 * 8  # the chunks written before the kill
    assert len(again.asked) == len(TEXTS) - kept and resumed.cached == kept
    assert (resumed.input_tokens, resumed.output_tokens) == (whole.input_tokens, whole.output_tokens)
    np.testing.assert_array_equal(resumed.proba, whole.proba)


@pytest.mark.parametrize("limit", [0, 1, 300, 1_000, 2_345, 10_000])
def test_the_money_stops_a_pass_before_it_would_cost_more_than_its_limit(tmp_path, limit):
    votes = _pass(WordModel(), tmp_path, limit=limit)
    assert _price(votes.input_tokens, votes.output_tokens) <= limit
    # the next text would have passed the limit
    if votes.n_items < len(TEXTS):
        assert votes.stopped == "budget"
        nxt = rough_tokens(LabelPrompt(LABELS).messages(TEXTS[votes.n_items]))
        assert _price(votes.input_tokens + nxt, votes.output_tokens + 1) > limit


def test_a_pass_the_money_stopped_goes_on_with_more_and_asks_nothing_twice(tmp_path):
    model = WordModel()
    first = _pass(model, tmp_path, limit=2_000)
    assert 0 < first.n_items < len(TEXTS) and first.n_items % 8  # it stopped inside a chunk
    second = _pass(model, tmp_path)
    assert second.n_items == len(TEXTS) and second.cached == first.n_items
    assert sorted(model.asked) == sorted(TEXTS) and len(set(model.asked)) == len(TEXTS)


def test_another_prompt_or_model_asks_again(tmp_path):
    _pass(WordModel(), tmp_path)
    other = WordModel()
    other.name = "another-model@test"
    assert _pass(other, tmp_path).cached == 0 and len(other.asked) == len(TEXTS)
