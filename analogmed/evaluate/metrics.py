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

from typing import Any, Iterable

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
def seg_scores_from_counts(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """Per-item, per-foreground-class Dice and Jaccard from a confusion count: the same float32 values
    as :func:`analogmed.evaluate.metrics.segmentation_scores` (MONAI ``DiceMetric`` / ``MeanIoU``,
    ``ignore_empty=False``), without one-hot tensors. pred, label: int64 [B, 1, *S] -> two [B, K - 1]."""
    k = num_classes
    b = pred.shape[0]
    idx = (label.reshape(b, -1) * k + pred.reshape(b, -1)) + (torch.arange(b).view(b, 1) * k * k)
    conf = torch.bincount(idx.flatten(), minlength=b * k * k).view(b, k, k)
    inter = torch.diagonal(conf, dim1=1, dim2=2)[:, 1:].to(torch.float32)
    y_o = conf.sum(2)[:, 1:].to(torch.float32)       # ground-truth voxels of each class
    p_o = conf.sum(1)[:, 1:].to(torch.float32)       # predicted voxels of each class
    one, zero = torch.ones_like(inter), torch.zeros_like(inter)
    dice = torch.where(y_o > 0, (2.0 * inter) / (y_o + p_o), torch.where(y_o + p_o <= 0, one, zero))
    union = y_o + p_o - inter
    iou = torch.where(union > 0, inter / union, one)
    return dice, iou


def argmax_channels(logits: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(1, keepdim=True)`` ([B, C, *S] -> int64 [B, 1, *S]) by C - 1 comparisons of
    contiguous channel planes (torch's argmax over a strided channel axis is several times slower for
    few classes). Same result: the first maximal channel wins ties; NaN logits use torch's argmax."""
    c = logits.shape[1]
    if c > 8 or logits.dim() < 3 or not logits.is_floating_point():
        return logits.argmax(1, keepdim=True)
    best = logits[:, :1].clone()
    idx = torch.zeros(best.shape, dtype=torch.int64, device=logits.device)
    for k in range(1, c):
        v = logits[:, k:k + 1]
        gt = v > best
        idx.masked_fill_(gt, k)
        torch.maximum(best, v, out=best)
    if bool(torch.isnan(best).any()):  # maximum propagates NaN: some logit was NaN
        return logits.argmax(1, keepdim=True)
    return idx


def score_batches(model: torch.nn.Module, task, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                  device: str | torch.device | None = None, counts: bool = False) -> dict[str, float]:
    """Score ``model`` on ``batches`` of (image [B, C_in, *S], label) of ``task`` (keys: module docstring).

    ``counts=True`` computes the segmentation scores from confusion counts
    (:func:`seg_scores_from_counts`, :func:`argmax_channels`: the same float32 values as MONAI's, faster
    for the many evaluations of a drift study); the default uses MONAI's metrics. Calls ``model.eval()``.
    """
    model.eval()
    dev = torch.device(device) if device is not None else _device_of(model)
    names = task.foreground_names
    out: dict[str, Any] = {}
    with torch.no_grad():
        if task.kind == "segmentation":
            dices, ious = [], []
            for x, y in batches:
                logits = model(x.to(dev))
                if counts:
                    d, j = seg_scores_from_counts(argmax_channels(logits).cpu(), y, task.num_classes)
                else:
                    d, j = segmentation_scores(logits.argmax(1, keepdim=True).cpu(), y, task.num_classes)
                dices.append(d)
                ious.append(j)
            dice = torch.cat(dices).mean(0)
            iou = torch.cat(ious).mean(0)
            out.update({f"dice_{n}": float(dice[k]) for k, n in enumerate(names)})
            out.update({f"jaccard_{n}": float(iou[k]) for k, n in enumerate(names)})
            out["dice_mean"] = float(dice.mean())
            out["jaccard_mean"] = float(iou.mean())
            out["score"] = out["dice_mean"]
        else:
            cnt = torch.zeros(3, task.num_classes, dtype=torch.int64)
            for x, y in batches:
                cnt += f1_counts(model(x.to(dev)).cpu(), y)
            f1 = f1_from_counts(cnt)
            out.update({f"f1_{n}": float(f1[k]) for k, n in enumerate(names)})
            out["f1_macro"] = float(f1.mean())
            out["score"] = out["f1_macro"]
    return out


def evaluate_model(model: torch.nn.Module, task, split: str = "val", batch_size: int = 8,
                   device: str | torch.device | None = None) -> dict[str, float]:
    """Score ``model`` on ``task``'s ``split`` (no augmentation). See module docstring for keys.

    Works for digital and analog (aihwkit) models; calls ``model.eval()``.
    """
    loader = DataLoader(task.dataset(split, augment=False), batch_size=batch_size, shuffle=False)
    return score_batches(model, task, ((b["image"], b["label"]) for b in loader), device)
