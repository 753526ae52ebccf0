"""What the leads' page shows (money, pending proposals, recent decisions, the plot) and how it decides.

Read from the ledger afresh for every request; decisions go through :func:`budget.approvals.decide`, as
the command line's do.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from budget.approvals import DecisionError, RunNotFoundError, decide, open_ledger, proposal_lines
from budget.exceptions import LedgerFileError
from budget.ledger import Ledger
from budget.ledger.records import BatchRecord
from budget.ledger.round_records import RunInit
from budget.money import format_usd
from budget.page_logins import LoginsFileError
from budget.report import templates, write_report

__all__ = ["PLOT", "ensure_plot", "render_page", "render_login", "decide_for_page", "problem"]

PLOT = Path("report") / "score_vs_dollars.png"
_RECENT = 10  # decisions listed under the proposals
_REPORT_LOCK = threading.Lock()  # matplotlib's pyplot is not thread-safe


def _metric(run_dir: Path) -> str:
    stored = run_dir / "project.json"
    return json.loads(stored.read_text())["task"]["metric"] if stored.exists() else "score"


def ensure_plot(run_dir: Path, ledger: Ledger) -> Path | None:
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


def _kind(kind: str) -> str:
    return kind if kind in {"ok", "note", "error"} else "note"


def render_page(run_dir: Path, *, user: str, csrf: str, msg: str = "", kind: str = "ok") -> str:
    """The whole page for the signed-in ``user``, read from the ledger now; ``csrf`` goes into every form."""
    with open_ledger(run_dir) as ledger:
        init = RunInit.read(ledger)
        cards = tuple(_card(rec) for rec in ledger.batches("proposed"))
        money, decisions = _money(ledger), _decisions(ledger)
        plot = ensure_plot(run_dir, ledger)
    return templates().get_template("page.html").render(
        run_name=run_dir.name, run_id=init.run_id if init else "?", run_dir=str(run_dir), msg=msg, kind=_kind(kind),
        money=money, cards=cards, user=user, csrf=csrf, decisions=decisions,
        plot_version=plot.stat().st_mtime_ns if plot else None)


def render_login(*, msg: str = "", kind: str = "note") -> str:
    """The sign-in form; it shows nothing of the run."""
    return templates().get_template("login.html").render(msg=msg, kind=_kind(kind))


# --- deciding ------------------------------------------------------------------------------------

def decide_for_page(run_dir: Path, batch_id: str, verb: str, **kw: str) -> tuple[str, str]:
    """Approve or reject as the command line does; returns (kind, message) for the page."""
    try:
        with open_ledger(run_dir) as ledger:
            changed, message = decide(ledger, batch_id, verb, **kw)
    except (DecisionError, RunNotFoundError) as exc:
        return "error", str(exc)
    return ("ok" if changed else "note"), message


def problem(exc: Exception, run_dir: Path) -> str:
    """What went wrong inside a handler, in one line for the 500 page."""
    if isinstance(exc, LedgerFileError | RunNotFoundError | LoginsFileError):
        text = str(exc)
    elif isinstance(exc, sqlite3.DatabaseError):
        text = f"'{run_dir / 'ledger.sqlite'}' cannot be read ({exc}); the ledger may be damaged"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:1000]
