"""What every SDK connector shares: keys never shown, one-line errors that name the fix, status counts.

The platform here is made up (``Acme``), so these tests need no SDK and no server; what the real
platforms' words and SDK hooks make of the same faults is tested in ``test_platform_words.py``.
"""

from __future__ import annotations

import errno
import json
import socket
import traceback
from collections.abc import Callable

import pytest

httpx = pytest.importorskip("httpx")  # both come with the connectors extra
pydantic = pytest.importorskip("pydantic")

from annotation.records import Annotation, Batch, BatchItem, BatchStatus, Receipt  # noqa: E402
from connectors.exceptions import (  # noqa: E402
    AuthError,
    ConnectorError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
)
from connectors.items import tally, texts_by_field  # noqa: E402
from connectors.platform import (  # noqa: E402
    Answer,
    Platform,
    PlatformConnector,
    connect_reason,
    map_errors,
    one_line,
)
from tests.utils.pools import make_batch  # noqa: E402

URL = "http://acme.example:7000"
ENV = "AOD_TEST_ACME_KEY"
KEY = "acme-secret-key-do-not-leak-41c2"


class AcmeSdkError(Exception):
    """An SDK's own HTTP error, carrying the status as an attribute."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


class AcmeParseError(Exception):
    """An SDK's own 'could not parse the answer' error."""


ACME = Platform(
    name="Acme",
    server="acme-server",
    expects="an acme-server 3.x",
    key="an admin key",
    forbidden="an admin key of the project",
    missing_key="copy it from Acme's settings page at {url}.",
    fixes={404: "check [connector] url and the project.", 429: "Acme is rate limiting; try again later.",
           "5xx": "see the acme-server log.", "4xx": "check [connector] in project.toml."},
    answer=lambda exc: Answer(exc.status, exc.body) if isinstance(exc, AcmeSdkError) else None,
    unreadable=lambda exc: f"bad answer {exc}" if isinstance(exc, AcmeParseError) else None,
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, KEY)


def _mapped(exc: BaseException, *, timeout: float | None = None, batch_id: str | None = "b7") -> BaseException:
    with pytest.raises(BaseException) as info:
        with map_errors(ACME, URL, api_key_env=ENV, timeout=timeout, batch_id=batch_id):
            raise exc
    return info.value


def _status_error(status: int, body: str, method: str = "POST", path: str = "/api/projects") -> httpx.HTTPStatusError:
    request = httpx.Request(method, f"{URL}{path}")
    return httpx.HTTPStatusError("boom", request=request, response=httpx.Response(status, text=body, request=request))


def _everything_shown(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(err)) + repr(err) + str(getattr(err, "body", ""))


# -- secrets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [
    _status_error(400, f"invalid token {KEY}"),
    _status_error(401, json.dumps({"detail": f"token {KEY} expired"})),
    _status_error(503, "x" * 290 + KEY),  # the key straddles where the body is cut short
    AcmeSdkError(500, "y" * 190 + KEY + "\n" + "z" * 50),
    AcmeParseError(f"cannot parse {KEY}"),
    httpx.ConnectError(f"refused for {KEY}"),
    json.JSONDecodeError(f"Expecting value near {KEY}", "doc", 0),
], ids=["400", "401", "cut-body", "sdk-error", "sdk-parse", "connect", "json"])
def test_the_key_never_appears_in_a_message_or_body(exc: BaseException) -> None:
    err = _mapped(exc)
    assert isinstance(err, ConnectorError)
    shown = _everything_shown(err)
    assert KEY not in shown and KEY[:12] not in shown and KEY[-12:] not in shown


def test_a_key_the_caller_names_is_hidden_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"  {KEY}\n")  # pasted with blanks: the stripped key is what the SDK sends
    other = "client-held-key-9d8e"
    with pytest.raises(PlatformError) as info:
        with map_errors(ACME, URL, api_key_env=ENV, secrets=[other]):
            raise _status_error(400, f"{KEY} and {other}")
    assert KEY not in _everything_shown(info.value) and other not in _everything_shown(info.value)
    assert "*** and ***" in info.value.body


def test_one_line_flattens_redacts_and_cuts() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line(f"key {KEY} here", secrets=[KEY]) == "key *** here"
    cut = one_line("w " * 400, 50)
    assert len(cut) == 50 and cut.endswith("...")


