"""Every bad input a newcomer can give, in one table: one ``Error:`` line, exit status 2, nothing written.

Each row is what a person typed or wrote (a flag, a project file, a data file, a run folder) and a fragment
of the one line they must read. The command runs in-process (click's runner) in a scratch folder; the
test compares every file under that folder before and after, so "nothing written" means no ledger, no
``project.json``, no scratch folder, and an existing run's ledger byte for byte as it was. The page's
bad requests are at the end: a 4xx each, and the batch still waits for a lead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from budget.controller.cli import cli
from budget.ledger import Ledger
from budget.runlock import LOCK_FILE, RunLock
from budget.study.run import main as study_main
from tests.utils.projects import write_tiny_project

TINY_LABELS = ("sports", "music", "weather")


@dataclass(frozen=True)
class Case:
    """One bad input. ``args`` may name ``{project}``, ``{run}`` (the run folder), ``{tmp}`` (the scratch folder),
    ``{data}`` (the data file) and ``{file}`` (a plain file)."""

    id: str
    args: tuple[str, ...]
    says: str  # a fragment of the one line
    project: dict = field(default_factory=dict)  # overrides of the tiny project's tables
    text: Callable[[str], str] | None = None  # an edit of the project file's text
    data: str | None = None  # the data file's content (``data_name`` names it)
    data_name: str = "data.jsonl"
    run: str = "none"  # none | waiting (a run whose batch waits for a lead) | corrupt (junk in ledger.sqlite)
    env: dict = field(default_factory=dict)  # environment (None unsets)
    locked: bool = False  # another controller holds the run folder
    study: bool = False  # ``python -m budget.study`` rather than ``python -m budget.controller``


RUN = ("--config", "{project}", "--run-dir", "{run}")
SPEND = (*RUN, "--spend", "10")


def _rows(labels: list[str | None], text: str = "the match ended") -> str:
    return "".join(json.dumps({"text": f"{text} {i}", "label": y}) + "\n" for i, y in enumerate(labels))


CASES = [
    # --- the command line: money ---
    Case("spend-not-a-number", (*RUN, "--spend", "ten"), "--spend 'ten': Not a dollar amount"),
    Case("spend-exponent", (*RUN, "--spend", "1e30"), "--spend '1e30': Not a dollar amount"),
    Case("spend-zero", (*RUN, "--spend", "0"), "must be more than $0"),
    Case("spend-negative", (*RUN, "--spend", "-5"), "must be more than $0"),
    Case("spend-below-a-micro-dollar", (*RUN, "--spend", "0.0000001"), "less than one micro-dollar"),
    Case("spend-past-the-ledger", (*RUN, "--spend", "10000000000000"), "the most the ledger keeps"),
    Case("spend-too-small-for-a-label", (*RUN, "--spend", "0.10"), "too small for one label"),
    Case("no-spend-on-a-new-run", RUN, "No budget: give --spend"),
    Case("spend-and-add", (*RUN, "--spend", "10", "--add", "5"), "not both"),
    Case("add-with-no-run", (*RUN, "--add", "5"), "--add adds money to a run, and"),
    Case("add-past-the-ledger", ("--run-dir", "{run}", "--add", "999999999999"), "the most the ledger keeps",
         run="waiting"),
    Case("auto-approve-not-money", (*SPEND, "--auto-approve-under", "lots"), "--auto-approve-under 'lots'"),
    # --- the command line: other flags ---
    Case("policy-unknown", (*SPEND, "--policy", "greedy"), "Unknown policy 'greedy'"),
    Case("policy-split-out-of-range", (*SPEND, "--policy", "split:1.5"), "split:1.5"),
    Case("policy-split-not-a-number", (*SPEND, "--policy", "split:half"), "split:half"),
    Case("seed-negative", (*SPEND, "--seed", "-1"), "'--seed': -1 is not in the range"),
    Case("seed-not-a-number", (*SPEND, "--seed", "x"), "'--seed': 'x' is not a valid integer"),
    Case("seed-too-large", (*SPEND, "--seed", str(2**40)), "'--seed': 1099511627776 is not in the range"),
    Case("max-rounds-negative", (*SPEND, "--max-rounds", "-1"), "'--max-rounds': -1 is not in the range"),
    Case("max-rounds-not-a-number", (*SPEND, "--max-rounds", "two"), "'--max-rounds'"),
    Case("unknown-flag", (*SPEND, "--spnd", "4"), "No such option '--spnd'"),
    Case("flag-without-value", (*RUN, "--spend"), "'--spend' requires an argument"),
    Case("unknown-command", ("stauts",), "No such command 'stauts'"),
    # --- the command line: the project file ---
    Case("config-missing", ("--config", "{tmp}/nope.toml", "--run-dir", "{run}", "--spend", "10"),
         "nope.toml' not found"),
    Case("config-is-a-folder", ("--config", "{tmp}", "--run-dir", "{run}", "--spend", "10"), "is a directory"),
    Case("config-not-toml", SPEND, "is not valid TOML", text=lambda t: t + "\n[task\n"),
    Case("config-not-utf8", SPEND, "is not UTF-8 text", text=lambda t: t + "\n# caf\udce9\n"),
    Case("config-no-task", SPEND, "has no [task] table", text=lambda t: t.replace("[task]", "[tusk]")),
    Case("config-unknown-table", SPEND, "Unknown table(s) ['colour']", text=lambda t: t + "\n[colour]\nx = 1\n"),
    Case("config-unknown-key", SPEND, "Unknown key(s) ['colour'] in [annotation]",
         project={"annotation": {"colour": 1}}),
    Case("price-float", SPEND, "money is never a binary float", project={"prices": {"per_label": 0.5}}),
    Case("price-not-money", SPEND, "[prices] per_label = 'cheap'", project={"prices": {"per_label": "cheap"}}),
    Case("price-zero", SPEND, "[prices] per_label = '0'", project={"prices": {"per_label": "0"}}),
    Case("price-past-the-ledger", SPEND, "[prices] per_label = '1e30'", project={"prices": {"per_label": "1e30"}}),
    Case("batch-past-the-ledger", SPEND, "more than the ledger keeps", project={"prices": {"per_label": "1e11"}}),
    Case("overlap-zero", SPEND, "[prices] overlap = 0", project={"prices": {"overlap": 0}}),
    Case("batch-size-zero", SPEND, "[annotation] batch_size = 0", project={"annotation": {"batch_size": 0}}),
    Case("connector-unknown", SPEND, "[annotation] connector = 'mturk'",
         project={"annotation": {"connector": "mturk"}}),
    Case("selection-unknown", SPEND, "[annotation] selection = 'best'", project={"annotation": {"selection": "best"}}),
    Case("wait-negative", SPEND, "[annotation] wait_seconds = -1", project={"annotation": {"wait_seconds": -1}}),
    Case("policy-in-file-unknown", SPEND, "greedy", project={"policy": {"name": "greedy"}}),
    Case("metric-unknown", SPEND, "f2", project={"task": {"metric": "f2"}}),
    Case("task-name-empty", SPEND, "[task] name = '' must be a non-empty string", project={"task": {"name": ""}}),
    Case("labels-a-string", SPEND, "[task] labels = 'sports' must be a list", project={"task": {"labels": "sports"}}),
    Case("one-declared-label", SPEND, "declares one label", project={"task": {"labels": ["sports"]}}),
    Case("duplicate-labels", SPEND, "more than once", project={"task": {"labels": ["sports", "sports", "music"]}}),
    Case("three-text-fields", SPEND, "text_fields", project={"task": {"text_fields": ["a", "b", "c"]}}),
    Case("seed-larger-than-data", SPEND, "seed_size", project={"split": {"seed_size": 5000}}),
    Case("error-rate-one", SPEND, "[annotators] error_rate = 1", project={"annotators": {"error_rate": 1}}),
    # --- the project file: models ---
    Case("student-unknown", SPEND, "[models] student = 'minilm-l12': Unknown model",
         project={"models": {"student": "minilm-l12"}}),
    Case("teacher-hub-id-offline", SPEND, "[models] teacher = 'org/no-such-model'",
         project={"models": {"teacher": "org/no-such-model"}}, env={"HF_HUB_OFFLINE": "1"}),
    Case("student-folder-without-model", SPEND, "has no config.json", project={"models": {"student": "{tmp}"}}),
    # --- the project file: a prompted LLM ---
    Case("llm-without-prices", SPEND, "[llm] input_per_million = '' in",
         project={"llm": {"model": "smollm2-135m"}}),
    Case("llm-prompted-teacher-without-llm", SPEND, "[models] teacher_mode = 'prompt'",
         project={"models": {"teacher_mode": "prompt"}}),
    Case("llm-model-unknown", SPEND, "[llm] model = 'no-such-chat.gguf': Unknown chat model",
         project={"models": {"teacher_mode": "prompt"},
                  "llm": {"model": "no-such-chat.gguf", "input_per_million": "0.15", "output_per_million": "0.60"}}),
    Case("llm-key-unset", SPEND, "AOD_NO_SUCH_LLM_KEY ([llm] api_key_env)",
         project={"llm": {"model": "gpt-4o-mini", "url": "http://127.0.0.1:9/v1", "api_key_env": "AOD_NO_SUCH_LLM_KEY",
                          "input_per_million": "0.15", "output_per_million": "0.60"}},
         env={"AOD_NO_SUCH_LLM_KEY": None}),
    Case("device-not-here", SPEND, "[models] device = 'cuda:7', but this machine has",
         project={"models": {"device": "cuda:7"}}),
    Case("device-unknown", SPEND, "[models] device = 'tpu' is not a device", project={"models": {"device": "tpu"}}),
    # --- the project file: the annotation platform ---
    Case("labelstudio-no-url", SPEND, "[connector] url = '' is not a server address",
         project={"annotation": {"connector": "labelstudio"}}),
    Case("labelstudio-no-key", SPEND, "AOD_TEST_UNSET_KEY ([connector] api_key_env)",
         project={"annotation": {"connector": "labelstudio"},
                  "connector": {"url": "http://127.0.0.1:9", "api_key_env": "AOD_TEST_UNSET_KEY"}},
         env={"AOD_TEST_UNSET_KEY": None}),
    Case("labelstudio-default-key-unset", SPEND, "LABEL_STUDIO_API_KEY",
         project={"annotation": {"connector": "labelstudio"}, "connector": {"url": "http://127.0.0.1:9"}},
         env={"LABEL_STUDIO_API_KEY": None}),
    Case("argilla-no-key", SPEND, "ARGILLA_API_KEY",
         project={"annotation": {"connector": "argilla"}, "connector": {"url": "http://127.0.0.1:9"}},
         env={"ARGILLA_API_KEY": None}),
    Case("url-not-http", SPEND, "is not a server address",
         project={"annotation": {"connector": "argilla"}, "connector": {"url": "127.0.0.1:6900"}}),
    # --- the data file ---
    Case("data-missing", SPEND, "not found", project={"task": {"data": "nope.jsonl"}}),
    Case("data-suffix", SPEND, "cannot be read", data="a,b\n", data_name="data.xlsx"),
    Case("data-empty", SPEND, "has no rows", data=""),
    Case("data-is-a-folder", SPEND, "not found", project={"task": {"data": "{tmp}"}}),
    Case("jsonl-corrupt-line", SPEND, "line 3: not valid JSON",
         data=_rows(["sports", "music"]) + '{"text": "x", "label": }\n'),
    Case("jsonl-line-not-an-object", SPEND, "line 2", data=_rows(["sports"]) + '["x", "sports"]\n'),
    Case("csv-broken-quote", SPEND, "line 3", data='text,label\nfine,sports\n"never closed,music\nok,music\n',
         data_name="data.csv"),
    Case("csv-too-many-fields", SPEND, "line 3", data="text,label\nfine,sports\na,music,extra\n",
         data_name="data.csv"),
    Case("text-column-missing", SPEND, "Column 'body'", project={"task": {"text_fields": ["body"]}}),
    Case("label-column-missing", SPEND, "Column 'gold'", project={"task": {"label_field": "gold"}}),
    Case("label-undeclared", SPEND, "'jazz'", data=_rows(["sports", "jazz", "music"])),
    Case("text-empty", SPEND, "line 2", data=_rows(["sports"]) + json.dumps({"text": " ", "label": "music"}) + "\n"),
    Case("text-is-a-list", SPEND, "line 1", data=json.dumps({"text": ["a", "b"], "label": "music"}) + "\n"),
    Case("one-label-in-use-simulated", SPEND, "use 1 label(s) ['sports']", data=_rows(["sports"] * 300 + [None] * 10)),
    Case("pair-regex-no-match", SPEND, "pair_regex", project={"task": {"pair_regex": "^claim: (.*) tweet: (.*)$"}}),
    # --- the run folder ---
    Case("run-dir-is-a-file", (*RUN[:2], "--run-dir", "{file}", "--spend", "10"), "is a file, not a folder"),
    Case("run-dir-under-a-file", (*RUN[:2], "--run-dir", "{file}/run", "--spend", "10"), "which is a file"),
    Case("run-dir-not-writable", (*RUN[:2], "--run-dir", "/proc/aod-run", "--spend", "10"), "cannot be written"),
    Case("run-dir-corrupt-ledger", SPEND, "is not a ledger this tool can read", run="corrupt"),
    Case("run-dir-other-seed", ("--run-dir", "{run}", "--seed", "3"), "another project file or seed", run="waiting"),
    Case("run-dir-in-use", ("--run-dir", "{run}"), "is in use by process", run="waiting", locked=True),
    Case("dry-run-in-use", ("--run-dir", "{run}", "--dry-run"), "is in use by process", run="waiting", locked=True),
    # --- the other commands ---
    Case("status-no-run", ("status", "--run-dir", "{run}"), "No run in"),
    Case("status-corrupt-ledger", ("status", "--run-dir", "{run}"), "not a ledger this tool can read", run="corrupt"),
    Case("report-no-run", ("report", "--run-dir", "{run}"), "No run in"),
    Case("proposals-no-run", ("proposals", "--run-dir", "{run}"), "No run in"),
    Case("approve-unknown-batch", ("approve", "nope-r001", "--run-dir", "{run}"), "nope-r001", run="waiting"),
    Case("reject-without-why", ("reject", "nope-r001", "--run-dir", "{run}"), "'--why'", run="waiting"),
    Case("prune-keep-zero", ("prune", "{run}", "--keep", "0"), "--keep '0'", run="waiting"),
    Case("prune-no-run", ("prune", "{run}"), "No run in"),
    Case("serve-port-too-large", ("serve", "--run-dir", "{run}", "--port", "99999"), "'--port': 99999 is not in",
         run="waiting"),
    Case("serve-port-not-a-number", ("serve", "--run-dir", "{run}", "--port", "web"), "'--port'", run="waiting"),
    Case("serve-no-run", ("serve", "--run-dir", "{run}"), "No run in"),
    Case("serve-corrupt-ledger", ("serve", "--run-dir", "{run}"), "not a ledger", run="corrupt"),
    Case("serve-token-too-short", ("serve", "--run-dir", "{run}"), "AOD_PAGE_TOKEN is 5 characters", run="waiting",
         env={"AOD_PAGE_TOKEN": "short"}),
    # --- the decision study ---
    Case("study-file-missing", ("{tmp}/nope.toml",), "nope.toml' not found", study=True),
    Case("study-unknown-flag", ("--bogus",), "No such option '--bogus'", study=True),
    Case("study-not-toml", ("{file}",), "is not valid TOML", study=True),
]


@pytest.fixture
def tiny(waiting_run) -> Path:
    """The folder of the shared waiting run: its models, project file and run (``waiting``)."""
    return waiting_run.run_dir.parent


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes; SQLite's transient -wal / -shm aside, and the
    lock file, which names the last process that opened the folder (a refused second one writes nothing)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm")) and p.name != LOCK_FILE}


def _fill(arg: str, places: dict[str, Path]) -> str:
    return arg.format(**{k: str(v) for k, v in places.items()})


def _arrange(case: Case, tiny: Path, tmp: Path) -> dict[str, Path]:
    """Write the case's project, data and run folder under ``tmp``; returns the places ``args`` name."""
    places = {"tmp": tmp, "run": tmp / "run", "file": tmp / "notes.txt", "data": tmp / case.data_name}
    places["file"].write_text("not a folder\n")
    tables: dict[str, dict] = {"annotation": {"auto_approve_under": "0"}}
    for table, values in case.project.items():
        tables.setdefault(table, {}).update({k: _fill(v, places) if isinstance(v, str) else v
                                             for k, v in values.items()})
    if case.data is not None:
        tables.setdefault("task", {}).setdefault("data", case.data_name)
    project = write_tiny_project(tmp, models_dir=tiny / "models", policy="annotate", overrides=tables)
    if case.data is not None:
        places["data"].write_text(case.data)  # after write_tiny_project, which writes its own data.jsonl
    if case.text is not None:
        project.write_bytes(case.text(project.read_text()).encode("utf-8", "surrogateescape"))  # a stray byte too
    places["project"] = project
    if case.run == "waiting":
        shutil.copytree(tiny / "run", places["run"])
        places["project"] = tiny / "project.toml"  # the project the waiting run was started with
    elif case.run == "corrupt":
        places["run"].mkdir()
        (places["run"] / "ledger.sqlite").write_bytes(b"this is not an sqlite file at all" * 100)
    return places


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(case: Case, tiny: Path, tmp_path: Path, monkeypatch):
    places = _arrange(case, tiny, tmp_path)
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    before = _files(tmp_path)
    lock = RunLock(places["run"]).acquire() if case.locked else None
    try:
        quiet = ["--quiet"] if case.args[0].startswith("-") and not case.study else []  # not a subcommand's
        result = CliRunner().invoke(study_main if case.study else cli, [*quiet, *(_fill(a, places) for a in case.args)])
    finally:
        if lock is not None:
            lock.release()
    out = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {out}{result.exception!r}"
    assert out.startswith("Error: ") and out.count("\n") == 1, out
    assert _fill(case.says, places) in out, out
    after = _files(tmp_path)
    assert after == before, f"written: {sorted(set(after.items()) ^ set(before.items()))}"


