"""``python -m budget.controller``: the command line (:mod:`budget.controller.cli`)."""

from budget.controller.cli import main

main()