# -- one line naming the problem and the fix ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "error", "retryable", "fix"), [
    (404, PlatformError, False, "check [connector] url and the project."),
    (409, PlatformError, False, "check [connector] in project.toml."),
    (429, PlatformError, True, "Acme is rate limiting; try again later."),
    (503, PlatformError, True, "see the acme-server log."),
])
def test_error_status_becomes_one_line_naming_url_status_and_fix(status: int, error: type, retryable: bool,
                                                                 fix: str) -> None:
    err = _mapped(_status_error(status, "it went\nwrong " + "x" * 500))
    assert type(err) is error and err.status == status and err.retryable is retryable
    assert str(err).startswith(f"Acme at {URL} answered {status} to POST /api/projects: it went wrong x")
    assert str(err).endswith(f"; {fix}") and "\n" not in str(err)
    assert len(err.body) <= 300 and err.batch_id == "b7" and err.url == URL
    assert isinstance(err.__cause__, httpx.HTTPStatusError)


def test_refused_key_names_the_variable_to_set() -> None:
    err = _mapped(_status_error(401, "{}"))
    assert type(err) is AuthError and err.status == 401 and not err.retryable
    assert str(err) == f"Acme at {URL} refused the API key (401); set {ENV} to an admin key."


def test_forbidden_names_the_request_and_the_key_it_needs() -> None:
    err = _mapped(_status_error(403, "{}", "DELETE", "/api/projects/3"))
    assert type(err) is AuthError and err.status == 403
    assert str(err) == (f"Acme at {URL} forbids this to the API key's user (403) to DELETE /api/projects/3; "
                        f"set {ENV} to an admin key of the project.")


def test_forbidden_reads_like_a_refused_key_when_the_platform_says_nothing_more() -> None:
    plain = Platform(**{**ACME.__dict__, "forbidden": ""})
    with pytest.raises(AuthError, match=rf"^Acme at {URL} refused the API key \(403\); set {ENV} to an admin key\.$"):
        with map_errors(plain, URL, api_key_env=ENV):
            raise _status_error(403, "{}")


def test_sdk_errors_are_read_by_the_platform_hook_even_when_wrapped() -> None:
    try:
        raise AcmeSdkError(502, "bad gateway")
    except AcmeSdkError as inner:
        wrapped = RuntimeError("the SDK gave up")
        wrapped.__cause__ = inner
    err = _mapped(wrapped)
    assert type(err) is PlatformError and err.status == 502 and err.body == "bad gateway"
    assert str(err) == f"Acme at {URL} answered 502: bad gateway; see the acme-server log."


def test_unreachable_server_says_what_to_start() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket is closed
    with pytest.raises(TransportError) as info:
        with map_errors(ACME, url, api_key_env=ENV, batch_id="b1"):
            httpx.get(url, timeout=5)
    assert str(info.value) == (f"Cannot reach Acme at {url} (connection refused); start acme-server or fix "
                               f"[connector] url in project.toml.")
    assert info.value.batch_id == "b1" and isinstance(info.value.__cause__, httpx.ConnectError)


def test_timeout_names_the_limit_and_the_setting() -> None:
    err = _mapped(httpx.ReadTimeout("timed out"), timeout=0.5)
    assert type(err) is TransportError
    assert str(err) == (f"Acme at {URL} did not answer within 0.5 s (ReadTimeout); check that the server is up "
                        f"and not overloaded, or raise [connector] timeout in project.toml.")


def test_dropped_connection_is_a_transport_error() -> None:
    err = _mapped(httpx.RemoteProtocolError("Server disconnected\nwithout sending a response."))
    assert type(err) is TransportError
    assert str(err) == (f"Lost the connection to Acme at {URL} (Server disconnected without sending a response.); "
                        f"check that the server is still running.")


