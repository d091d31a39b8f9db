"""``analogmed arch sample|show|validate|space``: search-space architectures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

arch_app = typer.Typer(help="Search-space architectures (recursive U-Nets of blocks Zero, Identity, A, B-M).",
                       no_args_is_help=True)


def parse_size(text: str | None, spatial_dims: int):
    """``"64x64"`` -> ``(64, 64)``; ``None`` -> ``None``; UserError if malformed."""
    from analogmed.errors import UserError

    if text is None:
        return None
    try:
        size = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input-size {text!r} must look like 64x64 (or 32x32x32)") from None
    if len(size) != spatial_dims or min(size) < 1:
        raise UserError(f"--input-size {text!r} needs {spatial_dims} positive sizes joined by 'x'")
    return size


def resolve(target: str, spatial_dims: int, in_channels: int, out_channels: int, head: str):
    """An Architecture from a JSON file path or a label such as ``C16-E32-Id``."""
    from analogmed.errors import UserError
    from analogmed.space.architecture import Architecture, load_architecture

    if Path(target).suffix == ".json" or Path(target).exists():
        return load_architecture(target)
    try:
        return Architecture.from_label(target, spatial_dims, in_channels, out_channels, head)
    except UserError as exc:
        raise UserError(f"{target!r} is neither an architecture JSON file nor a valid label ({exc})") from None


def _params(arch) -> int:
    from analogmed.space.builder import build_candidate

    return sum(p.numel() for p in build_candidate(arch).parameters())


@arch_app.command("sample")
def sample(
    spatial_dims: int = typer.Option(2, help="2 or 3"),
    in_channels: int = typer.Option(1, help="image channels"),
    out_channels: int = typer.Option(2, help="classes (incl. background) or labels"),
    head: str = typer.Option("segmentation", help="segmentation or classification"),
    depth: Optional[int] = typer.Option(None, help="fix the depth (default: drawn uniformly over the space)"),
    seed: int = typer.Option(0, help="sampler seed"),
    count: int = typer.Option(1, help="how many architectures"),
    out: Optional[Path] = typer.Option(None, help="JSON file (count 1) or folder (<id>.json each)"),
) -> None:
    """Draw architectures uniformly from the space (seeded) and print or write their JSON."""
    import random

    from analogmed.errors import UserError
    from analogmed.io import check_output_dir, check_output_file, output_set, write_text_atomic
    from analogmed.space.architecture import sample_architecture

    if count < 1:
        raise UserError(f"--count must be >= 1, not {count}")
    if out is not None and count > 1 and out.suffix == ".json":
        raise UserError(f"--out {out} is a .json file but --count is {count}; give a folder")
    if out is not None:
        (check_output_file if count == 1 else check_output_dir)(out, "--out")
    rng = random.Random(seed)
    archs = [sample_architecture(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                                 head=head, depth=depth, rng=rng) for _ in range(count)]
    if out is None and count == 1:
        typer.echo(archs[0].to_json(indent=1))
        return
    for a in archs:
        typer.echo(f"{a.id}  {a.label:<24} depth {a.depth}  params {_params(a)}")
    if out is not None and count == 1:
        write_text_atomic(out, archs[0].to_json(indent=1) + "\n")
    elif out is not None:  # all files or none
        with output_set(out) as stage:
            for a in archs:
                write_text_atomic(stage / f"{a.id}.json", a.to_json(indent=1) + "\n")
    if out is not None:
        typer.echo(f"wrote {count} architecture(s) to {out} (seed {seed})")


@arch_app.command("show")
def show(
    target: str = typer.Argument(..., help="architecture JSON file, or a label such as C16-E32-Id"),
    spatial_dims: int = typer.Option(2, help="for a label: 2 or 3"),
    in_channels: int = typer.Option(1, help="for a label: image channels"),
    out_channels: int = typer.Option(2, help="for a label: classes"),
    head: str = typer.Option("segmentation", help="for a label: segmentation or classification"),
    input_size: Optional[str] = typer.Option(None, help="input size for the op list, e.g. 64x64"),
) -> None:
    """Show an architecture: id, canonical JSON, channels, parameters and its ops."""
    a = resolve(target, spatial_dims, in_channels, out_channels, head)
    ops = a.ops(parse_size(input_size, a.spatial_dims))
    typer.echo(f"id {a.id}  label {a.label}  depth {a.depth}  head {a.head}  params {_params(a)}")
    typer.echo(f"channels {a.channels()}")
    typer.echo(a.to_json())
    typer.echo(f"{'op':<14} {'in':>5} {'out':>5} {'extra':>5}  input size")
    for o in ops:
        typer.echo(f"{o.kind:<14} {o.in_channels:>5} {o.out_channels:>5} {o.extra:>5}  "
                   f"{'x'.join(map(str, o.size))}")


@arch_app.command("validate")
def validate(
    files: List[Path] = typer.Argument(..., help="architecture JSON files"),
    input_size: Optional[str] = typer.Option(None, help="also check that the depth fits this size, e.g. 64x64"),
) -> None:
    """Check architecture files (exit 2 on the first bad one) and print their canonical ids."""
    from analogmed.space.architecture import load_architecture

    for f in files:
        a = load_architecture(f)
        size = parse_size(input_size, a.spatial_dims)
        if size is not None:
            a.check_input_size(size)
        typer.echo(f"ok  {f}  {a.id}  {a.label}")


@arch_app.command("space")
def space(spatial_dims: int = typer.Option(2, help="2 or 3")) -> None:
    """The space's blocks, widths, depths, input sizes and size (architectures per task)."""
    from analogmed.errors import UserError
    from analogmed.space.architecture import DEFAULT_INPUT_SIZE, INPUT_SIZES, MAX_DEPTH, WIDTHS, space_size
    from analogmed.space.blocks import LETTERS

    if spatial_dims not in (2, 3):
        raise UserError(f"--spatial-dims must be 2 or 3, not {spatial_dims}")
    d = spatial_dims
    typer.echo(f"{d}-D blocks: {', '.join(LETTERS[d])}")
    typer.echo(f"widths: {', '.join(map(str, WIDTHS[d]))}   depth: 1..{MAX_DEPTH[d]}")
    typer.echo(f"input sizes (latency tables): {', '.join('x'.join(map(str, s)) for s in INPUT_SIZES[d])} "
               f"(default {'x'.join(map(str, DEFAULT_INPUT_SIZE[d]))})")
    typer.echo(f"architectures per task: {space_size(d)}")


