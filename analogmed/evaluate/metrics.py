"""Task metrics: Dice and Jaccard per class (MONAI) for segmentation, F1 for classification.

Segmentation: the prediction is the argmax of the logits; Dice (``monai.metrics.DiceMetric``) and
Jaccard (``monai.metrics.MeanIoU``) are computed **per item and per foreground class** and averaged
over the items of the split. ``dice_mean`` / ``jaccard_mean`` average over the foreground classes;
``score`` = ``dice_mean``.

Empty masks (explicit rule, MONAI ``ignore_empty=False``): for an item where a class is absent
from the ground truth, the class scores **1.0 if it is also absent from the prediction and 0.0 if it
is predicted** -- a network that hallucinates a structure (e.g. under analog noise) is penalised,
and no score is ever NaN.

Classification (multi-label): a label is predicted when its sigmoid is >= 0.5; per-label F1 =
2TP / (2TP + FP + FN) counted over the whole split; a label with TP = FP = FN = 0 (never present,
never predicted) scores 1.0, by the same rule. ``f1_macro`` is the mean over labels; ``score`` =
``f1_macro``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader


def score_name(task) -> str:
    """Human name of the task's headline metric."""
    return "Dice" if task.kind == "segmentation" else "F1"


def _device_of(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def segmentation_scores(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item, per-foreground-class Dice and Jaccard.

    pred, label: int64 class indices [B, 1, *S]. Returns two float tensors [B, num_classes - 1].
    """
    from monai.metrics import DiceMetric, MeanIoU
    from monai.networks.utils import one_hot

    p = one_hot(pred, num_classes)
    y = one_hot(label, num_classes)
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(p, y)
    iou = MeanIoU(include_background=False, reduction="none", ignore_empty=False)(p, y)
    return dice.float(), iou.float()


def f1_counts(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """TP, FP, FN per label: logits, label [B, K] -> int64 [3, K]."""
    pred = torch.sigmoid(logits) >= 0.5
    y = label >= 0.5
    return torch.stack([(pred & y).sum(0), (pred & ~y).sum(0), (~pred & y).sum(0)])


def f1_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """Per-label F1 from [3, K] counts; 1.0 where TP = FP = FN = 0."""
    tp, fp, fn = counts.double()
    den = 2 * tp + fp + fn
    return torch.where(den > 0, 2 * tp / den.clamp(min=1), torch.ones_like(den))


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, task, split: str = "val", batch_size: int = 8,
                   device: str | torch.device | None = None) -> dict[str, float]:
    """Score ``model`` on ``task``'s ``split`` (no augmentation). See module docstring for keys.

    Works for digital and analog (aihwkit) models; calls ``model.eval()``.
    """
    model.eval()
    dev = torch.device(device) if device is not None else _device_of(model)
    loader = DataLoader(task.dataset(split, augment=False), batch_size=batch_size, shuffle=False)
    names = task.foreground_names
    out: dict[str, Any] = {}
    if task.kind == "segmentation":
        dices, ious = [], []
        for batch in loader:
            logits = model(batch["image"].to(dev))
            pred = logits.argmax(1, keepdim=True).cpu()
            d, j = segmentation_scores(pred, batch["label"], task.num_classes)
            dices.append(d)
            ious.append(j)
        dice = torch.cat(dices).mean(0)
        iou = torch.cat(ious).mean(0)
        for k, n in enumerate(names):
            out[f"dice_{n}"] = float(dice[k])
        for k, n in enumerate(names):
            out[f"jaccard_{n}"] = float(iou[k])
        out["dice_mean"] = float(dice.mean())
        out["jaccard_mean"] = float(iou.mean())
        out["score"] = out["dice_mean"]
    else:
        counts = torch.zeros(3, task.num_classes, dtype=torch.int64)
        for batch in loader:
            logits = model(batch["image"].to(dev)).cpu()
            counts += f1_counts(logits, batch["label"])
        f1 = f1_from_counts(counts)
        for k, n in enumerate(names):
            out[f"f1_{n}"] = float(f1[k])
        out["f1_macro"] = float(f1.mean())
        out["score"] = out["f1_macro"]
    return out