def test_invalid_url_is_our_usage_error() -> None:
    err = _mapped(httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."))
    assert type(err) is ConnectorUsageError
    assert str(err).startswith(f"Acme url '{URL}' is not a valid http(s) URL (")
    assert str(err).endswith("); fix [connector] url in project.toml.")


class _Model(pydantic.BaseModel):
    id: int


@pytest.mark.parametrize(("raise_it", "detail"), [
    (lambda: _Model.model_validate({"id": "seven"}), "ValidationError: 1 validation error for _Model id "),
    (lambda: json.loads("<html>"), "JSONDecodeError: Expecting value"),
    (lambda: (_ for _ in ()).throw(AcmeParseError("no 'items' key")), "bad answer no 'items' key"),
], ids=["pydantic", "json", "sdk"])
def test_unreadable_answer_says_what_the_url_must_point_at(raise_it: Callable[[], object], detail: str) -> None:
    with pytest.raises(ProtocolError) as info:
        with map_errors(ACME, URL, api_key_env=ENV):
            raise_it()
    message = str(info.value)
    assert message.startswith(f"Acme at {URL} sent an answer the connector cannot read ({detail}")
    assert message.endswith("; check that [connector] url points at an acme-server 3.x.") and "\n" not in message


def test_a_successful_status_the_sdk_could_not_read_is_a_protocol_error() -> None:
    err = _mapped(AcmeSdkError(200, "<html>\n<body>login</body></html>"))
    assert type(err) is ProtocolError
    assert "cannot read (status 200: <html> <body>login</body></html>)" in str(err)


def test_our_own_errors_pass_through() -> None:
    assert type(_mapped(ZeroDivisionError("ours"))) is ZeroDivisionError
    assert type(_mapped(ConnectorUsageError("ours too"))) is ConnectorUsageError
    inner = _mapped(ProtocolError("raised by an inner block"), batch_id="b9")
    assert type(inner) is ProtocolError and inner.batch_id == "b9"


def test_connect_reason_reads_the_os_error_under_the_sdk() -> None:
    try:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    except OSError as os_error:
        wrapped = httpx.ConnectError("All connection attempts failed")
        wrapped.__cause__ = os_error
    assert connect_reason(wrapped) == "connection refused"
    assert connect_reason(httpx.ConnectError("[Errno -2] Name or service not known")) == "host not found"
    assert connect_reason(httpx.ConnectError("")) == "ConnectError"


# -- the connector base: URL and key ------------------------------------------------------------------------


class AcmeConnector(PlatformConnector):
    platform = "acme"
    words = ACME

    def _push(self, batch: Batch) -> Receipt:
        key = self._api_key()
        with self._errors(batch.batch_id):
            raise _status_error(400, f"bad key {key}")

    def pull(self, receipt: Receipt) -> list[Annotation]:
        return []

    def status(self, receipt: Receipt) -> BatchStatus:
        return tally(())


def test_missing_key_names_the_variable_and_where_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "   ")
    conn = AcmeConnector(f"{URL}/", api_key_env=ENV, timeout=5.0)
    with pytest.raises(ConnectorUsageError) as info:
        conn.push(make_batch(1))
    assert str(info.value) == (f"Environment variable {ENV} is not set; copy it from Acme's settings page at "
                               f"{URL}.")


def test_connector_errors_name_the_base_url_and_batch_and_hide_the_key() -> None:
    batch = make_batch(1)
    with pytest.raises(PlatformError) as info:
        AcmeConnector(f"{URL}//", api_key_env=ENV, timeout=5.0).push(batch)
    err = info.value
    assert err.url == URL and err.batch_id == batch.batch_id and str(err).startswith(f"Acme at {URL} answered 400")
    assert KEY not in _everything_shown(err)


# -- status counts and text fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "expected"), [
    ([], BatchStatus(pushed=0, done=0, skipped=0, waiting=0)),
    ([(0, 0, 1), (1, 0, 1), (0, 1, 1)], BatchStatus(pushed=3, done=1, skipped=1, waiting=1)),
    ([(1, 0, 2), (1, 1, 2), (0, 2, 2), (0, 1, 2)], BatchStatus(pushed=4, done=1, skipped=1, waiting=2)),
    ([(3, 0, 2)], BatchStatus(pushed=1, done=1, skipped=0, waiting=0)),  # more answers than asked for
], ids=["empty", "overlap-1", "overlap-2", "extra-answers"])
def test_an_item_is_finished_when_its_answers_reach_the_overlap(answers: list[tuple[int, int, int]],
                                                                expected: BatchStatus) -> None:
    assert tally(answers) == expected
    assert tally(iter(answers)) == expected


def test_texts_are_keyed_by_the_batch_text_fields() -> None:
    pair = make_batch(1, run_id="r1", pair=True)
    assert texts_by_field(pair, pair.items[0]) == {"sentence1": "first sentence 0", "sentence2": "second sentence 0"}
    single = Batch("b1", "toy", ("neg", "pos"), (BatchItem(0, "e0", "hello"),))
    assert texts_by_field(single, single.items[0]) == {"text": "hello"}


def test_an_item_with_the_wrong_number_of_texts_is_refused_naming_batch_and_item() -> None:
    pair = make_batch(1, run_id="r1", pair=True)
    one_field = Batch(**{**pair.__dict__, "text_fields": ("text",)})
    with pytest.raises(ConnectorUsageError, match=r"^Batch r1-b0-1 item r1-item0000 has 2 text\(s\) for 1 text field"):
        texts_by_field(one_field, one_field.items[0])
