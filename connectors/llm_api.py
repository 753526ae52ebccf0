"""A chat LLM behind the OpenAI-compatible API that vLLM, llama.cpp's server, Ollama and hosted providers speak.

One label request is one ``POST /v1/chat/completions`` through the ``openai`` SDK: the request's messages,
``max_tokens = 1``, temperature 0, ``logprobs`` with ``top_logprobs`` (20, the API's most), and the answer
is the first token's top choices (:class:`modeling.prompts.TokenAnswer`) with the ``usage`` the server
counted, which is what a provider bills. The SDK retries what a later try may get past (connection errors,
timeouts, 408, 409, 429 and 5xx, with exponential backoff and the server's ``Retry-After``) ``[llm] retries``
times; what is left maps to the annotation connectors' errors with the same one-line messages
(:func:`connectors.platform.map_errors`). The key is read from the environment variable ``[llm]
api_key_env`` names and never shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict

from connectors.exceptions import ConnectorUsageError, ProtocolError
from connectors.platform import Answer, Platform, map_errors
from modeling.prompts import Message, TokenAnswer

__all__ = ["ChatEndpoint", "LLM_SERVER"]

_NO_KEY = "no-key"  # what the SDK sends to a server that needs none (it refuses an empty key)


def _answer(exc: BaseException) -> Answer | None:
    import openai

    if isinstance(exc, openai.APIStatusError):
        request = exc.response.request
        return Answer(exc.status_code, exc.response.text, f" to {request.method} {request.url.path}")
    return None


def _unreadable(exc: BaseException) -> str | None:
    import openai

    if isinstance(exc, openai.APIResponseValidationError):
        return f"{type(exc).__name__}: {exc}"
    return None


#: the words an LLM server's errors use
LLM_SERVER = Platform(
    name="The LLM server",
    server="the LLM server (vLLM, llama.cpp's server, Ollama, ...)",
    expects="an OpenAI-compatible API (the URL ends in /v1)",
    key="a key the server or provider accepts",
    missing_key="set it to the provider's key, or leave [llm] api_key_env empty for a server without keys.",
    fixes={404: "check [llm] url (it ends in /v1) and [llm] model (a model the server serves).",
           429: "the provider limits the rate: wait, or raise your limit with the provider.",
           "5xx": "see the LLM server's log.",
           "4xx": "check [llm] model and that the server supports logprobs with top_logprobs."},
    table="llm",
    answer=_answer,
    unreadable=_unreadable,
)


class ChatEndpoint:
    """A chat model served over the OpenAI-compatible API, answering label requests.

    Parameters
    ----------
    url : str
        The API's base URL, ending in ``/v1`` (``http://127.0.0.1:8080/v1``).
    model : str
        The model's name on that server.
    api_key_env : str, default=""
        The NAME of the environment variable holding the key; empty for a server without keys.
    timeout : float, default=60.0
        Seconds one request may take.
    retries : int, default=3
        Further tries of a request that failed in a way a later try may get past.
    top_logprobs : int, default=20
        First-token choices asked for (the API allows at most 20).
    """

    def __init__(self, url: str, model: str, *, api_key_env: str = "", timeout: float = 60.0, retries: int = 3,
                 top_logprobs: int = 20) -> None:
        self.url, self.model, self.api_key_env = url.rstrip("/"), model, api_key_env
        self.timeout, self.retries, self.top_logprobs = timeout, retries, top_logprobs
        self._client = None

    @property
    def name(self) -> str:
        """``model@url``: what the answers are cached under."""
        return f"{self.model}@{self.url}"

    def _key(self) -> str:
        if not self.api_key_env:
            return _NO_KEY
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ConnectorUsageError(f"Environment variable {self.api_key_env} is not set; "
                                      f"{LLM_SERVER.missing_key}")
        return key

    def client(self):
        """The SDK client (made on first use, when the key is read)."""
        if self._client is None:
            import openai

            with map_errors(LLM_SERVER, self.url, api_key_env=self.api_key_env, timeout=self.timeout):
                self._client = openai.OpenAI(base_url=self.url, api_key=self._key(), timeout=self.timeout,
                                             max_retries=self.retries)
        return self._client

    def answer(self, requests: Sequence[Sequence[Message]], candidates: Sequence[str] = ()) -> list[TokenAnswer]:
        """The first answer token's top choices for each request, one request at a time (``candidates`` is not
        used: the API returns only the most likely tokens)."""
        client = self.client()
        out = []
        for messages in requests:
            with map_errors(LLM_SERVER, self.url, api_key_env=self.api_key_env, timeout=self.timeout):
                reply = client.chat.completions.create(
                    model=self.model, messages=[asdict(m) for m in messages], max_tokens=1, temperature=0.0,
                    logprobs=True, top_logprobs=self.top_logprobs)
            out.append(self._read(reply))
        return out

    def _read(self, reply) -> TokenAnswer:
        choice = reply.choices[0] if reply.choices else None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if not content:
            raise ProtocolError(f"The LLM server at {self.url} answered without log-probabilities; [llm] url must "
                                f"serve a chat API that returns logprobs with top_logprobs (vLLM, llama.cpp's "
                                f"server, Ollama 0.12 or later, OpenAI).", url=self.url)
        first = content[0]
        top = [(t.token, float(t.logprob)) for t in (first.top_logprobs or [])] or [(first.token,
                                                                                   float(first.logprob))]
        usage = reply.usage
        return TokenAnswer(tuple(top), input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                           output_tokens=int(getattr(usage, "completion_tokens", 0) or 1))
