"""Fixtures for the Argilla integration tests (imported by ``test_argilla.py``; not a conftest).

``scripts/servers/argilla.sh start`` runs argilla-server 2.8.0 over the noida-db Elasticsearch emulator
and writes ``$RUN_SERVERS_DIR/argilla.env``, which ``scripts/test.sh`` exports: ``ARGILLA_API_URL``,
``ARGILLA_API_KEY`` (owner), ``ARGILLA_ANNOTATOR1_API_KEY``, ``ARGILLA_ANNOTATOR2_API_KEY`` and
``ARGILLA_WORKSPACE``. Annotators answer the way Argilla's web UI does: ``POST
/api/v1/records/{record id}/responses`` with their own key.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn

import httpx
import pytest

from connectors.argilla import QUESTION_NAME, ArgillaConnector

__all__ = ["ARGILLA_ANNOTATORS", "ArgillaServer", "argilla_server", "fresh_dataset_name"]

#: the annotator accounts ``scripts/servers/argilla.sh`` creates, in the order of their key variables
ARGILLA_ANNOTATORS = ("annotator1", "annotator2")
_KEY_VARS = ("ARGILLA_ANNOTATOR1_API_KEY", "ARGILLA_ANNOTATOR2_API_KEY")


def _server_missing(what: str) -> NoReturn:
    """Fail in CI (where the servers must be up), skip elsewhere, with the way to start them."""
    message = f"{what}; run `bash scripts/test.sh` to start argilla-server and run the integration tests."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def fresh_dataset_name() -> str:
    """A dataset name no earlier test used."""
    return f"aod-test-{uuid.uuid4().hex[:12]}"


@dataclass
class ArgillaServer:
    """A running argilla-server: its URL and workspace, plus one HTTP session per annotator."""

    url: str
    workspace: str
    owner: httpx.Client
    annotators: dict[str, httpx.Client] = field(default_factory=dict)

    def connector(self, dataset: str | None = None, **kwargs: object) -> ArgillaConnector:
        """A connector on a fresh dataset (or ``dataset``) of the test workspace, keyed by ``ARGILLA_API_KEY``."""
        return ArgillaConnector(self.url, dataset=dataset or fresh_dataset_name(), workspace=self.workspace,
                                **kwargs)  # type: ignore[arg-type]

    def answer(self, record_id: str, annotator: str, label: str | None) -> None:
        """``annotator`` submits ``label`` on the record, or discards it when ``label`` is None.

        The same request the web UI sends; it always carries ``values`` (an empty dict on a discard:
        argilla-server 2.8.0 answers 500 to a discard whose values are null).
        """
        if label is None:
            body: dict[str, object] = {"values": {}, "status": "discarded"}
        else:
            body = {"values": {QUESTION_NAME: {"value": label}}, "status": "submitted"}
        response = self.annotators[annotator].post(f"/api/v1/records/{record_id}/responses", json=body)
        assert response.status_code == 201, f"{annotator} could not answer record {record_id}: {response.text}"

    def record_count(self, dataset_id: str) -> int:
        """Records in the dataset, as the owner sees them (the database, not the search engine)."""
        response = self.owner.get(f"/api/v1/datasets/{dataset_id}/records", params={"limit": 1})
        response.raise_for_status()
        return int(response.json()["total"])

    def close(self) -> None:
        for client in (self.owner, *self.annotators.values()):
            client.close()


@pytest.fixture(scope="session")
def argilla_server() -> Iterator[ArgillaServer]:
    """The argilla-server of this test run, with its owner and two annotators checked.

    Fails under ``CI`` when the ``ARGILLA_*`` variables are missing or the server does not answer,
    skips otherwise.
    """
    names = ("ARGILLA_API_URL", "ARGILLA_API_KEY", *_KEY_VARS, "ARGILLA_WORKSPACE")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        _server_missing(f"{', '.join(missing)} not set")
    url, workspace = os.environ["ARGILLA_API_URL"], os.environ["ARGILLA_WORKSPACE"]

    def session(key_var: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": os.environ[key_var]}, timeout=30)

    server = ArgillaServer(url, workspace, session("ARGILLA_API_KEY"))
    try:
        for name, key_var in zip(ARGILLA_ANNOTATORS, _KEY_VARS, strict=True):
            client = session(key_var)
            server.annotators[name] = client
            me = client.get("/api/v1/me")
            if me.status_code != 200 or me.json().get("username") != name:
                _server_missing(f"{key_var} is not the key of Argilla user {name!r} at {url} ({me.status_code})")
        if server.owner.get("/api/v1/me").json().get("role") != "owner":
            _server_missing(f"ARGILLA_API_KEY is not an owner's key at {url}")
    except httpx.TransportError as exc:
        server.close()
        _server_missing(f"argilla-server at {url} did not answer ({type(exc).__name__})")
    except BaseException:
        server.close()
        raise
    yield server
    server.close()
