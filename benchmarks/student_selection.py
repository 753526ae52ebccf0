"""Which of a training's checkpoints should a run keep, when its dev set has 18 to 90 items?

For each task (a project file), size (labels bought, split into training and dev items by the project's
``dev_fraction`` as the controller splits them), label draw and training seed, trains the project's student
through its whole schedule (no early stop) and records, at every dev evaluation, the dev score, the dev
cross-entropy and the test score. Every way of choosing the kept model is then scored on the same trainings:

- ``metric``: the first checkpoint with the best dev score, stopping after ``patience`` evaluations without
  a gain (the recipe until now);
- ``loss``: the checkpoint with the lowest dev cross-entropy, same patience; ``loss_balanced``: each class's
  cross-entropy weighing alike (as macro-F1 weighs them);
- ``last``: the model at the end of the schedule (its learning rate decayed to 0); dev only reports.

It reports each rule's mean test score per task, how far it falls below the best checkpoint of the same
training (what a perfect choice would keep), and the retrain noise: the spread of the test score between
two training seeds on the same labels, which the policy's prior calls ``retrain_sd``.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/student_selection.py \
        benchmarks/study/suite/{trec,subj,mpqa,bbc,multipit,stanceosaurus}.toml --tag suite
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from annotation.pool import load_pool
from budget.config import load_config
from modeling.infer import predict_logits
from modeling.metrics import score
from modeling.models import load_classifier
from modeling.train import TrainData, train

HERE = Path(__file__).parent
RULES = ("metric", "loss", "loss_balanced", "last")
train_module = importlib.import_module("modeling.train")  # the module (the package exports train())


@dataclass(frozen=True)
class Evaluation:
    """One dev evaluation of a training: its dev score and cross-entropy, and the test score of that model."""

    dev: float
    dev_loss: float
    test: float
    dev_loss_balanced: float  # each class's mean cross-entropy, averaged over the classes present


class Recorder:
    """Stands in for the training loop's dev evaluation: scores dev as before, and also the test set."""

    def __init__(self, test_texts: list, test_gold: np.ndarray, metric: str, max_length: int) -> None:
        self.test_texts, self.test_gold, self.metric, self.max_length = test_texts, test_gold, metric, max_length
        self.trace: list[Evaluation] = []

    def __call__(self, model, tokenizer, texts, gold, labels, **kwargs):
        kwargs.pop("phase_name", None)
        dev_logits = predict_logits(model, tokenizer, texts, **kwargs)
        test_logits = predict_logits(model, tokenizer, self.test_texts, **kwargs)
        dev_scores = score(gold, dev_logits.argmax(axis=1), labels)
        self.trace.append(Evaluation(dev_scores.get(self.metric), _cross_entropy(dev_logits, gold),
                                     score(self.test_gold, test_logits.argmax(axis=1), labels).get(self.metric),
                                     _cross_entropy(dev_logits, gold, balanced=True)))
        return dev_scores


def _cross_entropy(logits: np.ndarray, gold: np.ndarray, balanced: bool = False) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    nll = -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(gold)), gold]
    return float(np.mean([nll[gold == c].mean() for c in np.unique(gold)]) if balanced else nll.mean())


def choose(trace: list[Evaluation], rule: str, patience: int) -> int:
    """The evaluation ``rule`` keeps, as the training loop would with ``patience`` (0: never stops early)."""
    if rule == "last":
        return len(trace) - 1
    key = [e.dev if rule == "metric" else -e.dev_loss if rule == "loss" else -e.dev_loss_balanced for e in trace]
    best, bad = 0, 0
    for i in range(1, len(trace)):
        if key[i] > key[best]:
            best, bad = i, 0
        else:
            bad += 1
            if patience and bad >= patience:
                break
    return best


