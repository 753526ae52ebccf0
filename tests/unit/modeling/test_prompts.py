"""Label requests to a chat LLM and the label distribution read off its first answer token."""

import math

import pytest

from modeling.prompts import Example, LabelPrompt, label_vote

LABELS = ("negative", "neutral", "positive")


def _lp(p: float) -> float:
    return math.log(p)


@pytest.mark.parametrize(("top", "proba", "matched"), [
    # the label's own word, with the space and capital a chat model writes
    ([(" Positive", _lp(0.5)), (" negative", _lp(0.3)), ("I", _lp(0.2))], (0.375, 0.0, 0.625), 0.8),
    # a token that begins a label's name ("pos") counts for it; one that begins two ("ne") is shared
    ([("pos", _lp(0.4)), ("ne", _lp(0.4))], (0.25, 0.25, 0.5), 0.8),
    # a token that goes on past the name ("neutral.") still names it
    ([("neutral.", _lp(0.9))], (0.0, 1.0, 0.0), 0.9),
    # nothing on the label set: uniform, and the answer's share on labels says so
    ([("The", _lp(0.7)), ("This", _lp(0.2))], (1 / 3, 1 / 3, 1 / 3), 0.0),
    # the same token returned twice (a top-k list and the labels' own tokens) counts once
    ([("positive", _lp(0.6)), ("positive", _lp(0.6)), ("negative", _lp(0.2))], (0.25, 0.0, 0.75), 0.8),
])
def test_an_answers_first_token_gives_each_label_its_probability(top, proba, matched):
    vote = label_vote(top, LABELS)
    assert vote.proba == pytest.approx(proba) and vote.matched == pytest.approx(matched)
    assert sum(vote.proba) == pytest.approx(1.0)


def test_labels_with_underscores_match_the_words_a_model_writes():
    vote = label_vote([(" not", _lp(0.7)), (" entail", _lp(0.2))], ["entailment", "not_entailment"])
    assert vote.label == 1 and vote.proba == pytest.approx((0.2 / 0.9, 0.7 / 0.9))


def test_a_prompt_shows_the_labels_the_examples_as_earlier_turns_and_the_item_last():
    prompt = LabelPrompt(LABELS, examples=(Example("Loved it.", "positive"),), instructions="Movie reviews.")
    system, example, answer, item = prompt.messages("It was fine.")
    assert system.role == "system" and "negative, neutral, positive" in system.content
    assert "Movie reviews." in system.content
    assert (example.role, example.content, answer.role, answer.content) == (
        "user", "Text: Loved it.\nLabel:", "assistant", "positive")
    assert (item.role, item.content) == ("user", "Text: It was fine.\nLabel:")
    # a template of your own gets the examples to place itself, in one message
    own = LabelPrompt(LABELS, examples=prompt.examples, user="{{ examples[0].text }} / {{ text }}")
    assert [m.content for m in own.messages("Fine.")][1:] == ["Loved it. / Fine."]
    assert prompt.fingerprint != LabelPrompt(LABELS).fingerprint  # examples change what the model is asked
    assert prompt.fingerprint == LabelPrompt(LABELS, examples=(Example("Loved it.", "positive"),),
                                             instructions="Movie reviews.").fingerprint


@pytest.mark.parametrize(("user", "says"), [
    ("Text: {{ text }\nLabel:", "does not parse"),
    ("Text: {{ txt }}\nLabel:", "uses a name it is not given"),
])
def test_a_broken_template_is_one_line_naming_the_fix(user, says):
    with pytest.raises(ValueError) as info:
        LabelPrompt(LABELS, user=user).messages("x")
    assert says in str(info.value) and "fix [llm] prompt" in str(info.value) and "\n" not in str(info.value)


def test_a_prompt_needs_two_labels():
    with pytest.raises(ValueError, match="at least two labels"):
        LabelPrompt(("only",))
