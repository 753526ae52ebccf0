"""``python -m budget.study``: the decision study's command line (:func:`budget.study.run.main`)."""

from budget.study.run import main

main(prog_name="python -m budget.study")
