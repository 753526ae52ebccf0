"""A prompted LLM as the teacher ([models] teacher_mode = "prompt"): a distillation with no fine-tune, its soft
labels the LLM's answers, charged by the tokens the model counted; a crash half-way through its pass resumes,
asking no item twice and charging the pass once."""

import pytest

from budget.config import ConfigError, load_config
from budget.controller import Controller
from budget.policy import Decision, Policy, PolicyState
from budget.prices import TokenPrice, token_cost
from budget.round import prompted
from budget.study.tiny import build_tiny_chat, write_tiny_project

PRICES = {"input_per_million": "2.50", "output_per_million": "10.00"}  # a hosted model's list price


class _DistillThePool(Policy):
    def decide(self, state: PolicyState) -> Decision:
        if [r.arm for r in state.rounds] == ["baseline"]:
            return self._distill(state, state.available_micro, "the whole pool", teachers=3)
        return Decision("stop", reason="done")


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return build_tiny_chat(tmp_path_factory.mktemp("chat") / "tiny-chat")


def _project(tmp_path, chat_dir, **llm):
    return load_config(write_tiny_project(tmp_path / "task", n=300, overrides={
        "split": {"test_size": 60}, "models": {"teacher_mode": "prompt", "min_steps": 0},
        "llm": {"model": str(chat_dir), "examples": 3, **PRICES, **llm}}))


class _Counting:
    """The run's chat model, counting the items it is asked and failing once after ``fail_after`` of them."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.name, self.fail_after, self.asked = inner, inner.name, fail_after, 0

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    def answer(self, requests, candidates=()):
        if self.fail_after is not None and self.asked + len(requests) > self.fail_after:
            self.fail_after = None
            raise RuntimeError("the machine went down")
        self.asked += len(requests)
        return self.inner.answer(requests, candidates)


def test_a_prompted_teacher_distils_with_no_fine_tune_and_is_charged_by_its_tokens(tmp_path, chat_dir):
    config = _project(tmp_path, chat_dir)
    with Controller(config, tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.policy = _DistillThePool()
        run.fund(2_000_000)  # $2
        run.run()
        step = run.ledger.step_result("round-1:llm_labels")
        assert run.ledger.step_result("round-1:teacher") is None  # nothing fine-tuned
        assert run.ledger.step_result("round-1:student") is not None
        unlabeled = len(run.ctx.split.unlabeled)
        dev_items = len(run.ctx.snapshot().dev_ids)
        totals = run.ledger.totals()
    (phase,) = step["phases"]
    assert phase["name"] == "llm_labels" and phase["kind"] == "llm"
    # one output token an item: the pool's, and the dev set's, which give the LLM its own dev score
    assert phase["output_tokens"] == phase["examples"] == step["n_items"] + dev_items
    assert 0 <= step["teacher_dev"] <= 1
    assert step["cost_micro"] == token_cost(TokenPrice.per_million("2.50", "10.00"), phase["tokens"],
                                            phase["output_tokens"])
    assert step["n_items"] == unlabeled  # $2 pays for the whole pool at these prices
    assert totals.spent <= totals.granted and totals.reserved == 0


def test_a_crash_during_the_llms_pass_resumes_asking_no_item_twice_and_charges_it_once(tmp_path, chat_dir,
                                                                                      monkeypatch):
    config = _project(tmp_path, chat_dir)
    real = prompted.chat_model(config)
    whole_model = _Counting(real)
    monkeypatch.setattr(prompted, "chat_model", lambda _: whole_model)
    with Controller(config, tmp_path / "whole", progress=False, say=lambda _: None) as run:
        run.policy = _DistillThePool()
        run.fund(2_000_000)  # $2
        run.run()
        whole = run.ledger.step_result("round-1:llm_labels")
    crashing = _Counting(real, fail_after=100)
    monkeypatch.setattr(prompted, "chat_model", lambda _: crashing)
    with Controller(config, tmp_path / "crashed", progress=False, say=lambda _: None) as run:
        run.policy = _DistillThePool()
        run.fund(2_000_000)  # $2
        with pytest.raises(RuntimeError, match="went down"):
            run.run()
    assert 0 < crashing.asked <= 100
    with Controller(config, tmp_path / "crashed", progress=False, say=lambda _: None) as run:
        run.policy = _DistillThePool()
        run.run()
        resumed = run.ledger.step_result("round-1:llm_labels")
        charged = [e.amount_micro for e in run.ledger.entries() if e.key == "settle:round-1:llm_labels"]
    # every item (the pool's and the dev set's) asked once, across the crash
    assert crashing.asked == whole_model.asked == whole["phases"][0]["examples"]
    assert resumed["cost_micro"] == whole["cost_micro"] and resumed["phases"] == whole["phases"]
    assert charged == [whole["cost_micro"]]


def test_a_prompted_teacher_needs_an_llm(tmp_path, chat_dir):
    with pytest.raises(ConfigError, match=r"teacher_mode = 'prompt' .* needs the \[llm\] table"):
        load_config(write_tiny_project(tmp_path / "task", n=60, overrides={"models": {"teacher_mode": "prompt"}}))


def test_the_studys_llm_regimes_make_the_prompted_llm_the_teacher_at_their_token_prices(tmp_path, chat_dir):
    from budget.study.regimes import in_regime

    project = load_config(write_tiny_project(tmp_path / "task", n=200, policy="distill", overrides={
        "split": {"test_size": 60}, "models": {"min_steps": 0}, "llm": {"model": str(chat_dir), **PRICES}}))
    assert not in_regime(project, "cheap", {}).prompted
    config = in_regime(project, "llm", {})
    assert config.prompted and (config.llm.input_per_million, config.llm.output_per_million) == ("0.15", "0.60")
    with Controller(config, tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.fund(1_000_000)
        run.run()
        step = run.ledger.step_result("round-1:llm_labels")
    (phase,) = step["phases"]
    assert step["cost_micro"] == token_cost(TokenPrice.per_million("0.15", "0.60"), phase["tokens"],
                                            phase["output_tokens"])


@pytest.mark.parametrize(("text", "cut", "shown"), [
    ("short text", 100, "short text"),
    ("one two three four five", 12, "one two ..."),  # cut at a word's end, marked
    (("first of a pair", "second of a pair"), 9, "first of ...\nsecond ..."),
    ("a long article " * 100, 0, "a long article " * 100),  # 0: whole
])
def test_a_prompt_shows_each_text_cut_to_max_chars_and_a_pairs_texts_on_two_lines(text, cut, shown):
    assert prompted.item_text(text, cut) == shown
