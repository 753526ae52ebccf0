"""The README's "Using your own Label Studio" section, followed as a newcomer would, on a fresh checkout.

A copy of the checkout gets its own virtual environment from ``bash scripts/setup.sh`` (no ``--test``:
what the README's first command installs), then runs the section's commands from that environment against
the real Label Studio that ``scripts/test.sh`` starts: without the key exported (one line, nothing
written), ``--dry-run``, and the run itself while people answer in Label Studio. The project file is
``examples/labelstudio/project.toml`` with only what must differ here: the server's URL, a small data file
in the example's format (a pair in one column, YES / NO) and tiny models, so the run takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from budget.ledger import Ledger
from budget.study.tiny import build_tiny_bert, make_task, write_project
from tests.integration.conftest import LABEL_STUDIO_ANNOTATORS, LabelStudioServer
from tests.integration.test_labelstudio_e2e import Annotators
from tests.utils import e2e
from tests.utils.e2e import REPO, AnnotatorThread

pytestmark = pytest.mark.integration

SETUP_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory) -> Path:
    """This checkout's files (tracked and not ignored) copied elsewhere, set up by ``bash scripts/setup.sh``."""
    root = tmp_path_factory.mktemp("fresh") / "annotate-or-distill"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=SETUP_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def _example_project(checkout: Path, ls: LabelStudioServer, key_env: str) -> tuple[Path, Path]:
    """The README's example project, pointed at this server, a small pair task and tiny models."""
    tables = tomllib.loads((checkout / "examples" / "labelstudio" / "project.toml").read_text())
    root = checkout / "my-project"
    models = root / "models"
    texts, ys = make_task(240, seed=5, pair=True)
    data = root / "pairs.jsonl"
    root.mkdir()
    data.write_text("".join(json.dumps({"source": f"sentence1: {a} sentence2: {b}", "target": "YES" if y else "NO"})
                            + "\n" for (a, b), y in zip(texts, ys, strict=True)))
    tables["task"]["data"] = data.name
    tables["split"] = {**tables["split"], "seed_size": 40}
    tables["models"] = {"student": str(build_tiny_bert(models / "student")), "max_length": 32, "batch_size": 8,
                        "teacher": str(build_tiny_bert(models / "teacher", hidden=48)), "student_epochs": 2}
    tables["annotation"].update(batch_size=e2e.BATCH, poll_seconds=1.0, wait_seconds=120.0)
    tables["connector"].update(url=ls.url, api_key_env=key_env)
    return write_project(root / "project.toml", tables), data


def test_the_readme_label_studio_section_on_a_fresh_setup(fresh_checkout: Path, labelstudio: LabelStudioServer):
    checkout = fresh_checkout
    key_env = "LABEL_STUDIO_API_KEY"
    project, data = _example_project(checkout, labelstudio, key_env)
    python = str(checkout / ".venv" / "bin" / "python")
    run_dir = checkout / "runs" / "multipit-ls"
    command = [python, "-m", "budget.controller", "--config", str(project), "--run-dir", str(run_dir), "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != key_env and not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}

    def controller(*args: str, key: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], cwd=checkout, capture_output=True, text=True, timeout=600,
                              env={**env, key_env: labelstudio.api_key} if key else env, check=False)

    # the SDK is installed by the README's setup: what a newcomer got before was "No module named 'httpx'"
    sdk = subprocess.run([python, "-c", "import label_studio_sdk, argilla, connectors.labelstudio"], cwd=checkout,
                         capture_output=True, text=True, check=False)
    assert sdk.returncode == 0, sdk.stderr

    # the key not exported yet: one line naming the variable, nothing written
    no_key = controller("--spend", "20", key=False)
    assert no_key.returncode == 2, no_key.stdout + no_key.stderr
    assert no_key.stderr.startswith(f"Error: The environment variable {key_env}") and no_key.stderr.count("\n") == 1
    assert not run_dir.exists()

    # the section's commands: a dry run, then the run while people answer in Label Studio
    dry = controller("--spend", "20", "--dry-run")
    assert dry.returncode == 0 and "Dry run: nothing was spent." in dry.stdout, dry.stdout + dry.stderr
    assert not run_dir.exists()

    people = PairAnnotators(ledger_path=run_dir / "ledger.sqlite", gold=_gold(data), labels=("NO", "YES"),
                        names=LABEL_STUDIO_ANNOTATORS[:2], plan=e2e.plan_overlap_2, ls=labelstudio,
                            task="multipit")
    thread = AnnotatorThread(people.answer_new_tasks)
    thread.start()
    try:
        done = controller("--spend", "20", "--max-rounds", "2", "--policy", "annotate")
    finally:
        thread.stop.set()
        thread.join(30)
    if thread.error is not None:
        raise thread.error
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wait for annotators" not in done.stdout

    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches()
        assert batch.state == "done" and len(batch.payload.item_ids) == e2e.BATCH
        assert len({a.annotator for a in people.acts}) == 2  # both annotators' answers came back
        assert ledger.totals().spent > 0 and ledger.totals().reserved == 0
        assert [r.state for r in ledger.rounds()] == ["done", "done"]
    assert (run_dir / "report" / "report.md").exists()


class PairAnnotators(Annotators):
    """The e2e test's annotators, reading a pair task: Label Studio shows ``text1`` and ``text2``."""

    def _annotate(self, task, email: str, what: str) -> None:
        task.data["text"] = f"{task.data['text1']}\n{task.data['text2']}"
        super()._annotate(task, email, what)


def _gold(data: Path) -> dict[str, str]:
    """The two texts an annotator sees (one per line) -> the gold label."""
    out = {}
    for line in data.read_text().splitlines():
        row = json.loads(line)
        first, second = row["source"].removeprefix("sentence1: ").split(" sentence2: ")
        out[f"{first}\n{second}"] = row["target"]
    return out
