"""Step results as the ledger keeps them: the JSON a run resumes from, across versions."""

import json

from budget.round.results import PilotResult, SoftLabelResult, StudentResult, TeacherResult
from modeling.meter import PhaseRecord

RECORD = PhaseRecord("student_finetune", "train", "cpu", 1000, seconds=2.0, flops=5.0, cost_micro=7)


def test_a_result_survives_the_ledgers_json_unchanged():
    student = StudentResult(stopped="completed", student="runs/x/models/round-001/student", n_labels=85, dev=0.8,
                            dev_items=20, dev_pred=(0, 1, 1), prev_dev=0.75, disagree=0.1).costed(7, [RECORD])
    raw = json.loads(json.dumps(student.to_json()))  # what the ledger stores and a resumed run reads back
    assert StudentResult.from_json(raw) == student
    assert raw["phases"][0]["flops"] == 5.0 and raw["cost_micro"] == 7 and raw["seconds"] == 2.0


def test_fields_never_measured_are_left_out_but_a_teacher_without_a_dev_score_says_so():
    assert "test" not in StudentResult(n_labels=3).to_json()  # outside a simulation there is no test score
    assert PilotResult().costed(0, []).to_json() == {"cost_micro": 0, "seconds": 0, "phases": []}
    assert TeacherResult(stopped="completed").to_json() == {"stopped": "completed", "teacher_dev": None}


def test_a_ledger_written_before_a_field_existed_or_after_one_was_added_still_reads():
    old = {"soft_labels": "cache/soft-1.npy", "n_items": 40, "items": "cache/items.npy", "cost_micro": 3,
           "seconds": 1.0, "phases": []}
    assert SoftLabelResult.from_json(old) == SoftLabelResult(soft_labels="cache/soft-1.npy", n_items=40,
                                                             items="cache/items.npy", cost_micro=3, seconds=1.0,
                                                             phases=())
    assert SoftLabelResult.from_json({**old, "written_by_a_later_version": 1}).processes is None
    assert StudentResult.from_json({"n_labels": 10}).flops == 0.0  # no phases recorded: nothing counted
