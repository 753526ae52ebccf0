"""Run one training, or one soft-labelling pass, in several processes, on one machine or several, with accelerate.

The loop stays :func:`modeling.train.train`. The processes are started by ``torch.distributed.run``
(torchrun: what ``accelerate launch --multi_gpu`` runs; its CPU path needs MPI, torchrun does not), and
in each an :class:`accelerate.Accelerator` joins the process group (NCCL between GPUs, gloo between CPU
processes), places the process on its device and wraps the model for data parallelism.
:func:`launch_training` writes the job (model, data, settings, the price of a phase) to
``out_dir/launch/job.pkl``, runs ``python -m torch.distributed.run ... -m modeling.launch JOB`` and waits.
Each process trains on its share of every batch, meters its own phase against its share of the money,
and writes its phase record (``phase-rank{R}.json``); the main process writes the checkpoints and the
model folder, exactly where a one-process training would. The caller prices every process's record:
several processes are charged for all their device-seconds.

A phase that reaches its money limit stops in every process with its checkpoint; when the caller can
add money (``more_money``), the processes are started again and resume from it, as a killed launch does.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from annotation.records import Text
from modeling.infer import SoftLabels
from modeling.meter import PhaseRecord
from modeling.train import SoftTargets, TrainConfig, TrainResult

__all__ = ["Processes", "TrainJob", "SoftLabelJob", "LaunchError", "launch_training", "launch_soft_labels"]

STRATEGIES = ("ddp", "fsdp")
_TRACEBACK = re.compile(r"^(\[rank\d+\]: )?Traceback \(most recent call last\):")
_RANK = re.compile(r"^\[rank\d+\]")  # a line a process of the group printed (torchrun's prefix or ours)
_LOST = re.compile(r"failed \(exitcode: (?P<code>-?\d+)\) local_rank: (?P<rank>\d+)")  # torchrun's line
_START = "==> launch"  # begins the line each launch writes first in its output, and its note on restarts

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """The processes of a launched training failed; the message has the first exception they printed."""


@dataclass(frozen=True)
class Processes:
    """Where a launched training runs: ``processes`` per machine on ``machines`` machines.

    ``strategy`` is 'ddp' (every process holds the whole model) or 'fsdp' (each process holds
    1/world of the weights, gradients and optimizer state while it trains: a teacher that does not fit
    one GPU; :mod:`modeling.sharding`). On several machines, run the same command on each with its
    ``machine_rank``; ``main_address`` and ``main_port`` are those of machine 0 (port 0: a free port,
    one machine only). ``threads`` sets ``OMP_NUM_THREADS`` of each process (0: the machine's cores
    shared out).

    On one machine, ``restarts`` is how many times torchrun starts the processes again when one fails
    (a lost connection between them, a killed process): they meet again through torchrun's c10d
    rendezvous and resume from the training's checkpoint, and only a failure that outlasts the restarts
    is an error. Several machines meet through the static rendezvous, whose store would hand restarted
    processes the addresses of the lost ones: a failure there ends the launch, which resumes from the
    checkpoint when run again.
    """

    processes: int = 1
    machines: int = 1
    machine_rank: int = 0
    main_address: str = "127.0.0.1"
    main_port: int = 0
    strategy: str = "ddp"
    threads: int = 0
    restarts: int = 1

    @property
    def world(self) -> int:
        """How many processes train together."""
        return self.processes * self.machines

    def command(self, job: Path) -> list[str]:
        """The torchrun command line that runs ``job`` in this machine's processes."""
        if self.machines == 1:  # the rendezvous binds its own port when main_port is 0: no port to race for
            meet = ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"{self.main_address}:{self.main_port}",
                    "--max_restarts", str(self.restarts)]
        else:
            meet = ["--node_rank", str(self.machine_rank), "--master_addr", self.main_address,
                    "--master_port", str(self.main_port)]
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(self.machines),
                "--nproc_per_node", str(self.processes), *meet, "-m", "modeling.launch", str(job)]

    def threads_per_process(self) -> int:
        """``OMP_NUM_THREADS`` of each process."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.processes)


@dataclass(frozen=True)
class TrainJob:
    """One training, as every process of a launch rebuilds it.

    ``model`` is what :func:`modeling.models.load_classifier` loads (a folder or a known name),
    ``lora_rank`` > 0 trains LoRA adapters only, ``price`` maps a phase record to micro-dollars (it is
    pickled: a module-level function or a picklable object's method).
    """

    model: str
    labels: tuple[str, ...]
    texts: Sequence[Text]
    y: np.ndarray
    config: TrainConfig
    out_dir: Path
    phase_name: str = "train"
    dev: tuple[Sequence[Text], np.ndarray] | None = None
    soft: SoftTargets | None = None
    lora_rank: int = 0
    cache_dir: Path | None = None
    price: Callable[[PhaseRecord], int] | None = None


def launch_training(job: TrainJob, where: Processes, *, limit_micro: int | None = None,
                    more_money: Callable[[int], int] | None = None, log: Path | None = None,
                    ) -> tuple[TrainResult, list[PhaseRecord]]:
    """Train ``job`` in ``where.world`` processes; returns the result and every process's phase record.

    ``limit_micro`` is the money for the whole phase, shared out equally between the processes. When
    they stop at it and ``more_money(micro)`` adds what the rest is projected to cost, they are started
    again and resume from the checkpoint. A launch killed part way resumes the same way when called
    again with the same ``job.out_dir``.

    Raises
    ------
    LaunchError
        If the processes exit with an error (the first exception they printed is in the message).
    """
    launch_dir = Path(job.out_dir) / "launch"
    while True:
        spec = {"job": job, "limit_micro": limit_micro, "strategy": where.strategy}
        done, records = _launch(launch_dir, spec, where, log)
        result = TrainResult(**done)
        if result.stopped != "budget" or more_money is None or limit_micro is None:
            return _with_paths(result, job, records), records
        spent = sum(r.cost_micro or 0 for r in records)
        need = math.ceil(spent / max(1, result.steps) * (result.total_steps - result.steps) * 1.1)
        got = more_money(max(1, need)) if need > 0 else 0
        if got <= 0:
            return _with_paths(result, job, records), records
        limit_micro += got


@dataclass(frozen=True)
class SoftLabelJob:
    """The teacher's logits for ``texts``, cached in ``cache_dir`` as :func:`modeling.infer.soft_labels` does;
    ``checkpoint_id`` identifies the teacher's weights (computed once by the caller, not by every process)."""

    model: str
    labels: tuple[str, ...]
    texts: Sequence[Text]
    cache_dir: Path
    out_dir: Path
    checkpoint_id: str
    max_length: int = 128
    chunk_size: int = 16_384
    device: str = "auto"
    price: Callable[[PhaseRecord], int] | None = None


def launch_soft_labels(job: SoftLabelJob, where: Processes, *, log: Path | None = None
                       ) -> tuple[SoftLabels, list[PhaseRecord]]:
    """Soft-label ``job.texts`` in ``where.world`` processes, each predicting every world-th chunk into one
    memory-mapped file; returns the cached logits and every process's phase record (one record, the whole
    pass as first computed, when they were already cached). A killed launch resumes each process's chunks.

    Every process holds the whole teacher here, whatever ``where.strategy``: inference needs its weights
    only (2 bytes a parameter in bf16, 16 GB for an 8B teacher), where a fine-tune needs about 16."""
    done, records = _launch(Path(job.out_dir) / "launch-soft-labels", {"job": job}, where, log)
    path = Path(done["path"])
    if done["cached"]:
        records = [PhaseRecord(**json.loads(path.with_suffix(".json").read_text()))]
    return SoftLabels(np.load(path, mmap_mode="r"), path, done["cached"], records[0] if records else None), records


def _launch(launch_dir: Path, spec: dict, where: Processes, log: Path | None) -> tuple[dict, list[PhaseRecord]]:
    """Run ``spec`` in ``where``'s processes; the main process's result and every process's phase record."""
    launch_dir.mkdir(parents=True, exist_ok=True)
    for old in [*launch_dir.glob("phase-rank*.json"), launch_dir / "result.json"]:
        old.unlink(missing_ok=True)
    path = launch_dir / "job.pkl"
    with open(path.with_suffix(".tmp"), "wb") as f:
        pickle.dump({**spec, "launch_dir": launch_dir}, f)
    path.with_suffix(".tmp").replace(path)
    output = log or launch_dir / "launch.log"
    _run(where.command(path), where.threads_per_process(), output)
    records = [PhaseRecord(**json.loads(p.read_text())) for p in sorted(launch_dir.glob("phase-rank*.json"))]
    done = json.loads((launch_dir / "result.json").read_text())
    if restarted := done.pop("attempt"):
        _note_restarts(output, restarted)
    return done, records


def _with_paths(result: TrainResult, job: TrainJob, records: list[PhaseRecord]) -> TrainResult:
    first = records[0] if records else None
    return TrainResult(result.steps, result.total_steps, result.stopped, result.best_dev,
                       [tuple(h) for h in result.dev_history], Path(job.out_dir), first, result.losses)


def _note_restarts(output: Path, restarted: int) -> None:
    """Say in the launch's output, and in the log, that its processes were started again, and why: the
    process torchrun saw fail first, and the first exception a process of this launch printed."""
    lines = _this_launch(output)
    lost = next((m for line in lines if (m := _LOST.search(line))), None)
    which = f"process {lost['rank']} exited with code {lost['code']}; " if lost else ""
    line = (f"{_START}: its processes were started again {restarted} time(s) and then finished; the first "
            f"failure: {which}the first exception printed: {_first_error(lines)}")
    with open(output, "a") as out:
        out.write(line + "\n")
    log.warning("%s (all output: %s)", line.removeprefix(_START + ": "), output)


def _this_launch(output: Path) -> list[str]:
    """The lines of the last launch written to ``output`` (a log may hold a killed launch's lines before)."""
    lines = output.read_text(errors="replace").strip().splitlines()
    return lines[max((i for i, line in enumerate(lines) if line.startswith(_START)), default=0):]


def _run(cmd: list[str], threads: int, output: Path) -> None:
    root = str(Path(__file__).resolve().parents[1])  # the processes import this package as the caller does
    # each start of the processes gets a store of its own: in the rendezvous's shared one, processes started
    # again read the addresses the lost ones left there, and fail to connect
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with open(output, "ab") as out:
        out.write(f"{_START}: {' '.join(cmd)}\n".encode())  # where this launch's lines begin in the file
        out.flush()
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        cause = _first_error(_this_launch(output))
        raise LaunchError(f"The launched training exited with code {code}: {cause} (all output: {output})")


def _first_error(lines: list[str]) -> str:
    """The exception that ended the first traceback a process printed, else torchrun's exit code of the
    first process that failed, else the last line.

    A traceback's exception line is its first line not indented (a message may be empty, or start on the
    next line). A process that joined the group prefixes its lines with ``[rankN]: ``, so two processes'
    tracebacks printed at once are told apart; those come first. Unprefixed ones (a process that failed
    before it joined, or torchrun itself) count when no prefixed one was printed, torchrun's summary
    ``ChildFailedError`` never.
    """
    ranked, unprefixed = [], []
    for i, line in enumerate(lines):
        if not (start := _TRACEBACK.match(line)):
            continue
        prefix = start.group(1) or ""
        for later in lines[i + 1:]:
            if not later.startswith(prefix) or (not prefix and _RANK.match(later)):
                continue  # another process's line
            body = later[len(prefix):]
            if body.strip() and not body[0].isspace():
                (ranked if prefix else unprefixed).append(body.strip())
                break
    found = ranked or [e for e in unprefixed if "ChildFailedError" not in e]
    if found:
        return found[0]
    code = next((line.strip() for line in lines if line.strip().startswith("exitcode")), None)
    return code or (lines[-1].strip() if lines else "no output")


# --- what each process runs ------------------------------------------------------------------------


def _worker(path: Path) -> None:
    """One process of a launch: rebuild the job, do its share, write its phase record (and, in the main
    process, the result)."""
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs

    spec = pickle.loads(path.read_bytes())
    job = spec["job"]
    device = job.config.device if isinstance(job, TrainJob) else job.device
    # buffers are constants in these models (no batch norm); the dev evaluations run in inference mode,
    # which leaves tensors that DDP's buffer broadcast cannot version
    acc = Accelerator(cpu=device == "cpu" or not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])
    run = _train if isinstance(job, TrainJob) else _soft_labels
    phase, result = run(job, spec, acc)
    _write_json(spec["launch_dir"] / f"phase-rank{acc.process_index}.json", asdict(phase))
    if acc.is_main_process:
        _write_json(spec["launch_dir"] / "result.json", {**result, "attempt": _attempt()})
    acc.wait_for_everyone()
    acc.end_training()


