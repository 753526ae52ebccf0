"""An LLM server that cannot be reached, or a key that is not set: one line naming ``[llm]`` and the fix,
after the retries, and the key never shown. A real server's answers (and its refusals) are tested in
``tests/integration/test_llm_server.py``."""

import socket
import time

import pytest

from connectors.exceptions import ConnectorUsageError, TransportError
from connectors.llm_api import ChatEndpoint
from modeling.prompts import LabelPrompt

REQUEST = LabelPrompt(("negative", "positive")).messages("Fine.")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_down_is_one_line_after_bounded_retries():
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        ChatEndpoint(url, "any", retries=2, timeout=5).answer([REQUEST])
    message = str(info.value)
    assert message.startswith(f"Cannot reach The LLM server at {url} (connection refused)")
    assert "[llm] url" in message and "\n" not in message
    assert time.monotonic() - started < 30  # two retries with the SDK's backoff, not a hang


def test_an_unset_key_is_named_before_anything_is_sent(monkeypatch):
    monkeypatch.delenv("AOD_TEST_LLM_KEY", raising=False)
    with pytest.raises(ConnectorUsageError) as info:
        ChatEndpoint("http://127.0.0.1:1/v1", "any", api_key_env="AOD_TEST_LLM_KEY").answer([REQUEST])
    assert str(info.value).startswith("Environment variable AOD_TEST_LLM_KEY is not set;")
    assert "[llm] api_key_env" in str(info.value)


def test_a_url_that_is_not_http_is_a_usage_error():
    with pytest.raises(ConnectorUsageError, match=r"not a valid http\(s\) URL .* fix \[llm\] url"):
        ChatEndpoint("ftp://127.0.0.1/v1", "any", retries=0).answer([REQUEST])
