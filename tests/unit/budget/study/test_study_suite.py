"""The decision study's yardsticks: one code version per comparison, the split a user could have picked
(leave one task out), and the suite's mean regret with its bootstrap interval."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from budget.study import version as study_version
from budget.study.report import MixedVersionsError, summary_markdown
from budget.study.suite import suite_headline


def _row(task: str, policy: str, seed: int, test: float, *, version: str = "abc", budget: str = "25",
         regime: str = "cheap", curve: tuple = (), picked: float | None = None, unspent: float = 0.0) -> dict:
    return {"task": task, "regime": regime, "budget": budget, "seed": seed, "policy": policy,
            "spent_annotate_usd": 25.0 - unspent, "spent_distill_usd": 0.0, "spent_baseline_usd": 0.0,
            "unspent_usd": unspent, "rounds": 3, "final_test": test, "picked_test": test if picked is None else picked,
            "wall_seconds": 1.0, "flops": 0.0, "flops_saved": 0.0, "curve": list(curve) or [(0, test)],
            "estimates": [], "final_tests": [], "version": version}


# Three tasks. Labels win on A and B, distillation (split:0.6) on C; adaptive is 1 point behind the best on each.
TABLE = {  # task -> policy -> score on seeds 0 and 1 (0-1)
    "A": {"annotate": (0.80, 0.82), "split:0.6": (0.70, 0.72), "adaptive": (0.79, 0.81)},
    "B": {"annotate": (0.60, 0.62), "split:0.6": (0.55, 0.57), "adaptive": (0.59, 0.61)},
    "C": {"annotate": (0.50, 0.52), "split:0.6": (0.58, 0.60), "adaptive": (0.57, 0.59)},
}
ROWS = [_row(t, p, s, v[s]) for t, ps in TABLE.items() for p, v in ps.items() for s in (0, 1)]


def test_the_split_a_user_could_pick_is_the_one_best_on_the_other_tasks():
    head = suite_headline(ROWS, resamples=200)
    picks = {g[0]: (p, round(m, 6)) for g, p, m in head.loto_picks}
    # on A: annotate trails B's and C's best by 0 and 8 (mean 4), split:0.6 by 5 and 0 (mean 2.5): the split
    assert picks["A"] == ("split:0.6", 9.0)
    assert picks["B"] == ("annotate", -1.0)  # on A and C: annotate trails by 0 and 8, split:0.6 by 10 and 0
    assert picks["C"] == ("annotate", 7.0)  # A and B both favour labels; on C they lose to adaptive by 7
    assert head.loto_margin == pytest.approx((picks["A"][1] + picks["B"][1] + picks["C"][1]) / 3)
    assert head.regret == pytest.approx(1.0)  # adaptive is one point behind the hindsight best everywhere


def test_the_regret_interval_covers_the_mean_and_is_a_point_when_nothing_varies():
    head = suite_headline(ROWS, resamples=300)
    lo, hi = head.regret_interval
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # every task and seed: exactly 1 point
    noisy = [_row(t, p, s, v[s] + (0.03 if p == "adaptive" and s == 1 and t == "C" else 0.0))
             for t, ps in TABLE.items() for p, v in ps.items() for s in (0, 1)]
    head = suite_headline(noisy, resamples=300)
    assert head.regret == pytest.approx(0.5)  # C: adaptive 59.5 against split:0.6's 59
    lo, hi = head.regret_interval
    assert lo < 0.5 < hi


def test_one_task_has_no_split_picked_on_other_tasks():
    head = suite_headline([r for r in ROWS if r["task"] == "A"], resamples=50)
    assert head.loto_margin is None and head.regret == pytest.approx(1.0)


def test_cells_of_two_code_versions_are_not_compared_unless_asked_and_then_marked():
    rows = [dict(r, version="1a2b3c4d5e6f" if r["policy"] != "adaptive" else "9f8e7d6c5b4a+0badf00d") for r in ROWS]
    with pytest.raises(MixedVersionsError, match="2 code versions") as err:
        summary_markdown(rows, {})
    assert "\n" not in str(err.value) and "--mixed-versions" in str(err.value)
    marked = summary_markdown(rows, {}, mixed_versions=True)
    assert "compared on request" in marked and "| adaptive [9f8e7d6c5b4a+0badf00d] |" in marked
    one = summary_markdown(ROWS, {})
    assert "Every cell ran at code version `abc`." in one and "[abc]" not in one


def test_the_summary_shows_shipped_best_and_final_students_and_unspent_money():
    rows = [dict(r, curve=[(0, r["final_test"] + 0.05), (1, r["final_test"])], picked_test=r["final_test"] - 0.01,
                 unspent_usd=2.5, spent_annotate_usd=22.5) for r in ROWS]
    text = summary_markdown(rows, {})
    line = next(x for x in text.splitlines() if x.startswith("| annotate | 6 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    final, shipped, best, gap, unspent = (cells[2], cells[3], cells[4], cells[5], cells[6])
    assert float(best) - float(shipped) == pytest.approx(6.0, abs=0.11) and gap == "6.0"
    assert float(final) - float(shipped) == pytest.approx(1.0, abs=0.11) and unspent.startswith("10.0%")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_a_cell_records_the_commit_and_the_uncommitted_changes_of_the_product(tmp_path, monkeypatch):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "budget").mkdir()
    (tmp_path / "budget" / "policy.py").write_text("RULE = 1\n")
    (tmp_path / "notes.md").write_text("a note\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    monkeypatch.setattr(study_version, "_ROOT", tmp_path)

    def version():
        study_version.code_version.cache_clear()
        return study_version.code_version()

    clean = version()
    assert clean.clean and len(clean.commit) == 40 and len(clean.label) == 12
    (tmp_path / "notes.md").write_text("another note\n")  # not the product: the cell's outcome cannot change
    assert version() == clean
    _git(tmp_path, "commit", "-qam", "a note")  # a commit that leaves the product alone keeps the version
    noted = version()
    assert noted.commit != clean.commit and noted.label == clean.label
    (tmp_path / "budget" / "policy.py").write_text("RULE = 2\n")
    dirty = version()
    assert not dirty.clean and dirty.label.startswith(clean.label + "+") and version() == dirty
    (tmp_path / "budget" / "policy.py").write_text("RULE = 3\n")
    assert version().label != dirty.label  # other changes, another version
    _git(tmp_path, "commit", "-qam", "rule 3")
    assert version().clean and version().label not in (clean.label, dirty.label)  # the product changed
    study_version.code_version.cache_clear()
