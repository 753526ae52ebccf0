"""Loading students and teachers: folders, PyPI packages, hub ids, and the errors for the rest."""

import json

import pytest

from modeling.encoding import label_ids
from modeling.exceptions import LabelError, ModelNotFoundError
from modeling.models import load_classifier, resolve_model
from tests.utils.tiny_models import LABELS


def test_labels_map_to_ids_from_the_task_not_the_checkpoint(student_dir):
    m = load_classifier(student_dir, ["weather", "music", "sports"])
    assert m.model.config.id2label == {0: "weather", 1: "music", 2: "sports"}
    assert m.model.config.num_labels == 3


def test_checkpoint_trained_for_other_labels_gets_a_fresh_head(student_dir, tmp_path):
    m = load_classifier(student_dir, LABELS)
    m.model.classifier.weight.data.add_(1.0)  # as if trained
    m.model.save_pretrained(tmp_path)
    m.tokenizer.save_pretrained(tmp_path)
    same = load_classifier(tmp_path, LABELS)
    other = load_classifier(tmp_path, ["x", "y", "z"])
    w = m.model.classifier.weight
    assert same.model.classifier.weight.equal(w)
    assert not other.model.classifier.weight.equal(w)
    assert json.loads((tmp_path / "config.json").read_text())["id2label"]["0"] == "sports"


def test_unknown_name_or_folder_gets_one_line_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"Unknown model 'tiny-bert': not a folder, not a known name "
                                                 r"\(minilm-l6, mpnet-base\)"):
        resolve_model("tiny-bert")
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_model(tmp_path)
    with pytest.raises(ModelNotFoundError, match="Unknown model './missing/model'"):
        resolve_model("./missing/model")


def test_hub_ids_pass_through_for_online_users():
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_label_outside_the_task_is_named():
    assert label_ids(["music", "sports"], LABELS).tolist() == [1, 0]
    with pytest.raises(LabelError, match=r"Label 'jazz' \(example 1\) is not one of the task's labels"):
        label_ids(["music", "jazz"], LABELS)


def test_too_few_labels_are_refused(student_dir):
    with pytest.raises(ValueError, match="at least two distinct labels"):
        load_classifier(student_dir, ["only"])
