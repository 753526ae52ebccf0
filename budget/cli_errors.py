"""Errors the command-line clients raise (``budget.controller.cli``, ``budget.web``'s ``serve``, ``budget.study``).

Click shows one as a single ``Error: ...`` line and exits with status 2. The library never raises
these: it raises :mod:`budget.exceptions`' errors, and each client maps them here.
"""

from __future__ import annotations

import sys

import click

__all__ = ["InputError", "OneLineGroup", "OneLineCommand"]


class InputError(click.ClickException):
    """Raised for bad input on the command line: a one-line message, exit status 2, nothing written."""

    exit_code = 2


class _OneLine:
    """A usage error (a bad flag or value) as one ``Error:`` line with exit status 2, for any click command.

    Click prints the usage and a hint above such an error; a newcomer reads the first line, and a script
    that checks our one-line errors would read three. ``--help`` still prints the usage.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)


class OneLineGroup(_OneLine, click.Group):
    """:class:`click.Group` whose usage errors are one line (see :class:`_OneLine`)."""


class OneLineCommand(_OneLine, click.Command):
    """:class:`click.Command` whose usage errors are one line (see :class:`_OneLine`)."""
