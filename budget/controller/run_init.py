"""What a run fixes when it is created, and the checks on its pool before anything is written.

:func:`config_hash` names what a resumed run must not change (task, split, models); :func:`measure_run` the
sizes its compute estimates come from; :func:`run_split` its seed, unlabeled and test items; :func:`answerable` and
:func:`check_labels_in_use` what a simulation can buy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from annotation.pool import Pool, PoolSplit, split_pool
from budget.config import ProjectConfig
from budget.ledger.round_records import RunInit
from budget.preflight import PreflightError
from budget.round.prompted import label_prompt, request_tokens
from modeling.models import load_classifier

__all__ = ["config_hash", "check_labels_in_use", "answerable", "measure_run", "run_split"]


def config_hash(config: ProjectConfig) -> str:
    """What fixes a run's items and models; prices, policy, approvals and waiting may change between runs."""
    d = config.to_dict()
    fixed = {k: d[k] for k in ("task", "split", "models")}
    # what is kept, and which of a training's evaluations a student keeps, may change (later trainings follow
    # the new setting, as they follow new prices); class_weight came later: at its default it leaves earlier
    # runs' hash as it was, and so does teacher_mode
    fixed["models"] = {k: v for k, v in fixed["models"].items()
                       if k not in ("keep", "select") and not (k == "class_weight" and v == "auto")
                       and not (k == "teacher_mode" and v == "finetune")}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_labels_in_use(pool: Pool) -> None:
    """Refuse a simulation whose labeled rows use fewer than two labels: simulated people answer with a
    row's own label, so such a task has nothing to learn and nothing to measure.

    Raises
    ------
    PreflightError
        Naming the data file and the labels in use.
    """
    used = pool.labels_seen
    if len(used) < 2:
        raise PreflightError(f"The labeled rows of '{pool.source}' use {len(used)} label(s) {list(used)}; a simulated "
                             "run needs rows of at least two labels (simulated people answer with a row's own label).")


def answerable(pool: Pool, split: PoolSplit) -> tuple[PoolSplit, int]:
    """The split without the unlabeled rows simulated people cannot answer (no gold label), and how many
    rows that leaves out."""
    keep = split.unlabeled[pool.gold[split.unlabeled] >= 0]
    return replace(split, unlabeled=keep), len(split.unlabeled) - len(keep)


def run_split(config: ProjectConfig, pool: Pool, seed: int, *, simulated: bool) -> tuple[PoolSplit, int]:
    """The run's seed, unlabeled and test items, and how many unlabeled rows a simulation leaves out.

    ``[split] seed_size = "all"``: every labeled row is the team's seed (real data); a number draws that many
    of them (a simulation draws its seed and test set from the labeled rows and buys the rest). A simulation
    (``simulated``) keeps only the rows its simulated people can answer (:func:`answerable`); ``[split]
    max_unlabeled`` caps the unlabeled items at a random subset, drawn with ``seed``.
    """
    size = config.split.seed_size
    seed_size = len(pool.labeled) if size == "all" else int(size)
    split = split_pool(pool, seed=seed, seed_size=seed_size,
                       test_size=config.split.test_size if config.simulated else 0)
    left_out = 0
    if simulated:
        split, left_out = answerable(pool, split)
    cap = config.split.max_unlabeled
    if cap and len(split.unlabeled) > cap:
        keep = np.sort(np.random.default_rng(seed).permutation(split.unlabeled)[:cap])
        split = replace(split, unlabeled=keep)
    return split, left_out


def measure_run(config: ProjectConfig, pool: Pool, split: PoolSplit, run_id: str, seed: int,
                cache_dir: Path | None) -> RunInit:
    """The new run's record: its id, what fixes it, and the sizes its compute is estimated from (both models'
    parameters, tokens per item over up to 500 unlabeled items) and of its pool."""
    m = config.models
    student = load_classifier(m.student, pool.labels)
    sample = [pool.texts[i] for i in split.unlabeled[:500]] or pool.texts[:500]
    if config.prompted:  # the [llm] model teaches: its requests' tokens price a distillation, it has no weights here
        prompt = label_prompt(config, pool, split, seed)
        teacher_params, llm_tokens = 0, request_tokens(config, prompt, sample[:100])
    else:
        teacher_params, llm_tokens = load_classifier(m.teacher, pool.labels, cache_dir=cache_dir).n_params, 0.0
    pairs = isinstance(sample[0], tuple)
    enc = (student.tokenizer([t[0] for t in sample], [t[1] for t in sample], truncation=True,
                             max_length=m.max_length) if pairs
           else student.tokenizer(sample, truncation=True, max_length=m.max_length))
    return RunInit(run_id=run_id, config_hash=config_hash(config), seed=seed,
                   student_params=student.n_params, teacher_params=teacher_params, llm_tokens_per_item=llm_tokens,
                   tokens_per_item=float(np.mean([len(x) for x in enc["input_ids"]])), pool=len(pool),
                   seed_items=len(split.seed), unlabeled=len(split.unlabeled), test=len(split.test))
