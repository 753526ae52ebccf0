"""``python -m budget``: the same command line as ``python -m budget.controller`` (see :mod:`budget.cli`)."""

from budget.cli import main

main()
