"""The command line: ``python -m budget.controller --spend 500`` and its subcommands.

A thin client of :class:`budget.controller.Controller` (after sqlite-utils' ``cli.py``): each command
parses its options, calls the library, prints, and maps library errors to one ``Error:`` line.

Exit status: 0 when the run ended, stopped, or waits for an approval or for annotators (the message
says what to run next); 2 for bad input (nothing is written); 1 when a platform or the ledger fails.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from annotation.exceptions import AnnotationError
from budget.approvals import DecisionError, RunNotFoundError, decide, open_ledger, proposal_lines
from budget.cli_errors import InputError, OneLineGroup
from budget.config import ConfigError, ProjectConfig, check_keep, load_config
from budget.controller import Controller
from budget.controller.serve import serve
from budget.demo import demo_config, write_demo_data
from budget.exceptions import LedgerError, LedgerFileError, UsageError
from budget.ledger import Ledger
from budget.money import format_usd, parse_usd
from budget.policy import make_policy
from budget.preflight import check_budget
from budget.report import markdown, write_report
from budget.runfolder import folder_bytes, format_bytes, prune
from connectors.exceptions import ConnectorError
from modeling.exceptions import ModelingError

__all__ = ["cli", "main"]


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
    except (ConfigError, AnnotationError, ModelingError, UsageError, ValueError, FileNotFoundError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc


def _check_money(c: Controller, flag: str, amount: int) -> None:
    """``--add`` needs a run to add to, and no budget may take a run past what the ledger keeps."""
    if not c.exists:
        if flag == "--add":
            raise InputError(f"--add adds money to a run, and '{c.run_dir}' has none yet; start it with --spend "
                             "DOLLARS.")
        granted = 0
    else:
        with _existing(str(c.run_dir)) as ledger:
            granted = ledger.totals().granted if flag == "--add" else 0
    try:
        check_budget(amount, granted, flag=flag)
    except UsageError as exc:
        raise InputError(str(exc)) from exc


def _existing(run_dir: str) -> Ledger:
    try:
        return open_ledger(run_dir)
    except (RunNotFoundError, LedgerFileError) as exc:
        raise InputError(str(exc)) from exc


@click.group(cls=OneLineGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--spend", "spend", metavar="DOLLARS",
              help="The run's budget: raise it to this many dollars (never twice: the same command again resumes).")
@click.option("--add", "add", metavar="DOLLARS", help="Add this many dollars to the run's budget, then run.")
@click.option("--config", type=click.Path(dir_okay=False), help="Project file (TOML). Default: the BBC News demo.")
@click.option("--run-dir", help="Run folder (ledger, models, report). Default: runs/<project file name> or runs/demo.")
@click.option("--policy", help="annotate | distill | split:F | adaptive (default: [policy] name).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the split, selection and training.")
@click.option("--dry-run", is_flag=True, help="Print the plan and both arms' estimates; spend nothing.")
@click.option("--auto-approve-under", metavar="DOLLARS",
              help="Approve annotation batches cheaper than this without a lead (default: the project file's).")
@click.option("--max-rounds", type=click.IntRange(min=0),
              help="Stop after this many rounds (0: take the money, run none).")
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
    c = _open(config, run_dir, seed, policy, progress=not quiet, auto_approve_under=auto_approve_under,
              say=click.echo)
    _check_money(c, flag, amount)
    try:
        if dry_run:
            click.echo(c.dry_run(amount, add=flag == "--add"))
            return
        c.check_new_budget(amount)
        with c:
            c.fund(amount, add=flag == "--add")
            outcome = c.run(max_rounds)
            paths = c.report()
        click.echo(outcome.message)
        click.echo(f"Report: {paths['markdown']} and {paths['plot']}")
    except (UsageError, LedgerFileError) as exc:
        raise InputError(str(exc)) from exc
    except (ConnectorError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option("--run-dir", default="runs/demo", show_default=True)
def status(run_dir: str) -> None:
    """Money and rounds of a run.

    Example: python -m budget.controller status --run-dir runs/demo
    """
    with _existing(run_dir) as ledger:
        click.echo(str(ledger.totals()))
        click.echo(f"run folder: {format_bytes(folder_bytes(Path(run_dir)))} in {run_dir}")
        for r in ledger.rounds():
            dev = f", dev {100 * r.summary.dev:.1f}" if r.summary and r.summary.dev is not None else ""
            click.echo(f"round {r.round}: {r.arm} {r.state}{dev}")
        for b in ledger.batches():
            click.echo(f"batch {b.batch_id}: {b.state}, {len(b.payload.item_ids)} items, "
                       f"{format_usd(b.total_micro)}")


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
        click.echo(f"{run_dir}: freed {format_bytes(result.freed_bytes)} ({len(result.removed)} files and folders); "
                   f"{format_bytes(before - result.freed_bytes)} left.")


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


def main() -> None:  # pragma: no cover - the entry point of `python -m budget.controller` and `python -m budget`
    cli(prog_name="python -m budget.controller")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
