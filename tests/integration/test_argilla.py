"""ArgillaConnector against a real argilla-server (started by ``scripts/test.sh``).

These tests run on argilla-server 2.8.0 over the noida-db Elasticsearch emulator: the server, its SQLite
database, Redis and the rq worker are the real ones, but no real Elasticsearch can be installed on CI,
so the search engine is an emulator (the connector reads records from the database, not from search).
Every test makes its own dataset (a fresh name). Annotators answer as Argilla's web UI does:
``POST /api/v1/records/{id}/responses`` with their own API key.

The classes not marked ``integration`` (error translation, unreachable URL, retries, missing key) need
no server and run everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import traceback

import httpx
import pydantic
import pytest

pytest.importorskip("argilla")

from annotation.aggregate import majority_vote  # noqa: E402
from annotation.records import BatchStatus, Receipt  # noqa: E402
from connectors.argilla import ArgillaConnector, map_platform_errors  # noqa: E402
from connectors.base import Clock, Connector  # noqa: E402
from connectors.exceptions import (  # noqa: E402
    AuthError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
)
from connectors.retry import RetryingConnector  # noqa: E402
from tests.integration import argilla_fixtures  # noqa: E402
from tests.integration.argilla_fixtures import ARGILLA_ANNOTATORS, ArgillaServer, fresh_dataset_name  # noqa: E402
from tests.utils.connector_contract import Answers, ConnectorContractTests  # noqa: E402
from tests.utils.pools import make_batch, new_run_id  # noqa: E402

argilla_server = argilla_fixtures.argilla_server  # the session fixture, made visible to this module

WRONG_KEY = "argilla.apikey.wrong.do-not-leak-7f3a9c"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RecordingClock(Clock):
    """A clock that does not wait and remembers every sleep."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now(self) -> float:
        return sum(self.sleeps)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _records(server: ArgillaServer, receipt: Receipt) -> dict[str, dict]:
    """external id -> the record as the owner reads it from the server."""
    response = server.owner.get(f"/api/v1/datasets/{receipt.project_ref}/records",
                                params={"limit": 1000, "include": ["responses", "suggestions"]})
    response.raise_for_status()
    return {item["external_id"]: item for item in response.json()["items"]}


# -- the contract every connector passes ---------------------------------------------------------------


@pytest.mark.integration
class TestArgillaContract(ConnectorContractTests):
    annotator_names = ARGILLA_ANNOTATORS

    @pytest.fixture(autouse=True)
    def _server(self, argilla_server: ArgillaServer) -> None:
        self.server = argilla_server

    def make_connector(self) -> Connector:
        return self.server.connector()

    def annotate(self, connector: Connector, receipt: Receipt, answers: Answers) -> None:
        for external_id, given in answers.items():
            for annotator, label in given:
                self.server.answer(receipt.task_refs[external_id], annotator, label)


# -- Argilla specifics against the real server ---------------------------------------------------------


