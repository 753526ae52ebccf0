"""Which connector a run talks to: ``[annotation] connector`` names one in :data:`PLATFORMS`.

Each entry builds the connector for one run from a :class:`PlatformRequest`; a platform connector
(Label Studio, Argilla) comes wrapped in :class:`connectors.retry.RetryingConnector`, so a network fault
is retried before it ends the run. A new platform is one :func:`register` call: the controller never
names a platform itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotation.pool import Pool, PoolSplit
from annotation.simulated import SimulatedAnnotators
from budget.config import ProjectConfig
from budget.exceptions import UsageError
from connectors import Clock, Connector, RetryingConnector, SimulatedConnector

__all__ = ["PlatformRequest", "PLATFORMS", "register", "make_connector"]


@dataclass(frozen=True)
class PlatformRequest:
    """What a connector for one run is built from: the project, the run's id and folder, its pool and split,
    its seed (the simulated people's) and its clock."""

    config: ProjectConfig
    run_id: str
    run_dir: Path
    pool: Pool
    split: PoolSplit
    seed: int
    clock: Clock


def _simulated(r: PlatformRequest) -> Connector:
    """Simulated people who answer with each unlabeled item's own label (with the configured errors)."""
    gold = {r.pool.external_id(r.run_id, int(i)): r.pool.label_of(int(i)) for i in r.split.unlabeled}
    s = r.config.annotators
    crowd = SimulatedAnnotators(n_annotators=s.n, error_rate=float(s.error_rate), skip_rate=float(s.skip_rate),
                                latency_s=tuple(s.latency_s), seed=r.seed)
    return SimulatedConnector(gold, crowd, state_path=r.run_dir / "simulated-platform.json",
                              answer_key=lambda external_id: external_id.rsplit("-", 1)[-1], clock=r.clock)


def _labelstudio(r: PlatformRequest) -> Connector:
    """One Label Studio project per run and task, retried on network faults."""
    from connectors.labelstudio import LabelStudioConnector, project_title

    a, c = r.config.annotation, r.config.connector
    return RetryingConnector(LabelStudioConnector(c.url, project_title(r.run_id, r.config.task.name),
                                                  api_key_env=c.api_key_env or "LABEL_STUDIO_API_KEY",
                                                  attach_predictions=a.suggestions, timeout=float(c.timeout)))


def _argilla(r: PlatformRequest) -> Connector:
    """One Argilla dataset per run and task, retried on network faults."""
    from connectors.argilla import ArgillaConnector

    c = r.config.connector
    return RetryingConnector(ArgillaConnector(c.url, workspace=c.workspace, dataset=f"{r.run_id}-{r.config.task.name}",
                                              api_key_env=c.api_key_env or "ARGILLA_API_KEY",
                                              guidelines=c.guidelines, timeout=float(c.timeout)))


#: ``[annotation] connector`` name -> the function that builds that platform's connector for a run
PLATFORMS: dict[str, Callable[[PlatformRequest], Connector]] = {
    "simulated": _simulated,
    "labelstudio": _labelstudio,
    "argilla": _argilla,
}


def register(name: str, build: Callable[[PlatformRequest], Connector]) -> None:
    """Make ``[annotation] connector = name`` build its connector with ``build``."""
    PLATFORMS[name] = build


def make_connector(request: PlatformRequest) -> Connector:
    """The connector ``request.config``'s ``[annotation] connector`` names.

    Raises
    ------
    UsageError
        If no platform of that name is registered, with the names that are.
    """
    kind = request.config.annotation.connector
    if kind not in PLATFORMS:
        raise UsageError(f"[annotation] connector must be one of {', '.join(PLATFORMS)}; got {kind!r}.")
    return PLATFORMS[kind](request)
