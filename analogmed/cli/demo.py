"""``analogmed demo``: train a small search-space U-Net on mni152-tissue, then drift it on analog PCM."""
from __future__ import annotations

from pathlib import Path

import typer


def demo(
    epochs: int = typer.Option(100, help="training epochs"),
    lr: float = typer.Option(3e-3, help="AdamW learning rate"),
    size: int = typer.Option(64, help="slice size (pixels, multiple of 16)"),
    seed: int = typer.Option(0, help="seed (init, split, shuffling, augmentation, hardware noise)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    preset: str = typer.Option("pcm", "--preset", "-p", help="analog hardware preset for the drift study"),
    repeats: int = typer.Option(25, help="hardware instances in the drift study (25 as in AnalogNAS-Bench)"),
    out: Path = typer.Option(Path("runs/demo"),
                             help="output folder (checkpoint copy, drift.csv, summary.csv, drift.png/pdf)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="retrain even if a cached checkpoint exists"),
    digital_only: bool = typer.Option(False, "--digital-only",
                                      help="train and score only; skip the analog drift study"),
    engine: str = typer.Option("fast", help="analog forward engine of the drift study: fast or aihwkit"),
    variation: str = typer.Option("instances",
                                  help="instances: re-program per repetition; reads: re-read one instance"),
) -> None:
    """Train (or reuse) the demo U-Net on the MNI152 brain task, then run its analog drift study (1 s .. 1 year)."""
    import math
    import time

    t0 = time.perf_counter()

    from analogmed.analog import load_preset
    from analogmed.analog.fast import check_engine
    from analogmed.demo import DEMO_ARCH, run_demo
    from analogmed.drift import run_drift
    from analogmed.errors import UserError
    from analogmed.evaluate.robustness import check_variation, format_summary
    from analogmed.io import atomic_path, check_output_dir, output_set, relocate

    if not digital_only:
        check_output_dir(out, "--out")  # before the training, not after it
    load_preset(preset)  # bad preset / engine / variation: fail before training
    check_engine(engine)
    check_variation(variation)
    if repeats < 1:
        raise UserError(f"--repeats {repeats} is invalid; use at least 1 hardware instance")
    if epochs < 1 or not (math.isfinite(lr) and lr > 0):
        raise UserError(f"--epochs {epochs} / --lr {lr}: give at least 1 epoch and a finite learning rate > 0")
    if size < 16 or size % 16:
        raise UserError(f"--size {size} is invalid; give a multiple of 16, e.g. 64")
    res = run_demo(epochs=epochs, lr=lr, size=size, seed=seed, device=device, use_cache=not no_cache)
    ck = res.checkpoint
    src = "cached checkpoint" if res.cached else f"trained {epochs} epochs in {ck.metrics['train_time_s']:.1f} s"
    typer.echo(f"mni152-tissue 2D {size}x{size}, search-space candidate {DEMO_ARCH} ({src})")
    typer.echo(f"checkpoint: {res.path}")
    typer.echo("digital validation Dice per class:")
    for k, v in res.scores.items():
        if k.startswith("dice_") and k != "dice_mean":
            typer.echo(f"  {k[5:]:<14} {v:.3f}")
    typer.echo(f"  {'mean':<14} {res.scores['dice_mean']:.3f}")
    if not digital_only:
        typer.echo(f"analog drift study on preset {preset!r}, {repeats} hardware instances:")
        t_drift = time.perf_counter()
        with output_set(out) as stage:  # model.pt + the drift files: all or none
            dr = run_drift(ck, preset, repeats=repeats, seed=seed, out_dir=stage, engine=engine,
                           variation=variation)
            with atomic_path(stage / "model.pt") as tmp:
                tmp.write_bytes(res.path.read_bytes())
            files = relocate(dr.files + [stage / "model.pt"], stage, out)
        t_drift = time.perf_counter() - t_drift
        typer.echo(format_summary(dr.summary))
        for f in files:
            typer.echo(f"wrote {f}")
        typer.echo(f"drift study wall time {t_drift:.1f} s (engine {engine})")
    typer.echo(f"wall time {time.perf_counter() - t0:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