def _mednasbench_files(paths: List[Path]) -> List[Path]:
    """Files as given; a folder stands for its ``*.json`` files in natural order (sample2 before sample10)."""
    import re

    from analogmed.errors import UserError

    out: List[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("*.json"), key=lambda f: [int(t) if t.isdigit() else t
                                                            for t in re.split(r"(\d+)", f.name)])
            if not found:
                raise UserError(f"folder {p} has no .json files; pass sampleN.json files or their folder")
            out += found
        else:
            out.append(p)
    return out


@arch_app.command("mednasbench")
def mednasbench(
    files: List[Path] = typer.Argument(..., help="MED-NAS-Bench sampleN.json files or folders of them"),
    out: Optional[Path] = typer.Option(None, help="folder for the model specs (<stem>.spec.json each)"),
    padding: str = typer.Option("same", help="same (output = input size) or prototype (its literal padding=1)"),
    check: bool = typer.Option(False, "--check", help="build every config with weights, compare its trainable "
                               "parameters with the file's params and run one forward; exit 1 on any failure"),
    input_size: str = typer.Option("64x64", help="with --check: forward input size"),
) -> None:
    """Import MED-NAS-Bench configs as the 2-D networks the prototype built (architecture only: their
    metrics are not measurements)."""
    from analogmed.errors import UserError
    from analogmed.io import check_output_dir, output_set, write_text_atomic
    from analogmed.models import model_id
    from analogmed.space.mednasbench import PADDINGS, describe, load_mednasbench

    if padding not in PADDINGS:
        raise UserError(f"--padding {padding!r} must be one of {', '.join(PADDINGS)}")
    if check and out is not None:
        raise UserError("--check writes nothing; drop --out (or --check to write the specs)")
    check_output_dir(out, "--out")
    paths = _mednasbench_files(files)
    if check:
        _mednasbench_check(paths, padding, parse_size(input_size, 2))
        return
    specs = [(f, load_mednasbench(f, padding)) for f in paths]   # all validated before anything is written
    for f, spec in specs:
        d = describe(spec)
        typer.echo(f"{f}  {model_id(spec)}  in {d['in_channels']} out {d['out_channels']}  pool {d['pool']}  "
                   f"params {d['params_built']} (file says {d['params_in_file']}; {d['params_unused']} never run)  "
                   f"input {d['sizes']}, 64x64 -> {'x'.join(map(str, d['out_at_64'] or ('-',)))}")
    if out is not None:  # all files or none
        with output_set(out) as stage:
            for f, spec in specs:
                write_text_atomic(stage / f"{f.stem}.spec.json", json.dumps(spec, indent=1) + "\n")
    if out is not None:
        typer.echo(f"wrote {len(specs)} model spec(s) to {out}; build them with analogmed.models.build_model")


def _mednasbench_check(paths: List[Path], padding: str, size: tuple) -> None:
    """``arch mednasbench --check``: per failing file one line, then the summary; exit 1 on any failure."""
    import torch
    from tqdm import tqdm

    from analogmed.space.mednasbench import check_config

    torch.manual_seed(0)
    rows = [check_config(f, padding, size) for f in tqdm(paths, desc="mednasbench check", unit="config",
                                                           disable=len(paths) < 20)]
    n = len(rows)
    for r in rows:
        if r["problem"]:
            typer.echo(f"{r['path']}: {r['problem']}")
    typer.echo(f"checked {n} config(s) (padding {padding}): imported {sum(r['imported'] for r in rows)}/{n}, "
               f"params match {sum(r['params_match'] for r in rows)}/{n}, forward 1x1x{size[0]}x{size[1]} -> "
               f"1xKx{size[0]}x{size[1]} {sum(r['forward_ok'] for r in rows)}/{n}")
    if any(r["problem"] for r in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(arch_app, name="arch")
