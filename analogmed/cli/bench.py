"""``analogmed bench``: digital vs analog forward speed, measured in one run (not a test)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from analogmed.errors import UserError


def bench(
    threads: int = typer.Option(1, help="torch threads"),
    batch: int = typer.Option(8, help="batch size"),
    size: int = typer.Option(128, help="input height = width"),
    repeats: int = typer.Option(5, help="timed forwards per round (median)"),
    rounds: int = typer.Option(3, help="round-robin rounds (median of rounds)"),
    preset: str = typer.Option("pcm", help="analog preset"),
    drift_rep: bool = typer.Option(True, help="also time one drift-study repetition"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON"),
) -> None:
    """Time MONAI UNet and a search-space candidate, digital vs analog (aihwkit torch tile)."""
    from analogmed.io import check_output_file, write_text_atomic
    from analogmed.latency.bench import format_bench, run_bench

    check_output_file(json_out, "--json")

    if min(threads, batch, repeats, rounds) < 1 or size < 16 or size % 16:
        raise UserError("bench: --threads/--batch/--repeats/--rounds must be >= 1 and --size a multiple of 16")
    res = run_bench(threads=threads, batch=batch, size=size, repeats=repeats, rounds=rounds,
                    preset=preset, drift_rep=drift_rep)
    typer.echo(format_bench(res))
    if json_out:
        write_text_atomic(json_out, json.dumps(res, indent=1))
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
