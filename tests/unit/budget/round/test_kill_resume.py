"""Runs killed with SIGKILL at seeded points of every kind, resumed each time, end like uninterrupted runs.

Each chain runs the same command (``--spend 40``) again after every kill, as a person would after a
crash: the budget is granted once, nothing is pushed or paid twice, and the last round (where the
money left is below the price of a label) resumes like any other. ``scripts/kill_resume.py`` runs
the same check with 100 or more kills.
"""

from collections import Counter

import pytest

from budget.failpoints import POINTS
from tests.utils.kills import fingerprint, killed_run, plan_kills, reference_run
from tests.utils.projects import write_tiny_project

# (policy, seed): labels and a mid-run distillation; labels then a final distillation; distillation only
CHAINS = [("adaptive", 0), ("split:0.5", 1), ("distill", 2)]
KILLS_PER_CHAIN = 12


@pytest.fixture(scope="module")
def chains(tmp_path_factory, adaptive_reference):
    root = tmp_path_factory.mktemp("kills")
    project = write_tiny_project(root, models_dir=root / "models")
    out = {}
    for policy, seed in CHAINS:
        args = ["--config", str(project), "--spend", "40", "--policy", policy, "--seed", str(seed), "--quiet"]
        whole, killed = root / f"{policy}-whole", root / f"{policy}-killed"
        if (policy, seed) == ("adaptive", 0):  # the uninterrupted run other tests compare with, run once
            args, whole = list(adaptive_reference.args), adaptive_reference.run_dir
            sequence = list(adaptive_reference.sequence)
        else:
            sequence = reference_run([*args, "--run-dir", str(whole)], root / f"{policy}.log")
        plan = plan_kills(sequence, KILLS_PER_CHAIN, seed=seed)
        fired = killed_run([*args, "--run-dir", str(killed)], plan)
        out[policy] = (sequence, plan, fired, fingerprint(whole), fingerprint(killed))
    return out


@pytest.mark.parametrize("policy", [p for p, _ in CHAINS])
def test_a_run_killed_again_and_again_ends_like_the_uninterrupted_run(chains, policy):
    _, plan, fired, whole, killed = chains[policy]
    assert len(fired) == len(plan), f"only {len(fired)} of {[p.spec for p in plan]} fired"
    assert killed == whole
    assert killed["open_reservations"] == 0 and killed["totals"][0] == 40_000_000  # the budget granted once
    assert killed["pushed_tasks"] == sum(len(items) for _, _, items, _ in killed["batches"])  # none pushed twice


def test_the_kills_cover_every_kind_of_step_and_the_last_round(chains):
    fired = [p for _, _, f, _, _ in chains.values() for p in f]
    kinds = Counter(p.name for p in fired)
    assert len(fired) >= 30
    assert set(kinds) == set(POINTS), kinds  # grant, proposal, approval, push, pull, settle, compute, ...
    for policy, (sequence, _, f, _, _) in chains.items():
        last = max(int(w.split(".")[0]) for _, w in sequence if w != "*")
        assert any(p.where != "*" and int(p.where.split(".")[0]) == last for p in f), policy
    # the split run's last round is its final distillation; the adaptive run ends with less money left than
    # the smallest batch it may buy (a quarter of 30 labels at $0.50), where a resume used to be refused
    _, _, split_fired, split_whole, _ = chains["split:0.5"]
    last_round, arm, _ = split_whole["rounds"][-1]
    assert arm == "distill" and any(p.where.split(".")[0] == str(last_round) for p in split_fired)
    assert chains["adaptive"][3]["totals"][3] < 7 * 500_000