def _train(job: TrainJob, spec: dict, acc) -> tuple[PhaseRecord, dict]:
    from modeling.lora import with_lora
    from modeling.meter import Meter
    from modeling.models import load_classifier
    from modeling.sharding import shard
    from modeling.train import Metering, TrainData, train

    loaded = load_classifier(job.model, list(job.labels), seed=job.config.seed, cache_dir=job.cache_dir)
    if job.lora_rank:
        loaded = with_lora(loaded, job.lora_rank)
    if spec.get("strategy") == "fsdp":
        shard(loaded.model, acc.device)
        held = sum(p.to_local().numel() for p in loaded.model.parameters())
        print(f"[rank{acc.process_index}] attempt {_attempt()}: fsdp: this process holds {held:,} of "
              f"{sum(p.numel() for p in loaded.model.parameters()):,} weights", flush=True)
    limit = None if spec["limit_micro"] is None else spec["limit_micro"] // acc.num_processes
    result = train(loaded.model, loaded.tokenizer, TrainData(job.texts, job.y, job.labels, dev=job.dev, soft=job.soft),
                   job.config, metering=Metering(Meter(price=job.price), job.phase_name, limit), out_dir=job.out_dir,
                   accelerator=acc)
    return result.phase, {"steps": result.steps, "total_steps": result.total_steps, "stopped": result.stopped,
                          "best_dev": result.best_dev, "dev_history": result.dev_history, "losses": result.losses}


def _soft_labels(job: SoftLabelJob, spec: dict, acc) -> tuple[PhaseRecord, dict]:
    from modeling.infer import soft_labels
    from modeling.meter import Meter
    from modeling.models import load_classifier

    teacher = load_classifier(job.model, list(job.labels))
    soft = soft_labels(teacher.model, teacher.tokenizer, job.texts, cache_dir=job.cache_dir,
                       checkpoint_id=job.checkpoint_id, max_length=job.max_length, chunk_size=job.chunk_size,
                       accelerator=acc, meter=Meter(price=job.price), progress=False)
    return soft.phase, {"path": str(soft.path), "cached": soft.cached}


def _attempt() -> int:
    """How many times torchrun has started this launch's processes again (0 the first time)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def _write_json(path: Path, value: dict) -> None:
    path.with_suffix(".tmp").write_text(json.dumps(value))
    path.with_suffix(".tmp").replace(path)


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    from modeling.launch import _worker as worker  # the classes the job was pickled with, not __main__'s copies

    record(worker)(Path(sys.argv[1]))  # the exception goes to torchrun's summary of the failure too