def run_one(cfg, pool, tr: np.ndarray, dev: np.ndarray, test: np.ndarray, seed: int,
            min_steps: int | None = None) -> list[Evaluation]:
    """Train the project's student on ``tr`` with dev ``dev`` through its whole schedule; its evaluations."""
    tc = cfg.models.train_config("student", seed=seed, metric=cfg.task.metric, progress=False)
    tc.min_steps = tc.min_steps if min_steps is None else min_steps
    tc.patience, tc.select = 0, "best"  # every evaluation of the whole schedule, as the trace
    recorder = Recorder([pool.texts[i] for i in test], pool.gold[test], cfg.task.metric, cfg.models.max_length)
    model = load_classifier(cfg.models.student, pool.labels, seed=seed, cache_dir=HERE.parent / "runs" / ".model-cache")
    original, train_module.evaluate = train_module.evaluate, recorder
    try:
        train(model.model, model.tokenizer,
              TrainData([pool.texts[i] for i in tr], pool.gold[tr], pool.labels,
                        dev=([pool.texts[i] for i in dev], pool.gold[dev])), tc)
    finally:
        train_module.evaluate = original
    return recorder.trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("projects", type=Path, nargs="*")
    ap.add_argument("--sizes", type=int, nargs="+", default=[60, 160, 310], help="labels bought (train + dev)")
    ap.add_argument("--draws", type=int, default=2, help="random label sets per size")
    ap.add_argument("--seeds", type=int, default=2, help="training seeds per label set")
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--min-steps", type=int, default=None, help="instead of the project's [models] min_steps")
    ap.add_argument("--tag", default="run", help="names the results file: results/student_selection-TAG.json")
    ap.add_argument("--table-only", action="store_true", help="print the table of the trainings run so far")
    ap.add_argument("--against", help="also compare the kept models with those of results file TAG, paired")
    args = ap.parse_args()
    out = HERE / "results" / f"student_selection-{args.tag}.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []  # resumes
    done = {(r["task"], r["labels"], r["draw"], r["seed"]) for r in rows}
    if args.table_only:
        args.projects = []
    for project in args.projects:
        cfg = load_config(project)
        pool = load_pool(cfg.task)
        for draw in range(args.draws):
            order = np.random.default_rng(1000 + draw).permutation(pool.labeled)
            test, rest = order[:args.test], order[args.test:]
            for size in args.sizes:
                n_dev = max(1, round(size * cfg.split.dev_fraction))
                dev, tr = rest[:n_dev], rest[n_dev:size]
                for seed in range(args.seeds):
                    if (cfg.task.name, size, draw, seed) in done:
                        continue
                    t0 = time.perf_counter()
                    trace = run_one(cfg, pool, tr, dev, test, seed, args.min_steps)
                    row = {"task": cfg.task.name, "labels": size, "draw": draw, "seed": seed,
                           "patience": cfg.models.patience,
                           "min_steps": cfg.models.min_steps if args.min_steps is None else args.min_steps,
                           "seconds": round(time.perf_counter() - t0, 1),
                           "trace": [[round(100 * e.dev, 2), round(e.dev_loss, 4), round(100 * e.test, 2),
                                      round(e.dev_loss_balanced, 4)] for e in trace]}
                    rows.append(row)
                    out.write_text(json.dumps({"rows": rows}, indent=0))
                    print(json.dumps({k: v for k, v in row.items() if k != "trace"}),
                          f"test at each evaluation: {[t[2] for t in row['trace']]}", flush=True)
    print(table(rows))
    if args.against:
        print(against(rows, json.loads((HERE / "results" / f"student_selection-{args.against}.json").read_text())
                      ["rows"], args.tag, args.against))
    print(f"written to {out}")


