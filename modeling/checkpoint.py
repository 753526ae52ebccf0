"""A training's checkpoint: where the loop is (:class:`RunState`) and ``out/ckpt.pt`` (:class:`Checkpoint`).

A checkpoint is a plain dict in ``out_dir/ckpt.pt`` (model, optimizer, scheduler, config, step, best_dev,
history, the best weights, the RNG and the phase measured so far), written atomically; a finished training's
model folder is written before the checkpoint that says it finished, so whenever the process is killed, running
:func:`modeling.train.train` again with the same ``out_dir`` resumes it, or returns its result without training
again. Of several processes only the main one writes the checkpoint; each other process keeps its own phase
measure beside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from modeling.exceptions import CheckpointError
from modeling.meter import Phase, PhaseRecord
from modeling.sharding import full_state, is_sharded, load_full_state, load_optimizer_state, optimizer_state

__all__ = ["FINISHED", "Checkpoint", "RunState"]

FINISHED = {"completed", "early_stop"}  # how a training that needs no more steps ended
SETTINGS_BEFORE = {"select": "best"}  # settings added since checkpoints were first written, as they behaved before


@dataclass
class RunState:
    """Where training is: what a checkpoint keeps besides the model, optimizer and scheduler."""

    step: int = 0
    best_dev: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    bad_evals: int = 0  # evaluations since the best one
    best_state: dict[str, torch.Tensor] | None = None  # the best dev model's weights, on the CPU (sharded: {}
    #                                                   in every process but the main one)
    losses: list[float] = field(default_factory=list)


@dataclass
class Checkpoint:
    """``out/ckpt.pt``: a plain dict (model, optimizer, scheduler, config, step, best_dev, history, ...).

    Without ``out`` nothing is loaded or saved.
    """

    out: Path | None
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    cfg: Any  # the TrainConfig (a dataclass)
    n_examples: int
    rank: int = 0  # of several processes, only rank 0 writes the checkpoint; the others, their phase so far

    @property
    def _rank_phase(self) -> Path:
        return self.out / f"ckpt-phase-rank{self.rank}.json"

    def _rank_phases(self) -> dict[str, dict]:
        """This process's saved measures by step (a file of the one-step form written before reads as one)."""
        if not self._rank_phase.exists():
            return {}
        saved = json.loads(self._rank_phase.read_text())
        return saved["steps"] if "steps" in saved else {str(saved["step"]): saved["phase"]}

    def load(self) -> tuple[RunState, PhaseRecord | None, str | None]:
        """Restore the model, optimizer, scheduler and RNG from the checkpoint, if there is one.

        Returns where the run was, what it had measured, and how it ended (None while it was still
        running); a finished run's best weights are loaded into the model.
        """
        path = None if self.out is None else self.out / "ckpt.pt"
        if path is None or not path.exists():
            return RunState(), None, None
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        made_with = {**SETTINGS_BEFORE, **ckpt["config"]}  # a checkpoint of an older version lacks newer settings
        if made_with != asdict(self.cfg) or ckpt["n_examples"] != self.n_examples:
            raise CheckpointError(f"Checkpoint {path} was made with other settings or data; "
                                  "use a new out_dir or delete it to start over.")
        load_full_state(self.model, ckpt["model"])
        load_optimizer_state(self.model, self.optimizer, ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        run = RunState(ckpt["step"], ckpt["best_dev"], ckpt["history"], ckpt["bad_evals"], ckpt.get("best_model"),
                   ckpt.get("losses", []))
        torch.set_rng_state(ckpt["rng"])  # dropout continues as if never interrupted
        earlier = PhaseRecord(**ckpt["phase"])  # what the interrupted run already measured
        if self.rank and self._rank_phase.exists():  # this process's own measure, saved at the checkpoint's step
            mine = self._rank_phases().get(str(run.step))
            earlier = PhaseRecord(**mine) if mine is not None else earlier
        if ckpt["stopped"] in FINISHED and run.best_state is not None:
            load_full_state(self.model, run.best_state)
        return run, earlier, ckpt["stopped"]

    def save(self, run: RunState, stopped: str | None, phase: Phase) -> None:
        """Write what resuming needs; ``stopped`` says how the run ended (None while it goes on)."""
        if self.out is None:
            return
        # gathering a sharded model's state is collective: every process takes part
        gathered = ((full_state(self.model), optimizer_state(self.model, self.optimizer))
                    if is_sharded(self.model) else None)
        if self.rank:
            # this process's measure at this step and the save before it: a kill between this write and the main
            # process's checkpoint leaves that checkpoint one save behind, and an uneven last batch makes the main
            # process's own measure the wrong one for this process
            self.out.mkdir(parents=True, exist_ok=True)
            phases = {**self._rank_phases(), str(run.step): asdict(phase.record)}
            kept = dict(sorted(phases.items(), key=lambda kv: int(kv[0]))[-2:])
            tmp = self._rank_phase.with_suffix(".tmp")
            tmp.write_text(json.dumps({"steps": kept}))
            tmp.replace(self._rank_phase)
            return
        self.out.mkdir(parents=True, exist_ok=True)
        model_state, optimizer_state_ = gathered or (self.model.state_dict(), self.optimizer.state_dict())
        ckpt = {"model": model_state, "optimizer": optimizer_state_,
                "scheduler": self.scheduler.state_dict(), "config": asdict(self.cfg), "n_examples": self.n_examples,
                "step": run.step, "best_dev": run.best_dev, "history": run.history, "bad_evals": run.bad_evals,
                "losses": run.losses,
                "best_model": run.best_state, "stopped": stopped, "rng": torch.get_rng_state(),
                "phase": asdict(phase.record)}
        torch.save(ckpt, self.out / "ckpt.tmp")
        (self.out / "ckpt.tmp").replace(self.out / "ckpt.pt")  # atomic: a kill never leaves a torn checkpoint

    def finish(self, run: RunState, stopped: str, phase: Phase, tokenizer) -> None:
        """Keep the best weights, then save the model folder and the final checkpoint.

        A phase stopped at its money limit checkpoints its training state as it is (more money
        resumes it) and keeps its best model so far. A finished phase writes its model folder
        first: a checkpoint that says 'finished' always has its model beside it, whenever the
        process is killed.
        """
        if stopped == "budget":
            self.save(run, stopped, phase)
        if run.best_state is not None:
            load_full_state(self.model, run.best_state)
        whole = full_state(self.model) if self.out is not None and is_sharded(self.model) else None
        if self.out is not None and self.rank == 0:
            self.model.save_pretrained(self.out, **({} if whole is None else {"state_dict": whole}))
            tokenizer.save_pretrained(self.out)
        if stopped != "budget":
            self.save(run, stopped, phase)
