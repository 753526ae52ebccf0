"""A small web page for leads: ``python -m budget.controller serve --run-dir runs/demo [--user NAME]``.

The page shows the money (granted, reserved, spent, available), every proposal that waits for a lead
(items, price, money before and after, the policy's why, a sample of the items) with Approve and Reject
buttons, the recent decisions, and the score-against-dollars plot. Decisions go through the same code as
``approve`` / ``reject`` on the command line (:func:`budget.approvals.decide`), so approving twice pushes once.

Logins (:mod:`budget.page_logins`): every page and decision needs a session, started from a person's token;
a decision is recorded under the session's name, never a name typed in a form. What the page shows is
:mod:`budget.page_view`; the ``serve`` command is :mod:`budget.controller.serve`.

Routes (the standard library's ``http.server``; no web framework)
  GET  /           the page; without a session the sign-in form (401); ``?token=T`` signs in (303 to ``/``)
  GET  /login      the sign-in form
  GET  /plot.png   ``<run-dir>/report/score_vs_dollars.png``, written by the report if it is missing
  POST /login      form field ``token``: 303 to ``/`` with a session, or the form again (401)
  POST /logout     form field ``csrf``: ends the session, 303 to ``/login``
  POST /approve    form fields ``batch_id``, ``csrf``: 303 to ``/``, which shows the outcome once
  POST /reject     form fields ``batch_id``, ``why``, ``csrf``: likewise

Security model
  - Without a session every page is the sign-in form (401) and every POST but ``/login`` is refused (403)
    before anything is read from the ledger.
  - A decision needs the session cookie and the session's CSRF token (a hidden field of each form, compared
    in constant time), and its Origin, when the browser sends one, must be the page's own. Another site can
    neither read the CSRF token nor make a browser send the cookie (SameSite=Strict).
  - Host: on a loopback address (the default) the page answers only to Host ``127.0.0.1``, ``localhost`` or
    ``[::1]`` with its port, and to the names given with ``--allow-host`` (a reverse proxy's): no other name
    can be made to resolve to it (DNS rebinding). On any other address (``--host 0.0.0.0`` on a team's GPU
    machine) every Host is answered, as the login guards the page; a browser's Origin must still be the Host.
    Plain http carries tokens and cookies in clear: beyond loopback, reach the page through an ssh tunnel or
    an https reverse proxy.
  - A request body is read with a deadline (``timeout``, 10 s) and a bound (64 KiB); a malformed request gets
    a 4xx, and a failure inside a handler (a corrupt ledger) a one-line 500, never a dropped connection.
Every request opens the ledger afresh, so a controller running in another process sees a decision at once
and the page sees new proposals on reload.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, urlencode, urlsplit

from budget.approvals import open_ledger
from budget.exceptions import LedgerFileError
from budget.page_logins import Login, LoginsFileError, Session, Sessions
from budget.page_view import decide_for_page, ensure_plot, problem, render_login, render_page

__all__ = ["COOKIE", "base_url", "make_server", "is_loopback"]

COOKIE = "aod_session"
_MAX_FORM = 64 * 1024  # bytes of a POST body; the forms send a few hundred
_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_SECRET_IN_LOG = re.compile(r"(token=)[^&\s\"]*")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(host: str, port: int) -> str:
    """The address a person opens: the machine's name for a wildcard address such as 0.0.0.0."""
    name = host.strip("[]")
    try:
        if ipaddress.ip_address(name).is_unspecified:
            name = socket.gethostname()
    except ValueError:
        pass
    return f"http://[{name}]:{port}/" if ":" in name else f"http://{name}:{port}/"