@pytest.mark.integration
class TestArgillaConnector:
    def test_push_creates_dataset_with_fields_question_distribution_and_suggestions(
        self, argilla_server: ArgillaServer
    ) -> None:
        base = make_batch(3, ("neg", "pos"), run_id=new_run_id(), overlap=2, pair=True)
        items = (dataclasses.replace(base.items[0], suggestion="pos", suggestion_score=0.75), *base.items[1:])
        batch = dataclasses.replace(base, items=items, guidelines="Is the pair a paraphrase?")
        with argilla_server.connector() as conn:
            receipt = conn.push(batch)
        owner = argilla_server.owner
        dataset = owner.get(f"/api/v1/datasets/{receipt.project_ref}").json()
        assert dataset["distribution"] == {"strategy": "overlap", "min_submitted": 2}
        assert dataset["guidelines"] == "Is the pair a paraphrase?"
        fields = owner.get(f"/api/v1/datasets/{receipt.project_ref}/fields").json()["items"]
        assert [f["name"] for f in fields] == ["sentence1", "sentence2"]
        questions = owner.get(f"/api/v1/datasets/{receipt.project_ref}/questions").json()["items"]
        assert [(q["name"], [o["value"] for o in q["settings"]["options"]]) for q in questions] == [
            ("label", ["neg", "pos"])]
        records = _records(argilla_server, receipt)
        first = records[receipt.external_ids[0]]
        assert first["fields"] == {"sentence1": "first sentence 0", "sentence2": "second sentence 0"}
        assert first["metadata"] == {"batch_id": batch.batch_id}
        assert [(s["value"], s["score"], s["agent"]) for s in first["suggestions"]] == [("pos", 0.75, "student")]
        assert records[receipt.external_ids[1]]["suggestions"] == []

    def test_two_annotators_resolve_by_majority_vote_with_ties_reported(self, argilla_server: ArgillaServer) -> None:
        batch = make_batch(4, ("neg", "pos"), run_id=new_run_id(), overlap=2)
        with argilla_server.connector() as conn:
            receipt = conn.push(batch)
            ids = receipt.external_ids
            first = ["pos", "neg", "pos", "neg"]
            second = ["pos", "pos", None, "neg"]  # agrees, disagrees (a tie), discards, agrees
            for eid, one, two in zip(ids, first, second, strict=True):
                argilla_server.answer(receipt.task_refs[eid], "annotator1", one)
                argilla_server.answer(receipt.task_refs[eid], "annotator2", two)
            pulled = conn.pull(receipt)
            status = conn.status(receipt)
        assert len(pulled) == 8
        assert all(a.lead_time_s is None for a in pulled)
        resolved = {r.external_id: r for r in majority_vote(pulled, batch.labels)}
        assert [resolved[eid].label for eid in ids] == ["pos", "neg", "pos", "neg"]
        assert [resolved[eid].tie for eid in ids] == [False, True, False, False]
        assert resolved[ids[1]].votes == {"neg": 1, "pos": 1}
        assert resolved[ids[2]].n_skipped == 1 and resolved[ids[2]].votes == {"pos": 1}
        assert status == BatchStatus(pushed=4, done=4, skipped=0, waiting=0)
        # Argilla's own task distribution: complete once two people submitted; the discarded one is not.
        records = _records(argilla_server, receipt)
        assert [records[eid]["status"] for eid in ids] == ["completed", "completed", "pending", "completed"]

    def test_push_again_after_a_crash_makes_no_duplicate_record(self, argilla_server: ArgillaServer) -> None:
        name, run_id = fresh_dataset_name(), new_run_id()
        batch = make_batch(6, ("neg", "pos"), run_id=run_id)
        with argilla_server.connector(name) as conn:
            lost = conn.push(batch)  # the controller dies before it writes this receipt down
        argilla_server.answer(lost.task_refs[lost.external_ids[0]], "annotator1", "pos")
        with argilla_server.connector(name) as conn:  # a new process, the same dataset
            receipt = conn.push(batch)
            assert argilla_server.record_count(receipt.project_ref) == 6
            assert (receipt.project_ref, receipt.task_refs) == (lost.project_ref, lost.task_refs)
            later = conn.push(make_batch(4, ("neg", "pos"), run_id=run_id, start=4))  # shares items 4 and 5
            assert argilla_server.record_count(receipt.project_ref) == 8
            assert later.task_refs[receipt.external_ids[4]] == receipt.task_refs[receipt.external_ids[4]]
            assert [(a.external_id, a.label) for a in conn.pull(receipt)] == [(receipt.external_ids[0], "pos")]

    def test_a_draft_is_not_an_answer(self, argilla_server: ArgillaServer) -> None:
        with argilla_server.connector() as conn:
            receipt = conn.push(make_batch(2, run_id=new_run_id()))
            record_id = receipt.task_refs[receipt.external_ids[0]]
            draft = {"values": {"label": {"value": "pos"}}, "status": "draft"}
            response = argilla_server.annotators["annotator1"].post(f"/api/v1/records/{record_id}/responses",
                                                                    json=draft)
            assert response.status_code == 201, response.text
            assert conn.pull(receipt) == []
            assert conn.status(receipt) == BatchStatus(pushed=2, done=0, skipped=0, waiting=2)

    def test_existing_dataset_with_other_labels_is_refused(self, argilla_server: ArgillaServer) -> None:
        name, run_id = fresh_dataset_name(), new_run_id()
        with argilla_server.connector(name) as conn:
            conn.push(make_batch(2, ("neg", "pos"), run_id=run_id))
            other = make_batch(2, ("no", "yes"), run_id=run_id, start=5)
            with pytest.raises(ConnectorUsageError, match=r"labels \['neg', 'pos'\].*labels \['no', 'yes'\]"):
                conn.push(other)

    def test_wrong_key_raises_auth_error_without_the_key(
        self, argilla_server: ArgillaServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AOD_TEST_WRONG_KEY", WRONG_KEY)
        conn = argilla_server.connector(api_key_env="AOD_TEST_WRONG_KEY")
        with pytest.raises(AuthError) as info:
            conn.push(make_batch(2, run_id=new_run_id()))
        err = info.value
        assert err.status == 401 and not err.retryable
        assert str(err) == (f"Argilla at {argilla_server.url} refused the API key (401); "
                            f"set AOD_TEST_WRONG_KEY to an owner or admin key.")
        text = "".join(traceback.format_exception(err)) + repr(err) + err.body + repr(conn)
        assert WRONG_KEY not in text

    def test_annotator_key_is_forbidden_to_create_a_dataset(self, argilla_server: ArgillaServer) -> None:
        conn = argilla_server.connector(api_key_env="ARGILLA_ANNOTATOR1_API_KEY")
        with pytest.raises(AuthError, match=r"\(403\).*owner key") as info:
            conn.push(make_batch(2, run_id=new_run_id()))
        assert info.value.status == 403
        assert "\n" not in str(info.value)

    def test_retrying_connector_does_not_retry_a_refused_key(
        self, argilla_server: ArgillaServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AOD_TEST_WRONG_KEY", WRONG_KEY)
        clock = _RecordingClock()
        conn = RetryingConnector(argilla_server.connector(api_key_env="AOD_TEST_WRONG_KEY"), retries=3, clock=clock)
        with pytest.raises(AuthError):
            conn.push(make_batch(2, run_id=new_run_id()))
        assert clock.sleeps == []


# -- no server needed -----------------------------------------------------------------------------------


class TestArgillaConnectorOffline:
    def test_repr_shows_url_workspace_and_dataset_only(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARGILLA_API_KEY", WRONG_KEY)
        conn = ArgillaConnector("http://127.0.0.1:6900", dataset="run-1-sst2", workspace="team")
        assert repr(conn) == "ArgillaConnector(url='http://127.0.0.1:6900', workspace='team', dataset='run-1-sst2')"

    def test_unreachable_url_raises_one_line_transport_error_naming_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARGILLA_API_KEY", WRONG_KEY)
        url = f"http://127.0.0.1:{_closed_port()}"
        batch = make_batch(2, run_id=new_run_id())
        with pytest.raises(TransportError) as info:
            ArgillaConnector(url, dataset=fresh_dataset_name()).push(batch)
        assert str(info.value) == (f"Cannot reach Argilla at {url} (connection refused); start argilla-server or "
                                   f"fix [connector] url in project.toml.")
        assert info.value.url == url and info.value.batch_id == batch.batch_id
        assert isinstance(info.value.__cause__, httpx.ConnectError)

    def test_silent_server_raises_timeout_naming_the_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARGILLA_API_KEY", WRONG_KEY)
        with socket.socket() as silent:  # accepts connections, never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            conn = ArgillaConnector(url, dataset=fresh_dataset_name(), timeout=0.2)
            with pytest.raises(TransportError, match=rf"^Argilla at {url} did not answer within 0.2 s \(ReadTimeout\)"):
                conn.status(Receipt("b1", "argilla", "", ("x",)))

    def test_invalid_url_is_a_usage_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARGILLA_API_KEY", WRONG_KEY)
        with pytest.raises(ConnectorUsageError, match=r"not a valid http\(s\) URL.*fix \[connector\] url"):
            ArgillaConnector("ftp://127.0.0.1:6900", dataset="d").status(Receipt("b1", "argilla", "", ("x",)))

    def test_retrying_connector_gives_up_after_bounded_retries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ARGILLA_API_KEY", WRONG_KEY)
        clock = _RecordingClock()
        inner = ArgillaConnector(f"http://127.0.0.1:{_closed_port()}", dataset=fresh_dataset_name())
        conn = RetryingConnector(inner, retries=2, backoff_s=0.5, clock=clock)
        with pytest.raises(TransportError):
            conn.push(make_batch(2, run_id=new_run_id()))
        assert clock.sleeps == [0.5, 1.0]  # three tries in all

    def test_missing_key_variable_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AOD_TEST_NO_SUCH_KEY", raising=False)
        conn = ArgillaConnector("http://127.0.0.1:6900", dataset="d", api_key_env="AOD_TEST_NO_SUCH_KEY")
        with pytest.raises(ConnectorUsageError, match="Environment variable AOD_TEST_NO_SUCH_KEY is not set"):
            conn.status(Receipt("b1", "argilla", "", ("x",)))


class TestMapPlatformErrors:
    URL = "http://argilla.example:6900"

    def _status_error(self, status: int, body: str) -> httpx.HTTPStatusError:
        request = httpx.Request("POST", f"{self.URL}/api/v1/datasets")
        response = httpx.Response(status, text=body, request=request)
        return httpx.HTTPStatusError("boom", request=request, response=response)

    def test_server_error_becomes_retryable_platform_error_with_truncated_body(self) -> None:
        with pytest.raises(PlatformError) as info:
            with map_platform_errors(self.URL, batch_id="b7"):
                raise self._status_error(503, "overloaded\n" + "x" * 1000)
        err = info.value
        assert type(err) is PlatformError and err.status == 503 and err.retryable
        assert err.batch_id == "b7" and len(err.body) <= 300 and "\n" not in str(err)
        assert str(err).startswith(f"Argilla at {self.URL} answered 503 to POST /api/v1/datasets: overloaded")

    def test_sdk_api_errors_map_by_status(self) -> None:
        from argilla._exceptions import ConflictError, UnauthorizedError

        with pytest.raises(PlatformError) as info:
            with map_platform_errors(self.URL):
                raise ConflictError("Conflict with the server. Details: already exists", status_code=409)
        assert info.value.status == 409 and not info.value.retryable and "already exists" in info.value.body
        with pytest.raises(AuthError, match="refused the API key"):
            with map_platform_errors(self.URL):
                raise UnauthorizedError("Unauthorized. Details: {}", status_code=401)

    def test_unreadable_payload_becomes_protocol_error(self) -> None:
        class Model(pydantic.BaseModel):
            id: int

        with pytest.raises(ProtocolError, match="cannot read"):
            with map_platform_errors(self.URL):
                Model.model_validate({"id": "not a number"})
        with pytest.raises(ProtocolError):
            with map_platform_errors(self.URL):
                json.loads("<html>")

    def test_secrets_are_removed_and_our_own_bugs_pass_unchanged(self) -> None:
        with pytest.raises(PlatformError) as info:
            with map_platform_errors(self.URL, secrets=[WRONG_KEY]):
                raise self._status_error(400, f"bad key {WRONG_KEY}")
        assert WRONG_KEY not in str(info.value) + info.value.body
        with pytest.raises(ZeroDivisionError):
            with map_platform_errors(self.URL):
                raise ZeroDivisionError("ours")
        with pytest.raises(ConnectorUsageError):
            with map_platform_errors(self.URL):
                raise ConnectorUsageError("ours too")
