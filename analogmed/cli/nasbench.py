"""``analogmed nasbench build|status|export|query|show|report``: the analog MED-NAS-Bench."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

nb_app = typer.Typer(help="Analog MED-NAS-Bench: build (resumable), export, query and report the benchmark table.",
                     no_args_is_help=True)


@nb_app.command("build")
def build(
    file: Path = typer.Argument(..., help="build file (studies/nasbench-*.toml) or a shipped name"),
    out: Optional[Path] = typer.Option(None, help="build folder (default runs/nasbench/<name>)"),
    workers: int = typer.Option(0, help="local Dask cluster of N single-threaded worker processes (0: in-process)"),
    scheduler: Optional[str] = typer.Option(None, help="address of an existing Dask scheduler (tcp://host:8786)"),
    new: bool = typer.Option(False, "--new", help="discard stored results of this build and start over"),
    export: bool = typer.Option(True, "--export/--no-export", help="export the benchmark at the end"),
) -> None:
    """Build (or resume) a benchmark: supernet, candidates, digital + analog scores, latencies, into SQLite."""
    from analogmed.nasbench.build import build_benchmark
    from analogmed.nasbench.store import export_benchmark

    res = build_benchmark(file, out=out, workers=workers, scheduler=scheduler, new=new)
    typer.echo(f"{res.jobs_run} candidates scored now, {res.jobs_skipped} already stored; {res.rows} analog rows, "
               f"{res.candidates} candidate rows in {res.db}; engine {res.engine}; wall {res.wall_s:.1f} s")
    if export:
        typer.echo(f"wrote {export_benchmark(res.db)}")


@nb_app.command("status")
def status(build_: Path = typer.Argument(..., metavar="BUILD",
                                         help="build file, build folder or results.sqlite")) -> None:
    """Candidates and rows stored so far, per task, variant and preset."""
    import pandas as pd

    from analogmed.nasbench.store import open_build

    with open_build(build_) as store:
        df = pd.read_sql_query("SELECT task, variant, preset, COUNT(*) AS candidates, SUM(wall_s) AS wall_s "
                               "FROM nb_candidates GROUP BY task, variant, preset", store.conn)
        n = store.count()
        path = store.path
    typer.echo(f"{path}: {n} analog rows")
    if not df.empty:
        typer.echo(df.to_string(index=False, float_format=lambda v: f"{v:.1f}"))


@nb_app.command("export")
def export_cmd(
    build_: Path = typer.Argument(..., metavar="BUILD", help="build file, build folder or results.sqlite"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="benchmark .parquet (default <build>/<name>.parquet)"),
) -> None:
    """Write the versioned benchmark: <name>.parquet, <name>-rows.parquet and <name>.json (metadata)."""
    from analogmed.nasbench.store import export_benchmark

    typer.echo(f"wrote {export_benchmark(build_, out)}")


@nb_app.command("query")
def query(
    bench: str = typer.Argument(..., help="benchmark .json/.parquet, folder, or shipped name"),
    arch: str = typer.Argument(..., help="architecture id (arch-...) or label (C8-E16-Id)"),
    metric: str = typer.Option("score_1d_mean", help="column of the table (latency_ms/energy_mj with --platform)"),
    preset: Optional[str] = typer.Option(None, help="analog preset (when the benchmark has several)"),
    platform: Optional[str] = typer.Option(None, help="digital platform for latency_ms / energy_mj"),
    task: Optional[str] = typer.Option(None, help="task (when the benchmark has several)"),
    variant: str = typer.Option("supernet", help="supernet (inherited weights) or standalone-s<i>"),
) -> None:
    """Print one number of one candidate."""
    from analogmed.nasbench.api import load

    v = load(bench).query(arch, metric=metric, preset=preset, platform=platform, task=task, variant=variant)
    typer.echo(f"{v:.6g}" if isinstance(v, float) else str(v))


@nb_app.command("show")
def show(
    bench: str = typer.Argument(..., help="benchmark .json/.parquet, folder, or shipped name"),
    arch: Optional[str] = typer.Argument(None, help="one candidate (id or label): all its columns"),
    top: int = typer.Option(10, help="rows to list (sorted by --sort)"),
    sort: str = typer.Option("score_1d_mean", help="column to sort by (descending)"),
    preset: Optional[str] = typer.Option(None, help="analog preset"),
) -> None:
    """Summary of a benchmark (metadata and the top candidates), or every column of one candidate."""
    import pandas as pd

    from analogmed.nasbench.api import load

    b = load(bench)
    if arch:
        hit = b._arch_rows(arch, None, "supernet")
        typer.echo(hit.T.to_string(header=False))
        return
    m = b.meta
    typer.echo(f"{b}\nformat version {m.get('format_version')}, {m.get('n_evaluations')} evaluations, "
               f"{m.get('repetitions')} hardware instances, times {m.get('times_s')} s, seed {m['seeds']['seed']}")
    df = b.table(preset=preset)
    if sort not in df.columns:
        from analogmed.errors import UserError

        raise UserError(f"--sort {sort!r} is not a column; use e.g. score_1d_mean, avm, digital_score")
    cols = ["label", "preset", "params", "digital_score", "score_1d_mean", "score_1d_std", "avm",
            "latency_ms@raspberry-pi3", "hermes_energy_mj"]
    cols = [c for c in cols if c in df.columns]
    with pd.option_context("display.width", 200):
        typer.echo(df.sort_values(sort, ascending=False)[cols].head(top).to_string(
            index=False, float_format=lambda v: f"{v:.3f}"))


@nb_app.command("report")
def report(
    bench: str = typer.Argument(..., help="benchmark .json/.parquet, folder, or shipped name"),
    out: Path = typer.Option(Path("runs/nasbench-report"), "--out", "-o", help="folder for report.md/json and figures"),
    preset: Optional[str] = typer.Option(None, help="analog preset (default: the first)"),
    task: Optional[str] = typer.Option(None, help="task (default: the first)"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="write the figures (PNG + PDF)"),
) -> None:
    """The science of the table: Kendall tau digital vs analog, top-10 overlap, block effects, Pareto fronts,
    supernet vs stand-alone ranking (with the seed-vs-seed ceiling)."""
    from analogmed.nasbench.api import load
    from analogmed.nasbench.report import format_report, nasbench_report, write_report

    from analogmed.io import check_output_dir, output_set

    check_output_dir(out)
    b = load(bench)
    rep = nasbench_report(b, preset=preset, task=task)
    with output_set(out) as stage:  # report files and figures appear together or not at all
        paths = write_report(rep, stage)
        if figures:
            from analogmed.plots.nasbench import plot_report

            paths += plot_report(b, rep, stage)
    paths = [out / p.relative_to(stage) for p in paths]
    typer.echo(format_report(rep))
    for p in paths:
        typer.echo(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.add_typer(nb_app, name="nasbench")
