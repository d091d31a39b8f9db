"""``analogmed train``: digital training of a zoo network or a search-space candidate."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def train(
    task: str = typer.Option(..., help="task name (see `analogmed data list`)"),
    model: str = typer.Option("basic-unet", help="zoo model name, or 'space' with --arch"),
    arch: Optional[str] = typer.Option(None, help="search-space candidate: architecture JSON file or label "
                                                  "(e.g. C16-E32-C64)"),
    size_preset: str = typer.Option("small", "--size", help="zoo model size: small or base"),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", help="task option key=value"),
    spatial_dims: int = typer.Option(2, help="2 or 3"),
    epochs: int = typer.Option(10, help="training epochs"),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    batch_size: int = typer.Option(8, help="batch size"),
    seed: int = typer.Option(0, help="seed (init, split, shuffling, augmentation)"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    no_augment: bool = typer.Option(False, "--no-augment", help="no train-time augmentation"),
    init: Optional[Path] = typer.Option(None, help="start from this checkpoint's weights (same model)"),
    hwa: bool = typer.Option(False, "--hwa", help="then hardware-aware training on --preset (its [training] recipe)"),
    preset: str = typer.Option("pcm", "--preset", "-p", help="analog hardware preset for --hwa"),
    hwa_epochs: Optional[int] = typer.Option(None, help="hardware-aware epochs (default: the preset's recipe)"),
    hwa_lr: Optional[float] = typer.Option(None, help="hardware-aware learning rate (default: the preset's recipe)"),
    out: Path = typer.Option(Path("model.pt"), help="checkpoint file to write"),
) -> None:
    """Train a network on a task (digitally; with --hwa then hardware-aware); write a checkpoint that rebuilds it.

    With --hwa and --init CKPT and --epochs 0, the digital pre-training is skipped and CKPT is fine-tuned.
    """
    import math

    from analogmed.cli.data import parse_options
    from analogmed.data import get_task
    from analogmed.errors import UserError
    from analogmed.io import check_output_file
    from analogmed.models.zoo import ZOO_NAMES, zoo_spec
    from analogmed.train import TrainConfig, load_checkpoint, save_checkpoint, train_model

    check_output_file(out, "--out")
    for name, value in (("--lr", lr), ("--hwa-lr", hwa_lr)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} {value} is invalid; give a finite learning rate > 0, e.g. 1e-3")
    if epochs < 0 or batch_size < 1:
        raise UserError("--epochs must be >= 0 and --batch-size >= 1")
    kw = parse_options(option)
    if not task.startswith("synthetic-") and task != "chestxray14":
        kw.setdefault("spatial_dims", spatial_dims)
    kw.setdefault("seed", seed)
    t = get_task(task, **kw)
    if arch is not None:
        from analogmed.cli.arch import resolve

        head = "classification" if t.kind == "classification" else "segmentation"
        a = resolve(arch, t.spatial_dims, t.in_channels, t.num_classes, head)
        a.check_task(t)
        spec = {"family": "space", "arch": a.to_dict()}
    else:
        if model not in ZOO_NAMES:
            raise UserError(f"unknown model {model!r}; valid models: {', '.join(ZOO_NAMES)} (or --arch FILE)")
        head = "classification" if t.kind == "classification" else "segmentation"
        spec = zoo_spec(model, t.spatial_dims, t.in_channels, t.num_classes, t.image_size, size_preset, head)
    if hwa:
        from analogmed.analog import load_preset
        if not load_preset(preset).has_noise_model:
            raise UserError(f"--preset {preset} has no device noise model, so --hwa has nothing to train against; "
                            "use e.g. --preset pcm")
        if hwa_epochs is not None and hwa_epochs < 1:
            raise UserError(f"--hwa-epochs {hwa_epochs} is invalid; use at least 1")
    start = load_checkpoint(init) if init is not None else None
    if hwa and start is not None and epochs == 0:
        ckpt = start
    else:
        cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device,
                          augment=not no_augment)
        ckpt = train_model(spec, t, cfg, init=start)
        typer.echo(f"{t.name}: {ckpt.model_id} trained {epochs} epochs in {ckpt.metrics['train_time_s']:.1f} s")
    if hwa:
        from analogmed.analog.hwa import hwa_config, hwa_finetune
        hcfg = hwa_config(preset, epochs=hwa_epochs, lr=hwa_lr, batch_size=batch_size, seed=seed, device=device,
                          augment=not no_augment)
        ckpt = hwa_finetune(ckpt, preset, hcfg, t)
        best = ckpt.metrics.get("best_val_score")
        kept = {"analog": f"best analog 1-day val score {best:.3f}" if best is not None else "",
                "training": f"best training-noise val score {best:.3f}" if best is not None else "",
                "last": "last epoch"}[ckpt.metrics["selected_by"]]
        typer.echo(f"hardware-aware training on {preset}: {hcfg.epochs} epochs in "
                   f"{ckpt.metrics['train_time_s']:.1f} s (kept epoch {ckpt.metrics['best_epoch'] or hcfg.epochs}: "
                   f"{kept or 'last epoch'})")
        val = ckpt.metrics["val_digital"]
    else:
        val = ckpt.metrics["val"]
    save_checkpoint(out, ckpt)
    typer.echo("validation (digital read-back): " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()))
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
