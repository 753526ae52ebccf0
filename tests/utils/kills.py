"""Kill a controller run with SIGKILL at chosen steps, resume it each time, and compare it with a whole run.

The controller marks its steps with :func:`budget.failpoints.reach`. A reference run logs the points it
reaches (``AOD_FAILPOINT_LOG``); :func:`plan_kills` draws, with a seed, points along that sequence,
every kind of step and the last round included; :func:`killed_run` runs the same command again and
again, each process told to SIGKILL itself at the next point (``AOD_KILL_AT``), then once more to
the end. :func:`fingerprint` is what must match the uninterrupted run: money to the micro-dollar,
rounds, batches, labels, pushes, and no open reservation.

Processes are forked from a server that has already imported the controller (multiprocessing's
forkserver), so a kill costs the work redone, not three seconds of imports.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budget.failpoints import POINTS
from budget.ledger import Ledger
from budget.ledger.round_records import RunInit

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["budget.controller.cli"])


@dataclass(frozen=True)
class KillPoint:
    """Die the ``nth`` time the process reaches ``name`` at ``where`` (a round, 'round.step', or '*')."""

    name: str
    where: str
    nth: int

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.where}:{self.nth}"


def use_kill_env(env: dict[str, str]) -> None:
    """In a process started by :func:`run_controller`: its kill point and point log are ``env``'s only."""
    os.environ.update(env)
    for key in ("AOD_KILL_AT", "AOD_FAILPOINT_LOG"):
        if key not in env:
            os.environ.pop(key, None)


def _main(args: list[str], env: dict[str, str]) -> None:
    use_kill_env(env)
    from budget.controller.cli import cli

    cli.main(args=args, prog_name="python -m budget.controller", standalone_mode=True)


def run_controller(args: list[str], env: dict[str, str] | None = None, timeout: float = 600,
                   target: Callable[[list[str], dict[str, str]], None] = _main) -> int:
    """Run the CLI (or ``target(args, env)``, an importable function) in a fresh process; its exit code, or
    ``-signal`` when it was killed."""
    proc = _CTX.Process(target=target, args=(list(args), dict(env or {})))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise TimeoutError(f"controller {args} ran past {timeout} s")
    return proc.exitcode


def reference_run(args: list[str], log: Path, target: Callable[[list[str], dict[str, str]], None] = _main,
                  ) -> list[tuple[str, str]]:
    """Run ``args`` uninterrupted, logging every point reached; the sequence of (name, round)."""
    code = run_controller(args, {"AOD_FAILPOINT_LOG": str(log)}, target=target)
    if code != 0:
        raise RuntimeError(f"the reference run exited {code}")
    return [tuple(line.split()) for line in Path(log).read_text().splitlines()]


def plan_kills(sequence: list[tuple[str, str]], n: int, seed: int) -> list[KillPoint]:
    """``n`` kill points along ``sequence`` in its order: one of every kind reached, one in the last
    round, the rest drawn at random; each names its occurrence within its round."""
    rng = np.random.default_rng(seed)
    def round_of(where: str) -> int:
        return -1 if where == "*" else int(where.split(".")[0])

    last = max(round_of(w) for _, w in sequence)
    chosen: set[int] = set()
    for kind in POINTS:
        where = [i for i, (name, _) in enumerate(sequence) if name == kind]
        if where:
            chosen.add(int(rng.choice(where)))
    chosen.add(int(rng.choice([i for i, (_, w) in enumerate(sequence) if round_of(w) == last])))
    rest = [i for i in range(len(sequence)) if i not in chosen]
    extra = max(0, n - len(chosen))
    chosen.update(int(i) for i in rng.choice(rest, min(extra, len(rest)), replace=False))
    seen: Counter[tuple[str, str]] = Counter()
    plan = []
    for i, (name, rnd) in enumerate(sequence):
        seen[(name, rnd)] += 1
        if i in chosen:
            plan.append(KillPoint(name, rnd, seen[(name, rnd)]))
    return plan


def killed_run(args: list[str], plan: list[KillPoint],
               target: Callable[[list[str], dict[str, str]], None] = _main) -> list[KillPoint]:
    """Run ``args`` once per kill point (each process dies there), then to the end; the points that fired.

    A point the resumed process never reaches (it redid less work than the reference) lets the run
    finish; later points are then not tried.
    """
    fired = []
    for point in plan:
        code = run_controller(args, {"AOD_KILL_AT": point.spec}, target=target)
        if code == -signal.SIGKILL:
            fired.append(point)
        elif code == 0:
            break
        else:
            raise RuntimeError(f"the run killed at {fired[-1].spec if fired else 'start'} exited {code} "
                               f"when resumed towards {point.spec}")
    code = run_controller(args, target=target)
    if code != 0:
        raise RuntimeError(f"the last resume (after {len(fired)} kills) exited {code}")
    return fired


def fingerprint(run_dir: Path) -> dict:
    """What an interrupted run must share with an uninterrupted one of the same seed (run ids removed)."""
    with Ledger(Path(run_dir) / "ledger.sqlite") as ledger:
        run_id = RunInit.read(ledger).run_id

        def strip(text: str) -> str:
            return text.replace(run_id, "RUN")

        totals = ledger.totals()
        state = Path(run_dir) / "simulated-platform.json"
        platform = json.loads(state.read_text()) if state.exists() else {"tasks": {}}
        return {
            "totals": (totals.granted, totals.reserved, totals.spent, totals.available),
            "spent_by_round": ledger.spent_by_round(),
            "spent_by_arm": ledger.spent_by_arm(),
            "open_reservations": len(ledger.reservations("open")),
            "rounds": [(r.round, r.arm, r.state) for r in ledger.rounds()],
            "batches": [(strip(b.batch_id), b.state, b.payload.item_ids, b.total_micro) for b in ledger.batches()],
            "labels": sorted((strip(x.external_id), x.annotator, x.label) for x in ledger.labels()),
            "settlements": sorted(e.amount_micro for e in ledger.entries() if e.kind == "settle"),
            "pushed_tasks": len(platform["tasks"]),
        }


class DiesOnceAfterCheckpoint:
    """A price for a launched training (:mod:`modeling.launch`) that makes its second process exit, as a lost
    one does, the first time it prices a step after the training saved ``ckpt``; the processes torchrun
    starts again only price (one micro-dollar an example). Picklable: the processes import it from here."""

    def __init__(self, ckpt: Path) -> None:
        self.ckpt = ckpt

    def __call__(self, record) -> int:
        if (os.environ.get("RANK") == "1" and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"
                and self.ckpt.exists()):
            os._exit(1)
        return record.examples
