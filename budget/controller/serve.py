"""``python -m budget.controller serve``: the leads' page as a command (a client of :mod:`budget.web`).

The first ``serve`` for a ``--user`` makes a login and prints its sign-in URL once; see
:mod:`budget.page_logins`.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import click

from budget.approvals import RunNotFoundError, open_ledger
from budget.cli_errors import InputError
from budget.exceptions import LedgerFileError
from budget.page_logins import (
    LOGINS_FILE,
    TOKEN_ENV,
    Login,
    LoginsFileError,
    check_name,
    env_login,
    new_login,
    read_logins,
)
from budget.web import base_url, make_server

__all__ = ["serve"]


def _check_run(run_dir: str) -> None:
    """A one-line error now, rather than on the first request, for a missing or unreadable run."""
    try:
        open_ledger(run_dir).close()
        read_logins(run_dir)
    except (RunNotFoundError, LedgerFileError, LoginsFileError) as exc:
        raise InputError(str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise InputError(f"'{Path(run_dir) / 'ledger.sqlite'}' cannot be read ({exc}).") from exc


def _who(user: str | None, new_token: bool, token_only: bool) -> tuple[str, Login | None]:
    """The login's name, and the login AOD_PAGE_TOKEN gives it (None when unset); bad input is InputError."""
    try:
        name = check_name(user or os.environ.get("USER") or "lead")
        login = env_login(name)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if login is not None and (new_token or token_only):
        raise InputError(f"{TOKEN_ENV} is set, so no token is made or stored; unset it to use --new-token or "
                         "--token-only.")
    return name, login


def _make_token(run_dir: str, name: str, new_token: bool) -> str | None:
    """A new token for ``name`` when it has no login or ``--new-token`` asks; None when it keeps its own."""
    if not new_token and any(x.name == name for x in read_logins(run_dir)):
        return None
    try:
        return new_login(run_dir, name)
    except OSError as exc:
        raise click.ClickException(f"Cannot write {Path(run_dir) / LOGINS_FILE}: {exc.strerror or exc}.") from exc


def _tell(run_dir: str, name: str, base_url: str, token: str | None, env: bool) -> None:
    """How ``name`` signs in: the URL with a new token (shown once), or where the token is."""
    again = f"python -m budget.controller serve --run-dir {shlex.quote(run_dir)} --user {shlex.quote(name)} --new-token"
    if env:
        click.echo(f"{name} signs in with the token in {TOKEN_ENV}: open {base_url}?token=... or paste it there.")
    elif token is None:
        click.echo(f"{name} signs in with the token given when the login was made ({base_url}?token=...); "
                   f"a lost one is replaced by `{again}`.")
    else:
        click.echo(f"Sign in as {name} by opening this URL; the token is shown once (only its hash is kept, in "
                   f"{Path(run_dir) / LOGINS_FILE}):\n    {base_url}?{urlencode({'token': token})}\n"
                   f"A lost token is replaced by `{again}`.")


@click.command()
@click.option("--run-dir", default="runs/demo", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Beyond loopback (0.0.0.0 on a team's machine) tokens travel in clear "
                   "over http: prefer an ssh tunnel or an https reverse proxy.")
@click.option("--user", help="Whose login this is; decisions are recorded under this name. Default: $USER, "
                             "else 'lead'.")
@click.option("--new-token", is_flag=True, help="Replace --user's token (the old one and its sessions stop working).")
@click.option("--token-only", is_flag=True, help="Make --user's login (or a new token) and print it, without "
                                                 "serving: for another lead while the page is served.")
@click.option("--allow-host", multiple=True, metavar="NAME",
              help="Another name the page is reached by (a reverse proxy's), accepted in Host and Origin. Repeatable.")
@click.option("--quiet", is_flag=True, help="Do not log each request.")
def serve(run_dir: str, port: int, host: str, user: str | None, new_token: bool, token_only: bool,
          allow_host: tuple[str, ...], quiet: bool) -> None:
    """Serve a web page for leads: money, pending proposals with Approve / Reject, and the plot.

    Every page needs a login. The first `serve` for a --user makes one and prints a sign-in URL with its token,
    once; the run folder keeps only the token's hash (page-logins.json). With AOD_PAGE_TOKEN set, that token
    signs in as --user instead, and nothing is made, stored or printed.

    Example: python -m budget.controller serve --run-dir runs/demo   (then open the URL it prints)
    """
    _check_run(run_dir)
    name, env = _who(user, new_token, token_only)
    if token_only:
        token = _make_token(run_dir, name, new_token)
        return _tell(run_dir, name, base_url(host, port), token, env=False)
    try:
        server = make_server(run_dir, host, port, quiet=quiet, allow_hosts=allow_host, logins=[env] if env else [])
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                   "pick another --port.") from exc
    with server:
        token = None if env else _make_token(run_dir, name, new_token)  # made once the port is ours
        click.echo(f"Serving {run_dir} on {server.url} (Ctrl-C to stop).")
        _tell(run_dir, name, server.url, token, env=env is not None)
        if not server.loopback:
            click.echo("Listening beyond loopback: over plain http the token and the session travel in clear; "
                       "prefer an ssh tunnel or an https reverse proxy.", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.")
