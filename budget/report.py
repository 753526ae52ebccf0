"""What each dollar bought: a table per round, a Markdown summary, an HTML page and a PNG plot.

Everything comes from the ledger; test scores appear only in simulation and only here, never in a
decision.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path

from budget.ledger import Ledger
from budget.money import format_usd

__all__ = ["RoundRow", "round_rows", "markdown", "write_report"]


@dataclass(frozen=True)
class RoundRow:
    """One line of the report; money in micro-dollars, ``cumulative_micro`` is spent up to this round."""

    round: int
    arm: str
    state: str
    spent_micro: int
    cumulative_micro: int
    labels_bought: int
    n_labels: int
    compute_seconds: float
    dev: float | None
    test: float | None
    note: str


def round_rows(ledger: Ledger) -> list[RoundRow]:
    """The report's rows, one per round, in order."""
    spent = ledger.spent_by_round()
    rows, total = [], 0
    for r in ledger.rounds():
        s = r.summary or {}
        total += spent.get(r.round, 0)
        note = r.decision.get("reason", "")
        if s.get("rejected"):
            note = "batch rejected"
        elif s.get("stopped") == "budget":
            note = "training stopped at the cap"
        rows.append(RoundRow(r.round, r.arm, r.state, spent.get(r.round, 0), total, int(s.get("labels_bought", 0)),
                             int(s.get("n_labels", 0)), float(s.get("seconds", 0.0)), s.get("dev"), s.get("test"),
                             note))
    return rows


def _fmt(score: float | None) -> str:
    return "" if score is None else f"{100 * score:.1f}"


def markdown(ledger: Ledger, metric: str) -> str:
    """The summary as Markdown: money, the table per round, and where the run stopped."""
    rows = round_rows(ledger)
    t = ledger.totals()
    lines = [f"# What the money bought ({metric}, 0-100)", "",
             f"Granted {format_usd(t.granted)}, spent {format_usd(t.spent)}, reserved {format_usd(t.reserved)}, "
             f"left {format_usd(t.available)}.", ""]
    by_arm = ledger.spent_by_arm()
    if by_arm:
        lines.append("Spent per arm: " + ", ".join(f"{arm} {format_usd(v)}" for arm, v in sorted(by_arm.items())) + ".")
        lines.append("")
    has_test = any(r.test is not None for r in rows)
    cols = ["round", "arm", "spent", "total", "answers bought", "labels", "compute s", "dev"]
    cols += (["test"] if has_test else []) + ["note"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [str(r.round), r.arm, format_usd(r.spent_micro), format_usd(r.cumulative_micro), str(r.labels_bought),
                 str(r.n_labels), f"{r.compute_seconds:.0f}", _fmt(r.dev)] + ([_fmt(r.test)] if has_test else [])
        lines.append("| " + " | ".join(cells + [r.note.replace("|", "/")]) + " |")
    stops = ledger.events("stopped")
    if stops:
        lines += ["", f"Stopped: {stops[-1].data.get('reason', '')}."]
    scored = [r for r in rows if r.dev is not None]
    if scored:
        best = max(scored, key=lambda r: r.dev)
        extra = f", test {_fmt(best.test)}" if best.test is not None else ""
        lines += ["", f"Best student: round {best.round} ({best.arm}), dev {_fmt(best.dev)}{extra}, "
                      f"after {format_usd(best.cumulative_micro)}."]
    return "\n".join(lines) + "\n"


def _plot(rows: list[RoundRow], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    colors = {"baseline": "#555555", "annotate": "#1f77b4", "distill": "#d62728"}
    for split, style in (("dev", "-"), ("test", "--")):
        pts = [(r.cumulative_micro / 1e6, 100 * getattr(r, split), r.arm) for r in rows
               if getattr(r, split) is not None]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color="#999999", lw=1, zorder=1)
        for arm in colors:
            sel = [p for p in pts if p[2] == arm]
            if sel:
                ax.scatter([p[0] for p in sel], [p[1] for p in sel], color=colors[arm], zorder=2,
                           marker="o" if split == "dev" else "x", label=f"{arm} ({split})")
    from matplotlib.ticker import FuncFormatter

    ax.set_xlim(left=0)  # the baseline costs a fraction of a cent: every run starts at $0
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"${x:,.0f}" if x >= 10 else f"${x:,.2f}"))
    ax.set_xlabel("dollars spent")
    ax.set_ylabel(f"{metric} (0-100)")
    ax.set_title("Student score against dollars, per arm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(ledger: Ledger, out_dir: Path, metric: str) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``rounds.csv`` and ``score_vs_dollars.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = round_rows(ledger)
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "csv": out_dir / "rounds.csv",
             "plot": out_dir / "score_vs_dollars.png"}
    md = markdown(ledger, metric)
    paths["markdown"].write_text(md)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "arm", "state", "spent_usd", "cumulative_usd", "labels_bought", "n_labels",
                    "compute_seconds", f"dev_{metric}", f"test_{metric}"])
        for r in rows:
            w.writerow([r.round, r.arm, r.state, f"{r.spent_micro / 1e6:.6f}", f"{r.cumulative_micro / 1e6:.6f}",
                        r.labels_bought, r.n_labels, f"{r.compute_seconds:.1f}", r.dev, r.test])
    _plot(rows, metric, paths["plot"])
    body = "".join(f"<p>{html.escape(line)}</p>" if not line.startswith("|") else "" for line in md.splitlines()[1:])
    table = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|"))
                    + "</tr>" for line in md.splitlines() if line.startswith("|") and "---" not in line)
    paths["html"].write_text(f"<!doctype html><meta charset=utf-8><title>annotate-or-distill report</title>"
                             f"<h1>What the money bought</h1>{body}<table border=1 cellpadding=4>{table}</table>"
                             f"<p><img src='{paths['plot'].name}' alt='score against dollars'></p>")
    return paths
