"""The round loop as a library: :class:`Controller` opens a run folder, takes money, runs rounds.

A run folder holds the ledger (``ledger.sqlite``), the trained models, the soft-label cache, the
simulated platform's state, ``project.json`` and the report. Opening the same folder again resumes:
every step was recorded before it started. The library raises library errors only
(:class:`~budget.exceptions.UsageError`, ledger, connector and modeling errors); the command line,
``python -m budget.controller --spend 500``, is :mod:`budget.controller.cli`, a thin client of this module::

    with Controller(load_config("project.toml"), Path("runs/project")) as run:
        run.fund(to_micro("100"))
        outcome = run.run()
        run.report()
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from annotation.pool import load_pool
from budget import failpoints
from budget.approvals import LEDGER_FILE
from budget.config import ProjectConfig
from budget.controller.platforms import PlatformRequest, make_connector
from budget.controller.run_init import check_labels_in_use, config_hash, measure_run, run_split
from budget.controller.views import check_regression, policy_state, round_costs, round_plan
from budget.costs import ComputePricer, CostModel
from budget.exceptions import AwaitingAnnotators, AwaitingApproval, UsageError
from budget.ledger import Ledger
from budget.ledger.round_records import RoundPlan, RoundSummary, RunInit
from budget.money import format_usd
from budget.policy import Decision, Policy, PolicyState, make_policy
from budget.preflight import (
    check_connector,
    check_device,
    check_llm,
    check_models,
    check_prices,
    check_run_dir,
)
from budget.report import write_report
from budget.round.context import RunContext
from budget.round.runners import RUNNERS
from budget.round.snapshot import Snapshot
from budget.round.step_store import StepStore
from budget.runfolder import prune
from budget.runlock import RunLock
from connectors.base import Clock, Connector, RealClock
from connectors.simulated import SimClock, SimulatedConnector

__all__ = ["Controller", "RunOutcome"]


@dataclass(frozen=True)
class RunOutcome:
    """How a call to :meth:`Controller.run` ended: 'stopped', 'awaiting_approval' or 'awaiting_annotators'."""

    state: Literal["stopped", "awaiting_approval", "awaiting_annotators"]
    message: str
    rounds: int


class Controller:
    """One run of the tool on one project, in one run folder.

    Parameters
    ----------
    config : ProjectConfig
        The project (task, models, prices, policy).
    run_dir : Path
        Where the ledger, models and report live; an existing one is resumed (from any working folder: the
        ledger names the run's files by their full path).
    seed : int
        Seeds the split, selection, simulated annotators and training.
    policy : str, optional
        Overrides ``[policy] name``: 'annotate', 'distill', 'split:F' or 'adaptive'.
    connector : Connector, optional
        Overrides the connector built from ``[annotation] connector`` (tests use this).
    clock : Clock, optional
        What the run waits on while people label: by default the simulated platform's simulated time,
        else real time.
    phase_cache : StepStore, optional
        Finished compute steps shared with other runs of a study (reused steps are charged what they cost).
    model_cache_dir : Path, optional
        Where models joined from PyPI packages are kept (default: ``.model-cache`` beside ``run_dir``).
    progress : bool
        Show progress bars while models train and label.
    auto_approve_under : str, optional
        Overrides ``[annotation] auto_approve_under`` (dollars, or "inf").
    say : callable
        Where progress lines go (default: print).

    Raises
    ------
    ValueError
        For an unknown policy.
    AnnotationError
        If the task's data cannot be read (nothing is written).
    """

    def __init__(self, config: ProjectConfig, run_dir: Path, *, seed: int = 0, policy: str | None = None,
                 connector: Connector | None = None, progress: bool = True, say: Callable[[str], None] = print,
                 phase_cache: StepStore | None = None, model_cache_dir: Path | None = None,
                 auto_approve_under: str | None = None, clock: Clock | None = None) -> None:
        if auto_approve_under is not None:
            config = config.replace(annotation={"auto_approve_under": auto_approve_under})
        self.config = config
        self.run_dir = Path(run_dir).absolute()  # the ledger names models by path: resumable from any folder
        self.seed = seed
        self.policy_name = policy or config.policy.name
        self.policy = self._make_policy(self.policy_name)
        self.progress = progress
        self.say = say
        self.pool = load_pool(config.task)  # fails with a one-line error before anything is written
        sim = connector is None and config.simulated or isinstance(connector, SimulatedConnector)
        if sim:
            check_labels_in_use(self.pool)
        # rows the simulated people cannot label (no label to answer with) are left out of a simulation's pool
        self.split, self.unanswerable = run_split(config, self.pool, seed, simulated=sim)
        self._connector = connector
        if clock is None:  # a simulated platform's annotators answer on its simulated time
            sim = isinstance(connector, SimulatedConnector) or (connector is None and config.simulated)
            clock = connector.clock if isinstance(connector, SimulatedConnector) else SimClock() if sim else RealClock()
        self.clock = clock
        self.phase_cache = phase_cache
        self.model_cache_dir = Path(model_cache_dir) if model_cache_dir else self.run_dir.parent / ".model-cache"
        self.ledger: Ledger | None = None
        self.ctx: RunContext | None = None
        self.init: RunInit | None = None  # read or measured by open()
        self._lock = RunLock(self.run_dir)
        # everything the run needs, checked before open() writes anything (one line each, nothing written)
        check_run_dir(self.run_dir)
        check_models(config)
        check_llm(config)
        check_device(config)
        check_prices(config)
        if connector is None:
            check_connector(config)

    def _make_policy(self, name: str) -> Policy:
        p = self.config.policy
        params = {"min_points_per_100usd": float(p.min_points_per_100usd),
                  "stop_confidence": float(p.stop_confidence), "nearly_free_share": float(p.nearly_free_share),
                  "teacher_ensemble": int(p.teacher_ensemble)} if name == "adaptive" else {}
        return make_policy(name, **params)

    # --- opening a run ----------------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        """The run's ledger file (``ledger.sqlite`` in the run folder)."""
        return self.run_dir / LEDGER_FILE

    @property
    def exists(self) -> bool:
        """True when the run folder already holds a run (opening it resumes)."""
        return self.ledger_path.exists()

    def __enter__(self) -> Controller:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_new_budget(self, amount_micro: int) -> None:
        """Refuse to start a new run that has no money, or too little for one label (distill-only needs none).

        An existing run is never refused: resuming a round in flight, a waiting batch or a finished run
        must not depend on money left for new work.

        Raises
        ------
        UsageError
            With one line saying how much is needed.
        """
        if self.exists:
            return
        if amount_micro == 0:
            raise UsageError(f"No budget: give --spend DOLLARS to start a run in '{self.run_dir}'.")
        per_item = self.config.label_cost_per_item()
        if amount_micro < per_item and self.policy_name != "distill":
            raise UsageError(f"Budget {format_usd(amount_micro)} is too small for one label "
                             f"({format_usd(per_item)} per item with overlap {self.config.prices.overlap}); "
                             f"spend at least {format_usd(per_item)}.")

    def dry_run(self, amount_micro: int, *, add: bool = False) -> str:
        """The plan with this money (a budget, or with ``add`` more money); spends and keeps nothing.

        A new run is opened in a scratch folder beside ``run_dir`` and removed afterwards.
        """
        existing, real = self.exists, self.run_dir
        if not existing:
            self.run_dir = real.parent / f".dry-run-{uuid.uuid4().hex[:6]}"
        try:
            self.open()
            extra = amount_micro if add else max(0, amount_micro - self.ledger.totals().granted)
            return self.plan(extra)
        finally:
            self.close()
            if not existing:
                shutil.rmtree(self.run_dir, ignore_errors=True)
                self.run_dir = real

    def open(self) -> Controller:
        """Open (or create) the run folder's ledger and check that it belongs to this project and seed.

        Raises
        ------
        UsageError
            If the folder holds a run of another project file or seed.
        LedgerFileError
            If its ledger file is corrupt or not a ledger.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock(self.run_dir).acquire()  # one controller per run folder; the OS frees it on exit
        try:
            self.ledger = Ledger(self.ledger_path)
        except BaseException:
            self._lock.release()
            raise
        init = RunInit.read(self.ledger)
        if init is None:
            run_id = f"{self.config.task.name[:20]}-{uuid.uuid4().hex[:8]}"
            init = measure_run(self.config, self.pool, self.split, run_id, self.seed, self.model_cache_dir)
            self.ledger.begin_step(RunInit.STEP)
            self.ledger.finish_step(RunInit.STEP, init.to_json())
            self.ledger.log_event("run_created", run_id=run_id, config=self.config.to_dict(), seed=self.seed)
            if self.unanswerable:
                self.say(self._unanswerable_line())
        elif init.config_hash != config_hash(self.config) or init.seed != self.seed:
            raise UsageError(f"Run folder '{self.run_dir}' was started with another project file or seed "
                             f"(seed {init.seed}); use a new --run-dir or the same --config and --seed.")
        self.init = init
        (self.run_dir / "project.json").write_text(json.dumps(self.config.to_dict(), indent=1, default=str))
        self.ctx = RunContext(self.config, self.ledger, self.pool, self.split, init.run_id, self.run_dir,
                              self._connector or self._make_connector(init.run_id), self.clock,
                              ComputePricer(self.config), self.seed, self.progress, self.say,
                              phase_cache=self.phase_cache, model_cache_dir=self.model_cache_dir)
        return self

    def _unanswerable_line(self) -> str:
        return (f"{self.unanswerable} rows without a label are left out of the pool: simulated people answer with "
                "a row's own label, so only labeled rows can be bought (a real platform labels them all).")

    def _make_connector(self, run_id: str) -> Connector:
        return make_connector(PlatformRequest(self.config, run_id, self.run_dir, self.pool, self.split, self.seed,
                                              self.clock))

    def close(self) -> None:
        """Close the ledger and the annotation connector; the run folder keeps everything for a resume."""
        try:
            if self.ledger is not None:
                self.ledger.close()
            if self.ctx is not None:
                self.ctx.connector.close()
        finally:
            self._lock.release()

    # --- the policy's view --------------------------------------------------------------------------
    def cost_model(self, corrected: bool = True, *, pool: int = 0) -> CostModel:
        """FLOP estimates of this run's compute; ``corrected``: scaled by what finished rounds really cost;
        ``pool``: the unlabeled items a distillation is over (its student's epochs depend on them).

        Retraining and distillation are corrected separately (actual / raw estimate of each kind's
        finished rounds, within 0.2-5x): a regime can price their phases very differently. A round whose
        training the money cut short (:attr:`RoundSummary.cut_short`) tells nothing of the estimate's error.
        """
        return round_costs(self.config, self.init, self.ledger, corrected=corrected, pool=pool)

    def plan_round(self, decision: Decision, snap: Snapshot) -> RoundPlan:
        """The decision with what its compute is expected to cost (as the policy saw it), the raw FLOP
        estimate, and the estimate per metered phase."""
        return round_plan(self.config, self.cost_model, decision, snap.n_labels)

    def policy_state(self, snap: Snapshot, extra_micro: int = 0) -> PolicyState:
        """The read-only state the policy decides on (``extra_micro``: money about to be granted)."""
        n_unlabeled = len(snap.unlabeled_for_distill(len(self.pool), self.seed))
        return policy_state(self.config, self.ledger.snapshot(), self.cost_model(pool=n_unlabeled), snap,
                            n_unlabeled=n_unlabeled, pilots=self.policy.pilots, extra_micro=extra_micro)

    def next_decision(self, snap: Snapshot) -> tuple[int, Decision]:
        """The round to run and its decision: a started round resumes with its recorded decision."""
        rounds = self.ledger.rounds()
        if rounds and rounds[-1].state == "started":
            return rounds[-1].round, rounds[-1].plan.decision
        rnd = rounds[-1].round + 1 if rounds else 0
        state = self.policy_state(snap)
        if rnd == 0:
            amount = min(state.retrain_cost_micro * 2, state.available_micro)
            return 0, Decision("baseline", len(self.split.seed), amount, "the student on the seed labels",
                               pilot=self.policy.pilots)
        return rnd, self.policy.decide(state)

    # --- running ------------------------------------------------------------------------------------
    def grant(self, amount_micro: int) -> None:
        """Add money to the run (one ``--add``)."""
        self.ledger.grant(amount_micro, note="--add")
        self.ledger.log_event("granted", amount_micro=amount_micro)

    def fund(self, amount_micro: int, *, add: bool = False) -> int:
        """Take the money of one command: a budget of ``amount_micro`` (``--spend``), or that much more
        (``--add``); 0 takes nothing. Returns the micro-dollars added."""
        added = 0
        if amount_micro and add:
            self.grant(amount_micro)
            added = amount_micro
        elif amount_micro:
            added = self.set_budget(amount_micro)
        failpoints.reach("grant")
        return added

    def set_budget(self, total_micro: int) -> int:
        """Raise the run's budget to ``total_micro`` (one ``--spend``); return what was added.

        The same budget given again adds nothing, so a command re-run after a crash resumes the run
        instead of granting its money a second time. A budget below what was granted adds nothing
        either (money once granted stays granted) and says so.
        """
        added = self.ledger.grant_up_to(total_micro, note=f"--spend {format_usd(total_micro)}")
        granted = self.ledger.totals().granted
        if added:
            self.ledger.log_event("granted", amount_micro=added, budget_micro=total_micro)
        elif granted > total_micro:
            self.say(f"The run already has a budget of {format_usd(granted)}, more than --spend "
                     f"{format_usd(total_micro)}; nothing added (use --add to add money).")
        return added

    def run(self, max_rounds: int | None = None) -> RunOutcome:
        """Run rounds until the policy stops, money runs out, or a batch waits for a person."""
        done = 0
        while max_rounds is None or done < max_rounds:
            snap = self.ctx.snapshot()
            rnd, decision = self.next_decision(snap)
            if decision.arm == "stop":
                self.ledger.log_event("stopped", reason=decision.reason, estimates=decision.estimates,
                                      available_micro=self.ledger.totals().available)
                return RunOutcome("stopped", f"Stopped: {decision.reason}. {self.ledger.totals()}.", done)
            # what the compute part was expected to cost, to correct later estimates by what it did cost
            if self.ledger.start_round(rnd, decision.arm, self.plan_round(decision, snap)):
                self.say(f"round {rnd}: {decision.arm} {decision.n_items} items, reserve "
                         f"{format_usd(decision.amount_micro)} ({decision.reason})")
            failpoints.reach("round-start", rnd)
            try:
                summary = RUNNERS[decision.arm](self.ctx, rnd, decision, snap)
            except AwaitingApproval as wait:
                return RunOutcome("awaiting_approval", f"{wait} Approve it with `python -m budget.controller approve "
                                  f"{wait.batch_id} --run-dir {self.run_dir}`, then run again.", done)
            except AwaitingAnnotators as wait:
                return RunOutcome("awaiting_annotators", f"{wait} Run the same command again (or with just --run-dir "
                                  f"{self.run_dir}) to pull their work: no money is added, nothing is pushed twice.",
                                  done)
            failpoints.reach("round-end", rnd)
            prune(self.run_dir, self.ledger, self.config.models.keep_count)
            self._say_done(rnd, decision, summary)
            done += 1
        return RunOutcome("stopped", f"Stopped after {done} rounds (--max-rounds).", done)

    def _say_done(self, rnd: int, decision: Decision, summary: RoundSummary) -> None:
        dev, test = summary.dev, summary.test
        test = f", test {100 * test:.1f}" if test is not None else ""
        self.say(f"round {rnd}: {decision.arm} done: spent {format_usd(self.ledger.spent_by_round().get(rnd, 0))}"
                 f", labels {summary.n_labels}, dev {'' if dev is None else f'{100 * dev:.1f}'}{test}; "
                 f"{self.ledger.totals()}")
        if summary.stopped_at_cap:
            self.say(f"round {rnd}: its training stopped early at the cap (no money left to extend its "
                     "reservation); the model trained so far is kept.")
        line = check_regression(self.ledger, rnd, decision, summary)
        if line:
            self.say(line)

    def plan(self, extra_micro: int) -> str:
        """The dry run: money, both arms' estimates and the policy's next decision; spends nothing."""
        snap = self.ctx.snapshot()
        state = self.policy_state(snap, extra_micro)
        rnd, decision = (0, None) if not self.ledger.rounds() else self.next_decision(snap)
        batch = min(state.batch_size, state.n_available)
        lines = [f"Run {self.init.run_id} in {self.run_dir}: {self.pool!r}, seed {len(self.split.seed)}, "
                 f"unlabeled {len(self.split.unlabeled)}, test {len(self.split.test)}.",
                 f"Money: {format_usd(state.granted_micro)} granted with this {'--spend' if extra_micro else 'run'}, "
                 f"{format_usd(state.available_micro)} available.",
                 f"annotate: a batch of {batch} items costs {format_usd(batch * state.label_cost_micro)} "
                 f"({format_usd(state.label_cost_micro)} each) + {format_usd(state.retrain_cost_micro)} retraining.",
                 f"distill: teacher + soft labels on {state.n_unlabeled} items + student costs about "
                 f"{format_usd(state.distill_cost(state.n_unlabeled))}.",
                 f"Policy {self.policy!r}: " + ("round 0 trains the student on the seed labels first."
                                                if decision is None else
                                                f"round {rnd}: {decision.arm} {decision.n_items} items for "
                                                f"{format_usd(decision.amount_micro)} ({decision.reason})."),
                 "Dry run: nothing was spent."]
        if self.unanswerable:
            lines.insert(1, self._unanswerable_line())
        return "\n".join(lines)

    def report(self) -> dict[str, Path]:
        """Write the run's report into ``report/`` (Markdown, HTML, a CSV of rounds, a plot); returns its files."""
        return write_report(self.ledger, self.run_dir / "report", self.config.task.metric)
