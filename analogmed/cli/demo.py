"""``analogmed demo``: train the small pyramidal U-Net on mni152-tissue and print validation Dice."""
from __future__ import annotations

import typer


def demo(
    epochs: int = typer.Option(100, help="training epochs"),
    lr: float = typer.Option(3e-3, help="AdamW learning rate"),
    size: int = typer.Option(64, help="slice size (pixels, multiple of 16)"),
    seed: int = typer.Option(0, help="seed (init, split, shuffling, augmentation)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    no_cache: bool = typer.Option(False, "--no-cache", help="retrain even if a cached checkpoint exists"),
) -> None:
    """Train a small U-Net (MONAI BasicUNet) on the built-in MNI152 brain task; print validation Dice."""
    from analogmed.demo import run_demo

    res = run_demo(epochs=epochs, lr=lr, size=size, seed=seed, device=device, use_cache=not no_cache)
    ck = res.checkpoint
    src = "cached checkpoint" if res.cached else f"trained {epochs} epochs in {ck.metrics['train_time_s']:.1f} s"
    typer.echo(f"mni152-tissue 2D {size}x{size}, model {ck.model_id} ({src})")
    typer.echo(f"checkpoint: {res.path}")
    typer.echo("validation Dice per class:")
    for k, v in res.scores.items():
        if k.startswith("dice_") and k != "dice_mean":
            typer.echo(f"  {k[5:]:<14} {v:.3f}")
    typer.echo(f"  {'mean':<14} {res.scores['dice_mean']:.3f}")
    typer.echo(f"wall time {res.wall_s:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
