"""``analogmed study run|status|export``: study files -> resumable SQLite results -> tables and figures."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

study_app = typer.Typer(help="Run studies (TOML files in studies/), resumable; status and export of results.",
                        no_args_is_help=True)


@study_app.command("run")
def run(
    study: Path = typer.Argument(..., help="study file (studies/*.toml) or the name of a shipped study"),
    out: Optional[Path] = typer.Option(None, help="study folder (default runs/studies/<name>)"),
    workers: int = typer.Option(0, help="local Dask cluster of N single-threaded worker processes (0: in-process)"),
    scheduler: Optional[str] = typer.Option(None, help="address of an existing Dask scheduler (tcp://host:8786)"),
    new: bool = typer.Option(False, "--new", help="discard stored results of this study and start over"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write the figures at the end"),
) -> None:
    """Run (or resume) a study: train its models once, evaluate every missing hardware instance."""
    from analogmed.plots.study import plot_study, study_summary
    from analogmed.study.runner import run_study

    res = run_study(study, out=out, workers=workers, scheduler=scheduler, new=new)
    typer.echo(f"{res.jobs_run} hardware instances run, {res.jobs_skipped} already stored; "
               f"{res.added} rows added, {res.total} rows in {res.db}; wall {res.wall_s:.1f} s")
    s = study_summary(res.table)
    cols = ["label", "model_group", "task", "preset", "repeats", "digital_score", "score_1s", "score_1d_mean",
            "score_1d_std", "avm"]
    typer.echo(s[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if plots and not res.table.empty:  # figures are drawn here, above the runner and the plot module
        for f in plot_study(res.db, res.db.parent / "figures"):
            typer.echo(f"wrote {f}")


@study_app.command("status")
def status(study: Path = typer.Argument(..., help="study file, study folder or results.sqlite")) -> None:
    """Rows stored, per (model, task, preset): hardware instances and evaluations done."""
    from analogmed.study.store import open_results

    with open_results(study) as store:
        df = store.table(with_metrics=False)
        meta = store.meta()
        path = store.path
    typer.echo(f"study {meta.get('study', '?')} ({path}): {len(df)} rows")
    if not df.empty:
        g = df.groupby(["label", "task", "preset"], dropna=False).agg(
            instances=("repetition", "nunique"), rows=("score", "size"), mean_score=("score", "mean"))
        typer.echo(g.to_string(float_format=lambda v: f"{v:.3f}"))


@study_app.command("export")
def export(
    study: Path = typer.Argument(..., help="study file, study folder or results.sqlite"),
    out: Path = typer.Option(..., "--out", "-o", help="table to write: .csv (or .parquet with pyarrow)"),
) -> None:
    """Export the results table (one row per evaluation, metrics as columns)."""
    from analogmed.io import check_output_file
    from analogmed.study.store import export_table

    check_output_file(out, "--out")
    typer.echo(f"wrote {export_table(study, out)}")


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
