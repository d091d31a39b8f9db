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


@arch_app.command("mednasbench")
def mednasbench(
    files: List[Path] = typer.Argument(..., help="MED-NAS-Bench sampleN.json files"),
    out: Optional[Path] = typer.Option(None, help="folder for the model specs (<stem>.spec.json each)"),
) -> None:
    """Import MED-NAS-Bench configs as 2-D models (architecture only: their metrics are not measurements)."""
    from analogmed.errors import UserError
    from analogmed.io import check_output_dir, output_set, write_text_atomic
    from analogmed.models import model_id
    from analogmed.space.mednasbench import describe, load_mednasbench

    check_output_dir(out, "--out")
    specs = []
    for f in files:  # all validated before anything is written
        try:
            specs.append((f, load_mednasbench(f)))
        except UnicodeDecodeError:
            raise UserError(f"MED-NAS-Bench config {f} is not a text (JSON) file; give a sampleN.json config") from None
    for f, spec in specs:
        d = describe(spec)
        typer.echo(f"{f}  {model_id(spec)}  in {d['in_channels']} out {d['out_channels']}  "
                   f"params {d['params_built']} (file says {d['params_in_file']})")
    if out is not None:  # all files or none
        with output_set(out) as stage:
            for f, spec in specs:
                write_text_atomic(stage / f"{f.stem}.spec.json", json.dumps(spec, indent=1) + "\n")
    if out is not None:
        typer.echo(f"wrote {len(specs)} model spec(s) to {out}; build them with analogmed.models.build_model")


def register(app: typer.Typer) -> None:
    app.add_typer(arch_app, name="arch")
