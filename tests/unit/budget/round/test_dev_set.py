"""The dev set decisions rest on: random items only, stable across rounds, every round compared on it."""

from pathlib import Path

from budget.config import load_config
from budget.controller import Controller
from budget.money import to_micro
from budget.round.compute_steps import compute_steps
from budget.round.results import PilotResult
from budget.shipped import best_round
from tests.utils.kills import KillPoint, fingerprint, killed_run
from tests.utils.projects import write_tiny_project
from tests.utils.scripted import AlternateScript


def test_every_round_is_compared_with_the_one_before_on_the_same_random_dev_items(tmp_path):
    project = write_tiny_project(tmp_path, policy="annotate",
                                 overrides={"split": {"dev_size": 30, "dev_share": 0.2}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.fund(to_micro("40"))
        run.run(max_rounds=4)
        ledger, split = run.ledger, run.split
        snap = run.ctx.snapshot()
        batches = ledger.batches()
        rounds = [r for r in ledger.rounds() if r.state == "done"]
    seed = {int(i) for i in split.seed}
    drawn = [i for b in batches for i in b.payload.dev_ids]
    selected = {i for b in batches for i in b.payload.item_ids} - set(drawn)
    # the dev set is the seed's share plus random draws: never an item a strategy picked
    assert set(snap.dev_ids) <= seed | set(drawn) and not set(snap.dev_ids) & selected
    assert drawn and all(set(b.payload.dev_ids) <= set(b.payload.item_ids) for b in batches)
    assert all(len(b.payload.dev_ids) <= 0.2 * len(b.payload.item_ids) for b in batches)
    # it only grows, and stops growing at dev_size
    sizes = [r.summary.dev_items for r in rounds]
    assert sizes == sorted(sizes) and sizes[-1] == len(snap.dev_ids) and sizes[-1] <= 30 + 6
    # each round after the baseline scored the student before it on its own dev items
    assert rounds[0].summary.prev_dev is None
    assert all(r.summary.prev_dev is not None and 0 <= r.summary.disagree <= 1 for r in rounds[1:])
    # the best student is picked on the current dev set: its score is one taken on the largest set
    best, score = best_round(rounds)
    largest = [r for r in rounds if r.summary.dev_items == sizes[-1]]
    assert score in {r.summary.dev for r in largest} | {largest[0].summary.prev_dev}


def test_a_pool_item_is_in_dev_the_same_way_in_any_run(tmp_path):
    project = write_tiny_project(tmp_path, policy="annotate")
    dev = []
    for name in ("a", "b"):
        with Controller(load_config(project), Path(tmp_path / name), progress=False, say=lambda _: None) as run:
            dev.append(run.ctx.snapshot().dev_ids)
    assert dev[0] == dev[1] and dev[0]


def test_a_distillation_is_also_compared_with_the_last_distilled_student_on_its_own_dev_items(tmp_path):
    # distilled students alternate with label-only ones; each is compared with the previous round's and the
    # last of its own kind
    project = write_tiny_project(tmp_path, policy="adaptive", overrides={"prices": {"reference_gpu_hour": "2.00"}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.policy = AlternateScript()
        run.fund(to_micro("40"))
        run.run(max_rounds=5)
        rounds = [r for r in run.ledger.rounds() if r.state == "done"]
    arms = [r.arm for r in rounds]
    assert arms[:5] == ["baseline", "annotate", "distill", "annotate", "distill"]
    first, second = rounds[2], rounds[4]
    assert first.summary.arm_prev_dev is None  # no distilled student before it
    assert second.summary.arm_prev_labels == first.summary.n_labels < second.summary.n_labels
    assert second.summary.arm_prev_dev is not None and 0 <= second.summary.arm_disagree <= 1
    # the annotation after a distillation is compared with the last label-only student, not the distilled one
    assert rounds[3].summary.arm_prev_labels == rounds[1].summary.n_labels


def _two_rounds(tmp_path, policy):
    """The baseline and one batch of a tiny run: its finished rounds, each round's pilot step (or None), the
    money spent by round and granted. ``policy`` 'pilots' asks for a pilot in every label-only round."""
    project = write_tiny_project(tmp_path, policy="adaptive" if policy == "pilots" else policy)
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        if policy == "pilots":
            run.policy = AlternateScript()
        run.fund(to_micro("40"))
        run.run(max_rounds=2)
        rounds = [r for r in run.ledger.rounds() if r.state == "done"]
        pilots = [run.ledger.step_result(f"round-{r.round}:pilot") for r in rounds]
        steps = [compute_steps(run.ledger, r.round) for r in rounds]
        return rounds, pilots, steps, run.ledger.spent_by_round(), run.ledger.totals().granted


def test_a_pilot_measures_a_label_only_student_against_one_on_half_its_labels(tmp_path):
    rounds, pilots, steps, spent, granted = _two_rounds(tmp_path, "pilots")
    assert [r.arm for r in rounds] == ["baseline", "annotate"]
    for r, pilot, done in zip(rounds, pilots, steps, strict=True):
        s = r.summary
        assert r.plan.decision.pilot and pilot is not None
        # on the same dev items as the round's student, trained on half its training labels
        n_dev = s.dev_items
        assert s.pilot_labels == (s.n_labels - n_dev) // 2 + n_dev
        assert 0 <= s.pilot_dev <= 1 and 0 <= s.pilot_disagree <= 1
        # paid for inside the round, and its model is not kept in the run folder
        assert 0 < pilot["cost_micro"] < s.compute_micro <= spent[r.round]
        assert not (tmp_path / "run" / "models" / f"round-{r.round:03d}" / "pilot").exists()
        # ...and counted with its round's compute where the study compares FLOPs and estimates
        assert PilotResult.from_json(pilot) in done and len(done) == 2
    assert sum(spent.values()) <= granted


def test_annotate_only_trains_no_pilot(tmp_path):
    rounds, pilots, _, _, _ = _two_rounds(tmp_path, "annotate")
    assert len(rounds) == 2 and pilots == [None, None]
    assert all(r.summary.pilot_dev is None and not r.plan.decision.pilot for r in rounds)


def test_a_run_killed_inside_a_pilot_ends_like_the_uninterrupted_run(adaptive_reference, tmp_path):
    plan = [KillPoint("compute", "0.pilot", 1), KillPoint("compute-done", "0.pilot", 1)]  # the baseline's pilot
    assert all((p.name, p.where) in adaptive_reference.sequence for p in plan), sorted(set(adaptive_reference.sequence))
    fired = killed_run(adaptive_reference.command(tmp_path / "killed"), plan)
    assert fired == plan
    assert fingerprint(tmp_path / "killed") == fingerprint(adaptive_reference.run_dir)  # the pilot paid once
