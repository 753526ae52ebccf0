"""A run whose decisions are scripted, for behaviour a real policy reaches only on real data: labels, a
distillation, then labels that refine it (what adaptive does when the distilled student leads and the
money left pays for labels but no further distillation)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from budget.config import load_config
from budget.controller import Controller
from budget.money import to_micro
from budget.policy import Decision, Policy, PolicyState
from tests.utils.kills import use_kill_env

__all__ = ["AlternateScript", "RefineScript", "run_refine_script"]


class RefineScript(Policy):
    """8 labels, a distillation over the pool, 12 labels that refine it, stop."""

    def decide(self, state: PolicyState) -> Decision:
        arms = [r.arm for r in state.rounds]
        if arms == ["baseline"]:
            return self._annotate(state, 8 * state.label_cost_micro + state.retrain_cost_micro, "labels")
        if arms == ["baseline", "annotate"]:
            return self._distill(state, state.available_micro, "a distillation")
        if len(arms) == 3:
            d = self._annotate(state, 12 * state.label_cost_micro + state.retrain_cost_micro, "labels after it")
            return Decision(d.arm, d.n_items, d.amount_micro, d.reason, d.estimates, refine=True)
        return Decision("stop", reason="done")


class AlternateScript(Policy):
    """Batches of 8 labels (each with a pilot on half the labels) and distillations in turn, up to ``rounds``
    rounds: distilled students that alternate with label-only ones, each compared with the last of its kind."""

    pilots = True

    def __init__(self, rounds: int = 5) -> None:
        self.rounds = rounds

    def decide(self, state: PolicyState) -> Decision:
        arms = [r.arm for r in state.rounds]
        if len(arms) >= self.rounds:
            return Decision("stop", reason="done")
        if arms[-1] in ("baseline", "distill"):
            d = self._annotate(state, 8 * state.label_cost_micro + state.retrain_cost_micro, "labels")
            return replace(d, pilot=True)
        return self._distill(state, state.available_micro, "a distillation")


def run_refine_script(args: list[str], env: dict[str, str]) -> None:
    """``args`` = [project file, run folder]: fund $40 (once) and run the script to its end; a process
    target for :func:`tests.utils.kills.killed_run` (``env`` sets its kill point)."""
    use_kill_env(env)
    project, run_dir = args
    with Controller(load_config(Path(project)), Path(run_dir), progress=False, say=lambda _: None) as run:
        run.policy = RefineScript()
        if run.ledger.totals().granted == 0:
            run.fund(to_micro("40"))
        run.run()
