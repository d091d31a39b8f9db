"""Search figures: hypervolume vs evaluations per method (median and range over seeds) and Pareto fronts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analogmed.plots.style import FIG_SINGLE, color, marker, paper_style, save_figure

_STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1))]
_ALPHA = {"digital": "alpha: supernet Dice (digital)",
          "analog": "alpha: analog 1-day Dice - AVM penalty"}


def plot_hypervolume(hv: pd.DataFrame, stem: str | Path, objective: str) -> list[Path]:
    """Median hypervolume over seeds vs number of evaluations, one line per method (band: min..max)."""
    import matplotlib.pyplot as plt

    with paper_style():
        fig, ax = plt.subplots(figsize=FIG_SINGLE)
        for i, (method, df) in enumerate(hv.groupby("method", sort=False)):
            g = df.groupby("n")["hypervolume"]
            med, lo, hi = g.median(), g.min(), g.max()
            seeds = df["seed"].nunique()
            ax.plot(med.index, med.values, color=color(i), linestyle=_STYLES[i % len(_STYLES)],
                    label=f"{method} (median of {seeds})")  # line styles: overlapping methods stay visible
            ax.fill_between(med.index, lo.values, hi.values, color=color(i), alpha=0.15, linewidth=0)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("hypervolume (alpha x latency)")
        ax.set_title(f"objective: {objective}")
        ax.legend(loc="lower right")
        return save_figure(fig, stem)


def _front(a: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((-a, t))
    fa, ft, best = [], [], -np.inf
    for i in order:
        if a[i] > best:
            fa.append(a[i])
            ft.append(t[i])
            best = a[i]
    return np.array(fa), np.array(ft)


def plot_fronts(trials: pd.DataFrame, stem: str | Path, objective: str, platform: str) -> list[Path]:
    """Every evaluated architecture (grey) and each method's Pareto front over all its seeds (steps)."""
    import matplotlib.pyplot as plt

    with paper_style():
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        ax.scatter(trials["latency_ms"], trials["alpha"], s=5, color="0.8", label="evaluated", zorder=1)
        for i, (method, df) in enumerate(trials.groupby("method", sort=False)):
            fa, ft = _front(df["alpha"].to_numpy(float), df["latency_ms"].to_numpy(float))
            ax.step(ft, fa, where="post", color=color(i), linestyle=_STYLES[i % len(_STYLES)], zorder=2)
            ax.plot(ft, fa, linestyle="none", marker=marker(i), color=color(i), label=method, zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel(f"latency on {platform} (ms, log)")
        ax.set_ylabel(_ALPHA.get(objective, "alpha"))
        ax.set_title(f"Pareto fronts (all seeds), objective: {objective}")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        return save_figure(fig, stem)


__all__ = ["plot_fronts", "plot_hypervolume"]
