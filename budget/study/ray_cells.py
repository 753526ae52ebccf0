"""The decision study on a Ray cluster: ``python -m budget.study ... --ray ADDRESS``.

Each unfinished cell becomes one Ray task that runs :func:`budget.study.cells.run_cell` in the cell's own
run folder under the study folder, with the study's shared phase cache beside the cells. The driver
(the machine that ran the command) writes each cell's ``cell.json`` as its task returns, so a study
stopped half-way resumes like the serial one: finished cells are read back, cells killed half-way
resume from their ledgers, and only the rest are submitted again.

What the cluster must give:

- the study folder on storage every node sees, at the same absolute path (an NFS mount, say): the
  run folders, the phase cache (whose entries appear whole or not at all) and the model cache live there;
- the project installed on every node (``bash scripts/setup.sh``), the same version as the driver's.

A cell reserves ``cpus_per_cell`` CPUs and runs with ``OMP_NUM_THREADS`` set to that number, so the
cells on one node use the cores Ray gave them and no more (torch would otherwise start a thread per
core in every cell, or inherit whatever the shell that started the node had).
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from budget.config import ProjectConfig
from budget.exceptions import UsageError
from budget.study.cells import Cell, CellResult, format_score, read_result, run_cell, write_result

__all__ = ["run_cells", "task_options"]


def task_options(cpus_per_cell: int) -> dict:
    """Ray options of a cell's task: its CPUs, and thread counts that match them."""
    threads = str(cpus_per_cell)
    return {"num_cpus": cpus_per_cell,
            "runtime_env": {"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                                         "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}}}


def run_cells(out: Path, jobs: list[tuple[Cell, ProjectConfig]], *, address: str, cpus_per_cell: int = 1,
              progress: bool = True) -> list[CellResult]:
    """Run every unfinished cell of ``jobs`` (a cell and its config) as a Ray task; results in the order of ``jobs``.

    ``address`` is passed to ``ray.init``: 'auto' joins the cluster this machine is part of, 'local'
    starts one here, 'ray://host:10001' goes through Ray Client. A process that already called
    ``ray.init`` uses that cluster instead, and keeps it. Nothing is started when every cell is finished.

    Raises
    ------
    UsageError
        If Ray is not installed (the study's command line shows it as one line, exit 2).
    RuntimeError
        If some cells failed; the others are saved, and running the study again retries only those.
    """
    results: dict[Cell, CellResult] = {}
    todo = []
    for cell, config in jobs:
        done = out / "cells" / cell.folder / "cell.json"
        if done.exists():
            results[cell] = read_result(done)
        else:
            todo.append((cell, config))
    if todo:
        results.update(_run_on_ray(out, todo, address=address, cpus_per_cell=cpus_per_cell, progress=progress,
                                   finished=len(results)))
    return [results[cell] for cell, _ in jobs]


def _run_on_ray(out: Path, todo: list[tuple[Cell, ProjectConfig]], *, address: str, cpus_per_cell: int,
                progress: bool, finished: int) -> dict[Cell, CellResult]:
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--ray needs Ray: pip install 'annotate-or-distill[ray]' (ray>=2.40).") from exc
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address)
    try:
        task = ray.remote(run_cell).options(**task_options(cpus_per_cell))
        pending = {task.remote(cell, config, out / "cells" / cell.folder, out): cell for cell, config in todo}
        return _collect(ray, pending, out, progress=progress, total=finished + len(todo), finished=finished)
    finally:
        if started_here:
            ray.shutdown()


def _collect(ray, pending: dict, out: Path, *, progress: bool, total: int, finished: int) -> dict[Cell, CellResult]:
    """Save each cell's result as its task returns; raise at the end if any failed."""
    results, failed = {}, []
    with tqdm(total=total, initial=finished, desc="study cells", unit="cell", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the cell raised, or its worker died more often than retried
                failed.append((cell, exc))
                bar.set_postfix_str(f"{cell.folder}: failed")
                continue
            write_result(out / "cells" / cell.folder / "cell.json", result)
            results[cell] = result
            bar.set_postfix_str(f"{cell.folder}: test {format_score(result.final_test)}")
            bar.update(1)
    if failed:
        cell, exc = failed[0]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise RuntimeError(f"{len(failed)} of {len(failed) + len(results)} cells failed (first: {cell.folder}: "
                           f"{first}); the others are saved, run the study again to retry the failed ones.") from exc
    return results
