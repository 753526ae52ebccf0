"""What each dollar bought: a table per round, a Markdown summary, an HTML page and a PNG plot.

Everything comes from the ledger; test scores appear only in simulation and only here, never in a
decision. The ledger is read once into a :class:`Report`; ``report.md`` and ``report.html`` are both
written from it, so they show the same rows. HTML comes from the Jinja2 templates in
``budget/templates`` (:func:`templates`), which escape every value they print.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from budget.ledger import Ledger
from budget.ledger.records import Totals
from budget.ledger.round_records import RoundSummary
from budget.money import format_usd
from budget.shipped import best_round

__all__ = ["RoundRow", "Report", "round_rows", "build_report", "markdown", "write_report", "templates"]


@cache
def templates() -> jinja2.Environment:
    """The HTML templates in ``budget/templates``: autoescaped, and a name a template misses is an error."""
    return jinja2.Environment(loader=jinja2.PackageLoader("budget", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


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
    dev_items: int = 0  # the dev set's size when this round's student was scored


def round_rows(ledger: Ledger) -> list[RoundRow]:
    """The report's rows, one per round, in order.

    The only place in this module that reads a round's summary and plan (``r.summary``, ``r.plan``).
    """
    spent = ledger.spent_by_round()
    rows, total = [], 0
    for r in ledger.rounds():
        s = r.summary or RoundSummary()
        total += spent.get(r.round, 0)
        note = r.plan.decision.reason
        if s.rejected:
            note = "batch rejected"
        elif s.cut_short:
            note = "; ".join(why for why, ok in (
                ("the teacher stopped where its soft labels' and student's money began", s.teacher_stopped == "budget"),
                ("training stopped at the cap", s.stopped_at_cap)) if ok)
        rows.append(RoundRow(r.round, r.arm, r.state, spent.get(r.round, 0), total, s.labels_bought, s.n_labels,
                             float(s.seconds or 0.0), s.dev, s.test, note, s.dev_items or 0))
    return rows


def _fmt(score: float | None) -> str:
    return "" if score is None else f"{100 * score:.1f}"


@dataclass(frozen=True)
class Report:
    """What ``report.md`` and ``report.html`` show, read from the ledger once; money in micro-dollars.

    The sentences and table cells are properties, so both files print the same text and numbers.
    """

    metric: str
    totals: Totals
    spent_by_arm: tuple[tuple[str, int], ...]  # (arm, settled micro-dollars), sorted by arm
    rows: tuple[RoundRow, ...]
    stopped: str | None  # the reason of the last stop, None if the run has not stopped
    best: tuple[int, float] | None = None  # (round, dev score) of the best student on the current dev set

    @property
    def title(self) -> str:
        return f"What the money bought ({self.metric}, 0-100)"

    @property
    def money(self) -> str:
        t = self.totals
        return (f"Granted {format_usd(t.granted)}, spent {format_usd(t.spent)}, reserved {format_usd(t.reserved)}, "
                f"left {format_usd(t.available)}.")

    @property
    def per_arm(self) -> str:
        """"Spent per arm: ..." or "" before any arm has reserved."""
        if not self.spent_by_arm:
            return ""
        return "Spent per arm: " + ", ".join(f"{arm} {format_usd(v)}" for arm, v in self.spent_by_arm) + "."

    @property
    def dev_items(self) -> int:
        """The current dev set's size: the largest any round was scored on (0 before any score)."""
        return max((r.dev_items for r in self.rows if r.dev is not None), default=0)

    def on_current_dev(self, row: RoundRow) -> bool:
        """True when ``row``'s dev score is on the current dev set, comparable with the shipped student's."""
        return row.dev is not None and row.dev_items == self.dev_items

    @property
    def earlier_dev(self) -> str:
        """The footnote for dev scores on an earlier, smaller dev set (marked '*'), or "" when there are none."""
        if all(self.on_current_dev(r) for r in self.rows if r.dev is not None):
            return ""
        return (f"* scored on an earlier, smaller dev set (the dev set grows by random items to {self.dev_items}): "
                "not comparable with the other dev scores, and not used to choose the shipped student.")

    @property
    def has_test(self) -> bool:
        return any(r.test is not None for r in self.rows)

    @property
    def columns(self) -> tuple[str, ...]:
        cols = ("round", "arm", "spent", "total", "answers bought", "labels", "compute s", "dev")
        return cols + (("test",) if self.has_test else ()) + ("note",)

    @property
    def table(self) -> tuple[tuple[str, ...], ...]:
        """One tuple of cells per row, in the order of :attr:`columns`."""
        has_test = self.has_test
        return tuple((str(r.round), r.arm, format_usd(r.spent_micro), format_usd(r.cumulative_micro),
                      str(r.labels_bought), str(r.n_labels), f"{r.compute_seconds:.0f}",
                      _fmt(r.dev) + ("*" if r.dev is not None and not self.on_current_dev(r) else ""))
                     + ((_fmt(r.test),) if has_test else ()) + (r.note,) for r in self.rows)

    @property
    def stop(self) -> str:
        return "" if self.stopped is None else f"Stopped: {self.stopped}."

    @property
    def best_student(self) -> str:
        """The round whose student the run ships (the latest on the current dev set unless an earlier one beats
        it beyond the dev set's noise; see :func:`budget.shipped.best_round`), or "" before any score."""
        if self.best is None:
            return ""
        rnd, dev = self.best
        best = next(r for r in self.rows if r.round == rnd)
        extra = f", test {_fmt(best.test)}" if best.test is not None else ""
        return (f"Shipped student: round {best.round} ({best.arm}), dev {_fmt(dev)}{extra}, "
                f"after {format_usd(best.cumulative_micro)}.")


