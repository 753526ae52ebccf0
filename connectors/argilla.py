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

Faults are translated in one place, :func:`connectors.platform.map_errors`, with the words in
:data:`connectors.argilla_errors.ARGILLA`. Retries are not done here: wrap the connector in
:class:`connectors.retry.RetryingConnector`. The API key is read from the environment variable named
by ``api_key_env`` when the connector first talks to the server, and never appears in a repr, a log
line or an error.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import argilla as rg

from annotation.records import Annotation, Batch, BatchItem, BatchStatus, Receipt
from connectors.argilla_errors import ARGILLA
from connectors.exceptions import ConnectorUsageError, PlatformError, ProtocolError
from connectors.items import tally, texts_by_field
from connectors.platform import PlatformConnector, map_errors, one_line

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


class ArgillaConnector(PlatformConnector):
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
    words = ARGILLA

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
        super().__init__(url, api_key_env=api_key_env, timeout=timeout)
        self.dataset = dataset
        self.workspace = workspace
        self.guidelines = guidelines
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
                return tally(())
            overlap = int(ds.settings.distribution.min_submitted)
            statuses = [[_status(r.status) for r in record.responses or []]
                        for records in self._records_of(ds, receipt).values() for record in records]
            return tally((s.count("submitted"), s.count("discarded"), overlap) for s in statuses)

    def close(self) -> None:
        """Close the HTTP client. Safe to call twice; the next call connects again."""
        client, self._client, self._dataset = self._client, None, None
        if client is not None:
            client.http_client.close()
            if getattr(rg.Argilla, "_default_client", None) is client:
                rg.Argilla._default_client = None  # the SDK keeps the last client as a global default

    # -- helpers ----------------------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        key = getattr(self._client, "api_key", None)  # the key the client connected with, if it has changed since
        return (key,) if key else ()

    @property
    def client(self) -> rg.Argilla:
        """The SDK client, connected (and the key checked) on first use.

        Raises
        ------
        ConnectorUsageError
            If the environment variable named by ``api_key_env`` is not set.
        """
        if self._client is None:
            key = self._api_key()
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
        fields = texts_by_field(batch, item)
        suggestions = []
        if item.suggestion is not None:
            suggestions.append(rg.Suggestion(question_name=QUESTION_NAME, value=item.suggestion,
                                             score=item.suggestion_score, agent=_SUGGESTION_AGENT))
        return rg.Record(
            id=item.external_id,
            fields=fields,
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
                f"'{QUESTION_NAME}' label (values: {one_line(json.dumps(values))}); was dataset "
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


def map_platform_errors(
    url: str,
    *,
    api_key_env: str = "ARGILLA_API_KEY",
    timeout: float | None = None,
    batch_id: str | None = None,
    secrets: Sequence[str] = (),
) -> AbstractContextManager[None]:
    """Translate argilla SDK and httpx exceptions raised inside the block into connector errors.

    :func:`connectors.platform.map_errors` with :data:`ARGILLA`'s words: connection failures and
    timeouts become :class:`TransportError`; 401 and 403 :class:`AuthError`; other error statuses
    :class:`PlatformError` (status and the body, truncated); payloads the SDK cannot read
    :class:`ProtocolError`; an invalid ``url`` :class:`ConnectorUsageError`. Connector errors pass
    through, anything else (a bug of ours) passes unchanged. Every message is one line naming
    ``url`` and what to do; the value of ``api_key_env`` and ``secrets`` never appear in one.
    """
    return map_errors(ARGILLA, url, api_key_env=api_key_env, timeout=timeout, batch_id=batch_id,
                      secrets=secrets)
