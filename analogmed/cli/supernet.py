"""``analogmed supernet train|rank|subnet``: weight-sharing supernet of one task."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

supernet_app = typer.Typer(help="Weight-sharing supernet: train it, check its ranking, extract sub-networks.",
                           no_args_is_help=True)


def _widths(text: str | None):
    from analogmed.errors import UserError

    if text is None:
        return None
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise UserError(f"--widths {text!r} must be comma-separated integers, e.g. 8,16,32,32") from None


@supernet_app.command("train")
def train(
    task: str = typer.Option(..., help="task name (see `analogmed data list`)"),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", help="task option key=value"),
    spatial_dims: int = typer.Option(2, help="2 or 3 (tasks that have both)"),
    widths: Optional[str] = typer.Option(None, help="block width per level, e.g. 8,16,32,32 (its length = max depth)"),
    blocks: Optional[str] = typer.Option(None,
                                         help="block letters a level may hold, e.g. Identity,A,C,E (default all)"),
    epochs: int = typer.Option(200, help="training epochs (one sampled path per batch)"),
    lr: float = typer.Option(3e-3, help="AdamW learning rate"),
    batch_size: int = typer.Option(8, help="batch size"),
    seed: int = typer.Option(0, help="seed (init, paths, shuffling)"),
    augment: bool = typer.Option(False, "--augment", help="MONAI train-time augmentation"),
    device: str = typer.Option("cpu", help="cpu, cuda or auto"),
    out: Path = typer.Option(Path("supernet.pt"), help="supernet checkpoint to write"),
) -> None:
    """Train the weight-sharing supernet of a task (single-path) and write its checkpoint."""
    from analogmed.cli.data import parse_options
    from analogmed.data import get_task
    import math

    from analogmed.errors import UserError
    from analogmed.io import check_output_file
    from analogmed.train.supernet import SupernetConfig, save_supernet, train_supernet

    check_output_file(out, "--out")
    if not (math.isfinite(lr) and lr > 0) or epochs < 1 or batch_size < 1:
        raise UserError(f"--lr {lr} / --epochs {epochs} / --batch-size {batch_size}: give a finite learning rate "
                        f"> 0 and at least 1 epoch and 1 sample per batch")
    kw = parse_options(option)
    if not task.startswith("synthetic-") and task != "chestxray14":
        kw.setdefault("spatial_dims", spatial_dims)
    kw.setdefault("seed", seed)
    t = get_task(task, **kw)
    letters = tuple(b.strip() for b in blocks.split(",")) if blocks else None
    cfg = SupernetConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, augment=augment, device=device)
    ckpt = train_supernet(t, cfg, widths=_widths(widths), blocks=letters)
    save_supernet(out, ckpt)
    m = ckpt.metrics
    typer.echo(f"{t.name}: supernet over {m['space_size']} architectures, {m['steps']} steps in "
               f"{m['train_time_s']:.1f} s, final loss {m['history'][-1]['loss']:.3f} (seed {seed})")
    typer.echo(f"wrote {out}")


@supernet_app.command("rank")
def rank(
    supernet: Path = typer.Option(Path("supernet.pt"), help="supernet checkpoint"),
    k: int = typer.Option(12, help="number of sampled architectures"),
    epochs: int = typer.Option(40, help="stand-alone training epochs per architecture"),
    lr: float = typer.Option(3e-3, help="stand-alone AdamW learning rate"),
    batch_size: int = typer.Option(8, help="batch size"),
    seed: int = typer.Option(0, help="seed (architecture sample, stand-alone training)"),
    repeats: int = typer.Option(1, help="stand-alone trainings per architecture (seeds seed, seed+1, ...), averaged"),
    split: str = typer.Option("val", help="split both scores are measured on: val or test"),
    no_recalibrate: bool = typer.Option(False, "--no-recalibrate", help="keep the supernet's BatchNorm statistics"),
    out: Optional[Path] = typer.Option(None, help="CSV of the per-architecture scores"),
) -> None:
    """Ranking check: Kendall tau-b between supernet-estimated and stand-alone validation scores."""
    from analogmed.errors import UserError
    from analogmed.io import atomic_path, check_output_file, write_text_atomic
    from analogmed.train.supernet import load_supernet, rank_check

    check_output_file(out, "--out")
    if out is not None:
        check_output_file(out.with_suffix(".json"), "--out (its .json beside it)")
    if k < 2 or epochs < 1 or repeats < 1:
        raise UserError(f"--k {k} / --epochs {epochs} / --repeats {repeats}: rank at least 2 architectures, "
                        f"train each at least 1 epoch and once")
    ckpt = load_supernet(supernet)
    df, s = rank_check(ckpt, k=k, epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                       recalibrate=not no_recalibrate, repeats=repeats, split=split)
    typer.echo(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"{s['task']}: Kendall tau-b {s['tau_b']:.3f} (p {s['p_value']:.3g}), Spearman {s['spearman']:.3f}, "
               f"K {s['k']}, E {s['epochs']}, rank check {s['wall_s']:.1f} s "
               f"+ supernet training {s['supernet_time_s'] or 0:.1f} s (seed {s['seed']}, {s['split']} split)")
    if "tau_b_seeds" in s:
        typer.echo(f"stand-alone seed {s['seed']} vs seed {s['seed'] + 1}: Kendall tau-b {s['tau_b_seeds']:.3f} "
                   f"(the noise ceiling of the check)")
    if out is not None:  # both files or neither
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)
            write_text_atomic(out.with_suffix(".json"), json.dumps(s, indent=1) + "\n")
        typer.echo(f"wrote {out} and {out.with_suffix('.json')}")


@supernet_app.command("subnet")
def subnet(
    arch: Path = typer.Option(..., help="architecture JSON file (a path of the supernet)"),
    supernet: Path = typer.Option(Path("supernet.pt"), help="supernet checkpoint"),
    no_recalibrate: bool = typer.Option(False, "--no-recalibrate", help="keep the supernet's BatchNorm statistics"),
    out: Path = typer.Option(Path("model.pt"), help="model checkpoint to write (usable by drift, uq, train --init)"),
) -> None:
    """Extract a stand-alone sub-network with the supernet's weights as an ordinary model checkpoint."""
    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.io import check_output_file
    from analogmed.space.architecture import load_architecture
    from analogmed.train import Checkpoint, save_checkpoint
    from analogmed.train.supernet import load_supernet, recalibrate_bn

    check_output_file(out, "--out")
    a = load_architecture(arch)
    ck = load_supernet(supernet)
    t = ck.task()
    model = ck.supernet.subnet(a)
    if not no_recalibrate:
        recalibrate_bn(model, t)
    scores = evaluate_model(model.eval(), t, "val")
    recipe = {"kind": "supernet-subnet", "supernet": dict(ck.recipe), "recalibrate_bn": not no_recalibrate}
    save_checkpoint(out, Checkpoint(model=model, spec={"family": "space", "arch": a.to_dict()},
                                    task_spec=ck.task_spec, seed=ck.seed, recipe=recipe, metrics={"val": scores}))
    typer.echo(f"{a.id} ({a.label}) from supernet: val {scores['score']:.3f}")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(supernet_app, name="supernet")
