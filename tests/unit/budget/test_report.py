"""The report a lead reads: report.md and report.html show the same rows, and no value can inject HTML."""

from html.parser import HTMLParser

import jinja2
import pytest

from budget.decision import Decision
from budget.ledger import Ledger
from budget.ledger.round_records import RoundPlan, RoundSummary
from budget.report import build_report, markdown, templates, write_report

EVIL = '<script>alert("x")</script> | & more'

EXPECTED_MD = """\
# What the money bought (accuracy, 0-100)

Granted $40.00, spent $15.00, reserved $0.00, left $25.00.

Spent per arm: annotate $15.00, baseline $0.0001.

| round | arm | spent | total | answers bought | labels | compute s | dev | test | note |
|---|---|---|---|---|---|---|---|---|---|
| 0 | baseline | $0.0001 | $0.0001 | 0 | 40 | 1 | 50.0 | 54.7 | the student on the seed labels |
| 1 | annotate | $15.00 | $15.00 | 30 | 70 | 3 | 71.4 | 68.0 | <script>alert("x")</script> / & more |
| 2 | annotate | $0.00 | $15.00 | 0 | 70 | 0 |  |  | batch rejected |

Stopped: budget spent.

Shipped student: round 1 (annotate), dev 71.4, test 68.0, after $15.00.
"""


def _round(ledger: Ledger, n: int, arm: str, reason: str, spend_micro: int, summary: dict) -> None:
    ledger.start_round(n, arm, RoundPlan(Decision(arm, reason=reason)))
    if spend_micro:
        res = ledger.reserve(spend_micro, key=f"r{n}", arm=arm, round=n)
        ledger.settle(res.id, spend_micro, key=f"s{n}")
    ledger.finish_round(n, RoundSummary(**summary))


@pytest.fixture
def ledger(fresh_ledger) -> Ledger:
    """Three rounds: a baseline, a labelled batch whose policy reason is hostile HTML, a rejected batch."""
    fresh_ledger.grant(40_000_000)
    _round(fresh_ledger, 0, "baseline", "the student on the seed labels", 100,
           {"labels_bought": 0, "n_labels": 40, "seconds": 1.2, "dev": 0.5, "test": 0.547})
    _round(fresh_ledger, 1, "annotate", EVIL, 15_000_000,
           {"labels_bought": 30, "n_labels": 70, "seconds": 2.6, "dev": 0.714, "test": 0.68})
    _round(fresh_ledger, 2, "annotate", "more labels", 0, {"rejected": True, "n_labels": 70})
    fresh_ledger.log_event("stopped", reason="budget spent")
    return fresh_ledger


