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

import html
import ipaddress
import json
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import click

from budget.approvals import DecisionError, RunNotFoundError, decide, open_ledger, proposal_lines
from budget.exceptions import InputError
from budget.ledger import Ledger
from budget.money import format_usd

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


def e(value: object) -> str:
    """``value`` as HTML text or attribute: every value shown on the page goes through here."""
    return html.escape(str(value), quote=True)


# --- what the page shows -------------------------------------------------------------------------

def _metric(run_dir: Path) -> str:
    stored = run_dir / "project.json"
    return json.loads(stored.read_text())["task"]["metric"] if stored.exists() else "score"


def _ensure_plot(run_dir: Path, ledger: Ledger) -> Path | None:
    """The plot, written with the rest of the report if the controller has not written it yet."""
    from budget.report import write_report

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


def _money(ledger: Ledger) -> str:
    t = ledger.totals()
    tiles = "".join(f'<div class="tile {cls}"><div class="label">{label}</div>'
                    f'<div class="amount" data-money="{cls}">{e(format_usd(v))}</div></div>'
                    for cls, label, v in (("granted", "Granted", t.granted), ("reserved", "Reserved", t.reserved),
                                          ("spent", "Spent", t.spent), ("available", "Available", t.available)))
    whole = max(t.granted, t.spent + t.reserved + max(t.available, 0), 1)
    bar = "".join(f'<span class="{cls}" style="width:{100 * max(v, 0) / whole:.2f}%"></span>'
                  for cls, v in (("spent", t.spent), ("reserved", t.reserved), ("available", t.available)))
    return f'<section class="money">{tiles}</section><div class="bar" title="spent, reserved, available">{bar}</div>'


def _card(rec, by: str) -> str:
    """One pending proposal: the controller's own description of it, its sample items, and the decision form."""
    p = rec.payload
    sample = p.get("sample") or []
    lines = proposal_lines(rec)
    lines = lines[:len(lines) - len(sample)] if sample else lines  # the sample is shown in full below
    head, facts = lines[0], lines[1:]
    prefix = f"{rec.batch_id} (round {rec.round}): "
    head = head[len(prefix):] if head.startswith(prefix) else head
    rows = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, _, v in (f.strip().partition(": ") for f in facts))
    kind = "compute" if p.get("kind") == "compute" else "labels"
    items = "".join(f"<li>{e(' / '.join(map(str, t)) if isinstance(t, list | tuple) else t)}</li>" for t in sample)
    n = len(p.get("item_ids") or [])
    sample_html = (f'<h4>Sample: {len(sample)} of {n} items</h4><ol class="sample">{items}</ol>' if sample else "")
    return f"""
<article class="card" id="batch-{e(rec.batch_id)}" data-batch="{e(rec.batch_id)}">
  <header><div><span class="badge {kind}">{kind}</span> <code class="batch-id">{e(rec.batch_id)}</code>
    <span class="muted">round {e(rec.round)}, proposed {e(_when(rec.created_at))}</span></div>
    <div class="total">{e(format_usd(rec.total_micro))}</div></header>
  <p class="what">{e(head)}</p>
  <dl>{rows}</dl>
  {sample_html}
  <form method="post" action="/approve" class="decide">
    <input type="hidden" name="batch_id" value="{e(rec.batch_id)}">
    <label>Your name <input name="by" value="{e(by)}" required maxlength="80" autocomplete="name"></label>
    <label class="grow">Reason (to reject) <input name="why" maxlength="500"
      placeholder="e.g. too many near-duplicates"></label>
    <button type="submit" class="approve" formaction="/approve">Approve {e(format_usd(rec.total_micro))}</button>
    <button type="submit" class="reject" formaction="/reject">Reject</button>
  </form>
</article>"""


def _decisions(ledger: Ledger) -> str:
    batches = {b.batch_id: b for b in ledger.batches()}
    done = sorted((a for b in batches for a in ledger.approvals(b)), key=lambda a: a.at, reverse=True)[:_RECENT]
    if not done:
        return '<p class="muted">No decisions yet.</p>'
    rows = "".join(f'<tr><td>{e(_when(a.at))}</td><td><span class="badge {e(a.decision)}">{e(a.decision)}</span></td>'
                   f"<td><code>{e(a.batch_id)}</code></td><td>{e(format_usd(batches[a.batch_id].total_micro))}</td>"
                   f"<td>{e(a.by)}</td><td>{e(a.why or '-')}</td></tr>" for a in done)
    return ('<div class="table"><table class="decisions"><thead><tr><th>when</th><th>decision</th><th>batch</th>'
            f"<th>total</th><th>by</th><th>why</th></tr></thead><tbody>{rows}</tbody></table></div>")


def render_page(run_dir: Path, *, msg: str = "", kind: str = "ok", by: str = "") -> str:
    """The whole page, read from the ledger now."""
    with open_ledger(run_dir) as ledger:
        init = ledger.step_result("run:init") or {}
        pending = ledger.batches("proposed")
        cards = "".join(_card(rec, by) for rec in pending) or (
            '<p class="empty">No proposals wait for approval. When the controller proposes a batch above the '
            "auto-approval limit, it appears here; reload the page.</p>")
        money, decisions = _money(ledger), _decisions(ledger)
        plot = _ensure_plot(run_dir, ledger)
    flash = (f'<div class="flash {e(kind if kind in {"ok", "note", "error"} else "note")}" role="status">{e(msg)}</div>'
             if msg else "")
    img = (f'<img src="/plot.png?v={plot.stat().st_mtime_ns}" alt="student score against dollars spent, per arm">'
           if plot else '<p class="muted">No plot yet: run the controller first.</p>')
    title = f"({len(pending)}) " if pending else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}annotate-or-distill: {e(run_dir.name)}</title>
