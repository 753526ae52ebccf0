"""A prompted LLM behind a real OpenAI-compatible server (llama.cpp's, serving SmolLM2-135M-Instruct): it
labels texts as the same model run in this process does, a wrong key or a wrong model name is one line naming
the fix with the key never shown, and a labelling pass killed half-way resumes, asking nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from budget.prices import TokenPrice, token_cost
from connectors.exceptions import AuthError, PlatformError
from connectors.llm_api import ChatEndpoint
from modeling.llm_labels import llm_votes
from modeling.prompts import Example, LabelPrompt

pytestmark = pytest.mark.integration

PROMPT = LabelPrompt(("negative", "positive"), examples=(Example("A wonderful, moving film.", "positive"),
                                                        Example("Boring and far too long.", "negative")))
TEXTS = ["I loved every minute of it.", "The worst meal I have had in years.", "Terrible acting, awful plot.",
         "A delight from start to finish.", "Nothing works and the staff were rude.", "Best purchase this year."]
PRICE = TokenPrice.per_million("0.15", "0.60")


def _endpoint(server, **kw) -> ChatEndpoint:
    os.environ["AOD_TEST_LLM_KEY"] = server.key
    return ChatEndpoint(server.url, server.model, api_key_env="AOD_TEST_LLM_KEY", **kw)


def test_the_server_answers_with_the_first_tokens_probabilities_and_the_tokens_it_charged(llm_server):
    answers = _endpoint(llm_server).answer([PROMPT.messages(t) for t in TEXTS])
    assert len(answers) == len(TEXTS)
    for a in answers:
        assert len(a.top) == 20 and all(lp <= 0 for _, lp in a.top)
        assert a.top == tuple(sorted(a.top, key=lambda x: -x[1]))  # most likely first
        assert 60 < a.input_tokens < 200 and a.output_tokens == 1


@pytest.mark.slow
def test_the_server_and_the_same_model_in_process_give_the_same_labels(llm_server):
    from modeling.prompted import LocalChatModel

    served = _endpoint(llm_server).answer([PROMPT.messages(t) for t in TEXTS])
    local = LocalChatModel.load("smollm2-135m", device="cpu").answer([PROMPT.messages(t) for t in TEXTS])
    for s, loc in zip(served, local, strict=True):
        # the same chat template: the same prompt tokens; Q4_1 arithmetic in llama.cpp against the weights
        # dequantised to fp32 in torch: the same most likely tokens, close log-probabilities
        assert s.input_tokens == loc.input_tokens
        assert s.top[0][0] == loc.top[0][0] and s.top[0][1] == pytest.approx(loc.top[0][1], abs=0.25)


def test_a_wrong_key_is_one_line_naming_the_variable_and_never_showing_the_key(llm_server, monkeypatch):
    monkeypatch.setenv("AOD_TEST_LLM_KEY", "wrong-key-abcdef123456")
    endpoint = ChatEndpoint(llm_server.url, llm_server.model, api_key_env="AOD_TEST_LLM_KEY", retries=1)
    with pytest.raises(AuthError) as info:
        endpoint.answer([PROMPT.messages(TEXTS[0])])
    message = str(info.value)
    assert message.startswith(f"The LLM server at {llm_server.url} refused the API key (401)")
    assert "set AOD_TEST_LLM_KEY to" in message and "wrong-key-abcdef123456" not in message
    assert "\n" not in message


def test_a_path_that_is_not_the_api_is_one_line_naming_the_url_to_fix(llm_server):
    endpoint = _endpoint(llm_server)
    endpoint.url = llm_server.url.removesuffix("/v1") + "/api"
    with pytest.raises(PlatformError) as info:
        endpoint.answer([PROMPT.messages(TEXTS[0])])
    assert info.value.status == 404 and "check [llm] url (it ends in /v1)" in str(info.value)


_PASS = textwrap.dedent("""
    import os, sys
    from budget.prices import TokenPrice, token_cost
    from connectors.llm_api import ChatEndpoint
    from modeling.llm_labels import llm_votes
    from modeling.prompts import LabelPrompt
    url, model, cache = sys.argv[1:4]
    texts = [f"Review {i}: {'great' if i % 2 else 'awful'} service." for i in range(24)]
    votes = llm_votes(ChatEndpoint(url, model, api_key_env="AOD_TEST_LLM_KEY"),
                      LabelPrompt(("negative", "positive")), texts, cache_dir=__import__("pathlib").Path(cache),
                      price=lambda i, o: token_cost(TokenPrice.per_million("0.15", "0.60"), i, o), chunk_size=2)
    print(votes.n_items, votes.cached, votes.input_tokens, votes.output_tokens)
