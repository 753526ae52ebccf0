"""LabelStudioConnector against a real Label Studio (started by ``scripts/test.sh``).

Every test makes its own project (a fresh title); annotators answer through the real API, the way the
labeling UI does (``POST /api/tasks/{id}/annotations/`` with ``completed_by``).
"""

from __future__ import annotations

import http.server
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from annotation.aggregate import agreement_rate, majority_vote
from annotation.records import Batch, BatchStatus, Receipt
from connectors.base import Connector
from connectors.exceptions import (
    AuthError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
)
from connectors.labelstudio import LabelStudioConnector, label_config, project_title
from connectors.retry import RetryingConnector
from connectors.simulated import SimClock
from tests.integration.conftest import LABEL_STUDIO_ANNOTATORS, LabelStudioServer
from tests.utils.connector_contract import Answers, ConnectorContractTests
from tests.utils.pools import make_batch, new_run_id

pytestmark = pytest.mark.integration


def _fresh_title() -> str:
    return project_title(new_run_id(), "toy")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: project id -> (name of its Choices question, name of the text it points at)
_CHOICES: dict[str, tuple[str, str]] = {}


def _answer(ls: LabelStudioServer, receipt: Receipt, external_id: str, annotator: str, label: str | None,
            lead_time: float = 2.0) -> None:
    """``annotator`` submits ``label`` (or skips, when None) on the task of ``external_id``."""
    task_id = int(receipt.task_refs[external_id])
    if receipt.project_ref not in _CHOICES:
        parsed = ls.admin.projects.get(id=int(receipt.project_ref)).parsed_label_config
        name, spec = next((k, v) for k, v in parsed.items() if v["type"] == "Choices")
        _CHOICES[receipt.project_ref] = (name, spec["to_name"][0])
    from_name, to_name = _CHOICES[receipt.project_ref]
    if label is None:
        result: list[dict[str, Any]] = []
    else:
        result = [{"from_name": from_name, "to_name": to_name, "type": "choices",
                   "value": {"choices": [label]}}]
    ls.admin.annotations.create(id=task_id, result=result, was_cancelled=label is None,
                                completed_by=ls.annotators[annotator], lead_time=lead_time)


def _task_count(ls: LabelStudioServer, receipt: Receipt) -> int:
    return len(list(ls.admin.tasks.list(project=int(receipt.project_ref), fields="task_only", page_size=1000)))


@pytest.fixture
def connector(labelstudio: LabelStudioServer) -> Iterator[LabelStudioConnector]:
    conn = LabelStudioConnector(labelstudio.url, _fresh_title())
    yield conn
    conn.close()


# -- the contract every connector passes ---------------------------------------------------------------


class TestLabelStudioContract(ConnectorContractTests):
    annotator_names = LABEL_STUDIO_ANNOTATORS

    @pytest.fixture(autouse=True)
    def _server(self, labelstudio: LabelStudioServer) -> None:
        self.ls = labelstudio

    def make_connector(self) -> Connector:
        return LabelStudioConnector(self.ls.url, _fresh_title())

    def annotate(self, connector: Connector, receipt: Receipt, answers: Answers) -> None:
        for external_id, given in answers.items():
            for annotator, label in given:
                _answer(self.ls, receipt, external_id, annotator, label)


# -- Label Studio specifics ----------------------------------------------------------------------------


def test_project_is_created_once_with_a_single_choice_config(labelstudio: LabelStudioServer,
                                                             connector: LabelStudioConnector) -> None:
    run_id = new_run_id()
    labels = ('say "no"', "<yes> & maybe")
    first = connector.push(make_batch(2, labels, run_id=run_id))
    second = connector.push(make_batch(2, labels, run_id=run_id, start=5))
    assert first.project_ref == second.project_ref
    project = labelstudio.admin.projects.get(id=int(first.project_ref))
    assert project.title == connector.project
    assert project.parsed_label_config["label"]["labels"] == list(labels)
    assert 'choice="single"' in project.label_config


