"""What Label Studio's and Argilla's words and SDK hooks make of their SDKs' errors, with no server.

Each test needs its SDK and is skipped without it.
"""

from __future__ import annotations

from types import ModuleType

import pytest

pydantic = pytest.importorskip("pydantic")

from annotation.records import Receipt  # noqa: E402
from connectors.exceptions import AuthError, ConnectorUsageError, PlatformError, ProtocolError  # noqa: E402

KEY = "platform-words-key-do-not-leak-5e1b"


class _Model(pydantic.BaseModel):
    id: int


def _validation_error() -> pydantic.ValidationError:
    try:
        _Model.model_validate({"id": "x"})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


# -- Label Studio ------------------------------------------------------------------------------------------


@pytest.fixture
def ls(monkeypatch: pytest.MonkeyPatch) -> ModuleType:  # imported only when the SDK is there
    pytest.importorskip("label_studio_sdk")
    from connectors import labelstudio

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    return labelstudio


LS_URL = "http://ls.example:8080"


def test_labelstudio_refused_key(ls: ModuleType) -> None:
    from label_studio_sdk.core.api_error import ApiError

    with pytest.raises(AuthError) as info:
        with ls.map_platform_errors(LS_URL, batch_id="b1"):
            raise ApiError(status_code=401, body={"detail": f"Invalid token {KEY}"})
    assert str(info.value) == (f"Label Studio at {LS_URL} refused the API key (401); set LABEL_STUDIO_API_KEY to a "
                               f"valid legacy token or personal access token.")
    assert KEY not in info.value.body and info.value.batch_id == "b1"


def test_labelstudio_server_error_names_its_log(ls: ModuleType) -> None:
    from label_studio_sdk.core.api_error import ApiError

    with pytest.raises(PlatformError) as info:
        with ls.map_platform_errors(LS_URL):
            raise ApiError(status_code=503, body="<html>down\nfor maintenance</html>")
    assert str(info.value) == (f"Label Studio at {LS_URL} answered 503: <html>down for maintenance</html>; "
                               f"see the Label Studio server log.")
    assert info.value.retryable


def test_labelstudio_unreadable_answers(ls: ModuleType) -> None:
    from label_studio_sdk.core.api_error import ApiError
    from label_studio_sdk.core.parse_error import ParsingError

    with pytest.raises(ProtocolError, match=r"cannot read \(status 200: <html>hello</html>\); check that "
                                            r"\[connector\] url points at a Label Studio 1\.2x server\.$"):
        with ls.map_platform_errors(LS_URL):
            raise ApiError(status_code=200, body="<html>hello</html>")
    with pytest.raises(ProtocolError, match=r"cannot read \(ValidationError\)"):
        with ls.map_platform_errors(LS_URL):
            raise ParsingError(status_code=200, body={}, cause=_validation_error())


def test_labelstudio_missing_key_says_which_token(ls: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    conn = ls.LabelStudioConnector(f"{LS_URL}/", "run7 sst2")
    with pytest.raises(ConnectorUsageError) as info:
        conn.status(Receipt("b1", "labelstudio", "1", ("x",)))
    assert str(info.value) == (f"Environment variable LABEL_STUDIO_API_KEY is not set; set it to a legacy API token "
                               f"or a personal access token of the Label Studio at {LS_URL}.")


# -- Argilla -----------------------------------------------------------------------------------------------


@pytest.fixture
def ag(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pytest.importorskip("argilla")
    from connectors import argilla

    monkeypatch.setenv("ARGILLA_API_KEY", KEY)
    return argilla


AG_URL = "http://argilla.example:6900"


def test_argilla_sdk_statuses(ag: ModuleType) -> None:
    from argilla._exceptions import ArgillaCredentialsError, ConflictError, ForbiddenError

    with pytest.raises(AuthError, match=r"refused the API key \(401\); set ARGILLA_API_KEY to an owner or admin key"):
        with ag.map_platform_errors(AG_URL):
            raise ArgillaCredentialsError("bad key")
    with pytest.raises(AuthError) as info:
        with ag.map_platform_errors(AG_URL):
            raise ForbiddenError("Forbidden. Details: {}", status_code=403)
    assert str(info.value) == (f"Argilla at {AG_URL} forbids this to the API key's user (403); set ARGILLA_API_KEY "
                               f"to an owner key, or an admin key of the connector's workspace.")
    with pytest.raises(PlatformError) as conflict:
        with ag.map_platform_errors(AG_URL):
            raise ConflictError(f"Conflict. Details: dataset exists ({KEY})", status_code=409)
    assert str(conflict.value) == (f"Argilla at {AG_URL} answered 409: dataset exists (***); another process changed "
                                   f"the dataset at the same time; try again.")


def test_argilla_unreadable_answer(ag: ModuleType) -> None:
    with pytest.raises(ProtocolError, match=r"cannot read \(KeyError: 'items'\); check that \[connector\] url "
                                            r"points at an argilla-server 2\.x\.$"):
        with ag.map_platform_errors(AG_URL):
            raise KeyError("items")


def test_argilla_missing_key_says_where_to_find_one(ag: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGILLA_API_KEY")
    conn = ag.ArgillaConnector(AG_URL, dataset="d")
    with pytest.raises(ConnectorUsageError) as info:
        conn.status(Receipt("b1", "argilla", "", ("x",)))
    assert str(info.value) == ("Environment variable ARGILLA_API_KEY is not set; export the API key of an Argilla "
                               f"owner or admin (Argilla UI > My settings) to connect to {AG_URL}.")
