"""Does the student's training recipe hold up on a few dozen to a few hundred labels?

Trains the project's student (``[models]`` of a project file, e.g. the decision study's MultiPIT task) on
random label sets of several sizes and seeds, early-stopping on a random dev set as the controller does,
and reports the test score of each and how many collapsed (predicted one class for more than 90% of the
test items: a binary task then scores at chance). Run it before and after a change to the recipe
(``modeling/train.py`` or the project's ``[models]``) and compare the two JSON files it writes.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/student_recipe.py \
        benchmarks/study/multipit.toml --sizes 42 100 200 --seeds 0 1 2 --tag after
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from annotation.pool import load_pool
from budget.config import load_config
from modeling.infer import predict_logits
from modeling.metrics import score
from modeling.models import load_classifier
from modeling.train import TrainData, train

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[42, 100, 200], help="training labels per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dev", type=int, default=40, help="random dev items (the controller's early stopping)")
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--tag", default="run", help="names the results file: results/student_recipe-TAG.json")
    args = ap.parse_args()

    cfg = load_config(args.project)
    pool = load_pool(cfg.task)
    labeled = pool.labeled
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(1000 + seed)
        order = rng.permutation(labeled)
        test, dev, rest = order[:args.test], order[args.test:args.test + args.dev], order[args.test + args.dev:]
        for size in args.sizes:
            tr = rest[:size]
            tc = cfg.models.train_config("student", seed=seed, metric=cfg.task.metric, progress=False)
            model = load_classifier(cfg.models.student, pool.labels, seed=seed,
                                    cache_dir=HERE.parent / "runs" / ".model-cache")
            t0 = time.perf_counter()
            result = train(model.model, model.tokenizer,
                           TrainData([pool.texts[i] for i in tr], pool.gold[tr], pool.labels,
                                     dev=([pool.texts[i] for i in dev], pool.gold[dev])), tc)
            seconds = time.perf_counter() - t0
            pred = predict_logits(model.model, model.tokenizer, [pool.texts[i] for i in test],
                                  max_length=cfg.models.max_length, progress=False).argmax(axis=1)
            s = score(pool.gold[test], pred, pool.labels)
            top_share = float(np.bincount(pred, minlength=len(pool.labels)).max() / len(pred))
            row = {"seed": seed, "labels": size, "test": round(100 * s.get(cfg.task.metric), 1),
                   "steps": result.steps, "stopped": result.stopped, "collapsed": top_share > 0.9,
                   "seconds": round(seconds, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = HERE / "results" / f"student_recipe-{args.tag}.json"
    out.write_text(json.dumps({"project": str(args.project), "models": cfg.to_dict().get("models"),
                               "rows": rows}, indent=1, default=str))
    print("\n| labels | mean test | min test | collapsed | mean steps |\n|---|---|---|---|---|")
    for size in args.sizes:
        r = [x for x in rows if x["labels"] == size]
        print(f"| {size} | {np.mean([x['test'] for x in r]):.1f} | {min(x['test'] for x in r):.1f} | "
              f"{sum(x['collapsed'] for x in r)}/{len(r)} | {np.mean([x['steps'] for x in r]):.0f} |")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