def test_pair_task_shows_both_texts(labelstudio: LabelStudioServer, connector: LabelStudioConnector) -> None:
    receipt = connector.push(make_batch(1, run_id=new_run_id(), pair=True))
    config = labelstudio.admin.projects.get(id=int(receipt.project_ref)).label_config
    assert config == label_config(("neg", "pos"), ("sentence1", "sentence2"))
    task = labelstudio.admin.tasks.get(id=int(receipt.task_refs[receipt.external_ids[0]]))
    assert task.data["sentence1"] == "first sentence 0" and task.data["sentence2"] == "second sentence 0"
    assert task.data["external_id"] == receipt.external_ids[0] and task.data["batch_id"] == receipt.batch_id


def test_suggestion_is_attached_as_prediction(labelstudio: LabelStudioServer,
                                              connector: LabelStudioConnector) -> None:
    plain = make_batch(2, run_id=new_run_id())
    items = (plain.items[0].__class__(**{**plain.items[0].__dict__, "suggestion": "pos", "suggestion_score": 0.8}),
             plain.items[1])
    receipt = connector.push(Batch(**{**plain.__dict__, "items": items}))
    with_suggestion = labelstudio.admin.tasks.get(id=int(receipt.task_refs[receipt.external_ids[0]]))
    without = labelstudio.admin.tasks.get(id=int(receipt.task_refs[receipt.external_ids[1]]))
    (prediction,) = with_suggestion.predictions
    assert prediction.score == pytest.approx(0.8)
    assert prediction.result[0]["value"]["choices"] == ["pos"]
    assert not without.predictions


def test_push_after_lost_receipt_creates_no_duplicate_tasks(labelstudio: LabelStudioServer,
                                                            connector: LabelStudioConnector) -> None:
    batch = make_batch(6, run_id=new_run_id())
    first = connector.push(batch)
    del first  # the controller crashed before writing the receipt to the ledger
    restarted = LabelStudioConnector(labelstudio.url, connector.project)  # a new process finds the project
    try:
        again = restarted.push(batch)
    finally:
        restarted.close()
    assert _task_count(labelstudio, again) == 6
    assert restarted.status(again) == BatchStatus(pushed=6, done=0, skipped=0, waiting=6)


def test_two_annotators_majority_vote_ties_and_agreement(labelstudio: LabelStudioServer,
                                                         connector: LabelStudioConnector) -> None:
    receipt = connector.push(make_batch(4, run_id=new_run_id(), overlap=2))
    ids = receipt.external_ids
    a, b = LABEL_STUDIO_ANNOTATORS
    for eid in ids:
        _answer(labelstudio, receipt, eid, a, "pos")
    _answer(labelstudio, receipt, ids[0], b, "pos")  # agrees
    _answer(labelstudio, receipt, ids[1], b, "neg")  # disagrees: a tie
    _answer(labelstudio, receipt, ids[2], b, "pos")  # agrees
    _answer(labelstudio, receipt, ids[3], b, None)  # skips
    assert connector.status(receipt) == BatchStatus(pushed=4, done=4, skipped=0, waiting=0)
    pulled = connector.pull(receipt)
    assert {(x.annotator, x.label) for x in pulled if x.external_id == ids[3]} == {(a, "pos"), (b, None)}
    votes = {v.external_id: v for v in majority_vote(pulled, labels=("neg", "pos"))}
    # the tie on ids[1] goes to the first label in the label set
    assert {eid: v.label for eid, v in votes.items()} == {ids[0]: "pos", ids[1]: "neg", ids[2]: "pos",
                                                          ids[3]: "pos"}
    assert [votes[eid].tie for eid in ids] == [False, True, False, False]
    assert [votes[eid].agreement for eid in ids] == [1.0, 0.5, 1.0, 1.0]
    assert votes[ids[3]].n_skipped == 1 and votes[ids[3]].votes == {"pos": 1}
    assert agreement_rate(pulled) == pytest.approx(2 / 3)


def test_lead_time_is_returned_for_hourly_pricing(labelstudio: LabelStudioServer,
                                                  connector: LabelStudioConnector) -> None:
    receipt = connector.push(make_batch(2, run_id=new_run_id()))
    a, b = LABEL_STUDIO_ANNOTATORS
    _answer(labelstudio, receipt, receipt.external_ids[0], a, "neg", lead_time=12.5)
    _answer(labelstudio, receipt, receipt.external_ids[1], b, None, lead_time=3.0)
    times = {(x.external_id, x.annotator): x.lead_time_s for x in connector.pull(receipt)}
    assert times == {(receipt.external_ids[0], a): pytest.approx(12.5), (receipt.external_ids[1], b): 3.0}


