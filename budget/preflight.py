"""What a run needs, checked before its first write: the run folder, the models, the platform, the data.

A newcomer's first mistakes (a ``--run-dir`` that names a file, a model name with a typo, an annotation
platform whose SDK or key is missing, data whose labels the simulated people cannot answer) must cost
one line and nothing else: no ledger, no ``project.json``, no reserved money to untangle. So
:class:`budget.controller.Controller` runs these checks when it is made, before :meth:`open` writes
anything, and each raises :class:`PreflightError` (a :class:`UsageError`: the command line shows it as
one ``Error:`` line and exits with status 2).

The checks read and probe; they never create the run folder. The one probe that touches the disk is
the writability test, a temporary file made and removed in the nearest existing folder: a permission
bit cannot tell a read-only mount, and root ignores permission bits.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from budget.config import ProjectConfig
from budget.exceptions import UsageError
from budget.money import MAX_MICRO, format_usd
from modeling.exceptions import ModelingError
from modeling.models import check_model

__all__ = ["PreflightError", "check_run_dir", "check_models", "check_llm", "check_device", "check_connector",
           "check_budget", "check_prices", "CONNECTOR_SDKS"]

#: connector -> (the module that needs the SDK, the PyPI package(s) to install, the default key variable)
CONNECTOR_SDKS: dict[str, tuple[str, str, str]] = {
    "labelstudio": ("connectors.labelstudio", "label-studio-sdk>=2.1,<3", "LABEL_STUDIO_API_KEY"),
    "argilla": ("connectors.argilla", "argilla>=2.8,<3", "ARGILLA_API_KEY"),
}


class PreflightError(UsageError):
    """Something a run needs is missing or wrong; nothing was written. The message is one line with the fix."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its parents that exists (``.`` for a relative path with none)."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return p
    return Path(".")


def check_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that is a file, lies under a file, or cannot be written.

    Raises
    ------
    PreflightError
        Naming the folder (``--run-dir``) and what to do.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise PreflightError(f"--run-dir '{run_dir}' is a file, not a folder; name a folder (it is made if missing).")
    base = _nearest_existing(run_dir)
    if not base.is_dir():
        raise PreflightError(f"--run-dir '{run_dir}' lies under '{base}', which is a file, so no folder can be made "
                             "there; pick another --run-dir.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PreflightError(f"--run-dir '{run_dir}': '{base}' cannot be written by this user; pick a folder you "
                             "can write, or fix its permissions.")
    try:  # a permission bit cannot tell a read-only mount, and root ignores permission bits
        with tempfile.TemporaryFile(dir=base, prefix=".aod-write-probe-"):
            pass
    except OSError as exc:
        raise PreflightError(f"--run-dir '{run_dir}': '{base}' cannot be written ({exc.strerror or exc}); pick a "
                             "folder you can write.") from exc
    ledger = run_dir / "ledger.sqlite"
    if ledger.exists() and not os.access(ledger, os.R_OK | os.W_OK):
        raise PreflightError(f"--run-dir '{run_dir}': its ledger '{ledger}' cannot be read and written by this user;"
                             " run as the user who started the run, or fix its permissions.")


def check_models(config: ProjectConfig) -> None:
    """Refuse a student or teacher that cannot be loaded here: an unknown name, a folder without a model,
    a package not installed, or a hub id neither in the local cache nor reachable.

    Raises
    ------
    PreflightError
        Naming the key (``[models] student`` or ``teacher``), the value and the fix.
    """
    for role in ("student", "teacher") if not config.prompted else ("student",):
        name = getattr(config.models, role)
        try:
            check_model(name)
        except ModelingError as exc:
            raise PreflightError(f"[models] {role} = {str(name)!r}: {str(exc).splitlines()[0]}") from exc


