"""What the SDK connectors share: error mapping, redaction, the API key, one-line messages.

A connector for a third platform subclasses :class:`PlatformConnector` and supplies:

- ``words``, a :class:`Platform`: the texts its messages use (its name, what to start, what a valid
  key is, the fix for each error status) and, when its SDK wraps HTTP errors in exceptions of its own,
  two hooks: ``answer`` reads the status and body out of such an exception, ``unreadable`` names the
  SDK's own "could not parse the answer" errors;
- ``_push``, ``pull`` and ``status`` as SDK calls inside ``with self._errors(batch_id):``, the key from
  :meth:`PlatformConnector._api_key`, the text fields from :func:`connectors.items.texts_by_field` and the
  counts from :func:`connectors.items.tally`.

Everything else is here: httpx faults (connection, timeout, invalid URL, ``HTTPStatusError``), pydantic
and JSON errors map to the same errors with the same one-line messages for every platform, and the API
key is replaced by ``***`` in every message and body before they are cut short.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import httpx
import pydantic

from connectors.base import Connector
from connectors.exceptions import (
    AuthError,
    ConnectorError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
)

__all__ = [
    "Answer",
    "Platform",
    "PlatformConnector",
    "connect_reason",
    "env_secrets",
    "map_errors",
    "one_line",
    "redact",
]

try:  # the fork of httpx that the openai SDK (3.x) runs on: its faults read the same
    import httpx2

    _HTTP: tuple = (httpx, httpx2)
except ImportError:  # pragma: no cover - installed with openai
    _HTTP = (httpx,)


def _http(name: str) -> tuple[type, ...]:
    """httpx's exception class ``name`` and its fork's."""
    return tuple(getattr(module, name) for module in _HTTP)


BODY_CHARS = 300  # characters of an error body kept in PlatformError.body
DETAIL_CHARS = 200  # characters of a body or parse error quoted in a message
REASON_CHARS = 120  # characters of an httpx error quoted in a message


class Answer(NamedTuple):
    """An error answer read out of an exception: its status, body and the request it answered."""

    status: int | None
    body: str = ""
    what: str = ""  # " to POST /api/v1/datasets" when the request is known


def _no_answer(exc: BaseException) -> Answer | None:
    return None


def _no_detail(exc: BaseException) -> str | None:
    return None


@dataclass(frozen=True)
class Platform:
    """The words one platform's messages use, and the hooks that read its SDK's exceptions.

    Parameters
    ----------
    name : str
        The platform as messages name it: ``"Label Studio"``.
    server : str
        What to start when it cannot be reached: ``"the server"``, ``"argilla-server"``.
    expects : str
        What ``[connector] url`` must point at: ``"a Label Studio 1.2x server"``.
    key : str
        What a key it accepts is, after "set VAR to": ``"an owner or admin key"``.
    missing_key : str
        How to get a key, after "Environment variable VAR is not set; "; ``{url}`` is filled in.
    fixes : mapping
        The fix for an error status: by code (404, 409, 429), then ``"5xx"``, then ``"4xx"`` for the rest.
    forbidden : str, default=""
        What key a 403 asks for; empty when a 403 reads like a 401 (the key was refused).
    table : str, default="connector"
        The project file's table whose ``url`` and ``timeout`` the messages tell to fix.
    answer : callable, default: none
        ``answer(exc) -> Answer | None``: the status and body of the SDK's own HTTP error exceptions.
    unreadable : callable, default: none
        ``unreadable(exc) -> str | None``: what went wrong when ``exc`` is the SDK's parse error
        (put on one line, redacted and cut short here).
    """

    name: str
    server: str
    expects: str
    key: str
    missing_key: str
    fixes: Mapping[int | str, str]
    forbidden: str = ""
    table: str = "connector"
    answer: Callable[[BaseException], Answer | None] = field(default=_no_answer, repr=False)
    unreadable: Callable[[BaseException], str | None] = field(default=_no_detail, repr=False)

    def fix_for(self, status: int) -> str:
        """What to do about an error status, e.g. ``"see the argilla-server log."`` for a 503."""
        default = self.fixes["5xx"] if status >= 500 else self.fixes["4xx"]
        return self.fixes.get(status, default)


# -- text -------------------------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def one_line(text: object, limit: int = BODY_CHARS, secrets: Iterable[str] = ()) -> str:
    """``text`` on one line, secrets redacted, cut to ``limit`` characters (ending in ``...`` when cut)."""
    flat = " ".join(redact(str(text), secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def connect_reason(exc: BaseException) -> str:
    """Short words for why a connection failed: 'connection refused', 'host not found', ..."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(link, OSError) and link.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "host not found"
    return one_line(str(exc), REASON_CHARS) or type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its causes (or contexts), at most 16 and never one twice."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(seen) < 16:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def env_secrets(api_key_env: str) -> tuple[str, ...]:
    """The key in ``api_key_env`` as set and as sent (stripped); empty when unset."""
    raw = os.environ.get(api_key_env, "")
    return tuple(dict.fromkeys(s for s in (raw, raw.strip()) if s))


