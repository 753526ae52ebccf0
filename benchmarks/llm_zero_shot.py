"""How well does a small prompted LLM label the suite's tasks, with no examples and with the seed's examples?

For each task (a project file), the run's split at seed 0 as the controller makes it, the prompt a prompted
teacher would send (:func:`budget.round.prompted.label_prompt`: the seed's training labels as examples, every
label before any twice) and the same prompt with none, asked of the ``[llm]`` model (default SmolLM2-135M-
Instruct, in this process) for ``--items`` test items drawn at random, each text cut to ``[llm] max_chars``. Reports
the task's metric of the LLM's most likely label against the test labels, beside always answering the
commonest label, and the share of the answer's probability that fell on a label at all (``matched``: how well
the model follows the prompt).

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/llm_zero_shot.py \\
        benchmarks/study/suite/{trec,subj,mpqa,bbc,multipit,stanceosaurus}.toml --items 100

Results: ``benchmarks/results/llm_zero_shot.json`` (``--tag`` names another file) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from annotation.pool import load_pool
from budget.config import load_config
from budget.controller.run_init import run_split
from budget.round.prompted import item_text, label_prompt
from modeling.llm_labels import llm_votes
from modeling.metrics import score
from modeling.prompted import LocalChatModel

HERE = Path(__file__).parent


def measure(project: Path, model: LocalChatModel, items: int, examples: int, cache: Path) -> dict:
    """One task's row: the metric with the seed's examples and with none, the commonest label's, matched."""
    config = load_config(project)
    config = config.replace(llm={"model": config.llm.model or "smollm2-135m", "examples": examples,
                                 "input_per_million": "0", "output_per_million": "0"})
    pool = load_pool(config.task)
    split, _ = run_split(config, pool, 0, simulated=True)
    test = np.sort(np.random.default_rng(0).permutation(split.test)[:items])  # a data file may be sorted by label
    gold = pool.gold[test]
    texts = [item_text(pool.texts[i], config.llm.max_chars) for i in test]
    commonest = np.full(len(gold), np.bincount(pool.gold[split.seed]).argmax())
    metric = config.task.metric
    row = {"task": config.task.name, "metric": metric, "items": len(test), "labels": len(pool.labels),
           "commonest": 100 * score(gold, commonest, pool.labels).get(metric)}
    for name, k in (("zero_shot", 0), ("few_shot", examples)):
        prompt = label_prompt(config.replace(llm={"examples": k}), pool, split, 0)
        started = time.monotonic()
        votes = llm_votes(model, prompt, texts, cache_dir=cache, price=lambda i, o: 0, progress=True)
        row[name] = 100 * score(gold, votes.hard, pool.labels).get(metric)
        row[f"{name}_matched"] = float(votes.matched.mean())
        row[f"{name}_tokens_per_item"] = votes.input_tokens / max(1, votes.n_items)
        row[f"{name}_seconds"] = time.monotonic() - started
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="+", type=Path)
    parser.add_argument("--items", type=int, default=100, help="test items per task (default 100)")
    parser.add_argument("--examples", type=int, default=4, help="seed examples in the few-shot prompt (4)")
    parser.add_argument("--model", default="smollm2-135m", help="a chat model run in this process")
    parser.add_argument("--tag", default="", help="results/llm_zero_shot-TAG.json")
    args = parser.parse_args()
    model = LocalChatModel.load(args.model, device="cpu")
    out = HERE / "results" / f"llm_zero_shot{'-' + args.tag if args.tag else ''}.json"
    rows = [measure(p, model, args.items, args.examples, HERE / "results" / ".llm-cache") for p in args.projects]
    out.write_text(json.dumps({"model": args.model, "items": args.items, "rows": rows}, indent=1))
    print(f"| task (metric) | commonest label | {args.model} zero-shot | few-shot ({args.examples} seed labels) "
          f"| matched, zero / few |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} ({r['metric']}, {r['labels']} labels) | {r['commonest']:.1f} | {r['zero_shot']:.1f} | "
              f"{r['few_shot']:.1f} | {r['zero_shot_matched']:.2f} / {r['few_shot_matched']:.2f} |")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
