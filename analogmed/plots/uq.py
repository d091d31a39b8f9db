"""Uncertainty figures: reliability diagrams and uncertainty maps (image, truth, prediction, entropy)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from analogmed.plots.style import FIG_DOUBLE, FIG_SINGLE, color, paper_style, save_figure


def plot_reliability(curves: dict[str, torch.Tensor], labels: torch.Tensor, stem: str | Path,
                     n_bins: int = 15, title: str | None = None) -> list[Path]:
    """Reliability diagram: voxel accuracy vs top-label confidence of each method's mean prediction.

    ``curves``: method name -> Monte-Carlo probabilities [R, N, C, *S]; ``labels`` [N, *S].
    The legend gives each method's ECE.
    """
    import matplotlib.pyplot as plt

    from analogmed.uq.metrics import expected_calibration_error, reliability

    with paper_style():
        fig, ax = plt.subplots(figsize=FIG_SINGLE)
        ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=0.8, label="perfect calibration")
        for i, (name, probs) in enumerate(curves.items()):
            p_mean = probs.mean(0)
            conf, acc, count = reliability(p_mean, labels, n_bins)
            keep = count > 0
            ece = expected_calibration_error(p_mean, labels, n_bins)
            ax.plot(conf[keep], acc[keep], marker="o", color=color(i), label=f"{name} (ECE {ece:.3f})")
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy (fraction of voxels correct)")
        ax.set_xlim(0, 1.0)
        ax.set_ylim(0, 1.0)
        if title:
            ax.set_title(title)
        ax.legend(loc="lower right")
        return save_figure(fig, stem)


def plot_uncertainty_maps(images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, stem: str | Path,
                          n_show: int = 3, title: str | None = None) -> list[Path]:
    """Rows = images; columns = image, ground truth, prediction (mean over samples), predictive entropy.

    ``images`` [N, C, H, W] (2D; for 3D pass a central slice), ``labels`` [N, H, W],
    ``probs`` [R, N, K, H, W]. Shows the ``n_show`` images with the most foreground.
    """
    import matplotlib.pyplot as plt

    from analogmed.uq.metrics import predictive_entropy

    ent = predictive_entropy(probs)
    pred = probs.mean(0).argmax(1)
    order = torch.argsort((labels > 0).flatten(1).sum(1), descending=True)[:n_show].tolist()
    k = probs.shape[2]
    vmax = float(np.log(k))
    with paper_style():
        fig, axes = plt.subplots(len(order), 4, figsize=(FIG_DOUBLE[0], 1.8 * len(order)), squeeze=False)
        for row, i in enumerate(order):
            panels = [(images[i, 0], "gray", None, "image"), (labels[i], "viridis", (0, k - 1), "ground truth"),
                      (pred[i], "viridis", (0, k - 1), "prediction"),
                      (ent[i], "magma", (0, vmax), "predictive entropy (nats)")]
            for col, (arr, cmap, lim, name) in enumerate(panels):
                ax = axes[row, col]
                im = ax.imshow(arr.numpy(), cmap=cmap, vmin=lim[0] if lim else None, vmax=lim[1] if lim else None)
                ax.set_xticks([]), ax.set_yticks([])
                ax.grid(False)
                if row == 0:
                    ax.set_title(name)
                if col == 3:
                    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if title:
            fig.suptitle(title)
        return save_figure(fig, stem)
