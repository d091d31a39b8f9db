"""``analogmed search run|show``: MT-MIAS, the analog-aware search and baselines from a search file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

search_app = typer.Typer(help="Hardware-aware architecture search (MIAS, MT-MIAS, MT-MIAS-C, random, evolution, "
                              "NSGA-II), digital or analog objective; resumable.", no_args_is_help=True)


@search_app.command("run")
def run(
    file: Path = typer.Argument(..., help="search file (studies/search-*.toml) or the name of a shipped one"),
    out: Optional[Path] = typer.Option(None, help="search folder (default runs/search/<name>)"),
    new: bool = typer.Option(False, "--new", help="discard stored results of this search and start over"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write the figures at the end"),
    workers: int = typer.Option(0, help="local Dask cluster of N single-threaded worker processes (0: in-process)"),
    scheduler: Optional[str] = typer.Option(None, help="address of an existing Dask scheduler (tcp://host:8786)"),
    batch: int = typer.Option(1, help="trials in flight per run and round (1: the trials of a one-at-a-time "
                                      "search, whatever the number of workers)"),
) -> None:
    """Run (or resume) every (objective, method, seed) of FILE; print the comparison tables."""
    from analogmed.search.run import run_search
    from analogmed.search.report import markdown_table

    res = run_search(file, out=out, new=new, plots=plots, workers=workers, scheduler=scheduler, batch=batch)
    typer.echo(f"{len(res.trials)} trials ({res.evaluations_computed} new evaluations) in {res.out}; "
               f"wall {res.wall_s:.1f} s")
    for obj, tab in res.tables.items():
        typer.echo(f"\nobjective {obj}:\n" + markdown_table(tab))
    if not res.deploy.empty:
        d = res.deploy
        cols = ["objective", "seed", "feasible", "n_blocks", "params", "levels"]
        cols += [c for c in d.columns if c.startswith(("label_", "alpha_"))]
        cols += ["shared_label", "shared_n_blocks", "shared_params"]
        typer.echo("\nmt-mias-c deployable supernet (one sub-network per task; deploy.csv):\n"
                   + markdown_table(d[cols]))
    for f in res.figures:
        typer.echo(f"wrote {f}")


@search_app.command("show")
def show(folder: Path = typer.Argument(..., help="search folder (runs/search/<name>)")) -> None:
    """Print the stored comparison tables and the final median hypervolume per method."""
    from analogmed.search.run import open_search

    tabs = open_search(folder)
    for f in sorted(folder.glob("table-*.md")):
        typer.echo(f"{f.stem}:\n{f.read_text()}")
    hv = tabs["hypervolume"]
    if not hv.empty:
        last = hv[hv["n"] == hv.groupby(["objective", "method", "seed"])["n"].transform("max")]
        typer.echo(last.groupby(["objective", "method"])["hypervolume"].median().to_string())
    from analogmed.search.report import compare_objectives, markdown_table

    cmp = compare_objectives(tabs["selected"], tabs["standalone"])
    if not cmp.empty:
        typer.echo("\ndigital vs analog-aware objective, paired per (method, seed):\n" + markdown_table(cmp))
    if not tabs["deploy"].empty:
        typer.echo("\nmt-mias-c deployable supernet (deploy.csv):\n" + markdown_table(tabs["deploy"]))


def register(app: typer.Typer) -> None:
    app.add_typer(search_app, name="search")