def test_personal_access_token_works(labelstudio: LabelStudioServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with httpx.Client(base_url=labelstudio.url, timeout=30) as web:  # log in as a person does, mint a PAT
        web.get("/user/login/")
        login = web.post("/user/login/", data={"email": labelstudio.username, "password": labelstudio.password,
                                               "csrfmiddlewaretoken": web.cookies["csrftoken"]},
                         headers={"Referer": f"{labelstudio.url}/user/login/"})
        assert login.status_code == 302, f"login as {labelstudio.username} failed: {login.status_code}"
        csrf = {"X-CSRFToken": web.cookies["csrftoken"], "Referer": labelstudio.url}
        minted = web.post("/api/token/", headers=csrf)
        if minted.status_code == 409:  # Label Studio allows one PAT per user; a crashed earlier run left one
            pytest.skip(f"{labelstudio.username} already has a personal access token on this server; revoke it "
                        f"(Account & Settings) or run on a fresh server (bash scripts/test.sh).")
        assert minted.status_code == 201, minted.text[:200]
        pat = minted.json()["token"]
        try:
            monkeypatch.setenv("AOD_TEST_LS_PAT", pat)
            conn = LabelStudioConnector(labelstudio.url, _fresh_title(), api_key_env="AOD_TEST_LS_PAT")
            with conn:
                receipt = conn.push(make_batch(2, run_id=new_run_id()))
                assert conn._client is not None
                assert not conn._client._client_wrapper._tokens_client._use_legacy_token  # the SDK saw a JWT
                _answer(labelstudio, receipt, receipt.external_ids[0], LABEL_STUDIO_ANNOTATORS[0], "pos")
                assert [(x.external_id, x.label) for x in conn.pull(receipt)] == [(receipt.external_ids[0], "pos")]
            assert pat not in repr(conn)
        finally:  # revoke it, so the test runs again on the same server
            web.post("/api/token/blacklist/", json={"refresh": pat}, headers=csrf)


# -- faults --------------------------------------------------------------------------------------------


def test_unreachable_url_raises_one_line_transport_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOD_TEST_LS_KEY", "some-key-1234")
    url = f"http://127.0.0.1:{_closed_port()}"
    conn = LabelStudioConnector(url, _fresh_title(), api_key_env="AOD_TEST_LS_KEY")
    batch = make_batch(2, run_id=new_run_id())
    with pytest.raises(TransportError, match="connection refused") as info:
        conn.push(batch)
    message = str(info.value)
    assert message == (f"Cannot reach Label Studio at {url} (connection refused); start the server or fix "
                       f"[connector] url in project.toml.")
    assert info.value.url == url and info.value.batch_id == batch.batch_id
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_unknown_host_raises_transport_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOD_TEST_LS_KEY", "some-key-1234")
    url = "http://no-such-host.invalid:8080"
    with pytest.raises(TransportError, match=r"^Cannot reach Label Studio at http://no-such-host\.invalid:8080 "
                                             r"\(host not found\); start the server"):
        LabelStudioConnector(url, _fresh_title(), api_key_env="AOD_TEST_LS_KEY").status(
            Receipt("b1", "labelstudio", "1", ("x",)))


def test_silent_server_raises_transport_error_after_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOD_TEST_LS_KEY", "some-key-1234")
    with socket.socket() as silent:  # listens (the kernel completes the handshake) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        conn = LabelStudioConnector(url, _fresh_title(), api_key_env="AOD_TEST_LS_KEY", timeout=0.3)
        with pytest.raises(TransportError, match=rf"^Label Studio at {url} did not answer within 0\.3 s "):
            conn.push(make_batch(1, run_id=new_run_id()))
        conn.close()


class _FakeServer(http.server.BaseHTTPRequestHandler):
    """Answers every request with the class's ``status`` and ``body``: not Label Studio."""

    status, body = 200, b"<html>hello</html>"

    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("status", "body", "error", "match"), [
    (200, b"<html>hello</html>", ProtocolError, "sent an answer the connector cannot read"),
    (503, b"<html>down\nfor maintenance</html>", PlatformError, "answered 503: <html>down for maintenance</html>; "
                                                                 "see the Label Studio server log"),
])
def test_other_answers_map_to_platform_and_protocol_errors(monkeypatch: pytest.MonkeyPatch, status: int,
                                                           body: bytes, error: type, match: str) -> None:
    monkeypatch.setenv("AOD_TEST_LS_KEY", "some-key-1234")
    handler = type("Handler", (_FakeServer,), {"status": status, "body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        conn = LabelStudioConnector(url, _fresh_title(), api_key_env="AOD_TEST_LS_KEY")
        with pytest.raises(error, match=match) as info:
            conn.pull(Receipt("b1", "labelstudio", "", ("x",)))
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
    assert "\n" not in str(info.value) and url in str(info.value)
    if status == 503:
        assert info.value.status == 503 and info.value.retryable


def test_wrong_key_raises_auth_error_without_the_key(labelstudio: LabelStudioServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = f"wrong-key-{uuid.uuid4().hex}"
    monkeypatch.setenv("AOD_TEST_LS_KEY", wrong)
    conn = LabelStudioConnector(labelstudio.url, _fresh_title(), api_key_env="AOD_TEST_LS_KEY")
    with pytest.raises(AuthError, match="refused the API key") as info:
        conn.push(make_batch(1, run_id=new_run_id()))
    conn.close()
    error = info.value
    assert error.status == 401 and not error.retryable
    assert "AOD_TEST_LS_KEY" in str(error) and labelstudio.url in str(error)
    assert "\n" not in str(error)
    for shown in (str(error), repr(error), error.body, repr(conn)):
        assert wrong not in shown


def test_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AOD_TEST_LS_MISSING", raising=False)
    conn = LabelStudioConnector("http://127.0.0.1:8080", _fresh_title(), api_key_env="AOD_TEST_LS_MISSING")
    with pytest.raises(ConnectorUsageError, match="Environment variable AOD_TEST_LS_MISSING is not set"):
        conn.push(make_batch(1, run_id=new_run_id()))


def test_retrying_connector_gives_up_on_unreachable_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOD_TEST_LS_KEY", "some-key-1234")
    calls = []

    class Counting(LabelStudioConnector):
        def _push(self, batch: Batch) -> Receipt:
            calls.append(batch.batch_id)
            return super()._push(batch)

    clock = SimClock()
    inner = Counting(f"http://127.0.0.1:{_closed_port()}", _fresh_title(), api_key_env="AOD_TEST_LS_KEY")
    with RetryingConnector(inner, retries=2, backoff_s=0.5, clock=clock) as conn:
        with pytest.raises(TransportError, match="Cannot reach Label Studio"):
            conn.push(make_batch(1, run_id=new_run_id()))
    assert len(calls) == 3  # one try and two retries, then it gives up
    assert clock.now() == pytest.approx(0.5 + 1.0)


def test_repr_shows_url_and_project_only() -> None:
    conn = LabelStudioConnector("http://127.0.0.1:8080", "run7 sst2", api_key_env="SECRET_NAME", timeout=5)
    assert repr(conn) == "LabelStudioConnector(url='http://127.0.0.1:8080', project='run7 sst2')"


def test_batch_the_connector_cannot_show_is_refused_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOD_TEST_LS_KEY", "some-key-1234")
    conn = LabelStudioConnector(f"http://127.0.0.1:{_closed_port()}", _fresh_title(), api_key_env="AOD_TEST_LS_KEY")
    pair = make_batch(1, run_id="r1", pair=True)
    one_field = Batch(**{**pair.__dict__, "text_fields": ("text",)})
    with pytest.raises(ConnectorUsageError, match=r"^Batch r1-b0-1 item r1-item0000 has 2 text\(s\) for 1"):
        conn.push(one_field)
    reserved = Batch(**{**pair.__dict__, "text_fields": ("text", "external_id")})
    with pytest.raises(ConnectorUsageError, match="names must be identifiers other than external_id"):
        conn.push(reserved)


def test_long_project_titles_are_shortened_and_stay_distinct() -> None:
    long_task = "a-rather-long-task-name-that-goes-on-and-on"
    first, second = project_title("run-000001", long_task), project_title("run-000002", long_task)
    assert len(first) == len(second) == 50 and first != second
    assert project_title("run7", "sst2") == "run7 sst2"