# -- errors -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """What a mapped error names: the platform, where, which key, and which secrets it must not show."""

    words: Platform
    url: str
    api_key_env: str
    timeout: float | None
    batch_id: str | None
    secrets: tuple[str, ...]

    @property
    def where(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "url": self.url}

    def clip(self, text: object, limit: int = BODY_CHARS) -> str:
        return one_line(text, limit, self.secrets)


def _transport_error(call: _Call, link: BaseException) -> TransportError:
    name, url = call.words.name, call.url
    if isinstance(link, _http("TimeoutException")):
        within = f" within {call.timeout:g} s" if call.timeout is not None else ""
        return TransportError(
            f"{name} at {url} did not answer{within} ({type(link).__name__}); check that the server is up and not "
            f"overloaded, or raise [{call.words.table}] timeout in project.toml.", **call.where)
    if isinstance(link, _http("ConnectError")):
        return TransportError(
            f"Cannot reach {name} at {url} ({connect_reason(link)}); start {call.words.server} or fix "
            f"[{call.words.table}] url in project.toml.", **call.where)
    return TransportError(
        f"Lost the connection to {name} at {url} ({connect_reason(link)}); check that the server is still running.",
        **call.where)


def _unreadable(call: _Call, detail: str) -> ProtocolError:
    return ProtocolError(
        f"{call.words.name} at {call.url} sent an answer the connector cannot read ({detail}); check that "
        f"[{call.words.table}] url points at {call.words.expects}.", **call.where)


def _status_error(call: _Call, answer: Answer) -> ConnectorError:
    words, url, status, what = call.words, call.url, answer.status, answer.what
    if status is None or status < 400:  # the SDK could not read a successful answer (e.g. an HTML page)
        return _unreadable(call, f"status {status}: {call.clip(answer.body, 80)}")
    body = call.clip(answer.body)
    if status == 401 or (status == 403 and not words.forbidden):
        return AuthError(f"{words.name} at {url} refused the API key ({status}); set {call.api_key_env} to "
                         f"{words.key}.", status=status, body=body, **call.where)
    if status == 403:
        return AuthError(f"{words.name} at {url} forbids this to the API key's user (403){what}; set "
                         f"{call.api_key_env} to {words.forbidden}.", status=status, body=body, **call.where)
    return PlatformError(f"{words.name} at {url} answered {status}{what}: {call.clip(answer.body, DETAIL_CHARS)}; "
                         f"{words.fix_for(status)}", status=status, body=body, **call.where)


def _answer(call: _Call, links: Sequence[BaseException]) -> Answer | None:
    """The first HTTP error answer in the chain: httpx's own, else one the SDK wrapped."""
    for link in links:
        if isinstance(link, _http("HTTPStatusError")):
            request = link.request
            return Answer(link.response.status_code, link.response.text, f" to {request.method} {request.url.path}")
    for link in links:
        answer = call.words.answer(link)
        if answer is not None:
            return answer
    return None


def _detail(call: _Call, link: BaseException) -> str | None:
    if isinstance(link, (pydantic.ValidationError, json.JSONDecodeError)):
        detail: str | None = f"{type(link).__name__}: {link}"
    else:
        detail = call.words.unreadable(link)
    return None if detail is None else call.clip(detail, DETAIL_CHARS)


