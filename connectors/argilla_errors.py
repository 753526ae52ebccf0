"""How the Argilla connector's errors read: Argilla's words and the hooks that read the argilla SDK's exceptions.

:data:`ARGILLA` is the :class:`connectors.platform.Platform` that :func:`connectors.platform.map_errors`
is given for Argilla: the texts its messages use, and two hooks, one that reads the status and body the
argilla SDK put on its own HTTP error exceptions and one that names the SDK's own parse errors.
"""

from __future__ import annotations

from argilla._exceptions import (
    ArgillaAPIError,
    ArgillaCredentialsError,
    ArgillaError,
    ForbiddenError,
    UnauthorizedError,
)

from connectors.platform import Answer, Platform

__all__ = ["ARGILLA"]


def _sdk_answer(exc: BaseException) -> Answer | None:
    """The status the argilla SDK put on its own exceptions (the httpx answer, when chained, is read first)."""
    if isinstance(exc, (ArgillaCredentialsError, UnauthorizedError)):
        return Answer(401)
    if isinstance(exc, ForbiddenError):
        return Answer(403)
    if isinstance(exc, ArgillaAPIError):
        return Answer(exc.status_code, str(exc).split("Details: ", 1)[-1])
    return None


def _sdk_detail(exc: BaseException) -> str | None:
    if isinstance(exc, (KeyError, ArgillaError)):
        return f"{type(exc).__name__}: {exc}"
    return None


#: what Argilla's messages say, and how the argilla SDK's own exceptions are read
ARGILLA = Platform(
    name="Argilla",
    server="argilla-server",
    expects="an argilla-server 2.x",
    key="an owner or admin key",
    forbidden="an owner key, or an admin key of the connector's workspace",
    missing_key="export the API key of an Argilla owner or admin (Argilla UI > My settings) to connect to {url}.",
    fixes={404: "check [connector] url, workspace and dataset, and that the dataset still exists.",
           409: "another process changed the dataset at the same time; try again.",
           429: "Argilla is rate limiting; try again later.",
           "5xx": "see the argilla-server log.",
           "4xx": "check [connector] in project.toml."},
    answer=_sdk_answer,
    unreadable=_sdk_detail,
)
