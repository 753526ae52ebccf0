"""Is a student distilled from the average of several teacher seeds better or steadier than from one teacher?

For each split seed: the decision study's split of a project (its seed labels plus ``--bought`` labels drawn
from the unlabeled pool, 30% of them a random dev set), ``--teachers`` teachers fine-tuned with different
seeds (``[models]`` teacher settings, best epoch on dev, as a distillation round trains them), each
soft-labelling the rest of the pool; then one student distilled from each teacher alone and one from the
mean of their logits (what :mod:`budget.round.distill` does for a decision with ``teachers`` above one).
Reports every teacher's and student's test score.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/teacher_ensemble.py \
        benchmarks/study/multipit.toml --splits 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from annotation.pool import load_pool, split_pool
from budget.config import load_config
from modeling.infer import predict_logits, soft_labels
from modeling.models import load_classifier
from modeling.train import SoftTargets, TrainData, train

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--bought", type=int, default=25, help="labels bought on top of the seed labels")
    ap.add_argument("--teachers", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "teacher_ensemble.json")
    args = ap.parse_args()

    cfg = load_config(args.project)
    pool = load_pool(cfg.task)
    results = {}
    for split_seed in args.splits:
        results[str(split_seed)] = one_split(cfg, pool, split_seed, args.bought, args.teachers)
        args.out.write_text(json.dumps({"project": str(args.project), "bought": args.bought, "splits": results},
                                       indent=1))
    singles = [s for r in results.values() for s in r["students_single"]]
    ensembles = [r["student_ensemble"] for r in results.values()]
    print(f"students of one teacher: mean {np.mean(singles):.3f}, worst {min(singles):.3f}; "
          f"of the mean of {args.teachers}: mean {np.mean(ensembles):.3f}, worst {min(ensembles):.3f}")


def one_split(cfg, pool, split_seed: int, n_bought: int, n_teachers: int) -> dict:
    """Teachers, their students and the ensemble's student on one split of the project."""
    m = cfg.models
    split = split_pool(pool, seed=split_seed, seed_size=int(cfg.split.seed_size), test_size=cfg.split.test_size)
    rng = np.random.default_rng(split_seed)
    unlabeled = np.sort(rng.permutation(split.unlabeled)[:cfg.split.max_unlabeled])
    bought = rng.permutation(unlabeled)[:n_bought]
    labeled = rng.permutation(np.concatenate([split.seed, bought]))
    n_dev = round(len(labeled) * cfg.split.dev_fraction)
    dev_i, train_i = labeled[:n_dev], labeled[n_dev:]
    rest = [i for i in unlabeled if i not in set(bought)]

    def texts(idx) -> list:
        return [pool.texts[i] for i in idx]

    dev, test_y = (texts(dev_i), pool.gold[dev_i]), pool.gold[split.test]

    def test_score(model) -> float:
        logits = predict_logits(model.model, model.tokenizer, texts(split.test), max_length=m.max_length)
        return float((np.asarray(logits).argmax(1) == test_y).mean())

    logits, teachers = [], []
    with tempfile.TemporaryDirectory() as cache:
        for k in range(n_teachers):
            seed, started = split_seed + 1000 * k, time.perf_counter()  # the seeds distill_round gives
            teacher = load_classifier(m.teacher, pool.labels, seed=seed)
            train(teacher.model, teacher.tokenizer, TrainData(texts(train_i), pool.gold[train_i], pool.labels, dev=dev),
                  m.train_config("teacher", seed=seed, metric="accuracy", progress=False))
            soft = soft_labels(teacher.model, teacher.tokenizer, texts(rest), cache_dir=f"{cache}/{k}",
                               max_length=m.max_length)
            logits.append(np.array(soft.logits))
            teachers.append(test_score(teacher))
            print(f"split {split_seed} teacher {k}: test {teachers[-1]:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)

    def student(targets: np.ndarray, tag: str) -> float:
        model = load_classifier(m.student, pool.labels, seed=split_seed)
        train(model.model, model.tokenizer, TrainData(texts(train_i), pool.gold[train_i], pool.labels, dev=dev,
                                                      soft=SoftTargets(texts(rest), targets)),
              m.train_config("distill", seed=split_seed, metric="accuracy", progress=False))
        acc = test_score(model)
        print(f"split {split_seed} student of {tag}: test {acc:.3f}", flush=True)
        return acc

    single = [student(x, f"teacher {k}") for k, x in enumerate(logits)]
    return {"labels": len(labeled), "teachers": teachers, "students_single": single,
            "student_ensemble": student(np.mean(logits, axis=0), "the mean")}


if __name__ == "__main__":
    main()
