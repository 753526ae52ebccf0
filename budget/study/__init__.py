"""The decision study: a grid of simulated controller runs, one per cell, and what they say about the policies.

``run`` (the grid and its command line, ``python -m budget.study``), ``cells`` (one cell, its run and its
``cell.json``), ``ray_cells`` (cells as Ray tasks), ``reseed`` (final students trained again with other seeds),
``report`` (``results.csv``, ``summary.md``, the plot), ``suite`` (the suite's headline), ``version`` (the code a
cell ran), ``regimes`` (compute-price regimes) and ``tiny`` (the quick study's tiny task and models).
"""
