"""Label Studio connector: batches become tasks of one Label Studio project, answers come back as annotations.

Talks to a Label Studio 1.2x server through ``label-studio-sdk`` 2.x. One project per run and task
(its title from :func:`project_title`), with a single-choice labeling config generated from the batch's
labels; a pair task shows both texts. Each task carries ``data`` = the text field(s), ``external_id``,
``batch_id`` and ``overlap`` (the number of answers wanted, which Label Studio Community does not
enforce per task).

An item is *finished* once it has ``overlap`` answers (labels and skips together): *done* when at least
one of them is a label, *skipped* when all are skips. ``pull`` returns every submitted answer (drafts
are not answers), finished or not; the caller deduplicates on ``(external_id, annotator)``.

Every SDK and httpx error is translated by :func:`connectors.platform.map_errors` with the words in
:data:`LABEL_STUDIO`; retries belong to :class:`connectors.retry.RetryingConnector` wrapped around this
connector, so the SDK's own retries are switched off. The API key is read from the environment when the
connector first connects and never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any
from xml.sax.saxutils import escape

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.core.parse_error import ParsingError

from annotation.records import Annotation, Batch, BatchItem, BatchStatus, Receipt
from connectors.exceptions import ConnectorUsageError, ProtocolError
from connectors.items import tally, texts_by_field
from connectors.platform import Answer, Platform, PlatformConnector, map_errors

__all__ = ["LABEL_STUDIO", "LabelStudioConnector", "label_config", "map_platform_errors", "project_title"]

#: keys of a task's ``data`` that the connector itself writes; text fields may not use them
RESERVED_DATA_KEYS = ("external_id", "batch_id", "overlap")
#: Label Studio's limits on a project title (``PROJECT_TITLE_MIN_LEN`` / ``MAX_LEN``)
TITLE_MIN_LEN, TITLE_MAX_LEN = 3, 50
_PAGE_SIZE = 1000
_ANNOTATED = json.dumps({"filters": {"conjunction": "or", "items": [
    {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0},
    {"filter": "filter:tasks:cancelled_annotations", "operator": "greater", "type": "Number", "value": 0},
]}})


def project_title(run_id: str, task: str) -> str:
    """The project title for one run and task: ``"{run_id} {task}"``.

    Titles longer than Label Studio's 50 characters keep their first 41 characters plus a space and an
    8-hex digest of the whole title, so distinct long titles stay distinct.
    """
    title = f"{run_id} {task}"
    if len(title) <= TITLE_MAX_LEN:
        return title
    digest = hashlib.sha1(title.encode("utf-8")).hexdigest()[:8]
    return f"{title[:TITLE_MAX_LEN - 9]} {digest}"


def label_config(labels: tuple[str, ...], text_fields: tuple[str, ...] = ("text",)) -> str:
    """A Label Studio labeling config: the text field(s), then one single-choice question.

    Parameters
    ----------
    labels : tuple of str
        The choices, in order; values are XML-escaped.
    text_fields : tuple of str, default=("text",)
        Names of the task's text fields; two names give a pair task that shows both texts.

    Returns
    -------
    str
        The ``<View>`` XML. The choice question is named ``label`` (``label_choice`` when a text
        field is already called ``label``) and points at the first text field.
    """
    choice_name = _choice_name(text_fields)
    lines = ["<View>"]
    for name in text_fields:
        lines.append(f'  <Text name="{name}" value="${name}"/>')
    lines.append(f'  <Choices name="{choice_name}" toName="{text_fields[0]}" choice="single" showInLine="true">')
    for label in labels:
        lines.append(f'    <Choice value="{escape(label, {chr(34): "&quot;"})}"/>')
    lines += ["  </Choices>", "</View>"]
    return "\n".join(lines)


def _choice_name(text_fields: tuple[str, ...]) -> str:
    return "label_choice" if "label" in text_fields else "label"


def _api_answer(exc: BaseException) -> Answer | None:
    if not isinstance(exc, ApiError):
        return None
    body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, default=str)
    return Answer(exc.status_code, body)


def _parse_detail(exc: BaseException) -> str | None:
    return type(exc.cause).__name__ if isinstance(exc, ParsingError) else None


#: what Label Studio's messages say, and how label-studio-sdk's own exceptions are read
LABEL_STUDIO = Platform(
    name="Label Studio",
    server="the server",
    expects="a Label Studio 1.2x server",
    key="a valid legacy token or personal access token",
    missing_key="set it to a legacy API token or a personal access token of the Label Studio at {url}.",
    fixes={404: "check [connector] url and that the project still exists.",
           429: "Label Studio is rate limiting; try again later.",
           "5xx": "see the Label Studio server log.",
           "4xx": "the request was refused; check the batch and the project's settings in Label Studio."},
    answer=_api_answer,
    unreadable=_parse_detail,
)


def map_platform_errors(
    url: str,
    *,
    api_key_env: str = "LABEL_STUDIO_API_KEY",
    timeout: float | None = None,
    batch_id: str | None = None,
    secrets: Sequence[str] = (),
) -> AbstractContextManager[None]:
    """Translate label-studio-sdk and httpx errors raised inside the block into connector errors.

    :func:`connectors.platform.map_errors` with :data:`LABEL_STUDIO`'s words: ``ApiError`` 401 / 403
    become :class:`AuthError`, other statuses >= 400 :class:`PlatformError`, ``ParsingError`` and
    answers it could not read :class:`ProtocolError`, httpx faults :class:`TransportError`. Every
    message is one line that names ``url`` and the fix; the value of ``api_key_env`` (and ``secrets``)
    never appears in a message or body.
    """
    return map_errors(LABEL_STUDIO, url, api_key_env=api_key_env, timeout=timeout, batch_id=batch_id,
                      secrets=secrets)


class LabelStudioConnector(PlatformConnector):
    """Pushes batches as tasks of one Label Studio project and pulls their annotations.

    Parameters
    ----------
    url : str
        Base URL of the Label Studio server, e.g. ``"http://127.0.0.1:8080"``.
    project : str
        Title of the project, 3 to 50 characters; one per run and task (see :func:`project_title`).
        The project is reused when one with exactly this title exists, created otherwise.
    api_key_env : str, default="LABEL_STUDIO_API_KEY"
        Name of the environment variable holding a legacy API token or a personal access token
        (a JWT refresh token, which the SDK exchanges for access tokens itself). Read when the
        connector first connects.
    timeout : float, default=30.0
        Seconds one HTTP request may take.
    attach_predictions : bool, default=True
        Send each item's ``suggestion`` (with ``suggestion_score``) as a pre-annotation.

    Examples
    --------
    >>> LabelStudioConnector("http://127.0.0.1:8080", project_title("run7", "sst2"))
    LabelStudioConnector(url='http://127.0.0.1:8080', project='run7 sst2')
    """

    platform = "labelstudio"
    words = LABEL_STUDIO

    def __init__(self, url: str, project: str, *, api_key_env: str = "LABEL_STUDIO_API_KEY",
                 timeout: float = 30.0, attach_predictions: bool = True) -> None:
        super().__init__(url, api_key_env=api_key_env, timeout=timeout)
        self.project = project
        self.attach_predictions = attach_predictions
        self._client: LabelStudio | None = None
        self._http: httpx.Client | None = None
        self._project_id: int | None = None
        self._users: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"LabelStudioConnector(url={self.url!r}, project={self.project!r})"

    # -- connection --------------------------------------------------------------------------------------

    def _connect(self, batch_id: str | None) -> LabelStudio:
        if self._client is not None:
            return self._client
        if not (TITLE_MIN_LEN <= len(self.project) <= TITLE_MAX_LEN):
            raise ConnectorUsageError(
                f"Label Studio project title {self.project!r} has {len(self.project)} characters; Label Studio "
                f"allows {TITLE_MIN_LEN} to {TITLE_MAX_LEN}. Use connectors.labelstudio.project_title()."
            )
        key = self._api_key()
        http = httpx.Client(timeout=self.timeout, follow_redirects=True)
        try:
            with self._errors(batch_id):  # a JWT key is decoded here: an expired one is refused at once
                client = LabelStudio(base_url=self._base_url, api_key=key, timeout=self.timeout, max_retries=0,
                                     httpx_client=http)
        except BaseException:
            http.close()
            raise
        self._client, self._http = client, http
        return client

    def close(self) -> None:
        """Close the HTTP connection pool. Safe to call twice."""
        if self._http is not None:
            self._http.close()
        self._client = self._http = None

    # -- push ---------------------------------------------------------------------------------------------

    def _push(self, batch: Batch) -> Receipt:
        _check_batch(batch)
        ls = self._connect(batch.batch_id)
        with self._errors(batch.batch_id):
            pid = self._ensure_project(ls, batch)
            refs = {eid: found[0] for eid, found in self._task_ids(ls, pid).items()}
            new = list({it.external_id: it for it in batch.items if it.external_id not in refs}.values())
            if new:
                res = ls.projects.import_tasks(id=pid, request=[self._task(batch, it) for it in new],
                                               return_task_ids=True)
                created = list(res.task_ids or [])
                if len(created) == len(new):
                    refs.update({it.external_id: int(tid) for it, tid in zip(new, created, strict=True)})
                else:  # an older server without task ids in the answer: look them up
                    refs = {eid: found[0] for eid, found in self._task_ids(ls, pid).items()}
        missing = [it.external_id for it in batch.items if it.external_id not in refs]
        if missing:
            raise ProtocolError(f"Label Studio at {self._base_url} did not list {len(missing)} imported tasks of "
                                f"batch {batch.batch_id} (first: {missing[0]}); check the project "
                                f"{self.project!r}.", batch_id=batch.batch_id, url=self._base_url)
        eids = tuple(item.external_id for item in batch.items)
        return Receipt(batch.batch_id, self.platform, str(pid), eids, task_refs={e: str(refs[e]) for e in eids})

    def _task(self, batch: Batch, item: BatchItem) -> dict[str, Any]:
        data: dict[str, Any] = texts_by_field(batch, item)
        data.update(external_id=item.external_id, batch_id=batch.batch_id, overlap=batch.overlap)
        task: dict[str, Any] = {"data": data}
        if self.attach_predictions and item.suggestion is not None:
            prediction: dict[str, Any] = {"model_version": "student", "result": [{
                "from_name": _choice_name(batch.text_fields), "to_name": batch.text_fields[0],
                "type": "choices", "value": {"choices": [item.suggestion]}}]}
            if item.suggestion_score is not None:
                prediction["score"] = float(item.suggestion_score)
            task["predictions"] = [prediction]
        return task

    def _find_project(self, ls: LabelStudio) -> int | None:
        if self._project_id is None:
            for project in ls.projects.list(title=self.project, page_size=100):
                if project.title == self.project:
                    self._project_id = int(project.id)
                    break
        return self._project_id

    def _ensure_project(self, ls: LabelStudio, batch: Batch) -> int:
        pid = self._find_project(ls)
        if pid is None:
            created = ls.projects.create(
                title=self.project, label_config=label_config(batch.labels, batch.text_fields),
                expert_instruction=batch.guidelines, show_instruction=bool(batch.guidelines),
                maximum_annotations=batch.overlap)
            self._project_id = pid = int(created.id)
        elif batch.overlap > 1:
            # Community shows a task to up to maximum_annotations people; raise it for a bigger overlap.
            current = ls.projects.get(id=pid).maximum_annotations or 1
            if current < batch.overlap:
                ls.projects.update(id=pid, maximum_annotations=batch.overlap)
        return pid

    def _task_ids(self, ls: LabelStudio, pid: int) -> dict[str, list[int]]:
        """external id -> ids of the project's tasks that carry it (more than one only for duplicates)."""
        found: dict[str, list[int]] = {}
        for task in ls.tasks.list(project=pid, fields="task_only", page_size=_PAGE_SIZE):
            eid = (task.data or {}).get("external_id")
            if eid is not None:
                found.setdefault(str(eid), []).append(int(task.id))
        return found

    # -- pull and status ----------------------------------------------------------------------------------

    def _receipt_project(self, ls: LabelStudio, receipt: Receipt) -> int | None:
        if not receipt.project_ref:
            return self._find_project(ls)
        try:
            return int(receipt.project_ref)
        except ValueError:
            raise ConnectorUsageError(
                f"Receipt of batch {receipt.batch_id} has project_ref {receipt.project_ref!r}, which is not a "
                f"Label Studio project id; pass a receipt made by LabelStudioConnector.push."
            ) from None

    def pull(self, receipt: Receipt) -> list[Annotation]:
        """Every submitted answer (labels and skips) to the receipt's items, in task and answer order.

        Returns
        -------
        list of Annotation
            ``annotator`` is the Label Studio user's e-mail, ``label`` the chosen value (None for a
            skip), ``lead_time_s`` the seconds Label Studio measured in the labeling UI.
        """
        ls = self._connect(receipt.batch_id)
        wanted = set(receipt.external_ids)
        out: list[Annotation] = []
        with self._errors(receipt.batch_id):
            pid = self._receipt_project(ls, receipt)
            if pid is None:
                return []
            for task in ls.tasks.list(project=pid, query=_ANNOTATED, fields="all", page_size=_PAGE_SIZE):
                eid = (task.data or {}).get("external_id")
                if eid is None or str(eid) not in wanted:
                    continue
                for raw in sorted(task.annotations or [], key=lambda a: _field(a, "id") or 0):
                    out.append(self._annotation(ls, str(eid), raw, receipt.batch_id))
        return out

    def status(self, receipt: Receipt) -> BatchStatus:
        """Counts of the receipt's tasks on the platform: pushed, done, skipped and waiting.

        ``pushed`` counts tasks that carry one of the receipt's external ids; an item is finished
        when its answers (labels and skips) reach the ``overlap`` stored in its task.
        """
        ls = self._connect(receipt.batch_id)
        wanted = set(receipt.external_ids)
        with self._errors(receipt.batch_id):
            pid = self._receipt_project(ls, receipt)
            if pid is None:
                return tally(())
            tasks = ls.tasks.list(project=pid, fields="task_only", page_size=_PAGE_SIZE)
            return tally((int(t.total_annotations or 0), int(t.cancelled_annotations or 0), _overlap(t.data or {}))
                         for t in tasks if str((t.data or {}).get("external_id")) in wanted)

    def _annotation(self, ls: LabelStudio, eid: str, raw: Any, batch_id: str) -> Annotation:
        user = _field(raw, "completed_by")
        if isinstance(user, dict):  # some serializers expand the user
            user = user.get("id")
        lead = _field(raw, "lead_time")
        cancelled = bool(_field(raw, "was_cancelled"))
        try:
            label = None if cancelled else _choice(_field(raw, "result") or [])
            lead_time_s = float(lead) if lead is not None else None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ProtocolError(
                f"Label Studio at {self._base_url} returned an annotation of {eid} the connector cannot read "
                f"({type(exc).__name__}); check that the project's labeling config has one Choices question.",
                batch_id=batch_id, url=self._base_url,
            ) from exc
        return Annotation(external_id=eid, annotator=self._user_name(ls, user), label=label, lead_time_s=lead_time_s)

    def _user_name(self, ls: LabelStudio, user_id: Any) -> str:
        if user_id is None:
            return "unknown"
        uid = int(user_id)
        if uid not in self._users:
            self._users = {int(u.id): (u.email or u.username or f"user-{u.id}") for u in ls.users.list()}
        return self._users.get(uid, f"user-{uid}")


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _choice(result: list[Any]) -> str | None:
    """The chosen value of a Choices result; None for an empty (skipped-like) submission."""
    for region in result:
        if region.get("type") == "choices":
            choices = region["value"]["choices"]
            if choices:
                return str(choices[0])
    return None


def _overlap(data: dict[str, Any]) -> int:
    try:
        return max(1, int(data.get("overlap", 1)))
    except (TypeError, ValueError):
        return 1


def _check_batch(batch: Batch) -> None:
    """Refuse batches the connector cannot turn into tasks, naming the batch and the fix."""
    fields = batch.text_fields
    problem = None
    if not batch.labels:
        problem = "has no labels"
    elif len(fields) not in (1, 2) or len(set(fields)) != len(fields):
        problem = f"has text_fields {fields!r}; give one name, or two distinct names for a pair task"
    elif any(not f.isidentifier() or f in RESERVED_DATA_KEYS for f in fields):
        problem = (f"has text_fields {fields!r}; names must be identifiers other than "
                   f"{', '.join(RESERVED_DATA_KEYS)}")
    elif batch.overlap < 1:
        problem = f"has overlap {batch.overlap}; ask for at least 1 answer per item"
    if problem:
        raise ConnectorUsageError(f"Batch {batch.batch_id} {problem}.")
    for item in batch.items:
        texts_by_field(batch, item)
