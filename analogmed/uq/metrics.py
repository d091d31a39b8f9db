"""Uncertainty metrics over Monte-Carlo samples of segmentation probabilities (pure functions).

Shapes: ``probs`` [R, N, C, *S] (R Monte-Carlo samples of softmax probabilities for N images with C
classes over spatial shape S), ``labels`` [N, *S] int class indices. Entropies are in nats.

- predictive entropy ``H[E_r p]`` (total uncertainty) and mutual information
  ``H[E_r p] - E_r H[p]`` (the part due to disagreement between samples: "epistemic" for MC dropout,
  hardware-instance variation for analog MC);
- calibration of the mean prediction: ECE (top-label confidence vs accuracy over all voxels,
  ``n_bins`` equal-width bins, weighted by bin size) and the multi-class Brier score
  (mean over voxels of ``sum_c (p_c - onehot_c)^2``, in [0, 2]);
- error detection: AUROC of a voxel uncertainty (entropy or MI) as a detector of a wrong voxel
  prediction (1.0 = uncertainty ranks every error above every correct voxel, 0.5 = chance);
- per-image uncertainty (mean voxel entropy) and its Spearman correlation with the image's Dice
  (a useful uncertainty is high where Dice is low: negative correlation).
"""
from __future__ import annotations

import math

import numpy as np
import torch

EPS = 1e-12


def entropy(p: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Shannon entropy (nats) of probability vectors along ``dim``."""
    return -(p * (p + EPS).log()).sum(dim)


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """[R, N, C, *S] -> [N, *S]: entropy of the mean prediction."""
    return entropy(probs.mean(0), dim=1)


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """[R, N, C, *S] -> [N, *S]: predictive entropy minus the mean entropy of the samples (>= 0)."""
    return (predictive_entropy(probs) - entropy(probs, dim=2).mean(0)).clamp_min(0.0)


def reliability(p_mean: torch.Tensor, labels: torch.Tensor, n_bins: int = 15):
    """Top-label reliability bins of a mean prediction [N, C, *S] against labels [N, *S].

    Returns (bin_confidence, bin_accuracy, bin_count) as numpy arrays of length ``n_bins``
    (confidence/accuracy NaN for empty bins).
    """
    conf, pred = p_mean.max(1)
    correct = (pred == labels).double().flatten()
    conf = conf.double().flatten()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    idx = torch.bucketize(conf, edges[1:-1], right=True)
    count = torch.bincount(idx, minlength=n_bins).double()
    s_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf)
    s_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s_conf / count).numpy(), (s_acc / count).numpy(), count.numpy()


def expected_calibration_error(p_mean: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE of the top-label confidence over all voxels (0 = perfectly calibrated)."""
    conf, acc, count = reliability(p_mean, labels, n_bins)
    w = count / max(count.sum(), 1)
    gap = np.where(count > 0, np.abs(np.nan_to_num(acc) - np.nan_to_num(conf)), 0.0)
    return float((w * gap).sum())


def brier_score(p_mean: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score of [N, C, *S] probabilities against [N, *S] labels (mean over voxels)."""
    onehot = torch.nn.functional.one_hot(labels.long(), p_mean.shape[1]).movedim(-1, 1).to(p_mean.dtype)
    return float(((p_mean - onehot) ** 2).sum(1).mean())


def auroc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` detecting ``positive`` (NaN if one class is missing)."""
    from sklearn.metrics import roc_auc_score

    y = positive.flatten().numpy().astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, score.flatten().double().numpy()))


def dice_per_image(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean foreground Dice per image [N] of hard predictions [N, *S] (the package's empty-mask rule:
    a class absent from truth and prediction scores 1)."""
    from analogmed.evaluate.metrics import segmentation_scores

    d, _ = segmentation_scores(pred.unsqueeze(1), labels.unsqueeze(1), num_classes)
    return d.mean(1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when undefined)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def uq_metrics(probs: torch.Tensor, labels: torch.Tensor, num_classes: int, n_bins: int = 15) -> dict[str, float]:
    """All metrics of one set of Monte-Carlo samples ``probs`` [R, N, C, *S] against ``labels`` [N, *S].

    Keys: ``dice`` (mean foreground Dice of the mean prediction), ``ece``, ``brier``,
    ``auroc_entropy``, ``auroc_mi`` (NaN for R = 1), ``mean_entropy``, ``mean_mi`` (nats per voxel),
    ``spearman_uncertainty_dice`` (per-image mean entropy vs per-image Dice).
    """
    p_mean = probs.mean(0)
    pred = p_mean.argmax(1)
    err = pred != labels
    ent = predictive_entropy(probs)
    mi = mutual_information(probs) if probs.shape[0] > 1 else torch.zeros_like(ent)
    dice_img = dice_per_image(pred, labels, num_classes)
    img_unc = ent.flatten(1).mean(1)
    return {
        "dice": float(dice_img.mean()),
        "ece": expected_calibration_error(p_mean, labels, n_bins),
        "brier": brier_score(p_mean, labels),
        "auroc_entropy": auroc(ent, err),
        "auroc_mi": auroc(mi, err) if probs.shape[0] > 1 else math.nan,
        "mean_entropy": float(ent.mean()),
        "mean_mi": float(mi.mean()),
        "spearman_uncertainty_dice": spearman(img_unc.numpy(), dice_img.numpy()),
    }
