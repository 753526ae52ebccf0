"""The round loop and the command line: ``python -m budget.controller --spend 500``.

The library is :class:`Controller` (open a run folder, add money, run rounds until the money is
spent or the policy stops); the click CLI is one thin client of it. A run folder holds the ledger
(``ledger.sqlite``), the trained models, the soft-label cache, the simulated platform's state and the
report. Running again on the same folder resumes: every step was recorded before it started.

Exit status: 0 when the run ended, stopped, or waits for an approval or for annotators (the message
says what to run next); 2 for bad input (nothing is written); 1 when a platform fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from annotation.exceptions import AnnotationError
from annotation.pool import load_pool, split_pool
from annotation.simulated import SimulatedAnnotators
from budget import failpoints
from budget.approvals import LEDGER_FILE, DecisionError, RunNotFoundError, decide, open_ledger, proposal_lines
from budget.config import ConfigError, ProjectConfig, load_config
from budget.costs import ComputePricer, CostModel
from budget.demo import demo_config, write_demo_data
from budget.exceptions import InputError, LedgerError, LedgerFileError
from budget.ledger import Ledger
from budget.money import format_usd, parse_usd
from budget.phase_cache import PhaseCache
from budget.policy import Decision, Policy, PolicyState, RoundObservation, make_policy
from budget.prices import label_cost
from budget.report import markdown, write_report
from budget.rounds import AwaitingAnnotators, AwaitingApproval, RunContext, run_annotate, run_baseline, run_distill
from budget.runfolder import check_keep, folder_bytes, prune
from budget.web import serve
from connectors.base import Connector
from connectors.exceptions import ConnectorError
from connectors.retry import RetryingConnector
from connectors.simulated import SimulatedConnector
from modeling.exceptions import ModelingError
from modeling.models import load_classifier

__all__ = ["Controller", "RunOutcome", "InputError", "cli"]

_INIT = "run:init"


@dataclass(frozen=True)
class RunOutcome:
    """How a call to :meth:`Controller.run` ended: 'stopped', 'awaiting_approval' or 'awaiting_annotators'."""

    state: str
    message: str
    rounds: int


def _config_hash(config: ProjectConfig) -> str:
    """What fixes a run's items and models; prices, policy, approvals and waiting may change between runs."""
    d = config.to_dict()
    fixed = {k: d[k] for k in ("task", "split", "models")}
    fixed["models"] = {k: v for k, v in fixed["models"].items() if k != "keep"}  # what is kept may change
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Controller:
    """One run of the tool on one project, in one run folder.

    Parameters
    ----------
    config : ProjectConfig
        The project (task, models, prices, policy).
    run_dir : Path
        Where the ledger, models and report live; an existing one is resumed.
    seed : int
        Seeds the split, selection, simulated annotators and training.
    policy : str, optional
        Overrides ``[policy] name``: 'annotate', 'distill', 'split:F' or 'adaptive'.
    connector : Connector, optional
        Overrides the connector built from ``[annotation] connector`` (tests use this).
    phase_cache : PhaseCache, optional
        Finished compute steps shared with other runs of a study (reused steps are charged what they cost).
    model_cache_dir : Path, optional
        Where models joined from PyPI packages are kept (default: ``.model-cache`` beside ``run_dir``).
    """

    def __init__(self, config: ProjectConfig, run_dir: Path, *, seed: int = 0, policy: str | None = None,
                 connector: Connector | None = None, progress: bool = True, say=click.echo,
                 phase_cache: PhaseCache | None = None, model_cache_dir: Path | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.policy_name = policy or config["policy"]["name"]
        self.policy = self._make_policy(self.policy_name)
        self.progress = progress
        self.say = say
        self.pool = load_pool(config.task)  # fails with a one-line error before anything is written
        # "all": every labeled row is the team's seed (real data); a number draws that many of them
        # (a simulation draws its seed and test set from the labeled rows and buys the rest).
        size = config["split"]["seed_size"]
        seed_size = len(self.pool.labeled) if size == "all" else int(size)
        split = split_pool(self.pool, seed=seed, seed_size=seed_size,
                           test_size=config["split"]["test_size"] if config.simulated else 0)
        cap = int(config["split"]["max_unlabeled"])
        if cap and len(split.unlabeled) > cap:
            keep = np.sort(np.random.default_rng(seed).permutation(split.unlabeled)[:cap])
            split = type(split)(seed=split.seed, unlabeled=keep, test=split.test)
        self.split = split
        self._connector = connector
        self.phase_cache = phase_cache
        self.model_cache_dir = Path(model_cache_dir) if model_cache_dir else self.run_dir.parent / ".model-cache"
        self.ledger: Ledger | None = None
        self.ctx: RunContext | None = None

    def _make_policy(self, name: str) -> Policy:
        p = self.config["policy"]
        params = {"min_points_per_100usd": float(p["min_points_per_100usd"]),
                  "keep_final_distill": bool(p["keep_final_distill"]),
                  "redistill_growth": float(p["redistill_growth"])} if name == "adaptive" else {}
        return make_policy(name, **params)

    # --- opening a run ----------------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        return self.run_dir / LEDGER_FILE

    def open(self) -> Controller:
        """Open (or create) the run folder's ledger and check that it belongs to this project and seed."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.ledger_path)
        init = self.ledger.step_result(_INIT)
        if init is None:
            run_id = f"{self.config.task.name[:20]}-{uuid.uuid4().hex[:8]}"
            init = self._measure_models(run_id)
            self.ledger.begin_step(_INIT)
            self.ledger.finish_step(_INIT, init)
            self.ledger.log_event("run_created", run_id=run_id, config=self.config.to_dict(), seed=self.seed)
        elif init["config_hash"] != _config_hash(self.config) or init["seed"] != self.seed:
            raise InputError(f"Run folder '{self.run_dir}' was started with another project file or seed "
                             f"(seed {init['seed']}); use a new --run-dir or the same --config and --seed.")
        self.init = init
        self.ctx = RunContext(self.config, self.ledger, self.pool, self.split, init["run_id"], self.run_dir,
                              self._connector or self._make_connector(init["run_id"]),
                              ComputePricer(self.config), self.seed, self.progress, self.say,
                              phase_cache=self.phase_cache, model_cache_dir=self.model_cache_dir)
        return self

    def _measure_models(self, run_id: str) -> dict[str, Any]:
        m = self.config["models"]
        student = load_classifier(m["student"], self.pool.labels)
        teacher = load_classifier(m["teacher"], self.pool.labels, cache_dir=self.model_cache_dir)
        sample = [self.pool.texts[i] for i in self.split.unlabeled[:500]] or self.pool.texts[:500]
        pairs = isinstance(sample[0], tuple)
        enc = (student.tokenizer([t[0] for t in sample], [t[1] for t in sample], truncation=True,
                                 max_length=int(m["max_length"])) if pairs
               else student.tokenizer(sample, truncation=True, max_length=int(m["max_length"])))
        return {"run_id": run_id, "config_hash": _config_hash(self.config), "seed": self.seed,
                "student_params": student.n_params, "teacher_params": teacher.n_params,
                "tokens_per_item": float(np.mean([len(x) for x in enc["input_ids"]])),
                "pool": len(self.pool), "seed_items": len(self.split.seed),
                "unlabeled": len(self.split.unlabeled), "test": len(self.split.test)}

    def _make_connector(self, run_id: str) -> Connector:
        a, c = self.config["annotation"], self.config["connector"]
        kind = a["connector"]
        if kind == "simulated":
            gold = {self.pool.external_id(run_id, int(i)): self.pool.label_of(int(i)) for i in self.split.unlabeled}
            s = self.config["annotators"]
            crowd = SimulatedAnnotators(n_annotators=int(s["n"]), error_rate=float(s["error_rate"]),
                                        skip_rate=float(s["skip_rate"]), latency_s=tuple(s["latency_s"]),
                                        seed=self.seed)
            return SimulatedConnector(gold, crowd, state_path=self.run_dir / "simulated-platform.json",
                                      answer_key=lambda external_id: external_id.rsplit("-", 1)[-1])
        if kind == "labelstudio":
            from connectors.labelstudio import LabelStudioConnector, project_title

            inner = LabelStudioConnector(c["url"], project_title(run_id, self.config.task.name),
                                         api_key_env=c["api_key_env"] or "LABEL_STUDIO_API_KEY",
                                         attach_predictions=bool(a["suggestions"]), timeout=float(c["timeout"]))
        elif kind == "argilla":
            from connectors.argilla import ArgillaConnector

            inner = ArgillaConnector(c["url"], workspace=c["workspace"], dataset=f"{run_id}-{self.config.task.name}",
                                     api_key_env=c["api_key_env"] or "ARGILLA_API_KEY", guidelines=c["guidelines"],
                                     timeout=float(c["timeout"]))
        else:
            raise InputError(f"[annotation] connector must be simulated, labelstudio or argilla; got {kind!r}.")
        return RetryingConnector(inner)

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
        if self.ctx is not None:
            self.ctx.connector.close()

    # --- the policy's view --------------------------------------------------------------------------
    def cost_model(self, corrected: bool = True) -> CostModel:
        """FLOP estimates of this run's compute; ``corrected``: scaled by what finished rounds really cost.

        Retraining and distillation are corrected separately (actual / raw estimate of each kind's
        finished rounds, within 0.2-5x): a regime can price their phases very differently.
        """
        m, init = self.config["models"], self.init
        model = CostModel(ComputePricer(self.config), "cpu" if m["device"] == "auto" else m["device"],
                          init["student_params"], init["teacher_params"], init["tokens_per_item"],
                          int(m["student_epochs"]), int(m["teacher_epochs"]), int(m["distill_epochs"]),
                          min_steps=int(m["min_steps"]), batch_size=int(m["batch_size"]))
        if not corrected:
            return model
        sums = {"retrain": [0.0, 0.0], "distill": [0.0, 0.0]}
        for r in self.ledger.rounds():
            s = r.summary or {}
            raw = r.decision.get("compute_estimate_raw", r.decision.get("compute_estimate"))
            if r.state == "done" and s.get("compute_micro") and raw and s.get("stopped") != "budget":
                kind = sums["distill" if r.arm == "distill" else "retrain"]
                kind[0], kind[1] = kind[0] + raw, kind[1] + s["compute_micro"]
        if sums["retrain"][0]:
            model.correction = min(5.0, max(0.2, sums["retrain"][1] / sums["retrain"][0]))
        if sums["distill"][0]:
            model.distill_correction = min(5.0, max(0.2, sums["distill"][1] / sums["distill"][0]))
        return model

    def compute_estimate(self, decision: Decision) -> tuple[int, float]:
        """What a decision's compute is expected to cost (as the policy saw it) and the raw FLOP estimate."""
        if decision.arm == "distill":
            return decision.amount_micro, decision.amount_micro / self.cost_model().distill_correction
        n = len(self.ctx.gold_labels()) + (decision.n_items if decision.arm == "annotate" else 0)  # + labels it buys
        n_dev = max(1, round(n * float(self.config["split"]["dev_fraction"])))
        n_train = max(1, n - n_dev)
        raw = self.cost_model(corrected=False).retrain(n_train, n_dev)
        return self.cost_model().retrain(n_train, n_dev), float(raw)

    def policy_state(self, extra_micro: int = 0) -> PolicyState:
        """The read-only state the policy decides on (``extra_micro``: money about to be granted)."""
        ctx, snap = self.ctx, self.ledger.snapshot()
        costs = self.cost_model()
        labels = ctx.gold_labels()
        n_dev = max(1, round(len(labels) * float(self.config["split"]["dev_fraction"])))
        n_train = max(1, len(labels) - n_dev)
        batch = int(self.config["annotation"]["batch_size"])
        spent = snap.spent_by_round
        obs = tuple(RoundObservation(r.round, r.arm, spent.get(r.round, 0), int(r.summary.get("n_labels", 0)),
                                     r.summary.get("dev"))
                    for r in snap.rounds if r.state == "done" and r.summary)
        states = ctx.item_states()
        return PolicyState(
            granted_micro=snap.totals.granted + extra_micro, available_micro=snap.totals.available + extra_micro,
            spent_by_arm=snap.spent_by_arm, rounds=obs,
            label_cost_micro=label_cost(self.config.label_price(), 1, int(self.config["prices"]["overlap"])),
            retrain_cost_micro=costs.retrain(n_train + batch, n_dev),
            distill_fixed_cost_micro=costs.distill_fixed(n_train, n_dev),
            distill_cost_per_1000_micro=costs.distill_per_1000(),
            n_labels=len(labels), n_available=len(states.indices("unlabeled")),
            n_unlabeled=len(ctx.unlabeled_for_distill(len(self.pool))), batch_size=batch)

    def next_decision(self) -> tuple[int, Decision]:
        """The round to run and its decision: a started round resumes with its recorded decision."""
        rounds = self.ledger.rounds()
        if rounds and rounds[-1].state == "started":
            d = rounds[-1].decision
            return rounds[-1].round, Decision(d["arm"], d["n_items"], d["amount_micro"], d["reason"],
                                              d.get("estimates", {}))
        rnd = rounds[-1].round + 1 if rounds else 0
        state = self.policy_state()
        if rnd == 0:
            amount = min(state.retrain_cost_micro * 2, state.available_micro)
            return 0, Decision("baseline", len(self.split.seed), amount, "the student on the seed labels")
        return rnd, self.policy.decide(state)

    # --- running ------------------------------------------------------------------------------------
    def grant(self, amount_micro: int) -> None:
        """Add money to the run (one ``--add``)."""
        self.ledger.grant(amount_micro, note="--add")
        self.ledger.log_event("granted", amount_micro=amount_micro)

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
            rnd, decision = self.next_decision()
            if decision.arm == "stop":
                self.ledger.log_event("stopped", reason=decision.reason, estimates=decision.estimates,
                                      available_micro=self.ledger.totals().available)
                return RunOutcome("stopped", f"Stopped: {decision.reason}. {self.ledger.totals()}.", done)
            # what the compute part was expected to cost, to correct later estimates by what it did cost
            estimate, raw = self.compute_estimate(decision)
            record = {**asdict(decision), "compute_estimate": estimate, "compute_estimate_raw": raw}
            if self.ledger.start_round(rnd, decision.arm, record):
                self.say(f"round {rnd}: {decision.arm} {decision.n_items} items, reserve "
                         f"{format_usd(decision.amount_micro)} ({decision.reason})")
            failpoints.reach("round-start", rnd)
            runner = {"baseline": run_baseline, "annotate": run_annotate, "distill": run_distill}[decision.arm]
            try:
                summary = runner(self.ctx, rnd, decision)
            except AwaitingApproval as wait:
                return RunOutcome("awaiting_approval", f"{wait} Approve it with `python -m budget.controller approve "
                                  f"{wait.batch_id} --run-dir {self.run_dir}`, then run again.", done)
            except AwaitingAnnotators as wait:
                return RunOutcome("awaiting_annotators", f"{wait} Run the same command again (or with just --run-dir "
                                  f"{self.run_dir}) to pull their work: no money is added, nothing is pushed twice.",
                                  done)
            failpoints.reach("round-end", rnd)
            prune(self.run_dir, self.ledger, check_keep(self.config["models"]["keep"]))
            dev = summary.get("dev")
            test = f", test {100 * summary['test']:.1f}" if summary.get("test") is not None else ""
            self.say(f"round {rnd}: {decision.arm} done: spent {format_usd(self.ledger.spent_by_round().get(rnd, 0))}"
                     f", labels {summary.get('n_labels')}, dev {'' if dev is None else f'{100 * dev:.1f}'}{test}; "
                     f"{self.ledger.totals()}")
            if summary.get("stopped") == "budget":
                self.say(f"round {rnd}: its training stopped early at the cap (no money left to extend its "
                         "reservation); the model trained so far is kept.")
            done += 1
        return RunOutcome("stopped", f"Stopped after {done} rounds (--max-rounds).", done)

    def plan(self, extra_micro: int) -> str:
        """The dry run: money, both arms' estimates and the policy's next decision; spends nothing."""
        state = self.policy_state(extra_micro)
        rnd, decision = (0, None) if not self.ledger.rounds() else self.next_decision()
        batch = min(state.batch_size, state.n_available)
        lines = [f"Run {self.init['run_id']} in {self.run_dir}: {self.pool!r}, seed {len(self.split.seed)}, "
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
        return "\n".join(lines)

    def report(self) -> dict[str, Path]:
        return write_report(self.ledger, self.run_dir / "report", self.config.task.metric)


# --- command line -------------------------------------------------------------------------------

def _load(config_path: str | None, run_dir: Path) -> ProjectConfig:
    if config_path:
        return load_config(config_path)
    stored = run_dir / "project.json"
    if stored.exists():
        raw = json.loads(stored.read_text())
        return load_config(raw=raw)
    data = write_demo_data(run_dir.parent / ".demo-data" / "bbc-news.jsonl")
    return load_config(raw=demo_config(data))


def _open(config: str | None, run_dir: str | None, seed: int, policy: str | None, **kw) -> Controller:
    rd = Path(run_dir or ("runs/" + (Path(config).stem if config else "demo")))
    try:
        cfg = _load(config, rd)
        return Controller(cfg, rd, seed=seed, policy=policy, **kw)
    except (ConfigError, AnnotationError, ModelingError, ValueError, FileNotFoundError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc


def _existing(run_dir: str) -> Ledger:
    try:
        return open_ledger(run_dir)
    except (RunNotFoundError, LedgerFileError) as exc:
        raise InputError(str(exc)) from exc


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--spend", "spend", metavar="DOLLARS",
              help="The run's budget: raise it to this many dollars (never twice: the same command again resumes).")
@click.option("--add", "add", metavar="DOLLARS", help="Add this many dollars to the run's budget, then run.")
@click.option("--config", type=click.Path(dir_okay=False), help="Project file (TOML). Default: the BBC News demo.")
@click.option("--run-dir", help="Run folder (ledger, models, report). Default: runs/<project file name> or runs/demo.")
@click.option("--policy", help="annotate | distill | split:F | adaptive (default: [policy] name).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, selection and training.")
@click.option("--dry-run", is_flag=True, help="Print the plan and both arms' estimates; spend nothing.")
@click.option("--auto-approve-under", metavar="DOLLARS",
              help="Approve annotation batches cheaper than this without a lead (default: the project file's).")
@click.option("--max-rounds", type=int, help="Stop after this many rounds.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, spend, add, config, run_dir, policy, seed, dry_run, auto_approve_under, max_rounds,
        quiet) -> None:
    """Spend a budget on labels or distillation, round by round, and report what each dollar bought.

    Example: python -m budget.controller --spend 500

    Without --config it runs the embedded demo (BBC News, simulated annotators, MiniLM student,
    MPNet teacher). --spend names the run's whole budget, so running the same command again after a
    crash resumes without adding money; --add adds money to a run.
    """
    if ctx.invoked_subcommand is not None:
        return
    if spend is not None and add is not None:
        raise InputError("Give --spend (the run's budget) or --add (more money), not both.")
    flag, text = ("--add", add) if add is not None else ("--spend", spend)
    try:
        amount = parse_usd(text, positive=True) if text is not None else 0
    except ValueError as exc:
        raise InputError(f"{flag} {text!r}: {exc}") from exc
    if policy is not None:
        try:
            make_policy(policy)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    if auto_approve_under is not None:
        try:
            parse_usd(auto_approve_under)
        except ValueError as exc:
            raise InputError(f"--auto-approve-under {auto_approve_under!r}: {exc}") from exc
    if quiet:  # also the libraries' own bars (transformers' shard writing, Argilla's record upload)
        os.environ["TQDM_DISABLE"] = "1"
        import transformers

        transformers.utils.logging.disable_progress_bar()
    c = _open(config, run_dir, seed, policy, progress=not quiet)
    if auto_approve_under is not None:
        c.config["annotation"]["auto_approve_under"] = auto_approve_under
    existing = c.ledger_path.exists()
    if not existing and amount == 0 and not dry_run:
        raise InputError(f"No budget: give --spend DOLLARS to start a run in '{c.run_dir}'.")
    per_item = label_cost(c.config.label_price(), 1, int(c.config["prices"]["overlap"]))
    # Only a new run is held to the price of one label: resuming an existing run (a round in flight,
    # a batch waiting, or nothing left to do) must never depend on money left for new work.
    if not existing and not dry_run and amount < per_item and c.policy_name != "distill":
        raise InputError(f"Budget {format_usd(amount)} is too small for one label "
                         f"({format_usd(per_item)} per item with overlap {c.config['prices']['overlap']}); "
                         f"spend at least {format_usd(per_item)}.")
    if dry_run and not existing:
        c.run_dir = Path(c.run_dir.parent / f".dry-run-{uuid.uuid4().hex[:6]}")
    try:
        c.open()
        if dry_run:
            extra = amount if flag == "--add" else max(0, amount - c.ledger.totals().granted)
            click.echo(c.plan(extra))
            return
        (c.run_dir / "project.json").write_text(json.dumps(c.config.to_dict(), indent=1, default=str))
        if amount and flag == "--add":
            c.grant(amount)
        elif amount:
            c.set_budget(amount)
        failpoints.reach("grant")
        outcome = c.run(max_rounds)
        paths = c.report()
        click.echo(outcome.message)
        click.echo(f"Report: {paths['markdown']} and {paths['plot']}")
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from exc
    except LedgerFileError as exc:
        raise InputError(str(exc)) from exc
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        c.close()
        if dry_run and not existing:
            import shutil

            shutil.rmtree(c.run_dir, ignore_errors=True)


@cli.command()
@click.option("--run-dir", default="runs/demo", show_default=True)
def status(run_dir: str) -> None:
    """Money and rounds of a run.

    Example: python -m budget.controller status --run-dir runs/demo
    """
    with _existing(run_dir) as ledger:
        click.echo(str(ledger.totals()))
        click.echo(f"run folder: {_size(folder_bytes(Path(run_dir)))} in {run_dir}")
        for r in ledger.rounds():
            s = r.summary or {}
            dev = f", dev {100 * s['dev']:.1f}" if s.get("dev") is not None else ""
            click.echo(f"round {r.round}: {r.arm} {r.state}{dev}")
        for b in ledger.batches():
            click.echo(f"batch {b.batch_id}: {b.state}, {len(b.payload['item_ids'])} items, "
                       f"{format_usd(b.total_micro)}")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


@cli.command("prune")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option("--keep", default="1", show_default=True,
              help="Latest students and teachers to keep besides the best student, or 'all'.")
def prune_command(run_dirs: tuple[str, ...], keep: str) -> None:
    """Shrink old run folders: drop finished phases' checkpoints and models that are not kept.

    The ledger, the report, the best student and the latest student and teacher stay; a round in
    flight is not touched, so a pruned run still resumes.

    Example: python -m budget.controller prune runs/*
    """
    try:
        count = check_keep(int(keep) if keep.lstrip("-").isdigit() else keep)
    except ValueError as exc:
        raise InputError(f"--keep {keep!r}: {str(exc).replace('[models] keep', 'it')}") from exc
    for run_dir in run_dirs:
        with _existing(run_dir) as ledger:
            before = folder_bytes(Path(run_dir))
            result = prune(Path(run_dir), ledger, count)
        click.echo(f"{run_dir}: freed {_size(result.freed_bytes)} ({len(result.removed)} files and folders); "
                   f"{_size(before - result.freed_bytes)} left.")


@cli.command()
@click.option("--run-dir", default="runs/demo", show_default=True)
@click.option("--metric", default=None, help="Name shown for the score (default: from the run's project).")
def report(run_dir: str, metric: str | None) -> None:
    """Write and print the report: table per round, Markdown, HTML and a PNG plot.

    Example: python -m budget.controller report --run-dir runs/demo
    """
    with _existing(run_dir) as ledger:
        if metric is None:
            stored = Path(run_dir) / "project.json"
            metric = json.loads(stored.read_text())["task"]["metric"] if stored.exists() else "score"
        paths = write_report(ledger, Path(run_dir) / "report", metric)
        click.echo(markdown(ledger, metric), nl=False)
        click.echo(f"Plot: {paths['plot']}")


@cli.command()
@click.option("--run-dir", default="runs/demo", show_default=True)
def proposals(run_dir: str) -> None:
    """List the batches (and compute spends) waiting for a lead's approval.

    Example: python -m budget.controller proposals --run-dir runs/demo
    """
    with _existing(run_dir) as ledger:
        pending = ledger.batches("proposed")
        if not pending:
            click.echo("No proposals wait for approval.")
        for rec in pending:
            click.echo("\n".join(proposal_lines(rec)))


def _decide(run_dir: str, batch_id: str, verb: str, **kw) -> None:
    with _existing(run_dir) as ledger:
        try:
            changed, message = decide(ledger, batch_id, verb, **kw)
        except DecisionError as exc:
            raise InputError(str(exc)) from exc
    if changed and verb == "approved":
        message += f" Run the controller again to push it: python -m budget.controller --run-dir {run_dir}"
    click.echo(message)


@cli.command()
@click.argument("batch_id")
@click.option("--run-dir", default="runs/demo", show_default=True)
@click.option("--by", default=lambda: os.environ.get("USER", "cli"), help="Who approves (recorded).")
def approve(batch_id: str, run_dir: str, by: str) -> None:
    """Approve a proposed batch; the next run pushes it. Approving twice pushes once.

    Example: python -m budget.controller approve demo-1a2b3c4d-r001 --by alice
    """
    _decide(run_dir, batch_id, "approved", by=by)


@cli.command()
@click.argument("batch_id")
@click.option("--run-dir", default="runs/demo", show_default=True)
@click.option("--by", default=lambda: os.environ.get("USER", "cli"), help="Who rejects (recorded).")
@click.option("--why", required=True, help="Why; recorded with the decision.")
def reject(batch_id: str, run_dir: str, by: str, why: str) -> None:
    """Reject a proposed batch: its money is released and its items are not proposed again at once.

    Example: python -m budget.controller reject demo-1a2b3c4d-r001 --why "too many near-duplicates"
    """
    _decide(run_dir, batch_id, "rejected", by=by, why=why)


cli.add_command(serve)


def main() -> None:  # pragma: no cover - the module's entry point
    cli(prog_name="python -m budget.controller")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
