"""Drift curves: task score vs time after programming (log axis), mean +/- std over hardware instances."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analogmed.plots.style import FIG_DOUBLE, FIG_SINGLE, color, marker, paper_style, save_figure

_TICKS = [(1.0, "1 s"), (60.0, "1 min"), (3600.0, "1 h"), (86_400.0, "1 d"),
          (2_592_000.0, "30 d"), (31_536_000.0, "1 y")]


def plot_drift_curves(df: pd.DataFrame, stem: str | Path, title: str | None = None,
                      group_by: tuple[str, ...] = ("model_id", "preset"), score_label: str = "Dice",
                      digital: bool = True) -> list[Path]:
    """Plot one line per ``group_by`` group of a drift table (rows: t_inference_s, repetition, score).

    Shaded band = mean +/- one standard deviation over repetitions; dashed line = the digital
    score when the table has ``digital_score`` (omitted above 4 groups, whose legend goes outside the
    axes; labels containing ``+hwa`` are drawn dashed). Writes ``stem.png`` and ``stem.pdf``.
    """
    import matplotlib.pyplot as plt

    keys = [k for k in group_by if k in df.columns]
    groups = list(df.groupby(keys, sort=False)) if keys else [("all", df)]
    many = len(groups) > 4  # legend outside, no digital lines (they would hide the curves)
    digital = digital and not many
    with paper_style():
        fig, ax = plt.subplots(figsize=(FIG_DOUBLE[0] * 0.8, FIG_DOUBLE[1] * 1.2) if many else FIG_SINGLE)
        for i, (key, g) in enumerate(groups):
            stats = g.groupby("t_inference_s")["score"].agg(["mean", "std"]).sort_index()
            t = np.maximum(stats.index.to_numpy(dtype=float), 1e-1)
            mean, std = stats["mean"].to_numpy(), np.nan_to_num(stats["std"].to_numpy())
            label = " / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            style = "--" if "+hwa" in label else "-"
            ax.plot(t, mean, marker=marker(i), color=color(i), linestyle=style, label=label)
            ax.fill_between(t, mean - std, mean + std, color=color(i), alpha=0.08 if many else 0.2, linewidth=0)
            if digital and "digital_score" in g.columns:
                ax.axhline(float(g["digital_score"].iloc[0]), color=color(i), linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ticks = [(v, s) for v, s in _TICKS if lo <= v <= hi]
        ax.set_xticks([v for v, _ in ticks], [s for _, s in ticks])
        ax.minorticks_off()
        ax.set_xlabel("time after programming, t (log scale)")
        ax.set_ylabel(f"{score_label} (mean ± std over instances)")
        if title:
            ax.set_title(title)
        if many:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=1)
        else:
            ax.legend(loc="best", title="dashed: digital" if digital and "digital_score" in df.columns else None)
        return save_figure(fig, stem)
