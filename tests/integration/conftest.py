"""Fixtures for the integration tests against real annotation servers started by ``scripts/test.sh``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest


def _server_missing(what: str) -> NoReturn:
    """Fail in CI (where the servers must be up), skip elsewhere, with the way to start them."""
    message = f"{what}; run `bash scripts/test.sh` to start the annotation servers and run the integration tests."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# ------------------------------------------------------------------------------------------------------
# Label Studio (scripts/servers/labelstudio.sh writes LABEL_STUDIO_* into $RUN_SERVERS_DIR/labelstudio.env)
# ------------------------------------------------------------------------------------------------------

#: the two annotator accounts the Label Studio tests answer as (created on first use, reused after)
LABEL_STUDIO_ANNOTATORS = ("ann-a@example.com", "ann-b@example.com")


@dataclass(frozen=True)
class LabelStudioServer:
    """A running Label Studio: its URL, the admin's legacy key and login, and an admin SDK client."""

    url: str
    api_key: str
    username: str
    password: str
    admin: Any  # label_studio_sdk.LabelStudio
    annotators: dict[str, int]  # e-mail -> user id


@pytest.fixture(scope="session")
def labelstudio() -> Iterator[LabelStudioServer]:
    """The Label Studio server of this test run, with the annotator accounts in place.

    Reads ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` (and the admin login ``LABEL_STUDIO_USERNAME`` /
    ``LABEL_STUDIO_PASSWORD``, defaulting to the server script's); fails under ``CI`` when they are missing,
    skips otherwise.
    """
    url, key = os.environ.get("LABEL_STUDIO_URL"), os.environ.get("LABEL_STUDIO_API_KEY")
    if not url or not key:
        _server_missing("LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY are not set")
    from label_studio_sdk import LabelStudio

    admin = LabelStudio(base_url=url, api_key=key, timeout=30, max_retries=0)
    try:
        users = {u.email: int(u.id) for u in admin.users.list()}
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable server"
        _server_missing(f"Label Studio at {url} did not answer ({type(exc).__name__})")
    for email in LABEL_STUDIO_ANNOTATORS:
        if email not in users:
            users[email] = int(admin.users.create(email=email, username=email.split("@")[0]).id)
    yield LabelStudioServer(
        url=url, api_key=key,
        username=os.environ.get("LABEL_STUDIO_USERNAME", "admin@example.com"),
        password=os.environ.get("LABEL_STUDIO_PASSWORD", "admin-pass-123"),
        admin=admin, annotators={e: users[e] for e in LABEL_STUDIO_ANNOTATORS},
    )
    admin._client_wrapper.httpx_client.httpx_client.close()


# ---------------------------------------------- end of Label Studio -------------------------------------


# ------------------------------------------------------------------------------------------------------
# llama.cpp's OpenAI-compatible server (scripts/servers/llamacpp.sh writes LLM_SERVER_* into llamacpp.env)
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMServer:
    """A running OpenAI-compatible server: its base URL (``.../v1``), the key it accepts and its model."""

    url: str
    key: str
    model: str


@pytest.fixture(scope="session")
def llm_server() -> LLMServer:
    names = ("LLM_SERVER_URL", "LLM_SERVER_KEY", "LLM_SERVER_MODEL")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        _server_missing(f"{', '.join(missing)} not set (llama.cpp's server)")
    return LLMServer(*(os.environ[n] for n in names))
