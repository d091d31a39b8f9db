"""``analogmed uq``: Monte-Carlo uncertainty over analog hardware instances vs the digital network."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def uq(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="checkpoint (.pt) of a segmentation network"),
    preset: str = typer.Option("pcm", "--preset", "-p", help="analog hardware preset (name or TOML path)"),
    times: Optional[str] = typer.Option("86400", help="comma-separated drift times in seconds"),
    samples: int = typer.Option(10, help="Monte-Carlo samples: programmed hardware instances (>= 2)"),
    seed: int = typer.Option(0, help="base seed"),
    split: str = typer.Option("val", help="split: train, val or test"),
    out: Path = typer.Option(Path("runs/uq"),
                             help="output folder (uq.csv, reliability.png/pdf, uncertainty_maps.png/pdf)"),
    engine: str = typer.Option("fast", help="analog forward engine: fast or aihwkit"),
    variation: str = typer.Option("instances",
                                  help="instances: R programmed instances; reads: one instance re-read R times"),
) -> None:
    """Uncertainty (entropy, mutual information), calibration (ECE, Brier) and error-detection AUROC:
    digital vs MC dropout (if the model has dropout) vs analog Monte Carlo over hardware instances."""
    from analogmed.cli.drift import parse_times
    from analogmed.uq.report import run_uq

    df, files = run_uq(checkpoint, preset, parse_times(times), samples=samples, seed=seed, split=split, out_dir=out,
                       engine=engine, variation=variation)
    cols = ["method", "preset", "t_inference_s", "samples", "dice", "ece", "brier", "auroc_entropy", "auroc_mi",
            "mean_entropy", "spearman_uncertainty_dice"]
    typer.echo(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for f in files:
        typer.echo(f"wrote {f}")


def register(app: typer.Typer) -> None:
    app.command("uq")(uq)
