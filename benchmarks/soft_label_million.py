"""Soft-label a million short texts in bounded memory: streamed from Parquet, logits memory-mapped on disk.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/soft_label_million.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soft_label_million.py --n 20000             # smoke run
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soft_label_million.py --n 20000 --kill-at-chunk 1

Builds a tiny BERT (hidden 32, 2 layers; :func:`budget.study.tiny.build_tiny_bert`), writes ``--n`` texts of the
tiny keyword task (:func:`budget.study.tiny.make_task`, 50,000 at a time) to a Parquet file, then streams them
through :func:`modeling.infer.soft_labels` (``--chunk-size`` texts tokenised and predicted at a time) into
a cache folder. Prints items/s, wall seconds and the process's peak RSS (``ru_maxrss``: the whole process,
the Parquet writing included). The target: 1,000,000 texts under 4 GiB.

The pool is never a Python list: :func:`iter_texts` reads the file lazily with polars, ``--read-rows``
rows at a time, once to hash and count the pool and once to predict.

``--kill-at-chunk K`` first runs a pass that is stopped (an exception from the model, as a killed process
would stop) while it predicts chunk K+1, then the timed pass resumes it: it predicts only the rows after K
chunks, and its phase record counts all of them. With ``--workdir`` the files are kept, so a real kill
(Ctrl-C, ``kill -9``) followed by the same command resumes the same way.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from budget.study.tiny import LABELS, build_tiny_bert, make_task
from modeling.infer import DEFAULT_CHUNK_SIZE, soft_labels
from modeling.models import load_classifier

WRITE_BLOCK = 50_000  # texts generated and written per Parquet row group


def write_texts(path: Path, n: int) -> Path:
    """``n`` texts of the tiny task in a one-column (``text``) Parquet file, written a block at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.ParquetFile(path).metadata.num_rows == n:
        return path
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, pa.schema([("text", pa.string())])) as writer:
        for block, start in enumerate(range(0, n, WRITE_BLOCK)):
            texts, _ = make_task(min(WRITE_BLOCK, n - start), seed=block)
            writer.write_table(pa.table({"text": texts}))
    tmp.replace(path)
    return path


def iter_texts(path: Path, text_fields: tuple[str, ...] = ("text",), read_rows: int = 65_536
               ) -> Callable[[], Iterator]:
    """A text source for :func:`modeling.infer.soft_labels`: each call streams ``path`` (Parquet or CSV)
    anew, ``read_rows`` rows at a time; one field gives texts, two give (first, second) pairs."""
    import polars as pl

    def texts() -> Iterator:
        scan = pl.scan_parquet(path) if path.suffix == ".parquet" else pl.scan_csv(path)
        for frame in scan.select(text_fields).collect_batches(chunk_size=read_rows):
            columns = [frame[f].to_list() for f in text_fields]
            yield from columns[0] if len(columns) == 1 else zip(*columns, strict=True)
    return texts


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _killed_pass(model, tokenizer, source, cache: Path, rows: int, **kw) -> None:
    """Run a pass that stops with an exception once ``rows`` rows are predicted (a killed process)."""
    class Killed(Exception):
        pass

    seen = [0]

    def hook(module, args, kwargs):
        if seen[0] >= rows:
            raise Killed
        seen[0] += kwargs["input_ids"].shape[0]

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        soft_labels(model, tokenizer, source, cache_dir=cache, **kw)
    except Killed:
        print(f"killed pass: stopped after {seen[0]:,} rows predicted")
    finally:
        handle.remove()


@click.command()
@click.option("--n", default=1_000_000, show_default=True, help="Texts to soft-label.")
@click.option("--chunk-size", default=DEFAULT_CHUNK_SIZE, show_default=True, help="Texts predicted at a time.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--read-rows", default=65_536, show_default=True, help="Rows read from the file at a time.")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--kill-at-chunk", default=None, type=int, help="First stop a pass in chunk K+1, then resume it.")
@click.option("--workdir", default=None, type=click.Path(path_type=Path),
              help="Keep the model, the Parquet file and the cache here (default: a temporary folder).")
def main(n: int, chunk_size: int, batch_size: int, read_rows: int, precision: str, kill_at_chunk: int | None,
         workdir: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="soft-label-million-") as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        data = write_texts(root / f"texts-{n}.parquet", n)
        teacher = load_classifier(build_tiny_bert(root / "tiny-bert", hidden=32, layers=2), LABELS)
        print(f"prepared {n:,} texts in {time.perf_counter() - started:.1f} s; "
              f"peak RSS so far {_peak_rss_gib():.2f} GiB")
        source = iter_texts(data, read_rows=read_rows)
        kw = {"chunk_size": chunk_size, "batch_size": batch_size, "precision": precision, "progress": False}
        if kill_at_chunk is not None:
            _killed_pass(teacher.model, teacher.tokenizer, source, root / "cache", kill_at_chunk * chunk_size, **kw)
        rows = [0]

        def count(module, args, kwargs):
            rows[0] += kwargs["input_ids"].shape[0]
        teacher.model.register_forward_pre_hook(count, with_kwargs=True)
        started = time.perf_counter()
        soft = soft_labels(teacher.model, teacher.tokenizer, source, cache_dir=root / "cache", **kw)
        wall = time.perf_counter() - started
        assert soft.logits.shape == (n, len(LABELS))
        print(f"soft-labelled {n:,} texts ({rows[0]:,} predicted by this pass, cached={soft.cached}) "
              f"in {wall:.1f} s wall: {rows[0] / wall:,.0f} items/s")
        print(f"phase record: {soft.phase.examples:,} examples, {soft.phase.seconds:.1f} s, "
              f"{soft.phase.padded_tokens:,} padded tokens, device {soft.phase.device}")
        print(f"peak RSS {_peak_rss_gib():.2f} GiB (target < 4 GiB); chunk {chunk_size:,}, batch {batch_size}, "
              f"precision {precision}; logits {soft.path.stat().st_size / 2**20:.1f} MiB at {soft.path}")


if __name__ == "__main__":
    main()
