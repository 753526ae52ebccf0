"""Errors the command-line clients raise (``budget.cli``, ``budget.web``'s ``serve``, ``budget.study``).

Click shows one as a single ``Error: ...`` line and exits with status 2. The library never raises
these: it raises :mod:`budget.exceptions`' errors, and each client maps them here.
"""

from __future__ import annotations

import click

__all__ = ["InputError"]


class InputError(click.ClickException):
    """Raised for bad input on the command line: a one-line message, exit status 2, nothing written."""

    exit_code = 2