def build_report(ledger: Ledger, metric: str) -> Report:
    """Read everything the report shows from ``ledger``, once."""
    stops = ledger.events("stopped")
    return Report(metric, ledger.totals(), tuple(sorted(ledger.spent_by_arm().items())), tuple(round_rows(ledger)),
                  stops[-1].data.get("reason", "") if stops else None, best_round(ledger.rounds()))


def _markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", report.money, ""]
    if report.per_arm:
        lines += [report.per_arm, ""]
    lines += ["| " + " | ".join(report.columns) + " |", "|" + "---|" * len(report.columns)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |" for cells in report.table]
    lines += [line for text in (report.earlier_dev, report.stop, report.best_student) if text for line in ("", text)]
    return "\n".join(lines) + "\n"


def markdown(ledger: Ledger, metric: str) -> str:
    """The summary as Markdown: money, the table per round, and where the run stopped."""
    return _markdown(build_report(ledger, metric))


def _plot(report: Report, metric: str, path: Path) -> None:
    """Dev and test score against dollars; dev scores on an earlier, smaller dev set are drawn hollow and apart
    from the line, which joins only the scores on the current dev set (those the shipped student was chosen on)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    colors = {"baseline": "#555555", "annotate": "#1f77b4", "distill": "#d62728"}
    series = (("dev", "-", "o", report.on_current_dev), ("test", "--", "x", lambda r: r.test is not None))
    for split, style, marker, joined in series:
        pts = [(r.cumulative_micro / 1e6, 100 * getattr(r, split), r.arm, joined(r)) for r in report.rows
               if getattr(r, split) is not None]
        line = [p for p in pts if p[3]]
        ax.plot([p[0] for p in line], [p[1] for p in line], style, color="#999999", lw=1, zorder=1)
        for arm in colors:
            sel = [p for p in line if p[2] == arm]
            if sel:
                ax.scatter([p[0] for p in sel], [p[1] for p in sel], color=colors[arm], zorder=2, marker=marker,
                           label=f"{arm} ({split})")
        apart = [p for p in pts if not p[3]]
        if apart:
            ax.scatter([p[0] for p in apart], [p[1] for p in apart], facecolors="none", zorder=2, marker=marker,
                       edgecolors=[colors.get(p[2], "#555555") for p in apart], label="dev, earlier dev set")
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
    report = build_report(ledger, metric)
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html", "csv": out_dir / "rounds.csv",
             "plot": out_dir / "score_vs_dollars.png"}
    paths["markdown"].write_text(_markdown(report))
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "arm", "state", "spent_usd", "cumulative_usd", "labels_bought", "n_labels",
                    "compute_seconds", f"dev_{metric}", f"test_{metric}"])
        for r in report.rows:
            w.writerow([r.round, r.arm, r.state, f"{r.spent_micro / 1e6:.6f}", f"{r.cumulative_micro / 1e6:.6f}",
                        r.labels_bought, r.n_labels, f"{r.compute_seconds:.1f}", r.dev, r.test])
    _plot(report, metric, paths["plot"])
    paths["html"].write_text(templates().get_template("report.html").render(report=report, plot=paths["plot"].name))
    return paths