def against(rows: list[dict], other: list[dict], tag: str, other_tag: str) -> str:
    """Each rule's kept model here against the same training (task, labels, draw, seed) in ``other``."""
    def kept(rs: list[dict]) -> pl.DataFrame:
        out = []
        for r in rs:
            trace = [Evaluation(d / 100, loss, t / 100, lb) for d, loss, t, lb in r["trace"]]
            out += [{"task": r["task"], "labels": r["labels"], "draw": r["draw"], "seed": r["seed"], "rule": rule,
                     "test": 100 * trace[choose(trace, rule, r["patience"])].test, "seconds": r["seconds"]}
                    for rule in RULES]
        return pl.DataFrame(out)
    both = kept(rows).join(kept(other), on=["task", "labels", "draw", "seed", "rule"], suffix="_other")
    lines = [f"| rule | {tag} minus {other_tag}, test (mean over {both.height // len(RULES)} trainings) | "
             "90% bootstrap | seconds ratio |", "|---|---|---|---|"]
    for rule in RULES:
        b = both.filter(pl.col("rule") == rule)
        gain = (b["test"] - b["test_other"]).to_numpy()
        lo, hi = np.percentile(np.random.default_rng(0).choice(gain, (4000, len(gain))).mean(axis=1), [5, 95])
        lines.append(f"| {rule} | {gain.mean():+.1f} | {lo:+.1f} to {hi:+.1f} | "
                     f"{b['seconds'].sum() / b['seconds_other'].sum():.2f} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """Per task and rule: mean test score kept, mean shortfall from the training's best checkpoint, how far
    the kept model's dev score overstates its test score, and the retrain noise (rms over label sets of the
    two seeds' difference / sqrt 2)."""
    picked = []
    for r in rows:
        trace = [Evaluation(d / 100, loss, t / 100, lb) for d, loss, t, lb in r["trace"]]
        best = max(e.test for e in trace)
        for rule in RULES:
            i = choose(trace, rule, r["patience"])
            picked.append({"task": r["task"], "labels": r["labels"], "draw": r["draw"], "seed": r["seed"],
                           "rule": rule, "test": 100 * trace[i].test, "short": 100 * (best - trace[i].test),
                           "optimism": 100 * (trace[i].dev - trace[i].test)})
    df = pl.DataFrame(picked)
    noise = (df.group_by("task", "labels", "draw", "rule").agg(pl.col("test").std().alias("sd"))
             .group_by("task", "rule").agg((pl.col("sd").pow(2).mean().sqrt()).alias("retrain_sd")))
    summary = (df.group_by("task", "rule").agg(pl.col("test").mean().alias("test"),
                                               pl.col("short").mean().alias("below_best"),
                                               pl.col("optimism").mean().alias("optimism"))
               .join(noise, on=["task", "rule"], how="left").sort("task", "rule"))
    overall = (summary.group_by("rule").agg(pl.col("test").mean(), pl.col("below_best").mean(),
                                            pl.col("optimism").mean(),
                                            (pl.col("retrain_sd").pow(2).mean().sqrt()))
               .with_columns(pl.lit("all tasks").alias("task")).select(summary.columns))
    lines = ["| task | rule | mean test | below the training's best | dev minus test | retrain sd |",
             "|---|---|---|---|---|---|"]
    for s in pl.concat([summary, overall.sort("rule")]).iter_rows(named=True):
        sd = "-" if s["retrain_sd"] is None else f"{s['retrain_sd']:.1f}"
        lines.append(f"| {s['task']} | {s['rule']} | {s['test']:.1f} | {s['below_best']:.1f} | "
                     f"{s['optimism']:+.1f} | {sd} |")
    wide = df.pivot(on="rule", index=["task", "labels", "draw", "seed"], values="test")
    gain = (wide["last"] - wide["metric"]).to_numpy()
    draws = np.random.default_rng(0).choice(gain, (4000, len(gain))).mean(axis=1)
    lo, hi = np.percentile(draws, [5, 95])
    lines.append(f"\nlast minus metric, paired over {len(gain)} trainings: {gain.mean():+.1f} test points "
                 f"(90% bootstrap {lo:+.1f} to {hi:+.1f}); higher in {(gain > 0).sum()}, lower in {(gain < 0).sum()}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