class _Page(HTMLParser):
    """The table cells (header first) and the paragraphs' text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.paragraphs: list[str] = []
        self._cell: list[str] | None = None
        self._p: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self._cell = []
        elif tag == "p":
            self._p = []

    def handle_endtag(self, tag):
        if tag in {"td", "th"}:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p":
            self.paragraphs.append("".join(self._p))
            self._p = None

    def handle_data(self, data):
        for part in (self._cell, self._p):
            if part is not None:
                part.append(data)


def _md_table(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|") and "---" not in line]
    return [line[2:-2].split(" | ") for line in lines]


def test_markdown_keeps_its_text(ledger):
    assert markdown(ledger, "accuracy") == EXPECTED_MD


def test_html_and_markdown_show_the_same_rows_and_sentences(ledger, tmp_path):
    paths = write_report(ledger, tmp_path / "report", "accuracy")
    md = paths["markdown"].read_text()
    assert md == EXPECTED_MD
    page = _Page()
    page.feed(paths["html"].read_text())
    md_rows = _md_table(md)
    assert len(md_rows) == 4 and md_rows[0][:3] == ["round", "arm", "spent"]
    # the Markdown writes a note's "|" as "/" so the table keeps its columns; every other cell is the same text
    assert [[cell.replace("|", "/") for cell in row] for row in page.rows] == md_rows
    assert page.rows[2][-1] == EVIL
    prose = [line for line in md.splitlines()[1:] if line and not line.startswith("|")]
    assert page.paragraphs == prose
    assert "<h1>What the money bought (accuracy, 0-100)</h1>" in paths["html"].read_text()
    assert '<img src="score_vs_dollars.png"' in paths["html"].read_text()


def test_report_html_escapes_every_value(ledger, tmp_path):
    html = write_report(ledger, tmp_path / "report", "<b>accuracy</b>")["html"].read_text()
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; | &amp; more" in html
    assert "What the money bought (&lt;b&gt;accuracy&lt;/b&gt;, 0-100)" in html


def test_an_empty_ledger_reports_the_columns_and_no_rows(fresh_ledger):
    report = build_report(fresh_ledger, "accuracy")
    assert report.rows == () and report.per_arm == "" and report.stop == "" and report.best_student == ""
    assert "test" not in report.columns and report.columns[-1] == "note"
    header = "| round | arm | spent | total | answers bought | labels | compute s | dev | note |"
    assert markdown(fresh_ledger, "accuracy").endswith(header + "\n|---|---|---|---|---|---|---|---|---|\n")
    page = _Page()
    page.feed(templates().get_template("report.html").render(report=report, plot="p.png"))
    assert page.rows == [list(report.columns)]


def test_templates_escape_and_refuse_a_missing_value():
    env = templates()
    assert env.autoescape is True and env.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("report.html").render()


# --- the student a run ships ------------------------------------------------------------------------------

def _rounds(*students: tuple[float, list[bool] | None], dev_items: int | None = None):
    """Finished rounds 0, 1, ... whose students scored ``dev`` with these item-level results on one dev set."""
    from types import SimpleNamespace

    from budget.ledger.round_records import RoundSummary
    from budget.shipped import right_bits

    return [SimpleNamespace(round=i, state="done", summary=RoundSummary(
        dev=dev, dev_items=dev_items or (len(right) if right else 20),
        dev_right=None if right is None else right_bits(right))) for i, (dev, right) in enumerate(students)]


def _right(n: int, wrong: set[int]) -> list[bool]:
    return [i not in wrong for i in range(n)]


@pytest.mark.parametrize("students, shipped", [
    # an earlier student 2 items ahead on 20 (4 won, 2 lost): within the noise (2 < 1.645 x sqrt(6)), the latest ships
    ([(0.90, _right(20, {0, 1})), (0.80, _right(20, {2, 3, 4, 5}))], 1),
    # 10 won, 1 lost: beyond the noise (9 > 1.645 x sqrt(11)), the earlier one ships
    ([(0.95, _right(20, {0})), (0.50, _right(20, set(range(1, 11))))], 0),
    # two earlier students beyond the noise: the one further ahead of the latest
    ([(0.90, _right(40, {0, 1, 2, 3})), (0.97, _right(40, {0})), (0.60, _right(40, set(range(1, 17))))], 1),
    # the highest dev score by a hair, on different items: no argmax luck, the latest ships
    ([(0.75, _right(20, {0, 1, 2, 3, 4})), (0.70, _right(20, {5, 6, 7, 8, 9, 10}))], 1),
])
def test_the_latest_student_ships_unless_an_earlier_one_is_better_beyond_the_dev_sets_noise(students, shipped):
    from budget.shipped import best_round

    assert best_round(_rounds(*students))[0] == shipped


def test_rounds_scored_before_item_results_were_kept_ship_as_before():
    from budget.shipped import best_round

    assert best_round(_rounds((0.60, None), (0.70, None), (0.65, None))) == (1, 0.70)


def test_a_dev_score_on_an_earlier_smaller_dev_set_is_marked_and_not_compared(fresh_ledger, tmp_path):
    # the hidden run's report: 96.6 on the 15 items of round 0 beside 93.7 on the 60 of the final dev set read as
    # a student that got worse; only the scores on the current dev set are compared and joined in the plot
    fresh_ledger.grant(40_000_000)
    _round(fresh_ledger, 0, "baseline", "the student on the seed labels", 100,
           {"n_labels": 40, "dev": 0.966, "dev_items": 15, "test": 0.80})
    _round(fresh_ledger, 1, "annotate", "labels", 10_000_000, {"n_labels": 70, "dev": 0.90, "dev_items": 60,
                                                               "test": 0.85})
    _round(fresh_ledger, 2, "annotate", "labels", 10_000_000, {"n_labels": 100, "dev": 0.937, "dev_items": 60,
                                                               "test": 0.88})
    report = build_report(fresh_ledger, "accuracy")
    devs = [cells[report.columns.index("dev")] for cells in report.table]
    assert devs == ["96.6*", "90.0", "93.7"]
    assert report.earlier_dev.startswith("* scored on an earlier, smaller dev set")
    assert [report.on_current_dev(r) for r in report.rows] == [False, True, True]
    assert report.best_student.startswith("Shipped student: round 2 (annotate), dev 93.7")
    paths = write_report(fresh_ledger, tmp_path / "report", "accuracy")
    page = _Page()
    page.feed(paths["html"].read_text())
    assert report.earlier_dev in page.paragraphs and paths["plot"].stat().st_size > 0