""")


def test_a_pass_killed_half_way_resumes_and_every_text_is_asked_and_charged_once(llm_server, tmp_path):
    env = {**os.environ, "AOD_TEST_LLM_KEY": llm_server.key}
    args = [sys.executable, "-c", _PASS, llm_server.url, llm_server.model]
    whole = subprocess.run([*args, str(tmp_path / "whole")], env=env, capture_output=True, text=True, timeout=300)
    n, cached, tokens_in, tokens_out = map(int, whole.stdout.split())
    assert (n, cached) == (24, 0)
    db = tmp_path / "killed" / "llm-answers.sqlite"
    proc = subprocess.Popen([*args, str(tmp_path / "killed")], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (db.exists() and _rows(db) >= 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _rows(db)
    assert 4 <= done < 24, "the kill came after the pass had finished; nothing resumed"
    again = subprocess.run([*args, str(tmp_path / "killed")], env=env, capture_output=True, text=True, timeout=300)
    assert list(map(int, again.stdout.split())) == [24, done, tokens_in, tokens_out]


def _rows(db) -> int:
    import sqlite3

    with sqlite3.connect(db, timeout=30) as c:
        try:
            return c.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


def test_a_labelling_pass_over_the_server_is_charged_by_the_tokens_it_reports(llm_server, tmp_path):
    votes = llm_votes(_endpoint(llm_server), PROMPT, TEXTS, cache_dir=tmp_path,
                      price=lambda i, o: token_cost(PRICE, i, o))
    assert votes.n_items == len(TEXTS) and votes.output_tokens == len(TEXTS)
    assert np.allclose(votes.proba.sum(axis=1), 1.0)
    assert token_cost(PRICE, votes.input_tokens, votes.output_tokens) > 0


def test_a_run_taught_by_the_llm_behind_the_server_distils_and_pays_by_its_tokens(llm_server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from budget.controller.cli import cli
    from budget.ledger import Ledger
    from budget.study.tiny import write_tiny_project

    monkeypatch.setenv("AOD_TEST_LLM_KEY", llm_server.key)
    project = write_tiny_project(tmp_path / "task", n=260, policy="distill", overrides={
        "split": {"test_size": 100}, "models": {"teacher_mode": "prompt", "min_steps": 0},
        "llm": {"model": llm_server.model, "url": llm_server.url, "api_key_env": "AOD_TEST_LLM_KEY",
                "input_per_million": "0.15", "output_per_million": "0.60", "examples": 3}})
    result = CliRunner().invoke(cli, ["--config", str(project), "--run-dir", str(tmp_path / "run"), "--spend", "5"])
    assert result.exit_code == 0, result.output
    ledger = Ledger(tmp_path / "run" / "ledger.sqlite")
    try:
        step = ledger.step_result("round-1:llm_labels")
        totals = ledger.totals()
    finally:
        ledger.close()
    (phase,) = step["phases"]
    assert step["n_items"] == 120 and phase["kind"] == "llm"  # the pool: 260 rows less 40 seed and 100 test
    assert 0 <= step["teacher_dev"] <= 1  # the LLM's own score on the dev set
    assert step["cost_micro"] == token_cost(PRICE, phase["tokens"], phase["output_tokens"])
    assert totals.spent <= totals.granted and totals.reserved == 0
