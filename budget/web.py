"""A small web page for leads: ``python -m budget.controller serve --run-dir runs/demo``.

One page on 127.0.0.1 shows the money (granted, reserved, spent, available), every proposal that waits
for a lead (items, price, money before and after, the policy's why, a sample of the items) with Approve
and Reject buttons, the recent decisions, and the score-against-dollars plot. Decisions go through the
same code as ``approve`` / ``reject`` on the command line, so approving twice pushes once.

Three routes need no web framework: this is the standard library's ``http.server``.
  GET  /           the page (``?msg=...&kind=ok|note|error&by=NAME`` shows a message and fills the name)
  GET  /plot.png   ``<run-dir>/report/score_vs_dollars.png``, written by the report if it is missing
  POST /approve    form fields ``batch_id``, ``by``; answers 303 to ``/`` with the outcome
  POST /reject     form fields ``batch_id``, ``by``, ``why``; likewise
Every request opens the ledger afresh, so a controller running in another process sees a decision at once
and the page sees new proposals on reload. The server listens on a loopback address only and answers only
requests whose Host (and Origin, when a browser sends one) is that address: no other site can post a
decision, and no other name can be made to resolve to the server (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import click

from budget.approvals import DecisionError, RunNotFoundError, decide, open_ledger, proposal_lines
from budget.cli_errors import InputError
from budget.ledger import Ledger
from budget.money import format_usd
from budget.records import BatchRecord
from budget.report import templates, write_report
from budget.round_records import RunInit

__all__ = ["serve", "make_server", "is_loopback"]

PLOT = Path("report") / "score_vs_dollars.png"
_MAX_FORM = 64 * 1024  # bytes of a POST body; the forms send a few hundred
_RECENT = 10  # decisions listed under the proposals
_REPORT_LOCK = threading.Lock()  # matplotlib's pyplot is not thread-safe
_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _not_loopback(host: str) -> str:
    return (f"--host {host!r} is not a loopback address; the page has no login, so it listens only on "
            "127.0.0.1, ::1 or localhost.")


# --- what the page shows -------------------------------------------------------------------------

def _metric(run_dir: Path) -> str:
    stored = run_dir / "project.json"
    return json.loads(stored.read_text())["task"]["metric"] if stored.exists() else "score"


def _ensure_plot(run_dir: Path, ledger: Ledger) -> Path | None:
    """The plot, written with the rest of the report if the controller has not written it yet."""
    path = run_dir / PLOT
    with _REPORT_LOCK:
        if not path.exists():
            try:
                write_report(ledger, run_dir / "report", _metric(run_dir))
            except (OSError, ValueError, KeyError) as exc:
                print(f"[serve] could not write the report: {exc}", file=sys.stderr)
    return path if path.exists() else None


def _when(at: str) -> str:
    return at[:16].replace("T", " ") + " UTC"


@dataclass(frozen=True)
class _Tile:
    cls: str  # granted, reserved, spent or available
    label: str
    amount: str


@dataclass(frozen=True)
class _Money:
    tiles: tuple[_Tile, ...]
    bar: tuple[tuple[str, float], ...]  # (class, percent of the bar's width)


@dataclass(frozen=True)
class _Card:
    """One pending proposal as the page shows it."""

    batch_id: str
    round: int | None
    kind: str  # "labels" or "compute"
    proposed: str
    total: str
    head: str  # what is bought and for how much
    facts: tuple[tuple[str, str], ...]  # (name, text): money before and after, the policy's why
    sample: tuple[str, ...]
    n_items: int


@dataclass(frozen=True)
class _Decision:
    when: str
    decision: str  # approved or rejected
    batch_id: str
    total: str
    by: str
    why: str


def _money(ledger: Ledger) -> _Money:
    t = ledger.totals()
    tiles = tuple(_Tile(cls, label, format_usd(v)) for cls, label, v in (
        ("granted", "Granted", t.granted), ("reserved", "Reserved", t.reserved),
        ("spent", "Spent", t.spent), ("available", "Available", t.available)))
    whole = max(t.granted, t.spent + t.reserved + max(t.available, 0), 1)
    bar = tuple((cls, 100 * max(v, 0) / whole) for cls, v in (("spent", t.spent), ("reserved", t.reserved),
                                                              ("available", t.available)))
    return _Money(tiles, bar)


def _card(rec: BatchRecord) -> _Card:
    """One pending proposal: the controller's own description of it and its sample items.

    The only place in this module that reads a batch's payload.
    """
    p = rec.payload
    sample = tuple(" / ".join(map(str, t)) if isinstance(t, list | tuple) else str(t) for t in p.sample)
    lines = proposal_lines(rec)
    lines = lines[:len(lines) - len(sample)] if sample else lines  # the sample is shown in full below
    head, facts = lines[0], lines[1:]
    prefix = f"{rec.batch_id} (round {rec.round}): "
    head = head[len(prefix):] if head.startswith(prefix) else head
    pairs = tuple((k, v) for k, _, v in (f.strip().partition(": ") for f in facts))
    return _Card(rec.batch_id, rec.round, "compute" if p.is_compute else "labels", _when(rec.created_at),
                 format_usd(rec.total_micro), head, pairs, sample, len(p.item_ids))


def _decisions(ledger: Ledger) -> tuple[_Decision, ...]:
    batches = {b.batch_id: b for b in ledger.batches()}
    done = sorted((a for b in batches for a in ledger.approvals(b)), key=lambda a: a.at, reverse=True)[:_RECENT]
    return tuple(_Decision(_when(a.at), a.decision, a.batch_id, format_usd(batches[a.batch_id].total_micro), a.by,
                           a.why or "-") for a in done)


def render_page(run_dir: Path, *, msg: str = "", kind: str = "ok", by: str = "") -> str:
    """The whole page, read from the ledger now."""
    with open_ledger(run_dir) as ledger:
        init = RunInit.read(ledger)
        cards = tuple(_card(rec) for rec in ledger.batches("proposed"))
        money, decisions = _money(ledger), _decisions(ledger)
        plot = _ensure_plot(run_dir, ledger)
    return templates().get_template("page.html").render(
        run_name=run_dir.name, run_id=init.run_id if init else "?", run_dir=str(run_dir), msg=msg,
        kind=kind if kind in {"ok", "note", "error"} else "note", money=money,
        cards=cards, by=by, decisions=decisions, plot_version=plot.stat().st_mtime_ns if plot else None)


# --- deciding ------------------------------------------------------------------------------------

def decide_for_page(run_dir: Path, batch_id: str, verb: str, **kw: str) -> tuple[str, str]:
    """Approve or reject as the command line does; returns (kind, message) for the page."""
    try:
        with open_ledger(run_dir) as ledger:
            changed, message = decide(ledger, batch_id, verb, **kw)
    except (DecisionError, RunNotFoundError) as exc:
        return "error", str(exc)
    return ("ok" if changed else "note"), message


# --- the server ----------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "annotate-or-distill"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._allowed():
            return
        url = urlsplit(self.path)
        if url.path == "/":
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                page = render_page(self.server.run_dir, msg=q.get("msg", "")[:1000], kind=q.get("kind", "ok"),
                                   by=q.get("by", "")[:80])
            except RunNotFoundError as exc:  # the run folder lost its ledger
                return self._send(HTTPStatus.NOT_FOUND, str(exc).encode(), "text/plain; charset=utf-8")
            return self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        if url.path == "/plot.png":
            try:
                with open_ledger(self.server.run_dir) as ledger:
                    plot = _ensure_plot(self.server.run_dir, ledger)
            except RunNotFoundError as exc:
                return self._send(HTTPStatus.NOT_FOUND, str(exc).encode(), "text/plain; charset=utf-8")
            if plot is None:
                return self._send(HTTPStatus.NOT_FOUND, b"no plot yet", "text/plain; charset=utf-8")
            return self._send(HTTPStatus.OK, plot.read_bytes(), "image/png")
        if url.path in {"/approve", "/reject"}:
            return self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"POST a decision from the page", "text/plain")
        self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self._allowed(post=True):
            return
        path = urlsplit(self.path).path
        if path not in {"/approve", "/reject"}:
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_FORM:
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"form too large", "text/plain")
        form = {k: v[-1].strip() for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        batch_id, by, why = form.get("batch_id", ""), form.get("by", "")[:80], form.get("why", "")[:500]
        if not batch_id:
            kind, msg = "error", "No batch_id in the form."
        elif not by:
            kind, msg = "error", f"Type your name before deciding on {batch_id}: it is recorded with the decision."
        elif path == "/reject" and not why:
            kind, msg = "error", f"Give a reason to reject {batch_id}: it is recorded with the decision."
        elif path == "/approve":
            kind, msg = decide_for_page(self.server.run_dir, batch_id, "approved", by=by)
        else:
            kind, msg = decide_for_page(self.server.run_dir, batch_id, "rejected", by=by, why=why)
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/?" + urlencode({"msg": msg, "kind": kind, "by": by}))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _allowed(self, post: bool = False) -> bool:
        """Only our own loopback address may ask: Host always, Origin too when a browser sends one."""
        hosts = self.server.hosts
        host = (self.headers.get("Host") or "").lower()
        origin = (self.headers.get("Origin") or "").lower()
        ok = host in hosts and (not origin or urlsplit(origin).netloc in hosts and origin.startswith("http://"))
        if not ok:
            self._send(HTTPStatus.FORBIDDEN, f"Refused: this page answers only to http://{self.server.url_host}/ "
                       "(Host and Origin are checked).".encode(), "text/plain; charset=utf-8")
        return ok

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")  # "no-referrer" would make a form's Origin "null"
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        if not self.server.quiet:
            sys.stderr.write(f"[serve] {self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], run_dir: Path, quiet: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.run_dir, self.quiet = run_dir, quiet
        port = self.server_address[1]
        name = address[0].strip("[]")
        self.url_host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        self.hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")} | {self.url_host.lower()}

    @property
    def url(self) -> str:
        return f"http://{self.url_host}/"


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = False) -> _Server:
    """A server for ``run_dir`` bound to ``host:port`` (port 0: a free one); call ``serve_forever()``.

    Raises
    ------
    ValueError
        If ``host`` is not a loopback address: the page decides on money and has no login.
    OSError
        If the port cannot be bound.
    """
    if not is_loopback(host):
        raise ValueError(_not_loopback(host))
    return _Server((host.strip("[]"), port), Path(run_dir), quiet)


@click.command()
@click.option("--run-dir", default="runs/demo", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address only.")
@click.option("--quiet", is_flag=True, help="Do not log each request.")
def serve(run_dir: str, port: int, host: str, quiet: bool) -> None:
    """Serve a web page for leads: money, pending proposals with Approve / Reject, and the plot.

    Example: python -m budget.controller serve --run-dir runs/demo   (then open http://127.0.0.1:8765/)
    """
    if not is_loopback(host):
        raise InputError(_not_loopback(host))
    try:
        open_ledger(run_dir).close()  # no run there: a one-line error now rather than on the first request
    except RunNotFoundError as exc:
        raise InputError(str(exc)) from exc
    try:
        server = make_server(run_dir, host, port, quiet=quiet)
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                   "pick another --port.") from exc
    with server:
        click.echo(f"Serving {run_dir} on {server.url} (Ctrl-C to stop).")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("Stopped.")