def _split(url: str) -> SplitResult | None:
    """``urlsplit``, or None for a malformed address (an unclosed ``[``)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _hostname(netloc: str) -> str:
    """The host name of ``name:port`` (lower case, no brackets); empty when malformed."""
    parts = _split("//" + netloc)
    return (parts.hostname or "") if parts else ""


# --- the server ----------------------------------------------------------------------------------

class _Refused(Exception):
    """A request the handler answers with ``status`` and a one-line ``message`` (no traceback)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _fields(query: str) -> dict[str, list[str]]:
    """A query string or form body as lists of values; 400 for more fields than a form has."""
    try:
        return parse_qs(query, keep_blank_values=True, max_num_fields=20)
    except ValueError as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"Malformed form or query: {exc}.") from exc


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "annotate-or-distill"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # each read and write of the socket; a body has a deadline too
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._guarded(self._post)

    def _guarded(self, route: Callable[[], None]) -> None:
        """Run a route: a refusal is a 4xx, a failure inside it (a corrupt ledger) a one-line 500."""
        try:
            self._check_host()
            route()
        except _Refused as exc:
            self._answer(exc.status, str(exc))
        except (TimeoutError, ConnectionError):  # the client stopped reading: nobody to answer
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - whatever it is, the client gets one line, never a reset
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        message = problem(exc, self.server.run_dir)
        path = _SECRET_IN_LOG.sub(r"\1[hidden]", self.path)
        sys.stderr.write(f"[serve] {self.command} {path}: 500 {message}\n")
        if not self.server.quiet and not isinstance(exc, LedgerFileError | sqlite3.DatabaseError | LoginsFileError):
            traceback.print_exception(exc, file=sys.stderr)
        self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, f"Error: {message}")

    def _answer(self, status: HTTPStatus, line: str) -> None:
        """A one-line text answer; a client gone by then gets nothing."""
        try:
            self._send(status, f"{line}\n".encode(), _TEXT)
        except OSError:
            self.close_connection = True

    def _check_host(self) -> None:
        """Host must be one of ours on loopback; a browser's Origin must always be the page's own."""
        host = (self.headers.get("Host") or "").strip().lower()
        origin = (self.headers.get("Origin") or "").strip().lower()
        if not self.server.host_allowed(host) or (origin and not self.server.origin_allowed(origin, host)):
            raise _Refused(HTTPStatus.FORBIDDEN, f"Refused: this page answers only to {self.server.url} and the "
                           "names given with --allow-host (Host and Origin are checked).")

    # --- GET

    def _get(self) -> None:
        url = _split(self.path)
        if url is None:
            raise _Refused(HTTPStatus.BAD_REQUEST, "Malformed request path.")
        query = _fields(url.query)
        if url.path == "/" and "token" in query:
            return self._sign_in(query["token"][-1])
        if url.path == "/login":
            return self._send(HTTPStatus.OK, render_login().encode(), _HTML)
        if url.path in {"/approve", "/reject", "/logout"}:
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, "POST a decision from the page.")
        if url.path not in {"/", "/plot.png"}:
            raise _Refused(HTTPStatus.NOT_FOUND, "Not found.")
        sid = self._sid()
        session = self.server.sessions.get(sid)
        if session is None:
            return self._send(HTTPStatus.UNAUTHORIZED, render_login().encode(), _HTML)
        if url.path == "/plot.png":
            return self._plot()
        kind, msg = self.server.sessions.pop_flash(sid)
        page = render_page(self.server.run_dir, user=session.name, csrf=session.csrf, msg=msg, kind=kind)
        self._send(HTTPStatus.OK, page.encode(), _HTML)

    def _plot(self) -> None:
        with open_ledger(self.server.run_dir) as ledger:
            plot = ensure_plot(self.server.run_dir, ledger)
        if plot is None:
            raise _Refused(HTTPStatus.NOT_FOUND, "No plot yet: run the controller first.")
        self._send(HTTPStatus.OK, plot.read_bytes(), "image/png")

    # --- POST

    def _post(self) -> None:
        self.close_connection = True  # a refused body is left unread: the connection cannot carry another request
        path = urlsplit(self.path).path
        length = self._body_length()  # a malformed request is a 400 whoever sends it
        if path == "/login":
            return self._sign_in(self._read_form(length).get("token", ""))
        if path not in {"/approve", "/reject", "/logout"}:
            raise _Refused(HTTPStatus.NOT_FOUND, "Not found.")
        sid = self._sid()
        session = self.server.sessions.get(sid)
        if session is None:  # refused before its body is read
            raise _Refused(HTTPStatus.FORBIDDEN, "Refused: sign in first (open the URL `serve` printed, with its "
                           "token); nothing was changed.")
        form = self._read_form(length)
        if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            raise _Refused(HTTPStatus.FORBIDDEN, "Refused: the form does not carry this session's CSRF token; "
                           "reload the page and try again. Nothing was changed.")
        if path == "/logout":
            self.server.sessions.end(sid)
            return self._redirect("/login", self._cookie("", 0))
        kind, msg = self._decide(session, form, "approved" if path == "/approve" else "rejected")
        self.server.sessions.flash(sid, kind, msg)
        self._redirect("/")

    def _decide(self, session: Session, form: dict[str, str], verb: str) -> tuple[str, str]:
        """Approve or reject the form's batch as the signed-in person; returns (kind, message)."""
        batch_id, why = form.get("batch_id", ""), form.get("why", "")[:500]
        if not batch_id:
            return "error", "No batch_id in the form."
        if verb == "rejected" and not why:
            return "error", f"Give a reason to reject {batch_id}: it is recorded with the decision."
        return decide_for_page(self.server.run_dir, batch_id, verb, by=session.name, why=why)

    def _body_length(self) -> int:
        """The body's length from its headers: one whole number up to 64 KiB, else a 4xx."""
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Send the form with a Content-Length, not chunked.")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or ["0"]}
        raw = values.pop() if len(values) == 1 else ""
        if not (raw.isascii() and raw.isdigit()):
            raise _Refused(HTTPStatus.BAD_REQUEST, "Content-Length must be one non-negative whole number.")
        length = int(raw)
        if length > _MAX_FORM:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"The form is over {_MAX_FORM} bytes.")
        return length

    def _read_form(self, length: int) -> dict[str, str]:
        """The POST body's form fields: ``length`` bytes, read within the server's timeout."""
        body = self._read_body(length)
        if len(body) < length:
            raise _Refused(HTTPStatus.BAD_REQUEST, "The body ended before its Content-Length.")
        return {k: v[-1].strip() for k, v in _fields(body.decode("utf-8", "replace")).items()}

    def _read_body(self, length: int) -> bytes:
        """``length`` bytes, or fewer if the client closes; 408 when they do not all come within the timeout."""
        deadline, chunks, got = time.monotonic() + self.server.request_timeout, [], 0
        try:
            while got < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(length - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except TimeoutError as exc:
            raise _Refused(HTTPStatus.REQUEST_TIMEOUT, f"The body did not arrive within "
                           f"{self.server.request_timeout:g} s.") from exc
        finally:
            self.connection.settimeout(self.server.request_timeout)
        return b"".join(chunks)

    # --- signing in and answering

    def _sign_in(self, token: str) -> None:
        """Check a token: a new session and a 303 to ``/`` (the token leaves the address bar), or 401."""
        login = self.server.sessions.check(token) if token else None
        if login is None:
            page = render_login(msg="That token is not valid: use the one `serve` printed for you, or ask for a "
                                "new one (`serve --new-token --user NAME`).", kind="error")
            return self._send(HTTPStatus.UNAUTHORIZED, page.encode(), _HTML)
        sid = self.server.sessions.start(login)
        self._redirect("/", self._cookie(sid, int(self.server.sessions.lifetime)))

    def _sid(self) -> str:
        """The session id in the request's cookie, or ""."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except CookieError:
            return ""
        morsel = jar.get(COOKIE)
        return morsel.value if morsel else ""

    def _cookie(self, sid: str, max_age: int) -> str:
        secure = "; Secure" if (self.headers.get("X-Forwarded-Proto") or "").lower() == "https" else ""
        return f"{COOKIE}={sid}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"

    def _redirect(self, location: str, cookie: str | None = None) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")  # "no-referrer" would make a form's Origin "null"
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        if not self.server.quiet:
            line = _SECRET_IN_LOG.sub(r"\1[hidden]", format % args)
            sys.stderr.write(f"[serve] {self.address_string()} {line}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], run_dir: Path, *, quiet: bool, timeout: float,
                 allow_hosts: Iterable[str], logins: Iterable[Login]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.run_dir, self.quiet, self.request_timeout = run_dir, quiet, timeout
        self.sessions = Sessions(run_dir, tuple(logins))
        port = self.server_address[1]
        self.url = base_url(address[0], port)
        self.loopback = is_loopback(address[0])
        self.hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")} | {urlsplit(self.url).netloc.lower()}
        self.allow_hosts = frozenset(h.strip().lower().strip("[]") for h in allow_hosts if h.strip())

    def host_allowed(self, host: str) -> bool:
        """Any Host off loopback (the login guards the page); on loopback ours and --allow-host's only."""
        return not self.loopback or host in self.hosts or _hostname(host) in self.allow_hosts

    def origin_allowed(self, origin: str, host: str) -> bool:
        """A browser's Origin: the Host it asked, one of our loopback names, or an --allow-host name."""
        parts = _split(origin)
        if parts is None or parts.scheme not in {"http", "https"}:
            return False
        return parts.netloc == host or parts.netloc in self.hosts or _hostname(parts.netloc) in self.allow_hosts

    def login_url(self, token: str) -> str:
        """The address that signs in with ``token``."""
        return f"{self.url}?{urlencode({'token': token})}"


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = False,
                timeout: float = 10.0, allow_hosts: Iterable[str] = (), logins: Iterable[Login] = ()) -> _Server:
    """A server for ``run_dir`` bound to ``host:port`` (port 0: a free one); call ``serve_forever()``.

    Every page needs a login: ``token = new_login(run_dir, "alice")`` makes one, and a client signs in by
    opening ``server.login_url(token)`` (or posting ``token`` to ``/login``), which sets the session cookie.

    Parameters
    ----------
    host : str
        The address to listen on. A loopback one answers only to its own names and ``allow_hosts``; any
        other (``0.0.0.0``) answers to every Host, the login guarding it.
    timeout : float
        Seconds a request's body may take to arrive (then 408), and each read or write of the socket.
    allow_hosts : iterable of str
        Other host names (a reverse proxy's) accepted in Host and Origin, on any port.
    logins : iterable of Login
        Logins accepted besides the run folder's ``page-logins.json``, e.g. :func:`env_login`'s.

    Raises
    ------
    ValueError
        If ``timeout`` is not positive.
    OSError
        If the port cannot be bound.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}.")
    return _Server((host.strip("[]"), port), Path(run_dir), quiet=quiet, timeout=timeout, allow_hosts=allow_hosts,
                   logins=logins)

