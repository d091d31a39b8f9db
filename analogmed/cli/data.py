"""``analogmed data list|show``: the task registry."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

data_app = typer.Typer(help="Tasks and data sets.", no_args_is_help=True)


def parse_options(options: list[str] | None) -> dict:
    """``["key=value", ...]`` -> dict (values parsed as JSON when they are JSON, else strings)."""
    from analogmed.errors import UserError

    out = {}
    for opt in options or []:
        if "=" not in opt:
            raise UserError(f"task option {opt!r} must look like key=value (e.g. size=64)")
        k, v = opt.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@data_app.command("list")
def list_cmd() -> None:
    """List the registered tasks."""
    from analogmed.data import list_tasks

    for name, desc in list_tasks().items():
        typer.echo(f"{name:<15} {desc}")


@data_app.command("show")
def show(
    task: str = typer.Argument(..., help="task name (see `analogmed data list`)"),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o",
                                               help="task option key=value, e.g. -o size=64 "
                                                    "-o root=/data/Task04_Hippocampus"),
) -> None:
    """Show a task: kind, shapes, classes and split sizes."""
    from analogmed.data import get_task

    t = get_task(task, **parse_options(option))
    typer.echo(json.dumps(t.describe(), indent=1))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
