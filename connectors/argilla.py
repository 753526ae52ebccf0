"""The Argilla connector: batches become records of one Argilla dataset, answers come back as responses.

Built on the ``argilla`` 2.x SDK (tested against argilla-server 2.8.0). One dataset holds one run's task:
one ``TextField`` per text field of the batch (two for pair tasks), one ``LabelQuestion`` named ``label``
with the batch's labels, a ``TermsMetadataProperty`` ``batch_id``, and a task distribution of
``min_submitted = batch.overlap``. Each item becomes a record whose Argilla ``id`` is the item's external
id; Argilla upserts by that id, and ``push`` only logs the items the dataset does not have yet, so pushing
again after a crash never makes a second record. The student's guess, when the item has one, is shown
as a suggestion.

Every answer that is final on the platform is pulled: a *submitted* response gives its label, a
*discarded* one a skip (``label=None``); drafts are left alone. Argilla stores no time spent, so
``lead_time_s`` is None. An item is done when ``overlap`` people have answered and at least one gave a
label, skipped when all of them discarded it.

Records, responses and their statuses are read from the records list endpoint (the database), not
from the search engine, so what ``pull`` sees is what the server has committed.

Faults are translated in one place, :func:`map_platform_errors`. Retries are not done here: wrap the
connector in :class:`connectors.retry.RetryingConnector`. The API key is read from the environment
variable named by ``api_key_env`` when the connector first talks to the server, and never appears
in a repr, a log line or an error.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import argilla as rg
import httpx
import pydantic
from argilla._exceptions import (
    ArgillaAPIError,
    ArgillaCredentialsError,
    ArgillaError,
    ForbiddenError,
    UnauthorizedError,
)

from annotation.records import Annotation, Batch, BatchItem, BatchStatus, Receipt
from connectors.base import Connector
from connectors.exceptions import (
    AuthError,
    ConnectorError,
    ConnectorUsageError,
    PlatformError,
    ProtocolError,
    TransportError,
)

__all__ = ["ArgillaConnector", "map_platform_errors", "QUESTION_NAME"]

#: name of the dataset's one question
QUESTION_NAME = "label"
#: name of the record metadata property that holds the batch id
_BATCH_META = "batch_id"
#: the agent named on the student's suggestions
_SUGGESTION_AGENT = "student"
#: records per page when listing a dataset (the server allows up to 1000)
_PAGE = 1000
#: records per bulk upsert (the SDK allows up to 500)
_UPSERT = 500
_BODY_CHARS = 300


class ArgillaConnector(Connector):
    """Pushes batches to an Argilla dataset and pulls its annotators' responses.

    Parameters
    ----------
    url : str
        Base URL of the Argilla server, e.g. ``"http://127.0.0.1:6900"``.
    dataset : str
        Name of the dataset; one per run and task. It is created on the first push and reused after.
    workspace : str, default="argilla"
        Workspace that holds the dataset; the annotators must be members of it.
    api_key_env : str, default="ARGILLA_API_KEY"
        Name of the environment variable holding the API key of an owner, or of an admin of
        ``workspace``. It is read when the connector first talks to the server.
    guidelines : str, default=""
        Annotation guidelines shown in Argilla's UI (markdown). When empty, the batch's own
        ``guidelines`` are used, if any.
    timeout : float, default=30.0
        Seconds to wait for each HTTP request.

    Examples
    --------
    >>> ArgillaConnector("http://127.0.0.1:6900", dataset="run-1-sst2", workspace="argilla")
    ArgillaConnector(url='http://127.0.0.1:6900', workspace='argilla', dataset='run-1-sst2')
    """

    platform = "argilla"

    def __init__(
        self,
        url: str,
        *,
        dataset: str,
        workspace: str = "argilla",
        api_key_env: str = "ARGILLA_API_KEY",
        guidelines: str = "",
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.dataset = dataset
        self.workspace = workspace
        self.api_key_env = api_key_env
        self.guidelines = guidelines
        self.timeout = timeout
        self._client: rg.Argilla | None = None
        self._dataset: rg.Dataset | None = None
        self._usernames: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ArgillaConnector(url={self.url!r}, workspace={self.workspace!r}, dataset={self.dataset!r})"

    # -- protocol -------------------------------------------------------------------------------------

    def _push(self, batch: Batch) -> Receipt:
        with self._errors(batch.batch_id):
            ds = self._dataset_for(batch)
            refs = self._record_refs(ds)
            new: dict[str, rg.Record] = {}
            for item in batch.items:
                if item.external_id not in refs and item.external_id not in new:
                    new[item.external_id] = self._record(item, batch)
            if new:
                records = list(new.values())
                ds.records.log(records, batch_size=min(len(records), _UPSERT))
                refs = self._record_refs(ds)
            external_ids = tuple(item.external_id for item in batch.items)
            missing = [eid for eid in external_ids if eid not in refs]
            if missing:
                raise ProtocolError(
                    f"Argilla at {self._base_url} accepted batch {batch.batch_id} but dataset '{self.dataset}' lacks "
                    f"{len(missing)} of its records (first: {missing[0]}); check the server log.",
                    batch_id=batch.batch_id, url=self._base_url,
                )
            return Receipt(
                batch_id=batch.batch_id,
                platform=self.platform,
                project_ref=str(ds.id),
                external_ids=external_ids,
                task_refs={eid: refs[eid] for eid in external_ids},
            )

    def pull(self, receipt: Receipt) -> list[Annotation]:
        """Every submitted or discarded response to the receipt's records so far.

        Parameters
        ----------
        receipt : Receipt
            What :meth:`push` returned. A receipt with an empty ``project_ref`` is looked up in the
            dataset named by the connector.

        Returns
        -------
        list of Annotation
            In the receipt's item order; ``annotator`` is the Argilla username, ``label`` is None for a
            discarded response, ``lead_time_s`` is None (Argilla does not record it).

        Raises
        ------
        TransportError, AuthError, PlatformError, ProtocolError
            See :func:`map_platform_errors`.
        """
        with self._errors(receipt.batch_id):
            ds = self._dataset_of(receipt)
            if ds is None:
                return []
            found = self._records_of(ds, receipt)
            out: list[Annotation] = []
            for eid in dict.fromkeys(receipt.external_ids):
                for record in found.get(eid, []):
                    for response in record.responses or []:
                        status = _status(response.status)
                        if status == "submitted":
                            label: str | None = self._label(response.values, eid)
                        elif status == "discarded":
                            label = None
                        else:
                            continue  # a draft is not an answer yet
                        out.append(Annotation(eid, self._username(response.user_id), label, None))
            return out

    def status(self, receipt: Receipt) -> BatchStatus:
        """Counts of the receipt's records: pushed, done, skipped by everyone asked, waiting.

        A record is done when ``overlap`` (the dataset's ``min_submitted``) people have submitted or
        discarded it and at least one submitted a label; skipped when all of them discarded it.

        Raises
        ------
        TransportError, AuthError, PlatformError, ProtocolError
            See :func:`map_platform_errors`.
        """
        with self._errors(receipt.batch_id):
            ds = self._dataset_of(receipt)
            if ds is None:
                return BatchStatus(pushed=0, done=0, skipped=0, waiting=0)
            overlap = int(ds.settings.distribution.min_submitted)
            pushed = done = skipped = 0
            for records in self._records_of(ds, receipt).values():
                for record in records:
                    pushed += 1
                    statuses = [_status(r.status) for r in record.responses or []]
                    submitted = statuses.count("submitted")
                    if submitted + statuses.count("discarded") >= overlap:
                        if submitted:
                            done += 1
                        else:
                            skipped += 1
            return BatchStatus(pushed=pushed, done=done, skipped=skipped, waiting=pushed - done - skipped)

    def close(self) -> None:
        """Close the HTTP client. Safe to call twice; the next call connects again."""
        client, self._client, self._dataset = self._client, None, None
        if client is not None:
            client.http_client.close()
            if getattr(rg.Argilla, "_default_client", None) is client:
                rg.Argilla._default_client = None  # the SDK keeps the last client as a global default

    # -- helpers ----------------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, batch_id: str | None) -> Iterator[None]:
        key = os.environ.get(self.api_key_env, "").strip()
        secrets = tuple(k for k in (key, getattr(self._client, "api_key", None)) if k)
        with map_platform_errors(self._base_url, api_key_env=self.api_key_env, timeout=self.timeout,
                                 batch_id=batch_id, secrets=secrets):
            yield

    @property
    def _base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def client(self) -> rg.Argilla:
        """The SDK client, connected (and the key checked) on first use.

        Raises
        ------
        ConnectorUsageError
            If the environment variable named by ``api_key_env`` is not set.
        """
        if self._client is None:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise ConnectorUsageError(
                    f"Environment variable {self.api_key_env} is not set; export the API key of an Argilla owner "
                    f"or admin (Argilla UI > My settings) to connect to {self._base_url}."
                )
            with self._errors(None):
                self._client = rg.Argilla(api_url=self._base_url, api_key=key, timeout=self.timeout, retries=0)
        return self._client

    def _workspace(self) -> rg.Workspace:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK warns when the name is not found; None says so
            ws = self.client.workspaces(self.workspace)
        if ws is None:
            raise PlatformError(
                f"Argilla at {self._base_url} has no workspace '{self.workspace}' that the key's user can see; "
                f"create it (rg.Workspace(name='{self.workspace}').create()) and add the annotators to it, or fix "
                f"[connector] workspace in project.toml.",
                status=404, url=self._base_url,
            )
        return ws

    def _find_dataset(self) -> rg.Dataset | None:
        """The connector's dataset, found by name in its workspace; None if it does not exist yet."""
        if self._dataset is None:
            for ds in self._workspace().datasets:
                if ds.name == self.dataset:
                    self._dataset = ds.get()
                    break
        return self._dataset

    def _dataset_of(self, receipt: Receipt) -> rg.Dataset | None:
        ds = self._find_dataset()
        if ds is not None and (not receipt.project_ref or str(ds.id) == receipt.project_ref):
            return ds
        if not receipt.project_ref:
            return None
        try:
            uuid.UUID(receipt.project_ref)
        except ValueError:
            raise ConnectorUsageError(
                f"Receipt of batch {receipt.batch_id} has project_ref {receipt.project_ref!r}, which is not an "
                f"Argilla dataset id; was it made by another connector (platform {receipt.platform!r})?"
            ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK warns when the id is not found; None says so
            other = self.client.datasets(id=receipt.project_ref)
        return other.get() if other is not None else None

    def _dataset_for(self, batch: Batch) -> rg.Dataset:
        """The dataset for ``batch``: created with the batch's fields and labels, or checked against them."""
        ds = self._find_dataset()
        if ds is None:
            settings = rg.Settings(
                fields=[rg.TextField(name=name, title=name) for name in batch.text_fields],
                questions=[rg.LabelQuestion(name=QUESTION_NAME, title="Label", labels=list(batch.labels))],
                metadata=[rg.TermsMetadataProperty(name=_BATCH_META, title="Batch")],
                guidelines=(self.guidelines or batch.guidelines or None),
                distribution=rg.TaskDistribution(min_submitted=batch.overlap),
            )
            ds = rg.Dataset(name=self.dataset, workspace=self._workspace(), settings=settings, client=self.client)
            self._dataset = ds = ds.create()
            return ds
        fields = tuple(f.name for f in ds.settings.fields)
        question = ds.settings.questions[QUESTION_NAME]
        labels = tuple(question.labels) if question is not None else ()
        overlap = int(ds.settings.distribution.min_submitted)
        if (fields, labels, overlap) != (tuple(batch.text_fields), tuple(batch.labels), batch.overlap):
            raise ConnectorUsageError(
                f"Argilla dataset '{self.dataset}' in workspace '{self.workspace}' has fields {list(fields)}, labels "
                f"{list(labels)} and {overlap} annotator(s) per record, but batch {batch.batch_id} has fields "
                f"{list(batch.text_fields)}, labels {list(batch.labels)} and overlap {batch.overlap}; the project "
                f"file changed during the run: start a new --run-dir (each run gets its own dataset)."
            )
        return ds

    def _record(self, item: BatchItem, batch: Batch) -> rg.Record:
        texts = (item.text,) if isinstance(item.text, str) else tuple(item.text)
        if len(texts) != len(batch.text_fields):
            raise ConnectorUsageError(
                f"Item {item.external_id} of batch {batch.batch_id} has {len(texts)} text(s) but the batch names "
                f"{len(batch.text_fields)} text field(s) {list(batch.text_fields)}."
            )
        suggestions = []
        if item.suggestion is not None:
            suggestions.append(rg.Suggestion(question_name=QUESTION_NAME, value=item.suggestion,
                                             score=item.suggestion_score, agent=_SUGGESTION_AGENT))
        return rg.Record(
            id=item.external_id,
            fields=dict(zip(batch.text_fields, texts, strict=True)),
            metadata={_BATCH_META: batch.batch_id},
            suggestions=suggestions,
        )

    def _list(self, ds: rg.Dataset, *, with_responses: bool) -> Iterator[Any]:
        """Every record model of ``ds``, page by page, from the database (not the search engine)."""
        offset = 0
        while True:
            page = self.client.api.records.list(dataset_id=ds.id, offset=offset, limit=_PAGE,
                                                with_responses=with_responses, with_suggestions=False)
            yield from page
            if len(page) < _PAGE:
                return
            offset += len(page)

    def _record_refs(self, ds: rg.Dataset) -> dict[str, str]:
        """External id -> Argilla record id, for every record of ``ds``."""
        return {str(m.external_id): str(m.id) for m in self._list(ds, with_responses=False)}

    def _records_of(self, ds: rg.Dataset, receipt: Receipt) -> dict[str, list[Any]]:
        wanted = set(receipt.external_ids)
        found: dict[str, list[Any]] = {}
        for model in self._list(ds, with_responses=True):
            if str(model.external_id) in wanted:
                found.setdefault(str(model.external_id), []).append(model)
        return found

    def _label(self, values: dict[str, Any] | None, external_id: str) -> str:
        value = ((values or {}).get(QUESTION_NAME) or {}).get("value")
        if not isinstance(value, str):
            raise ProtocolError(
                f"Argilla at {self._base_url} returned a submitted response to record {external_id} without a "
                f"'{QUESTION_NAME}' label (values: {json.dumps(values)[:_BODY_CHARS]}); was dataset "
                f"'{self.dataset}' made by this connector?",
                url=self._base_url,
            )
        return value

    def _username(self, user_id: object) -> str:
        key = str(user_id)
        if key not in self._usernames:
            for user in self._workspace().users:
                self._usernames[str(user.id)] = user.username
        return self._usernames.get(key, key)


def _status(status: object) -> str:
    return str(getattr(status, "value", status))


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(seen) < 16:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _one_line(text: str, limit: int = _BODY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return _one_line(text or type(exc).__name__, 120)


def _transport_error(link: httpx.TransportError, url: str, timeout: float | None,
                     where: dict[str, Any]) -> TransportError:
    if isinstance(link, httpx.TimeoutException):
        within = f" within {timeout:g} s" if timeout is not None else ""
        return TransportError(
            f"Argilla at {url} did not answer{within} ({type(link).__name__}); check that the server is up and not "
            f"overloaded, or raise [connector] timeout in project.toml.", **where)
    if isinstance(link, httpx.ConnectError):
        return TransportError(
            f"Cannot reach Argilla at {url} ({_reason(link)}); start argilla-server or fix [connector] url in "
            f"project.toml.", **where)
    return TransportError(
        f"Lost the connection to Argilla at {url} ({_reason(link)}); check that the server is still running.",
        **where)


def _translate(
    exc: BaseException, url: str, api_key_env: str, timeout: float | None, batch_id: str | None
) -> ConnectorError | ConnectorUsageError | None:
    """The connector error for an SDK or httpx exception, or None when it is none of theirs."""
    links = list(_chain(exc))
    where: dict[str, Any] = {"batch_id": batch_id, "url": url}
    for link in links:
        if isinstance(link, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return ConnectorUsageError(
                f"Argilla url {url!r} is not a valid http(s) URL ({_one_line(str(link), 120)}); fix [connector] url "
                f"in project.toml.")
        if isinstance(link, httpx.TransportError):
            return _transport_error(link, url, timeout, where)
    status, body, what = None, "", ""
    for link in links:
        if isinstance(link, httpx.HTTPStatusError):
            status, body = link.response.status_code, link.response.text
            what = f" to {link.request.method} {link.request.url.path}"
            break
    if status is None:
        for link in links:
            if isinstance(link, (ArgillaCredentialsError, UnauthorizedError)):
                status = 401
            elif isinstance(link, ForbiddenError):
                status = 403
            elif isinstance(link, ArgillaAPIError):
                status, body = link.status_code, str(link).split("Details: ", 1)[-1]
            if status is not None:
                break
    if status == 401:
        return AuthError(f"Argilla at {url} refused the API key (401); set {api_key_env} to an owner or admin key.",
                         status=status, body=_one_line(body), **where)
    if status == 403:
        return AuthError(f"Argilla at {url} forbids this to the API key's user (403){what}; set {api_key_env} to an "
                         f"owner key, or an admin key of the connector's workspace.",
                         status=status, body=_one_line(body), **where)
    if status is not None:
        return PlatformError(f"Argilla at {url} answered {status}{what}: {_one_line(body, 200)}; {_fix_for(status)}",
                             status=status, body=_one_line(body), **where)
    for link in links:
        if isinstance(link, (pydantic.ValidationError, json.JSONDecodeError, KeyError, ArgillaError)):
            return ProtocolError(
                f"Argilla at {url} sent an answer the connector cannot read ({type(link).__name__}: "
                f"{_one_line(str(link), 200)}); check that [connector] url points at an argilla-server 2.x.", **where)
    return None


def _fix_for(status: int) -> str:
    if status == 404:
        return "check [connector] url, workspace and dataset, and that the dataset still exists."
    if status == 409:
        return "another process changed the dataset at the same time; try again."
    if status == 429:
        return "Argilla is rate limiting; try again later."
    if status >= 500:
        return "see the argilla-server log."
    return "check [connector] in project.toml."


@contextmanager
def map_platform_errors(
    url: str,
    *,
    api_key_env: str = "ARGILLA_API_KEY",
    timeout: float | None = None,
    batch_id: str | None = None,
    secrets: Sequence[str] = (),
) -> Iterator[None]:
    """Translate argilla SDK and httpx exceptions raised inside the block into connector errors.

    ``raise mapped from exc``, after httpx's ``map_httpcore_exceptions``: connection failures and
    timeouts become :class:`TransportError`; 401 and 403 :class:`AuthError`; other error statuses
    :class:`PlatformError` (status and the body, truncated); payloads the SDK cannot read
    :class:`ProtocolError`. Connector errors pass through (given ``batch_id`` if they had none), and
    anything else (a bug of ours) passes unchanged.

    Parameters
    ----------
    url : str
        The server's URL, named in every message.
    api_key_env : str, default="ARGILLA_API_KEY"
        The environment variable the key came from, named in the fix of an auth error.
    timeout : float, optional
        The request timeout in seconds, named in timeout messages.
    batch_id : str, optional
        The batch the call was about; carried by the error.
    secrets : sequence of str, default=()
        Strings (the API key) removed from every message and body.

    Raises
    ------
    TransportError, AuthError, PlatformError, ProtocolError
        As above; every message is one line naming ``url`` and what to do.
    ConnectorUsageError
        If ``url`` is not a valid http(s) URL.
    """
    try:
        yield
    except ConnectorError as exc:
        if exc.batch_id is None:
            exc.batch_id = batch_id  # raised by an inner block that did not know the batch
        raise
    except ConnectorUsageError:
        raise
    except Exception as exc:
        mapped = _translate(exc, url, api_key_env, timeout, batch_id)
        if mapped is None:
            raise
        mapped.args = (_redact(str(mapped), secrets),)
        if isinstance(mapped, PlatformError):
            mapped.body = _redact(mapped.body, secrets)
        raise mapped from exc
