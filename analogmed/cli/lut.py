"""``analogmed lut build|model|show|check`` and ``analogmed cost``: digital latency tables and costs."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from analogmed.errors import UserError

lut_app = typer.Typer(help="Digital latency lookup tables (LUTs) in digital/.", no_args_is_help=True)

HOST_NAMES = ("host", "this-machine")


def _size(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if not text:
        return None
    try:
        size = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input-size {text!r} is not like 64x64 or 32x32x32") from None
    if len(size) not in (2, 3) or min(size) < 2:
        raise UserError(f"--input-size {text!r}: give 2 or 3 sizes >= 2, e.g. 64x64")
    return size


def _ints(text: Optional[str], what: str) -> Optional[tuple[int, ...]]:
    if not text:
        return None
    try:
        vals = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"{what} {text!r} is not a comma-separated list of integers, e.g. 8,16,32") from None
    if min(vals) < 1:
        raise UserError(f"{what} {text!r}: values must be >= 1")
    return vals


@lut_app.command("build")
def build(
    platform: str = typer.Option("this-machine", help="platform name; 'host'/'this-machine' profiles this machine"),
    spatial_dims: str = typer.Option("2,3", help="spatial dims to cover: 2, 3 or 2,3"),
    input_size: Optional[str] = typer.Option(None, help="input size (one spatial dims only), e.g. 64x64"),
    widths: Optional[str] = typer.Option(None, help="widths of the grid, e.g. 8,16,32,64"),
    levels: Optional[int] = typer.Option(None, help="U-Net levels of the grid"),
    threads: Optional[int] = typer.Option(None, help="torch threads (default: 1 on a profiled host, "
                                          "the spec's on a named device)"),
    repeats: int = typer.Option(9, help="timed repeats per op (median)"),
    warmup: int = typer.Option(3, help="untimed warm-up forwards per op"),
    power_w: Optional[float] = typer.Option(None, help="typical power of this machine, W"),
    out: Optional[Path] = typer.Option(None, help="folder for <platform>.csv/.toml (default digital/)"),
    force: bool = typer.Option(False, help="measure under a shipped platform's name on another machine"),
) -> None:
    """Time every op of the search-space grid on THIS machine and write <platform>.csv (source=measured)."""
    from analogmed.latency.lut import measure_ops, write_lut
    from analogmed.latency.platform import (host_matches, list_platforms, load_platform, platforms_dir,
                                            profile_host, save_platform)
    from analogmed.latency.grid import DEFAULT_GRID, op_grid

    from analogmed.io import check_output_dir

    if repeats < 1 or warmup < 0:
        raise UserError(f"--repeats {repeats} / --warmup {warmup}: time each op at least once (--repeats >= 1, "
                        f"--warmup >= 0)")
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads} is invalid; give at least 1")
    if levels is not None and levels < 1:
        raise UserError(f"--levels {levels} is invalid; give at least 1")
    check_output_dir(out, "--out")
    dims = _ints(spatial_dims, "--spatial-dims")
    if any(d not in (2, 3) for d in dims):
        raise UserError(f"--spatial-dims {spatial_dims!r}: use 2, 3 or 2,3")
    size = _size(input_size)
    if size and (len(dims) != 1 or len(size) != dims[0]):
        raise UserError("--input-size needs exactly one --spatial-dims of the same dimensionality")
    w = _ints(widths, "--widths")
    folder = out or platforms_dir()
    name = "this-machine" if platform in HOST_NAMES else platform
    if name == "this-machine" or name not in list_platforms():
        plat = profile_host(name=name, threads=threads or 1, typical_power_w=power_w)
    else:  # running on the named device itself (e.g. on a Raspberry Pi): keep its spec
        plat = load_platform(name)
        if not host_matches(plat) and not force:
            raise UserError(f"this machine is not a {name} ({plat.cpu_model}); run `lut build` on that "
                            f"device, use --platform this-machine here, or pass --force")
        if threads:
            plat = plat.model_copy(update={"threads": threads})
    ops = [op for d in dims for sz in ([size] if size else DEFAULT_GRID[d]["input_sizes"])
           for op in op_grid(d, sz, w, levels)]
    typer.echo(f"timing {len(ops)} ops on {plat.cpu_model} with {plat.threads} thread(s)...")
    t0 = time.perf_counter()
    df = measure_ops(ops, plat, warmup=warmup, repeats=repeats)
    elapsed = time.perf_counter() - t0
    from analogmed.io import output_set

    with output_set(folder) as stage:  # the table and its spec: both or neither
        write_lut(df, stage / f"{name}.csv")
        if name == "this-machine" or name not in list_platforms() or out:
            plat = plat.model_copy(update={"description": plat.description
                                           + f"; LUT: {len(df)} ops in {elapsed:.0f} s"})
            save_platform(plat, stage / f"{name}.toml")
    csv = folder / f"{name}.csv"
    typer.echo(f"wrote {csv} ({len(df)} rows, source=measured) in {elapsed:.0f} s")


@lut_app.command("model")
def model(
    platform: str = typer.Option(..., help="target platform (spec in digital/), e.g. raspberry-pi3"),
    fit_on: str = typer.Option("this-machine,this-machine-2t",
                               help="measured LUT(s) of ONE machine to fit on (comma-separated; e.g. "
                                    "1- and 2-thread tables); the first gives the spec and the ops"),
    default_params: bool = typer.Option(False, help="use the a-priori parameters instead of fitting"),
    out: Optional[Path] = typer.Option(None, help="folder for <platform>.csv (default digital/)"),
    force: bool = typer.Option(False, help="overwrite a measured table with a modelled one"),
) -> None:
    """Write <platform>.csv from the analytical model (every row source=model)."""
    from analogmed.latency.lut import read_lut, write_lut
    from analogmed.latency.model import DEFAULT_PARAMS, fit_params, model_lut
    from analogmed.io import check_output_dir
    from analogmed.latency.platform import load_platform, platform_lut_path, platforms_dir

    check_output_dir(out, "--out")
    target = load_platform(platform)
    names = [n for n in fit_on.split(",") if n]
    base_plat = load_platform(names[0])
    frames = [read_lut(platform_lut_path(n)) for n in names]
    frames = [f[f["source"] == "measured"] for f in frames]
    if any(f.empty for f in frames):
        raise UserError(f"a table of {fit_on} has no measured rows; run `analogmed lut build` first")
    import pandas as pd

    both = pd.concat(frames, ignore_index=True)
    params = DEFAULT_PARAMS if default_params else fit_params(both, base_plat, name=f"{fit_on} measured LUTs")
    df = model_lut(frames[0], target, params)
    dest = (out or platforms_dir()) / f"{target.name}.csv"
    if dest.is_file() and not force and (read_lut(dest)["source"] == "measured").any():
        raise UserError(f"{dest} holds measured rows; a modelled table would replace them "
                        f"(pass --force, or --out another folder)")
    csv = write_lut(df, dest)
    typer.echo(f"params: {params}")
    typer.echo(f"wrote {csv} ({len(df)} rows, source=model, peak {target.peak_gflops:.1f} GFLOP/s, "
               f"{target.bandwidth_gbs} GB/s)")


@lut_app.command("show")
def show(platform: str = typer.Option("this-machine", help="platform name or TOML path")) -> None:
    """Print a platform's spec and a summary of its LUT."""
    from analogmed.latency.lut import read_lut
    from analogmed.latency.platform import load_platform, platform_lut_path

    plat = load_platform(platform)
    typer.echo(f"{plat.name}: {plat.description}")
    typer.echo(f"  cpu {plat.cpu_model}, {plat.cores} cores, {plat.threads} threads, {plat.clock_ghz} GHz, "
               f"{plat.simd} ({plat.fp32_flops_per_cycle:g} FLOP/cycle/core) -> peak {plat.peak_gflops:.1f} GFLOP/s")
    typer.echo(f"  memory {plat.memory_gb} GB {plat.memory_type}, {plat.bandwidth_gbs} GB/s; "
               f"power {plat.typical_power_w} W")
    for k, v in plat.sources.items():
        typer.echo(f"  source[{k}]: {v}")
    path = platform_lut_path(platform)
    if not path.is_file():
        typer.echo(f"  LUT: none ({path}); build it with `analogmed lut build --platform {plat.name}`")
        return
    df = read_lut(path)
    typer.echo(f"  LUT {path}: {len(df)} ops, source={','.join(sorted(set(df['source'])))}, "
               f"torch {df['torch_version'].iloc[0]}, threads {df['threads'].iloc[0]}, date {df['date'].iloc[0]}")
    df = df.assign(family=df["kind"].str.split(":").str[0])
    summ = df.groupby(["spatial_dims", "family"])["latency_ms"].agg(["count", "median", "min", "max"])
    typer.echo(summ.round(4).to_string())


