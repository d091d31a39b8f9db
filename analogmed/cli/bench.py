"""``analogmed bench``: digital vs analog (aihwkit and fast engine) forward speed, one run (not a test)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from analogmed.errors import UserError


def bench(
    threads: int = typer.Option(1, help="torch threads"),
    batch: int = typer.Option(8, help="batch size of the 2D models"),
    size: int = typer.Option(128, help="2D input height = width"),
    size3: int = typer.Option(32, help="3D input edge (the 3D models take 1 x 1 x size3^3)"),
    repeats: int = typer.Option(5, help="timed forwards per round (median)"),
    rounds: int = typer.Option(3, help="round-robin rounds (median of rounds)"),
    preset: str = typer.Option("pcm", help="analog preset"),
    models: str = typer.Option(",".join(("monai-unet-2d", "candidate-2d", "candidate-3d", "unetr-3d")),
                               help="comma-separated models: monai-unet-2d, candidate-2d, candidate-3d, unetr-3d"),
    drift_rep: bool = typer.Option(True, help="also time drift-study evaluations/s of both engines"),
    breakdown: bool = typer.Option(True, help="per layer kind: fast vs digital time"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON (ratio = fast/digital)"),
) -> None:
    """Time MONAI UNet, 2D/3D search-space candidates and UNETR: digital vs aihwkit vs the fast engine."""
    from analogmed.io import check_output_file, write_text_atomic
    from analogmed.latency.bench import MODELS, format_bench, run_bench

    check_output_file(json_out, "--json")
    if min(threads, batch, repeats, rounds) < 1 or size < 16 or size % 16 or size3 < 16 or size3 % 16:
        raise UserError("bench: --threads/--batch/--repeats/--rounds must be >= 1 and --size/--size3 "
                        "multiples of 16")
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    bad = [m for m in names if m not in MODELS]
    if bad or not names:
        raise UserError(f"bench: --models {models!r} is invalid; choose from {', '.join(MODELS)}")
    res = run_bench(threads=threads, batch=batch, size=size, size3=size3, repeats=repeats, rounds=rounds,
                    preset=preset, drift_rep=drift_rep, breakdown=breakdown, models=names)
    typer.echo(format_bench(res))
    if json_out:
        write_text_atomic(json_out, json.dumps(res, indent=1))
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