<style>{_STYLE}</style></head>
<body><main>
<header class="top"><h1>annotate-or-distill</h1>
  <div class="muted">run <code>{e(init.get("run_id", "?"))}</code> in <code>{e(run_dir)}</code>
  &middot; <a href="/">reload</a></div></header>
{flash}
{money}
<h2>Waiting for approval <span class="count">{len(pending)}</span></h2>
{cards}
<h2>Recent decisions</h2>
{decisions}
<h2>What the money bought</h2>
<figure class="plot">{img}</figure>
<footer class="muted">The same from a terminal: <code>python -m budget.controller proposals --run-dir
{e(run_dir)}</code>. After approving, run the controller again to push the batch.</footer>
</main></body></html>"""


_STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d2330;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:960px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0}
h2{font-size:17px;margin:28px 0 10px}
h4{font-size:13px;margin:12px 0 4px;color:#555;text-transform:uppercase;letter-spacing:.04em}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#e9ebf0;padding:1px 5px;border-radius:4px}
a{color:#2456c7}
.top{display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:8px;margin-bottom:16px}
.muted{color:#6b7280;font-size:13px}
.flash{padding:10px 14px;border-radius:8px;margin:0 0 16px;border:1px solid}
.flash.ok{background:#e8f6ec;border-color:#9fd6ad;color:#14532d}
.flash.note{background:#fff7e0;border-color:#f0d48a;color:#6b4e00}
.flash.error{background:#fde8e8;border-color:#f3a7a7;color:#7f1d1d}
.money{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}
.tile{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);
  border-top:4px solid #9ca3af}
.tile .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280}
.tile .amount{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.tile.granted{border-color:#2456c7}.tile.spent{border-color:#374151}.tile.reserved{border-color:#e5a50a}.tile.available{border-color:#2e9d52}
.bar{display:flex;height:8px;border-radius:4px;overflow:hidden;background:#e5e7eb;margin:10px 0 0}
.bar .spent{background:#374151}.bar .reserved{background:#e5a50a}.bar .available{background:#2e9d52}
.count{background:#1d2330;color:#fff;border-radius:10px;padding:0 8px;font-size:13px;vertical-align:2px}
.card{background:#fff;border-radius:10px;padding:14px 18px;margin:0 0 14px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
.card header{display:flex;justify-content:space-between;align-items:center;gap:12px}
.card .total{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.card .what{font-size:16px;margin:8px 0}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;font-size:14px}
.card dt{color:#6b7280}.card dd{margin:0}
.sample{margin:0;padding-left:22px;font-size:14px;max-height:260px;overflow:auto;background:#fafafa;
  border:1px solid #eceef2;border-radius:6px;padding-top:6px;padding-bottom:6px}
.sample li{margin:2px 0;overflow-wrap:anywhere}
.badge{display:inline-block;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.05em;
  padding:2px 7px;border-radius:10px;background:#e5e7eb;color:#374151}
.badge.labels{background:#dbe8ff;color:#1e3a8a}.badge.compute{background:#fde2e2;color:#8a1c1c}
.badge.approved{background:#dcf5e3;color:#14532d}.badge.rejected{background:#fde2e2;color:#7f1d1d}
.decide{display:flex;flex-wrap:wrap;align-items:flex-end;gap:10px;margin-top:14px;padding-top:12px;
  border-top:1px solid #eceef2}
.decide label{display:flex;flex-direction:column;font-size:12px;color:#6b7280;gap:3px}
.decide .grow{flex:1;min-width:200px}
.decide input{font:inherit;padding:6px 8px;border:1px solid #cfd3da;border-radius:6px;color:#1d2330}
button{font:inherit;font-weight:600;padding:7px 16px;border-radius:6px;border:1px solid transparent;cursor:pointer}
button.approve{background:#2e9d52;color:#fff}button.approve:hover{background:#23803f}
button.reject{background:#fff;color:#b42318;border-color:#e4a19a}button.reject:hover{background:#fdeceb}
.empty{background:#fff;border-radius:10px;padding:16px;color:#6b7280}
.table{overflow-x:auto;background:#fff;border-radius:10px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
table.decisions{width:100%;border-collapse:collapse;font-size:14px}
.decisions td:first-child,.decisions code{white-space:nowrap}
.decisions th,.decisions td{text-align:left;padding:7px 10px;border-bottom:1px solid #eceef2;vertical-align:top}
.decisions th{font-size:12px;color:#6b7280;text-transform:uppercase;letter-spacing:.04em;background:#fafbfc}
.plot{margin:0;background:#fff;border-radius:10px;padding:10px;box-shadow:0 1px 2px rgba(0,0,0,.08);text-align:center}
.plot img{max-width:100%;height:auto}
footer{margin-top:24px}
@media (max-width:640px){.money{grid-template-columns:repeat(2,1fr)}}
"""


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
