"""``python -m budget``: the same command line as ``python -m budget.controller`` (see :mod:`budget.controller.cli`)."""

from budget.controller.cli import main

main()