def _translate(call: _Call, exc: BaseException) -> ConnectorError | ConnectorUsageError | None:
    """The connector error for an SDK, httpx or parse exception, or None when it is none of those."""
    links = list(_chain(exc))
    for link in links:
        if isinstance(link, _http("UnsupportedProtocol") + _http("InvalidURL")):
            return ConnectorUsageError(
                f"{call.words.name} url {call.url!r} is not a valid http(s) URL ({call.clip(link, REASON_CHARS)}); "
                f"fix [{call.words.table}] url in project.toml.")
        if isinstance(link, _http("TransportError")):
            return _transport_error(call, link)
    answer = _answer(call, links)
    if answer is not None:
        return _status_error(call, answer)
    for link in links:
        detail = _detail(call, link)
        if detail is not None:
            return _unreadable(call, detail)
    return None


@contextmanager
def map_errors(
    words: Platform,
    url: str,
    *,
    api_key_env: str,
    timeout: float | None = None,
    batch_id: str | None = None,
    secrets: Sequence[str] = (),
) -> Iterator[None]:
    """Translate SDK, httpx and parse errors raised inside the block into connector errors.

    ============================================  =============================================
    raised inside (or anywhere in its causes)     raised out (``from`` the original)
    ============================================  =============================================
    httpx unsupported scheme, invalid URL         :class:`ConnectorUsageError`
    httpx connect error, DNS failure, timeout,    :class:`TransportError`
    dropped connection
    HTTP status 401, 403                          :class:`AuthError`
    other HTTP status >= 400                      :class:`PlatformError` (status, body cut short)
    status < 400 the SDK could not read,          :class:`ProtocolError`
    pydantic validation, bad JSON, SDK parse
    ============================================  =============================================

    Every message is one line that names ``url``, the problem and the fix. Connector errors pass
    through (given ``batch_id`` if they had none), and anything else (a bug of ours) passes unchanged.

    Parameters
    ----------
    words : Platform
        The platform's words and SDK hooks.
    url : str
        The server's base URL, named in every message.
    api_key_env : str
        The environment variable that holds the key: named in auth messages, its value redacted.
    timeout : float, optional
        The request timeout in seconds, named in timeout messages.
    batch_id : str, optional
        The batch the call was about; carried by the error.
    secrets : sequence of str, default=()
        More strings (a key the SDK client holds) to redact from every message and body.
    """
    try:
        yield
    except ConnectorError as exc:
        if exc.batch_id is None:
            exc.batch_id = batch_id  # raised by an inner block that did not know the batch
        raise
    except ConnectorUsageError:
        raise
    except Exception as exc:
        hidden = tuple(dict.fromkeys((*env_secrets(api_key_env), *(s for s in secrets if s))))
        mapped = _translate(_Call(words, url, api_key_env, timeout, batch_id, hidden), exc)
        if mapped is None:
            raise
        mapped.args = (redact(str(mapped), hidden),)
        raise mapped from exc


# -- connectors -------------------------------------------------------------------------------------------


class PlatformConnector(Connector):
    """A connector that talks to one server through an SDK: URL, key and error mapping in one place.

    Subclasses set ``words`` and implement ``_push``, ``pull`` and ``status`` with SDK calls made inside
    ``with self._errors(batch_id):``.

    Parameters
    ----------
    url : str
        Base URL of the server; a trailing ``/`` is ignored.
    api_key_env : str
        Name of the environment variable holding the API key, read when the connector first connects.
    timeout : float
        Seconds one HTTP request may take.
    """

    #: the platform's words and SDK hooks
    words: ClassVar[Platform]

    def __init__(self, url: str, *, api_key_env: str, timeout: float) -> None:
        self.url = url
        self.api_key_env = api_key_env
        self.timeout = timeout

    @property
    def _base_url(self) -> str:
        return self.url.rstrip("/")

    def _api_key(self) -> str:
        """The key from the environment, stripped.

        Raises
        ------
        ConnectorUsageError
            If the variable named by ``api_key_env`` is unset or blank.
        """
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ConnectorUsageError(f"Environment variable {self.api_key_env} is not set; "
                                      f"{self.words.missing_key.format(url=self._base_url)}")
        return key

    def _secrets(self) -> tuple[str, ...]:
        """Strings no error may show besides the key in the environment (e.g. the key the SDK client holds)."""
        return ()

    def _errors(self, batch_id: str | None) -> AbstractContextManager[None]:
        return map_errors(self.words, self._base_url, api_key_env=self.api_key_env, timeout=self.timeout,
                          batch_id=batch_id, secrets=self._secrets())
