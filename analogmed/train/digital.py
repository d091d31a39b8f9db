"""Digital training: DiceCE (segmentation) or BCE-with-logits (classification), AdamW, seeded.

:func:`train_model` builds the model from its spec and calls :func:`fit`, the reusable loop that
takes an already built model (hardware-aware training passes an analog model and its own
optimiser/loss through the same function). The recipe is a plain dict
(:meth:`TrainConfig.recipe`) recorded in the checkpoint.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.seeding import derive_seed, seed_everything
from analogmed.train.checkpoint import Checkpoint, nonfinite_tensors


@dataclass
class TrainConfig:
    """Training settings.

    epochs: passes over the train split; lr: AdamW learning rate; weight_decay: AdamW decay;
    batch_size; seed (model init, shuffling, augmentation); device: "cpu", "cuda" or "auto"
    (cuda when available); augment: MONAI train-time augmentation; val_every: epochs between
    validations (the best-validation weights are kept; 0 = keep the last); schedule: "cosine" or
    "constant" learning rate; progress: tqdm bar.
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    val_every: int = 1
    schedule: str = "cosine"
    progress: bool = True

    def recipe(self) -> dict[str, Any]:
        """The plain dict recorded in checkpoints (no device/progress: they do not change the result)."""
        d = asdict(self)
        d.pop("progress")
        d.pop("device")
        d["kind"] = "digital"
        return d

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError("training: epochs and batch_size must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"training: lr must be finite and > 0, not {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"training: weight_decay must be finite and >= 0, not {self.weight_decay}")
        if self.schedule not in ("cosine", "constant"):
            raise UserError(f"training: schedule must be cosine or constant, not {self.schedule!r}")


def resolve_device(device: str) -> torch.device:
    """"auto" -> cuda if available else cpu; "cuda" without a GPU -> UserError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UserError(f"unknown device {device!r}; use cpu, cuda or auto")
    return torch.device(device)


def default_loss(task) -> nn.Module:
    """MONAI DiceCELoss (softmax, one-hot target) for segmentation; BCEWithLogitsLoss for classification."""
    if task.kind == "segmentation":
        from monai.losses import DiceCELoss
        return DiceCELoss(to_onehot_y=True, softmax=True)
    return nn.BCEWithLogitsLoss()


def fit(model: nn.Module, task, cfg: TrainConfig, loss_fn: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None, warmup_epochs: int = 0) -> dict[str, Any]:
    """Train an already built ``model`` on ``task`` in place; returns metrics (history, best, time).

    ``loss_fn`` defaults to :func:`default_loss`, ``optimizer`` to AdamW(lr, weight_decay) (pass
    e.g. aihwkit's AnalogSGD for hardware-aware training), ``evaluate`` to
    :func:`analogmed.evaluate.metrics.evaluate_model` on the val split. With ``val_every > 0`` the
    weights of the best validation score are restored at the end. ``warmup_epochs``: linear learning-rate
    warm-up over the first epochs (then the ``cfg.schedule``; hardware-aware training uses it).
    """
    from analogmed.evaluate.metrics import evaluate_model

    cfg.check()
    dev = resolve_device(cfg.device)
    model.to(dev)
    loss_fn = loss_fn or default_loss(task)
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ds = task.dataset("train", augment=cfg.augment)
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "shuffle"))
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=len(ds) > cfg.batch_size)
    steps = cfg.epochs * len(loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cfg.schedule == "cosine" else None
    if warmup_epochs > 0:
        warm = max(1, warmup_epochs * len(loader))

        def factor(step: int) -> float:
            ramp = min(1.0, (step + 1) / warm)
            if cfg.schedule != "cosine":
                return ramp
            return ramp * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    evaluate = evaluate or (lambda m: evaluate_model(m, task, "val", batch_size=max(cfg.batch_size, 8)))
    history, best, best_state, best_epoch = [], -1.0, None, 0
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=f"train {task.name}", disable=not cfg.progress or None, leave=False)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, n = 0.0, 0
        for batch in loader:
            x, y = batch["image"].to(dev), batch["label"].to(dev)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(x)
            n += len(x)
            bar.update(1)
        if not math.isfinite(total):
            bar.close()
            raise UserError(f"training diverged in epoch {epoch} (loss {total / max(n, 1)}): the weights are no "
                            f"longer finite; lower the learning rate (now {cfg.lr:g}) and train again")
        row = {"epoch": epoch, "loss": total / max(n, 1)}
        if cfg.val_every and (epoch % cfg.val_every == 0 or epoch == cfg.epochs):
            scores = evaluate(model)
            row["val_score"] = scores["score"]
            if scores["score"] > best:
                best, best_epoch = scores["score"], epoch
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{scores['score']:.3f}")
        history.append(row)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    bad = nonfinite_tensors(model.state_dict())
    if bad:
        raise UserError(f"training left {len(bad)} tensor(s) with non-finite values (first {bad[0]!r}); "
                        f"lower the learning rate (now {cfg.lr:g}) and train again")
    model.eval()
    return {"history": history, "best_val_score": best if best_state is not None else None,
            "best_epoch": best_epoch, "train_time_s": time.perf_counter() - t0, "device": str(dev)}


def train_model(spec: dict[str, Any], task, cfg: TrainConfig | None = None,
                init: Checkpoint | None = None) -> Checkpoint:
    """Build ``spec`` (seeded with ``cfg.seed``), train it on ``task`` and return a :class:`Checkpoint`.

    ``init``: start from this checkpoint's weights (fine-tuning; UserError if they do not fit
    ``spec``). ``ckpt.metrics`` holds the training record (history, best epoch, time) and ``val``:
    the validation scores of the kept weights.
    """
    from analogmed.train.checkpoint import load_weights
    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.models import build_model

    cfg = cfg or TrainConfig()
    cfg.check()
    seed_everything(derive_seed(cfg.seed, "init"))
    model = build_model(spec)
    recipe = cfg.recipe()
    if init is not None:
        load_weights(model, init.model.state_dict(), source=f"initial checkpoint ({init.model_id})")
        recipe["init_model_id"] = init.model_id
    record = fit(model, task, cfg)
    record["val"] = evaluate_model(model, task, "val")
    model.cpu()
    return Checkpoint(model=model, spec=dict(spec), task_spec=dict(task.spec), seed=int(cfg.seed),
                      recipe=recipe, metrics=record)