def check_llm(config: ProjectConfig) -> None:
    """Refuse an ``[llm]`` that cannot answer as configured: a model to run here that cannot be found, or a
    server's key variable unset. The server itself is not contacted (a run that cannot reach it retries and
    stops with one line, resumable).

    Raises
    ------
    PreflightError
        Naming the key and the fix.
    """
    llm = config.llm
    if not llm.enabled:
        return
    if llm.url:
        if llm.api_key_env and not os.environ.get(llm.api_key_env):
            raise PreflightError(f"The environment variable {llm.api_key_env} ([llm] api_key_env) holding the key "
                                 f"of {llm.url} is not set; export {llm.api_key_env}=... with the provider's key.")
        return
    from modeling.prompted import resolve_chat_model

    try:
        resolve_chat_model(llm.model)
    except ModelingError as exc:
        raise PreflightError(f"[llm] model = {llm.model!r}: {str(exc).splitlines()[0]}") from exc


def check_device(config: ProjectConfig) -> None:
    """Refuse ``[models] device`` naming hardware this machine does not have (``auto`` always works).

    Raises
    ------
    PreflightError
        Naming the device, what this machine has, and the fix.
    """
    device = config.models.device
    if device in {"auto", "cpu"}:
        return
    import torch

    kind, colon, index = device.partition(":")
    if kind == "cuda" and (not colon or index.isdigit()):
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have > (int(index) if colon else 0):
            return
        raise PreflightError(f"[models] device = {device!r}, but this machine has {have} CUDA device(s); use "
                             "\"auto\" (a GPU when there is one, else the CPU) or \"cpu\".")
    if device == "mps":
        if torch.backends.mps.is_available():
            return
        raise PreflightError("[models] device = 'mps', but this machine has no MPS device; use \"auto\" or "
                             "\"cpu\".")
    raise PreflightError(f"[models] device = {device!r} is not a device; use \"auto\", \"cpu\", \"cuda\", "
                         "\"cuda:N\" or \"mps\".")


def check_prices(config: ProjectConfig) -> None:
    """Refuse prices whose batch costs more than the ledger keeps (a label at a trillion dollars, say).

    Raises
    ------
    PreflightError
        Naming the price and the limit.
    """
    batch = config.label_cost_per_item() * config.annotation.batch_size
    if batch > MAX_MICRO:
        raise PreflightError(f"A batch of {config.annotation.batch_size} items at [prices] per_label = "
                             f"{config.prices.per_label!r} x overlap {config.prices.overlap} costs "
                             f"{format_usd(batch)}, more than the ledger keeps ({format_usd(MAX_MICRO)}); lower the "
                             "price or the batch.")


def check_connector(config: ProjectConfig) -> None:
    """Refuse a real annotation platform that cannot be reached as configured: its SDK not importable,
    no ``[connector] url``, or its key's environment variable unset. The server itself is not contacted
    (a run that cannot reach it retries and stops with one line, resumable).

    Raises
    ------
    PreflightError
        Naming what to install or set.
    """
    kind = config.annotation.connector
    if kind not in CONNECTOR_SDKS:
        return
    module, package, default_env = CONNECTOR_SDKS[kind]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise PreflightError(f"[annotation] connector = {kind!r} needs the package {package.split('>')[0]}, which "
                             f"cannot be imported ({exc}); install it: `bash scripts/setup.sh`, or "
                             f"`pip install '{package}'` in your environment.") from exc
    c = config.connector
    url = urlsplit(c.url)
    if url.scheme not in {"http", "https"} or not url.netloc:
        raise PreflightError(f"[connector] url = {c.url!r} is not a server address; set it to your {kind} "
                             "server's URL, like \"http://127.0.0.1:8080\".")
    env = c.api_key_env or default_env
    if not os.environ.get(env):
        raise PreflightError(f"The environment variable {env} ([connector] api_key_env) holding the {kind} key is "
                             f"not set; export {env}=... with an API key of your server.")


def check_budget(amount_micro: int, granted_micro: int = 0, *, flag: str = "--spend") -> None:
    """Refuse money the ledger cannot hold: a budget (or what it adds to ``granted_micro``) over
    :data:`budget.money.MAX_MICRO`.

    Raises
    ------
    PreflightError
        Naming the flag and the largest amount.
    """
    if amount_micro + granted_micro > MAX_MICRO:
        raise PreflightError(f"{flag} {format_usd(amount_micro)} takes the run past {format_usd(MAX_MICRO)}, the "
                             "most the ledger keeps; give a smaller amount.")
