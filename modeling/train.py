"""Fine-tune a classifier on gold labels, or distil a teacher's cached soft labels into it.

One loop, read top to bottom (after nanoGPT's ``train.py``): config, seed and device, data,
model and optimizer, resume, then ``for step``: stop check, set LR, forward, loss, backward, clip,
step, zero_grad, log, evaluate + checkpoint. Distillation is the same loop with some examples
carrying the teacher's soft labels instead of a gold label. :func:`train` takes what it learns from
(:class:`TrainData`), its settings (:class:`TrainConfig`) and how it is metered and held to its money
(:class:`Metering`). Its rows and loss are :mod:`modeling.objective`, its processes
:mod:`modeling.processes`, its checkpoints :mod:`modeling.checkpoint`; below the loop are the batches of
each epoch and a dev evaluation.

Checkpoints are plain dicts in ``out_dir/ckpt.pt``; the best model on the dev set is also saved with
``save_pretrained`` in ``out_dir`` so it loads like any model folder. Running again with the same
``out_dir`` resumes, and a finished run returns its result without training again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm

from annotation.records import METRICS, Text
from modeling.checkpoint import FINISHED, Checkpoint, RunState
from modeling.device import device_kind
from modeling.encoding import bucketed_batches, collate
from modeling.exceptions import EmptyPoolError, LabelError
from modeling.infer import evaluate
from modeling.meter import Meter, Phase, PhaseRecord
from modeling.objective import Examples, examples
from modeling.objective import loss as loss_of
from modeling.processes import any_process, my_rows, place, read_losses
from modeling.sharding import full_state, is_sharded

__all__ = ["SELECT", "Metering", "SoftTargets", "TrainConfig", "TrainData", "TrainResult", "train"]

log = logging.getLogger(__name__)


SELECT = ("best", "last")


@dataclass
class TrainConfig:
    """Every setting of :func:`train`, with its default and its options.

    ``select`` says which model a training keeps. 'best': dev is evaluated about 10 times and the best
    evaluation's weights are kept, stopping after ``patience`` evaluations without a gain. 'last': the model
    at the end of the schedule (its learning rate decayed to 0), evaluated on dev once, there; with
    ``keep_start`` the weights it started from are kept instead if they score higher. On 18-90 dev items the
    best of ten evaluations is partly luck, and its dev score overstates it (the maximum of noisy scores): a
    comparison of two students on that dev set then favours the one picked harder. The last model has no
    such bias and, on the task suite's label-only students, scored as high on test
    (``benchmarks/student_selection.py``).
    """

    epochs: int = 3  # passes over the training examples
    min_steps: int = 0  # at least this many optimizer steps (early stopping waits for them): 50 labels are 3 an epoch
    batch_size: int = 16  # examples per optimizer step
    lr: float = 5e-5  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW decay; not applied to biases and LayerNorm weights
    warmup_ratio: float = 0.1  # fraction of all steps with linear warm-up, then linear decay to 0
    max_length: int = 128  # tokens per example; pairs are truncated longest-first
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    seed: int = 0  # seeds torch, numpy and the batch order: same seed, same model
    precision: str = "auto"  # 'auto' (bf16 autocast where the device supports it) | 'bf16' | 'fp32'
    device: str = "auto"  # 'auto' (cuda, then mps, then cpu) | any torch device string
    eval_every: int = 0  # steps between dev evaluations; 0 = each epoch's end, at most about 10 per training
    patience: int = 2  # evaluations without dev improvement (after min_steps) before stopping early; 0 = never
    metric: str = "accuracy"  # dev score that picks the best checkpoint: 'accuracy' | 'macro_f1'
    select: str = "best"  # the model kept: 'best' (best dev evaluation, early stopping) | 'last' (see below)
    class_weight: str = "none"  # 'none' | 'balanced': gold cross-entropy weighs each class by n / (k x its count)
    temperature: float = 2.0  # distillation temperature T: KL between softmax(z/T), scaled by T^2
    alpha: float = 0.5  # distillation weight of gold cross-entropy; 1 - alpha weighs the KL term
    group_by_length: bool = True  # batches of similar length (less padding), in random order
    checkpoint_every_s: float = 60.0  # with out_dir: save to resume at most this often (and when stopping)
    progress: bool = True  # show a progress bar

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of its range."""
        checks = [
            ("epochs", self.epochs >= 1, "an int >= 1"),
            ("min_steps", self.min_steps >= 0, "an int >= 0"),
            ("batch_size", self.batch_size >= 1, "an int >= 1"),
            ("lr", self.lr > 0, "a float > 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "a float in the range [0.0, 1.0)"),
            ("max_length", self.max_length >= 8, "an int >= 8"),
            ("patience", self.patience >= 0, "an int >= 0"),
            ("metric", self.metric in METRICS, f"one of {list(METRICS)}"),
            ("select", self.select in SELECT, f"one of {list(SELECT)}"),
            ("class_weight", self.class_weight in {"none", "balanced"}, "one of 'none', 'balanced'"),
            ("temperature", self.temperature > 0, "a float > 0"),
            ("alpha", 0 <= self.alpha <= 1, "a float in the range [0.0, 1.0]"),
            ("precision", self.precision in {"auto", "bf16", "fp32"}, "one of 'auto', 'bf16', 'fp32'"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"The '{name}' parameter of TrainConfig must be {allowed}. "
                                 f"Got {getattr(self, name)!r} instead.")


@dataclass(frozen=True)
class SoftTargets:
    """Unlabeled texts and the teacher's logits for them (rows aligned)."""

    texts: Sequence[Text]
    logits: np.ndarray


@dataclass
class TrainResult:
    """How a run ended. ``stopped`` is 'completed', 'early_stop' or 'budget' (stopped before passing
    its money limit, checkpoint kept)."""

    steps: int
    total_steps: int
    stopped: str
    best_dev: float | None
    dev_history: list[tuple[int, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    phase: PhaseRecord | None = None
    losses: list[float] = field(default_factory=list)  # the training loss of every step (all processes' mean)


@dataclass(frozen=True)
class TrainData:
    """What a training learns from: gold ``texts`` and their label ids ``labels`` (positions in ``label_names``),
    optionally ``soft`` targets (distil: these texts are trained towards the teacher's softened probabilities)
    and a ``dev`` set (texts, label ids) that picks the model kept (``TrainConfig.select``); without it the last
    model is kept."""

    texts: Sequence[Text]
    labels: np.ndarray
    label_names: Sequence[str]
    dev: tuple[Sequence[Text], np.ndarray] | None = None
    soft: SoftTargets | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))
        texts, labels, names, soft = self.texts, self.labels, self.label_names, self.soft
        if len(texts) == 0 and soft is None:
            raise EmptyPoolError("No training examples: give at least one labeled text.")
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels; they must align.")
        bad = [int(y) for y in labels if not 0 <= int(y) < len(names)]
        if bad:
            raise LabelError(f"Label id {bad[0]} is outside the task's {len(names)} labels {list(names)}; "
                             "map labels with modeling.encoding.label_ids.")
        if soft is not None and len(soft.texts) != len(soft.logits):
            raise ValueError(f"{len(soft.texts)} unlabeled texts but {len(soft.logits)} rows of soft labels.")
        if soft is not None and soft.logits.shape[1] != len(names):
            raise LabelError(f"Soft labels have {soft.logits.shape[1]} classes, the task has {len(names)}.")


@dataclass(frozen=True)
class Metering:
    """How a training is metered and held to its money: it is one phase ``phase_name`` of ``meter``; with a
    priced meter and ``limit_micro`` it stops before a step would pass the limit (keeping its checkpoint),
    unless ``more_money(micro)``, asked for what the rest of the phase is projected to cost, adds enough (the
    caller's ledger extends its reservation)."""

    meter: Meter | None = None
    phase_name: str = "train"
    limit_micro: int | None = None
    more_money: Callable[[int], int] | None = None


def train(model, tokenizer, data: TrainData, config: TrainConfig | None = None, *, metering: Metering | None = None,
          out_dir: str | Path | None = None, accelerator: Any | None = None, keep_start: bool = False) -> TrainResult:
    """Train ``model`` in place on ``data``'s gold labels (and its soft targets, when distilling).

    Parameters
    ----------
    data : TrainData
        The examples, the task's labels, and the dev set that picks the model kept.
    config : TrainConfig, optional
        Every setting of the loop (defaults: :class:`TrainConfig`).
    metering : Metering, optional
        The meter phase the training is, and the money it may spend (default: its own meter, no limit).
    out_dir : path, optional
        Checkpoint folder; an existing checkpoint there is resumed.
    accelerator : accelerate.Accelerator, optional
        Train in one of several processes (:mod:`modeling.launch` starts them): the model is wrapped
        for data parallelism, each process computes its share of every batch, and the processes
        agree on every stop. Each process meters its own phase against ``limit_micro`` (its share);
        only the main process writes checkpoints and the model folder.
    keep_start : bool
        Fine-tuning a model that is already trained: score the weights it starts from on ``dev`` before
        the first step, so that the model kept is never worse on dev than the one it started as.
    """
    cfg, money = config or TrainConfig(), metering or Metering()
    cfg.validate()
    # --- seed and device, data, then the optimizer: AdamW, linear warm-up then decay --------------
    transformers.set_seed(cfg.seed)
    device, rank, world, forward = place(model, cfg, accelerator)
    ex = examples(data, tokenizer, cfg, device)
    optimizer, scheduler = _optimizer(model, cfg, device, ex.total_steps)
    # --- resume (like nanoGPT's init_from='resume'); a finished run is not trained again --------
    ckpt = Checkpoint(None if out_dir is None else Path(out_dir), model, optimizer, scheduler, cfg, ex.n, rank=rank)
    run, earlier, ended = ckpt.load()
    if ended in FINISHED:  # its model folder was written before this checkpoint
        return TrainResult(run.step, ex.total_steps, ended, run.best_dev, run.history, ckpt.out, earlier, run.losses)
    # --- the loop -------------------------------------------------------------------------------
    meter = money.meter or Meter()
    model.train()
    with meter.phase(money.phase_name, kind="train", device=device_kind(device),
                     n_params=sum(p.numel() for p in model.parameters()), limit_micro=money.limit_micro) as phase:
        if earlier is not None:
            phase.carry(earlier)
        # step 0 when fine-tuning a trained model: the weights it starts from compete with every later one
        _evaluate_start(keep_start, model, tokenizer, data.dev, data.label_names, cfg, run, device, accelerator)
        loop = _Loop(model, tokenizer, forward, optimizer, scheduler, ckpt, data, ex, cfg, money, device, rank, world,
                     accelerator)
        stopped = loop.run(run, phase)
        # --- finish: keep the best weights, save the model folder and the final checkpoint --------
        ckpt.finish(run, stopped, phase, tokenizer)
    return TrainResult(run.step, ex.total_steps, stopped, run.best_dev, run.history, ckpt.out, meter.records[-1],
                       run.losses)


@dataclass
class _Loop:
    """The training loop's collaborators, fixed for the whole loop."""

    model: Any
    tokenizer: Any
    forward: Any  # the model, or its data-parallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ckpt: Checkpoint
    data: TrainData
    ex: Examples
    cfg: TrainConfig
    money: Metering
    device: torch.device
    rank: int
    world: int
    accelerator: Any

    def run(self, run: RunState, phase: Phase) -> str:
        """Train from ``run.step`` to the end, an early stop or the money's limit; return how it ended."""
        cfg, ex, acc = self.cfg, self.ex, self.accelerator
        stopped, last_save = "completed", time.monotonic()
        pending: list[torch.Tensor] = []  # losses of the steps since they were last read
        bar = tqdm(total=ex.total_steps, initial=run.step, desc=self.money.phase_name, unit="step",
                   disable=not cfg.progress or self.rank != 0, leave=False)
        for idx in _batches(ex.encoded.lengths, cfg, ex.steps_per_epoch, ex.total_steps, run.step):
            # 1. before a step would pass the money held for the phase, ask for more; stop if none is left
            at_limit = phase.would_pass_limit() and not phase.ask_for_more(self.money.more_money,
                                                                            ex.total_steps - run.step)
            if any_process(acc, at_limit):
                phase.stop_for_limit()
                stopped = "budget"
                break
            loss = self._step(idx, run, phase, bar)
            pending.append(loss.detach())  # read at evaluations and checkpoints: .item() waits for the device
            # 6. evaluate on dev, keep the best weights, stop early when it stops improving (never before
            #    min_steps: a student still predicting one class on its first tiny epochs is not done)
            at_epoch_end = run.step % ex.steps_per_epoch == 0 or run.step == ex.total_steps
            dev = self.data.dev
            evaluate_now = dev is not None and (run.step == ex.total_steps or
                                                (cfg.select == "best" and run.step % ex.eval_interval == 0))
            if evaluate_now:
                read_losses(acc, pending, run)
                value = _evaluate(self.model, self.tokenizer, dev, self.data.label_names, cfg, run, self.device, acc)
                log.info(f"{self.money.phase_name} step {run.step}/{ex.total_steps}: loss {loss.item():.4f}, dev "
                         f"{cfg.metric} {value:.4f}")
                patient = cfg.patience and run.bad_evals >= cfg.patience and run.step >= cfg.min_steps
                if any_process(acc, bool(patient)):  # every process evaluates the same dev set
                    stopped = "early_stop"
            # a checkpoint writes the model, optimizer and best weights: not after every tiny epoch
            due = time.monotonic() - last_save >= cfg.checkpoint_every_s  # processes agree: a save reads losses
            if (evaluate_now or at_epoch_end) and any_process(acc, due):
                read_losses(acc, pending, run)
                self.ckpt.save(run, None, phase)
                last_save = time.monotonic()
            if stopped != "completed":
                break
        bar.close()
        read_losses(acc, pending, run)
        return stopped

    def _step(self, idx: np.ndarray, run: RunState, phase: Phase, bar: Any) -> torch.Tensor:
        """One optimizer step on batch ``idx`` (this process's rows of it); its loss."""
        t0 = time.perf_counter()
        mine, share = my_rows(idx, self.rank, self.world)  # this process's rows of the batch
        batch = {k: v.to(self.device) for k, v in collate(self.ex.encoded, mine, self.tokenizer.pad_token_id).items()}
        # 2.-5. forward and the batch's loss (modeling.objective)
        loss = loss_of(self.forward, batch, self.ex, self.cfg, mine, self.device) * share / len(idx) * self.world
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        run.step += 1
        phase.add(int(len(mine) * share), int(batch["attention_mask"].sum() * share), batch["input_ids"].numel())
        bar.update(1)
        if self.cfg.progress and self.rank == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", ms=f"{1000 * (time.perf_counter() - t0):.0f}")
        return loss


def _optimizer(model, cfg: TrainConfig, device: torch.device, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with no decay on biases and norms, and its linear warm-up then decay to 0."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused AdamW: one kernel per step instead of one per tensor (measured on CPU: 12% faster, less memory)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=device.type in {"cpu", "cuda"})
    return optimizer, transformers.get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps),
                                                                   total_steps)


# --- the loop's helpers: batches, processes, dev evaluation, checkpoints ----------------------------

def _batches(lengths: np.ndarray, cfg: TrainConfig, steps_per_epoch: int, total_steps: int,
             start: int) -> Iterator[np.ndarray]:
    """Example indices of each step from ``start`` to ``total_steps`` (a resumed run continues mid-epoch).

    An epoch's batch order depends only on the seed and the epoch: similar lengths together (less
    padding) in random order, or a plain shuffle.
    """
    for epoch in range(start // steps_per_epoch, total_steps // steps_per_epoch):
        rng = np.random.default_rng(cfg.seed + epoch)
        batches = (bucketed_batches(lengths, cfg.batch_size, rng) if cfg.group_by_length
                   else np.array_split(rng.permutation(len(lengths)), steps_per_epoch))
        yield from batches[max(0, start - epoch * steps_per_epoch):]


def _evaluate_start(keep_start: bool, model, tokenizer, dev: tuple[Sequence[Text], np.ndarray] | None,
                    label_names: Sequence[str], cfg: TrainConfig, run: RunState, device: torch.device,
                    accelerator) -> None:
    """With ``keep_start``, score the weights training starts from (not on a resume, which has scored them)."""
    if keep_start and dev is not None and run.step == 0 and not run.history:
        _evaluate(model, tokenizer, dev, label_names, cfg, run, device, accelerator)


def _evaluate(model, tokenizer, dev: tuple[Sequence[Text], np.ndarray], label_names: Sequence[str],
              cfg: TrainConfig, run: RunState, device: torch.device, accelerator) -> float:
    """Score the model on dev and record it in ``run``, keeping a copy of the weights when they are the best
    (of a sharded model, every process agrees that they are, and the main process keeps them)."""
    value = evaluate(model, tokenizer, dev[0], dev[1], label_names, max_length=cfg.max_length,
                     precision=cfg.precision, device=str(device), progress=False).get(cfg.metric)
    model.train()
    run.history.append((run.step, value))
    # 'last' evaluates only the start (keep_start) and the end: the end is kept unless the start beat it
    best = run.best_dev is None or value > run.best_dev or (cfg.select == "last" and value == run.best_dev)
    if is_sharded(model):  # gathering the weights is collective: no process may decide alone
        best = any_process(accelerator, best)
    if best:
        run.best_dev, run.bad_evals = value, 0
        run.best_state = full_state(model)
    else:
        run.bad_evals += 1
    return value
