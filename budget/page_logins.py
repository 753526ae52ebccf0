"""One person's login to the leads' page, and who is signed in now.

Logins are in the manner of Jupyter's.
Every page and every decision needs a login: a person's name and a random token. The run folder keeps
``page-logins.json``, a list of ``{"name", "sha256", "created"}`` (the SHA-256 of the token, never the
token; written atomically, mode 0600). ``serve`` makes the login of ``--user`` (default ``$USER``, else
``lead``) when it has none and prints its token once, in a sign-in URL ``http://127.0.0.1:8765/?token=...``;
``--new-token`` replaces it (the old token and its sessions stop working) and ``--token-only`` does so
without serving, for a second lead while the page is served. ``AOD_PAGE_TOKEN``, when set, is a token for
``--user`` that is neither stored nor printed. From Python, :func:`new_login` makes a login and returns
its token. Opening ``/?token=T`` (or posting the sign-in form) checks T's hash against the logins and
starts a session: a random id in the ``aod_session`` cookie (HttpOnly, SameSite=Strict, Path=/; Secure
when a proxy says ``X-Forwarded-Proto: https``), held in the server's memory for 12 hours; the answer is a
303 to ``/``, so the token leaves the address bar. A decision is recorded under the session's name, never
a name typed in a form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["LOGINS_FILE", "TOKEN_ENV", "SESSION_SECONDS", "Login", "LoginsFileError", "Session", "Sessions",
           "token_hash", "check_name", "read_logins", "new_login", "env_login"]

LOGINS_FILE = "page-logins.json"  # in the run folder: names and token hashes, never a token
TOKEN_ENV = "AOD_PAGE_TOKEN"  # a token for --user that is neither stored nor printed
SESSION_SECONDS = 12 * 3600
_MIN_TOKEN = 16  # characters of an AOD_PAGE_TOKEN; serve's own tokens have 43
_MAX_SESSIONS = 1000  # the oldest goes when a sign-in would pass this


class LoginsFileError(ValueError):
    """Raised when ``page-logins.json`` is not a list of logins."""


@dataclass(frozen=True)
class Login:
    """One person's login: the name decisions are recorded under, the SHA-256 (hex) of the token, when made."""

    name: str
    sha256: str
    created: str  # ISO 8601, UTC; empty for a login given in the environment


def token_hash(token: str) -> str:
    """The SHA-256 of a token, as kept in ``page-logins.json``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """A login's name, stripped: 1 to 80 printable characters, else ValueError."""
    clean = name.strip()
    if not clean or len(clean) > 80 or not clean.isprintable():
        raise ValueError(f"A login name is 1 to 80 printable characters; got {name!r}.")
    return clean


def read_logins(run_dir: str | Path) -> tuple[Login, ...]:
    """The logins kept in ``<run_dir>/page-logins.json``; none when the file does not exist.

    Raises
    ------
    LoginsFileError
        If the file is not a JSON list of ``{"name", "sha256", "created"}``.
    """
    path = Path(run_dir) / LOGINS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise TypeError(f"a list was expected, not {type(raw).__name__}")
        return tuple(Login(str(r["name"]), str(r["sha256"]), str(r["created"])) for r in raw)
    except FileNotFoundError:
        return ()
    except (ValueError, TypeError, KeyError) as exc:
        raise LoginsFileError(f"'{path}' is not a list of logins ({exc}); move it away and run `serve` again to "
                              "make new ones.") from exc


