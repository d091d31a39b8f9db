"""Supernet training (single path), supernet checkpoints and the ranking check.

* :func:`train_supernet`: one :class:`~analogmed.space.supernet.Supernet` per task; every batch
  trains one uniformly sampled path (seeded: the path sequence is drawn from
  ``derive_seed(seed, "paths")``), DiceCE / BCE loss, AdamW, cosine learning rate.
* :func:`save_supernet` / :func:`load_supernet`: a ``torch.save`` dict (``format``
  "analogmed-supernet") with the supernet config, task spec, seed, recipe, metrics and weights.
* :func:`recalibrate_bn`: BatchNorm statistics of a sub-network re-estimated on the train split
  (the shared statistics of a supernet mix all paths).
* :func:`rank_check`: sample ``k`` distinct architectures, score each with its supernet weights
  (validation score after BN recalibration), train each stand-alone for ``epochs`` epochs with
  :func:`analogmed.train.train_model` (validation score of the kept weights), and report Kendall
  tau-b (``scipy.stats.kendalltau``, variant b) between the two rankings.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.seeding import derive_seed, seed_everything
from analogmed.space.architecture import Architecture
from analogmed.space.supernet import Supernet

FORMAT = "analogmed-supernet"
VERSION = 1


@dataclass
class SupernetConfig:
    """Supernet training settings.

    epochs: passes over the train split (one sampled path per batch); lr / weight_decay: AdamW;
    batch_size; seed (init, paths, shuffling, augmentation); augment: MONAI train-time augmentation;
    device: "cpu", "cuda" or "auto"; progress: tqdm bar.
    """

    epochs: int = 200
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 8
    seed: int = 0
    augment: bool = False
    device: str = "cpu"
    progress: bool = True

    def recipe(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("progress")
        d.pop("device")
        d["kind"] = "supernet-single-path"
        return d


@dataclass
class SupernetCheckpoint:
    """A trained supernet: ``supernet``, ``task_spec``, ``seed``, ``recipe``, ``metrics``."""

    supernet: Supernet
    task_spec: dict[str, Any]
    seed: int
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def task(self):
        from analogmed.data import get_task
        return get_task(**self.task_spec)


def supernet_for_task(task, widths: Sequence[int] | None = None, blocks: Sequence[str] | None = None) -> Supernet:
    """A fresh supernet for ``task`` (channels, classes, head from the task). Default widths: 8, 16, 32[, 64]."""
    head = "classification" if task.kind == "classification" else "segmentation"
    widths = tuple(widths or ((8, 16, 32, 64) if task.spatial_dims == 2 else (8, 16, 32)))
    return Supernet(task.spatial_dims, task.in_channels, task.num_classes, widths, blocks, head)


def train_supernet(task, cfg: SupernetConfig | None = None, widths: Sequence[int] | None = None,
                   blocks: Sequence[str] | None = None, supernet: Supernet | None = None) -> SupernetCheckpoint:
    """Build (seeded) and train a supernet for ``task`` with single-path sampling; returns a checkpoint.

    ``metrics``: ``history`` (mean loss per epoch), ``train_time_s``, ``steps``, ``paths_seed``.
    """
    from analogmed.train.digital import default_loss, resolve_device

    cfg = cfg or SupernetConfig()
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise UserError("supernet training: epochs and batch_size must be >= 1 and lr > 0")
    dev = resolve_device(cfg.device)
    seed_everything(derive_seed(cfg.seed, "init"))
    net = supernet or supernet_for_task(task, widths, blocks)
    net.to(dev)
    loss_fn = default_loss(task)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ds = task.dataset("train", augment=cfg.augment)
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "shuffle"))
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                        drop_last=len(ds) > cfg.batch_size)
    steps = cfg.epochs * len(loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    paths_seed = derive_seed(cfg.seed, "paths")
    rng = random.Random(paths_seed)
    history = []
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=f"supernet {task.name}", disable=not cfg.progress or None, leave=False)
    net.train()
    for epoch in range(1, cfg.epochs + 1):
        total, n = 0.0, 0
        for batch in loader:
            arch = net.sample(rng)
            x, y = batch["image"].to(dev), batch["label"].to(dev)
            opt.zero_grad(set_to_none=True)   # params off the path keep grad None: AdamW skips them
            loss = loss_fn(net(x, arch), y)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(x)
            n += len(x)
            bar.update(1)
        history.append({"epoch": epoch, "loss": total / max(n, 1)})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
    bar.close()
    net.eval().cpu()
    metrics = {"history": history, "train_time_s": time.perf_counter() - t0, "steps": steps,
               "paths_seed": paths_seed, "space_size": net.space_size()}
    return SupernetCheckpoint(net, dict(task.spec), int(cfg.seed), cfg.recipe(), metrics)


def save_supernet(path: str | Path, ckpt: SupernetCheckpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically."""
    from analogmed.io import atomic_path

    blob = {"format": FORMAT, "version": VERSION, "config": ckpt.supernet.config, "task_spec": ckpt.task_spec,
            "seed": int(ckpt.seed), "recipe": ckpt.recipe, "metrics": ckpt.metrics,
            "state_dict": {k: v.detach().cpu() for k, v in ckpt.supernet.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def load_supernet(path: str | Path) -> SupernetCheckpoint:
    """Read a supernet checkpoint written by :func:`save_supernet` (UserError on bad files)."""
    from analogmed.train.checkpoint import load_weights

    path = Path(path)
    if not path.is_file():
        raise UserError(f"supernet checkpoint {str(path)!r} does not exist; write one with `analogmed supernet train`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} is not a supernet checkpoint ({type(exc).__name__}); "
                        "pass the file written by `analogmed supernet train`") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"{path} is not a supernet checkpoint; pass the file written by `analogmed supernet train`")
    if blob.get("version") != VERSION:
        raise UserError(f"{path}: supernet checkpoint version {blob.get('version')} is not supported (need {VERSION})")
    net = Supernet(**blob["config"])
    load_weights(net, blob["state_dict"], source=f"supernet checkpoint {path}")
    return SupernetCheckpoint(net.eval(), blob["task_spec"], int(blob["seed"]), dict(blob.get("recipe") or {}),
                              dict(blob.get("metrics") or {}))


@torch.no_grad()
def recalibrate_bn(model: nn.Module, task, batch_size: int = 8, max_batches: int | None = None) -> nn.Module:
    """Re-estimate every BatchNorm's running mean/var of ``model`` on the train split (no augmentation).

    Cumulative average over the batches (``momentum=None``); weights are not changed; returns the
    model in eval mode. No-op for models without BatchNorm.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    loader = DataLoader(task.dataset("train", augment=False), batch_size=batch_size, shuffle=False)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        model(batch["image"])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def sample_distinct(supernet: Supernet, k: int, seed: int) -> list[Architecture]:
    """``k`` distinct architectures (by id) of the supernet's space, uniformly, seeded."""
    if k > supernet.space_size():
        raise UserError(f"k={k} exceeds the supernet's {supernet.space_size()} architectures; use a smaller k")
    rng = random.Random(derive_seed(seed, "rank"))
    out: dict[str, Architecture] = {}
    while len(out) < k:
        a = supernet.sample(rng)
        out.setdefault(a.id, a)
    return list(out.values())


def rank_check(ckpt: SupernetCheckpoint, task=None, k: int = 12, epochs: int = 10, seed: int = 0,
               lr: float = 3e-3, batch_size: int = 8, augment: bool = False, recalibrate: bool = True,
               repeats: int = 1, split: str = "val",
               progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ranking check (module docstring). Returns (one row per architecture, summary).

    Row columns: ``arch_id, label, depth, params, supernet_score, standalone_score`` (mean over
    ``repeats`` stand-alone trainings with seeds ``seed, seed+1, ...``), ``standalone_score_r<i>``,
    ``standalone_time_s``. Scores are on ``split`` ("val": the issue's validation Dice; "test":
    data that neither the best-epoch selection nor BN recalibration saw). Summary: ``tau_b,
    p_value, spearman, k, epochs, repeats, seed, split, wall_s, supernet_time_s, task`` and, with
    ``repeats >= 2``, ``tau_b_seeds``: tau-b between the stand-alone scores of the first two seeds
    (how well stand-alone training ranks itself: the noise ceiling of ``tau_b``). Stand-alone
    training: :class:`~analogmed.train.TrainConfig` with ``epochs, lr, batch_size, seed, augment``,
    cosine schedule, best-validation weights kept.
    """
    from scipy.stats import kendalltau, spearmanr

    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.train.digital import TrainConfig, train_model

    if k < 2:
        raise UserError(f"rank check: k must be >= 2 (Kendall tau needs two architectures), not {k}")
    if epochs < 1 or repeats < 1:
        raise UserError(f"rank check: epochs and repeats must be >= 1, not {epochs}, {repeats}")
    if split not in ("val", "test"):
        raise UserError(f"rank check: split must be val or test, not {split!r}")
    task = task or ckpt.task()
    archs = sample_distinct(ckpt.supernet, k, seed)
    rows = []
    t0 = time.perf_counter()
    for a in tqdm(archs, desc="rank check", disable=not progress or None, leave=False):
        sub = ckpt.supernet.subnet(a)
        if recalibrate:
            recalibrate_bn(sub, task, batch_size)
        row = {"arch_id": a.id, "label": a.label, "depth": a.depth,
               "params": sum(p.numel() for p in sub.parameters()),
               "supernet_score": evaluate_model(sub, task, split)["score"]}
        t1 = time.perf_counter()
        for r in range(repeats):
            cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + r, device="cpu",
                              augment=augment, progress=False)
            st = train_model({"family": "space", "arch": a.to_dict()}, task, cfg)
            row[f"standalone_score_r{r}"] = (st.metrics["val"]["score"] if split == "val"
                                             else evaluate_model(st.model, task, split)["score"])
        row["standalone_score"] = sum(row[f"standalone_score_r{r}"] for r in range(repeats)) / repeats
        row["standalone_time_s"] = (time.perf_counter() - t1) / repeats
        rows.append(row)
    df = pd.DataFrame(rows)
    tau = kendalltau(df["supernet_score"], df["standalone_score"], variant="b")
    rho = spearmanr(df["supernet_score"], df["standalone_score"])
    summary = {"task": task.name, "k": k, "epochs": epochs, "repeats": repeats, "seed": seed, "split": split,
               "tau_b": float(tau.statistic), "p_value": float(tau.pvalue), "spearman": float(rho.statistic),
               "wall_s": time.perf_counter() - t0, "supernet_time_s": ckpt.metrics.get("train_time_s"),
               "recalibrate_bn": recalibrate}
    if repeats >= 2:
        summary["tau_b_seeds"] = float(kendalltau(df["standalone_score_r0"], df["standalone_score_r1"],
                                                  variant="b").statistic)
    return df, summary


__all__ = ["SupernetCheckpoint", "SupernetConfig", "load_supernet", "rank_check", "recalibrate_bn",
           "sample_distinct", "save_supernet", "supernet_for_task", "train_supernet"]
