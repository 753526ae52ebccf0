"""The controller: a run's rounds, from its project file to its report (:class:`Controller`).

``python -m budget.controller`` runs the command line (:mod:`budget.controller.cli`), a thin client of it.
"""

from budget.controller.controller import Controller, RunOutcome

__all__ = ["Controller", "RunOutcome"]