@lut_app.command("check")
def check(
    platform: str = typer.Option("this-machine", help="the measured platform (this machine)"),
    candidates: int = typer.Option(50, help="random candidates timed end to end"),
    seed: int = typer.Option(0, help="seed of the candidate draw"),
    spatial_dims: int = typer.Option(2, help="spatial dims of the candidates"),
    input_size: Optional[str] = typer.Option(None, help="candidate input size (default: the grid's first)"),
    model_also: str = typer.Option("this-machine-2t", help="more measured tables of this machine (other "
                                   "thread counts) for the model check; '' for none"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON"),
) -> None:
    """Validate the measured LUT (candidates end to end) and the analytical model (this machine)."""
    from analogmed.io import check_output_file, write_text_atomic
    from analogmed.latency.lut import LatencyTable
    from analogmed.latency.platform import load_platform, platform_lut_path
    from analogmed.latency.grid import random_candidates
    from analogmed.latency.validate import calibrated_check, candidate_check, model_check, summary

    if candidates < 4:
        raise UserError(f"--candidates {candidates} is invalid; time at least 4 candidates (the correction is "
                        f"fitted on one half and checked on the other), e.g. 50")
    check_output_file(json_out, "--json")
    plat = load_platform(platform)
    table = LatencyTable.load(platform_lut_path(platform))
    measured = table.df[table.df["source"] == "measured"]
    if measured.empty:
        raise UserError(f"the {plat.name} LUT has no measured rows; run `analogmed lut build` first")
    if spatial_dims not in (2, 3):
        raise UserError(f"--spatial-dims {spatial_dims}: use 2 or 3")
    size = _size(input_size)
    if size and len(size) != spatial_dims:
        raise UserError(f"--input-size {input_size} does not have {spatial_dims} sizes")
    cands = random_candidates(candidates, seed=seed, spatial_dims=spatial_dims, input_size=size)
    t0 = time.perf_counter()
    cc = candidate_check(cands, table, threads=int(measured["threads"].iloc[0]))
    s = summary(cc["lut_ms"], cc["measured_ms"])
    typer.echo(cc.round(3).to_string(index=False))
    typer.echo(f"LUT sum vs measured end to end, {s['n']} candidates (seed {seed}): MAPE {s['mape_pct']} %, "
               f"Kendall tau {s['tau']}  [{time.perf_counter() - t0:.0f} s]")
    cal = calibrated_check(cc, seed=seed)
    typer.echo(f"with a correction fitted on {cal['train_n']} of them (measured ~ {cal['a']} x LUT + "
               f"{cal['b_ms_per_op']} ms x ops), held-out {cal['heldout']['n']}: MAPE {cal['heldout']['mape_pct']} %, "
               f"tau {cal['heldout']['tau']}")
    import pandas as pd

    from analogmed.latency.lut import read_lut

    extra = [read_lut(platform_lut_path(n)) for n in model_also.split(",") if n]
    mc = model_check(pd.concat([measured, *extra], ignore_index=True), plat, [c.ops for c in cands])
    for k in ("default", "crossval"):
        for part, r in mc[k].items():
            typer.echo(f"model ({k} params) vs measured LUT, {part}: MAPE {r['mape_pct']} % "
                       f"tau {r['tau']} (n={r['n']})")
    typer.echo(f"fitted params (used for the Pi 3 / laptop tables): {mc['fitted_params']}")
    if json_out:
        res = {"platform": plat.name, "seed": seed, "candidates": cc.to_dict(orient="records"),
               "candidate_check": s, "calibrated": cal, "model_default": mc["default"],
               "model_crossval": mc["crossval"],
               "fitted_params": {k: (float(v) if not isinstance(v, str) else v)
                                 for k, v in vars(mc["fitted_params"]).items()}}
        write_text_atomic(json_out, json.dumps(res, indent=1))
        typer.echo(f"wrote {json_out}")


def cost(
    arch: Path = typer.Option(..., "--arch", help="candidate JSON (Architecture or reference)"),
    input_size: Optional[str] = typer.Option(None, help="input spatial size, e.g. 64x64"),
    preset: Optional[str] = typer.Option(None, help="analog preset whose tile size to use (default 256x256)"),
    platforms: str = typer.Option("raspberry-pi3,laptop-ryzen7-6800h,this-machine", help="digital platforms"),
) -> None:
    """Latency (ms), energy (mJ), tiles and MVMs of one candidate: analog vs Pi 3 vs laptop vs this machine."""
    from analogmed.latency.report import cost_table, load_candidate

    cand = load_candidate(arch, _size(input_size))
    df, extras = cost_table(cand, tuple(p for p in platforms.split(",") if p), preset)
    typer.echo(f"{cand.name}: input {cand.input_shape}, {extras['ops']} ops, {extras['layers']} analog layers, "
               f"tile {extras['tile']}, utilization {extras['utilization']:.1%}, chips {extras['chips']}")
    typer.echo(df.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    rep = extras["replicated_ms"]
    typer.echo(f"analog latency with the weights copied {extras['replicas']}x onto idle cores: "
               f"{rep['four-phase']:.4g} ms (four-phase), {rep['one-phase']:.4g} ms (one-phase); same energy")


def register(app: typer.Typer) -> None:
    app.add_typer(lut_app, name="lut")
    app.command("cost")(cost)