def test_the_table_covers_what_the_issue_lists():
    """At least 60 cases, every one named once (the page's are below)."""
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


def test_unlabeled_rows_with_an_empty_or_missing_label_are_left_out_of_a_simulation(tiny: Path, tmp_path: Path):
    """Rows with "" or no label are the unlabeled pool (as the README says); simulated people cannot answer
    them, so the dry run says how many are left out, and the run buys only labeled rows to its end."""
    from budget.study.tiny import make_task

    texts, ys = make_task(400, seed=11)
    rows = [{"text": t, "label": TINY_LABELS[y]} for t, y in zip(texts, ys, strict=True)]
    for i in range(0, 40, 2):
        rows[300 + i]["label"] = ""
        del rows[301 + i]["label"]
    (tmp_path / "p").mkdir()
    tmp_path.joinpath("data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    project = write_tiny_project(tmp_path / "p", models_dir=tiny / "models", policy="annotate",
                                 overrides={"task": {"data": str(tmp_path / "data.jsonl")},
                                            "split": {"test_size": 100}})
    args = ["--config", str(project), "--run-dir", str(tmp_path / "run"), "--spend", "30", "--quiet"]
    dry = CliRunner().invoke(cli, [*args, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "40 rows without a label are left out of the pool" in dry.output
    assert not (tmp_path / "run").exists()
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.exit_code == 0 and "Stopped" in done.output, done.output
    with Ledger(tmp_path / "run" / "ledger.sqlite") as ledger:
        assert ledger.totals().reserved == 0 and len(ledger.labels()) > 0
        assert all(r.state == "done" for r in ledger.rounds())


# --- the page: a 4xx for each bad request, and the batch still waits --------------------------------------

@pytest.fixture
def page(tiny: Path, tmp_path: Path):
    """The leads' page over a copy of the waiting run, on a free loopback port."""
    from budget.web import make_server

    run_dir = Path(shutil.copytree(tiny / "run", tmp_path / "run"))
    server = make_server(run_dir, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, run_dir
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Request:
    id: str
    method: str
    path: str
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
REQUESTS = [
    Request("page-without-login", "GET", "/", 401),
    Request("plot-without-login", "GET", "/plot.png", 401),
    Request("wrong-token", "GET", "/?token=not-the-token", 401),
    Request("approve-without-login", "POST", "/approve", 403, b"batch_id={batch}", FORM),
    Request("reject-without-login", "POST", "/reject", 403, b"batch_id={batch}&why=no", FORM),
    Request("approve-from-another-site", "POST", "/approve", 403, b"batch_id={batch}",
            {**FORM, "Origin": "http://evil.example"}),
    Request("content-length-not-a-number", "POST", "/approve", 400, b"", {**FORM, "Content-Length": "abc"}),
    Request("content-length-negative", "POST", "/approve", 400, b"", {**FORM, "Content-Length": "-5"}),
    Request("form-too-large", "POST", "/approve", 413, b"", {**FORM, "Content-Length": str(10**9)}),
    Request("another-host", "GET", "/", 403, b"", {"Host": "attacker.example"}),
    Request("unknown-path", "GET", "/admin", 404),
]


@pytest.mark.parametrize("req", REQUESTS, ids=[r.id for r in REQUESTS])
def test_a_bad_request_to_the_page_gets_a_4xx_and_decides_nothing(req: Request, page):
    server, run_dir = page
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches("proposed")
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.putrequest(req.method, req.path, skip_host="Host" in req.headers, skip_accept_encoding=True)
    body = req.body.replace(b"{batch}", batch.batch_id.encode())
    headers = {"Content-Length": str(len(body))} if req.method == "POST" else {}
    for name, value in {**headers, **req.headers}.items():
        conn.putheader(name, value)
    conn.endheaders(body if req.method == "POST" and "Content-Length" not in req.headers else None)
    response = conn.getresponse()
    assert response.status == req.status, response.read()[:300]
    conn.close()
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert ledger.batch(batch.batch_id).state == "proposed"
