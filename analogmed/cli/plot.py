"""``analogmed plot STUDY_OR_DB``: every figure of a study (PNG + PDF) and its summary table."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def plot(
    study: Path = typer.Argument(..., help="study file, study folder or results.sqlite"),
    out: Optional[Path] = typer.Option(None, help="figure folder (default: <study folder>/figures)"),
) -> None:
    """Drift curves, group comparison, robustness vs latency (Pareto) figures of a study."""
    from analogmed.io import check_output_dir
    from analogmed.plots.study import plot_study
    from analogmed.study.store import open_results

    check_output_dir(out, "--out")
    with open_results(study) as store:
        db = store.path
    dest = out if out is not None else db.parent / "figures"
    check_output_dir(dest, "figure folder")
    for f in plot_study(db, dest):
        typer.echo(f"wrote {f}")


def register(app: typer.Typer) -> None:
    app.command("plot")(plot)
