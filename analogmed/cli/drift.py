"""``analogmed drift``: drift study of a trained checkpoint on an analog hardware preset."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def parse_times(text: str) -> list[float]:
    """Comma-separated seconds -> floats (UserError on junk)."""
    from analogmed.errors import UserError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--times {text!r} is invalid; give comma-separated seconds, e.g. 1,3600,86400") from None


def drift(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="checkpoint (.pt) written by analogmed train"),
    preset: str = typer.Option("pcm", "--preset", "-p", help="hardware preset name (hardware/*.toml) or TOML path"),
    months: Optional[int] = typer.Option(None, help="monthly grid: 1 s, 1 h, 1 d, 1 w, then every 30 d up to N months"),
    times: Optional[str] = typer.Option(None, help="comma-separated drift times in seconds (overrides the grid)"),
    repeats: int = typer.Option(5, help="hardware instances (fresh programming each)"),
    seed: int = typer.Option(0, help="base seed of programming, drift and read noise"),
    split: str = typer.Option("val", help="split to score: train, val or test"),
    out: Path = typer.Option(Path("runs/drift"), help="output folder (drift.csv, summary.csv, drift.png/pdf)"),
    engine: str = typer.Option("fast", help="analog forward engine: fast (folded native ops) or aihwkit"),
    variation: str = typer.Option("instances", help="instances: re-program every repetition; reads: program "
                                  "once, re-drift and re-read (AnalogNAS-Bench's std)"),
) -> None:
    """Program the network on R fresh hardware instances, drift each over time, print 1-day score, std, AVM."""
    from analogmed.drift import run_drift
    from analogmed.evaluate.robustness import DEFAULT_TIMES_S, format_summary, month_grid

    grid = parse_times(times) if times else (month_grid(months) if months is not None else DEFAULT_TIMES_S)
    res = run_drift(checkpoint, preset, grid, repeats=repeats, seed=seed, split=split, out_dir=out,
                    engine=engine, variation=variation)
    typer.echo(format_summary(res.summary))
    for f in res.files:
        typer.echo(f"wrote {f}")


def register(app: typer.Typer) -> None:
    app.command("drift")(drift)