def _write_logins(run_dir: Path, logins: Iterable[Login]) -> None:
    """Replace ``page-logins.json`` at once (a temporary file, then ``os.replace``), readable by its owner only."""
    path = run_dir / LOGINS_FILE
    tmp = path.with_name(f".{LOGINS_FILE}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps([asdict(x) for x in logins], indent=1) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def new_login(run_dir: str | Path, name: str) -> str:
    """Make ``name``'s login in ``run_dir`` and return its token; a login ``name`` had is replaced.

    Only the token's hash is kept, so the token returned is the one copy: hand it to the person (``serve``
    prints it once). A server for ``run_dir`` accepts it at once, as ``<server.url>?token=<token>`` or posted
    to ``/login``; sessions signed in with the replaced token end.

    Raises
    ------
    ValueError
        If ``name`` is not 1 to 80 printable characters.
    LoginsFileError
        If ``page-logins.json`` is not a list of logins.
    """
    run_dir, name = Path(run_dir), check_name(name)
    token = secrets.token_urlsafe(32)
    kept = [x for x in read_logins(run_dir) if x.name != name]
    _write_logins(run_dir, [*kept, Login(name, token_hash(token), datetime.now(UTC).isoformat(timespec="seconds"))])
    return token


def env_login(name: str, environ: Mapping[str, str] | None = None) -> Login | None:
    """The login that ``AOD_PAGE_TOKEN`` gives ``name`` (kept in memory only), or None when it is not set.

    Raises
    ------
    ValueError
        If the token is shorter than 16 characters.
    """
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
    if not token:
        return None
    if len(token) < _MIN_TOKEN:
        raise ValueError(f"{TOKEN_ENV} is {len(token)} characters; use at least {_MIN_TOKEN}, e.g. the output of "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.")
    return Login(check_name(name), token_hash(token), "")


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose, its CSRF token, the hash of the token it signed in with, when it ends."""

    name: str
    csrf: str
    sha256: str  # replacing that login's token ends the session
    expires: float  # time.monotonic()


class Sessions:
    """Who may sign in (the run folder's logins and any given at start) and who is signed in now (memory)."""

    def __init__(self, run_dir: Path, extra: tuple[Login, ...], lifetime: float = SESSION_SECONDS) -> None:
        self.run_dir, self.extra, self.lifetime = run_dir, extra, lifetime
        self._sessions: dict[str, Session] = {}
        self._flash: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def _logins(self) -> tuple[Login, ...]:
        return (*self.extra, *read_logins(self.run_dir))  # read afresh: a new token counts at once

    def check(self, token: str) -> Login | None:
        """The login whose token this is, or None; every hash is compared in constant time."""
        digest, found = token_hash(token), None
        for login in self._logins():
            if hmac.compare_digest(login.sha256.encode(), digest.encode()) and found is None:
                found = login
        return found

    def start(self, login: Login) -> str:
        """A new session for ``login``; returns its id (the cookie's value)."""
        now, sid = time.monotonic(), secrets.token_urlsafe(32)
        with self._lock:
            for old in [k for k, s in self._sessions.items() if s.expires <= now]:
                self._drop(old)
            if len(self._sessions) >= _MAX_SESSIONS:
                self._drop(min(self._sessions, key=lambda k: self._sessions[k].expires))
            self._sessions[sid] = Session(login.name, secrets.token_urlsafe(32), login.sha256, now + self.lifetime)
        return sid

    def get(self, sid: str) -> Session | None:
        """The live session with this id, or None (unknown, expired, or its login's token replaced)."""
        with self._lock:
            session = self._sessions.get(sid) if sid else None
        if session is None:
            return None
        live = session.expires > time.monotonic() and any(
            x.name == session.name and hmac.compare_digest(x.sha256.encode(), session.sha256.encode())
            for x in self._logins())
        if not live:
            self.end(sid)
        return session if live else None

    def end(self, sid: str) -> None:
        """Forget a session (signing out)."""
        with self._lock:
            self._drop(sid)

    def _drop(self, sid: str) -> None:
        self._sessions.pop(sid, None)
        self._flash.pop(sid, None)

    def flash(self, sid: str, kind: str, msg: str) -> None:
        """A message the session's next page shows once (the outcome of a decision)."""
        with self._lock:
            if sid in self._sessions:
                self._flash[sid] = (kind, msg)

    def pop_flash(self, sid: str) -> tuple[str, str]:
        """The message waiting for this session, as (kind, text), and forget it; ("ok", "") if none."""
        with self._lock:
            return self._flash.pop(sid, ("ok", ""))
