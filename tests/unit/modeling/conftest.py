import pytest

from tests.utils.tiny_models import build_tiny_bert


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory):
    """A tiny BERT student (hidden 32, 2 layers) saved as a model folder."""
    return build_tiny_bert(tmp_path_factory.mktemp("student"), hidden=32, layers=2)


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """A larger tiny BERT teacher (hidden 64, 3 layers)."""
    return build_tiny_bert(tmp_path_factory.mktemp("teacher"), hidden=64, layers=3, heads=4)
