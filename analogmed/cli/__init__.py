"""The ``analogmed`` command line: a thin layer over the Python API.

Each command group lives in its own module with a ``register(app)`` function. A
:class:`~analogmed.errors.UserError` raised anywhere becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import importlib
import sys

import typer

from analogmed.errors import UserError

app = typer.Typer(
    name="analogmed",
    help="Simulate medical segmentation networks on analog in-memory computing hardware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command group; each defines register(app).
_COMMAND_MODULES = [
    "analogmed.cli.demo",
    "analogmed.cli.data",
    "analogmed.cli.train",
    "analogmed.cli.arch",
    "analogmed.cli.supernet",
    "analogmed.cli.drift",
    "analogmed.cli.uq",
    "analogmed.cli.lut",
    "analogmed.cli.study",
    "analogmed.cli.bench",
    "analogmed.cli.plot",
    "analogmed.cli.nasbench",
    "analogmed.cli.search",
]

for _name in _COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a command group not written yet
        if exc.name != _name:
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Console entry point: a UserError (or an OSError, e.g. a full disk) is one line on stderr, exit 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # a file operation no check foresaw: still one line naming the path
        from analogmed.io import os_error

        where = exc.filename if exc.filename is not None else "a file"
        typer.echo(f"error: {os_error(where, exc)}", err=True)
        sys.exit(2)
