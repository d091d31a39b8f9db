"""Figures of the analog MED-NAS-Bench report (house style of :mod:`analogmed.plots.style`, PNG + PDF).

- ``digital_vs_analog``: analog 1-day score vs digital score per candidate (tau-b in the title), the
  top-10 by each highlighted;
- ``block_effects``: per block letter, the effect on the 1-day score and on AVM with 95 % CIs;
- ``depth_width``: mean 1-day score and AVM per depth and per maximum width (95 % CIs);
- ``pareto``: analog 1-day score vs Raspberry Pi 3 latency, laptop latency and HERMES energy, each
  with its Pareto front;
- ``supernet_vs_standalone``: supernet-inherited vs stand-alone analog 1-day score and digital score,
  and stand-alone seed 0 vs seed 1 (the ceiling).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analogmed.nasbench.report import PARETO_TARGETS
from analogmed.plots.style import FIG_DOUBLE, FIG_SINGLE, color, paper_style, save_figure


def _digital_vs_analog(df, rep, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    with paper_style():
        fig, ax = plt.subplots(figsize=FIG_SINGLE)
        ax.scatter(df["digital_score"], df["score_1d_mean"], s=6, color=color(0), alpha=0.6, lw=0,
                   label="candidate")
        td, ta = set(rep["top"]["by_digital"]), set(rep["top"]["by_analog_1d"])
        for sel, c, lab, m in ((td, 1, f"top-{rep['top']['k']} digital", "s"),
                               (ta, 3, f"top-{rep['top']['k']} analog 1 d", "^")):
            s = df[df["label"].isin(sel)]
            ax.scatter(s["digital_score"], s["score_1d_mean"], s=18, facecolors="none", edgecolors=color(c),
                       marker=m, lw=0.8, label=lab)
        lo = float(np.nanmin([df["digital_score"].min(), df["score_1d_mean"].min()]))
        hi = float(np.nanmax([df["digital_score"].max(), df["score_1d_mean"].max()]))
        ax.plot([lo, hi], [lo, hi], ls=":", color="0.5", lw=0.8)
        t = rep["digital_vs_analog_1d"]
        ax.set_title(f"{rep['task']}, {rep['preset']}: Kendall $\\tau_b$ = {t['tau_b']:.2f} (n = {t['n']})")
        ax.set_xlabel("digital score (Dice)")
        ax.set_ylabel("analog 1-day score (Dice)")
        ax.legend(loc="upper left")
        return save_figure(fig, out / "digital_vs_analog")


def _block_effects(rep, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    be = rep["block_effects"]
    x = np.arange(len(be))
    with paper_style():
        fig, axes = plt.subplots(1, 2, figsize=FIG_DOUBLE, constrained_layout=True)
        for ax, tag, lab in ((axes[0], "score", "effect on 1-day score (Dice)"),
                             (axes[1], "avm", "effect on AVM (Dice)")):
            e = be[f"effect_{tag}"].to_numpy(float)
            err = np.vstack([e - be[f"lo_{tag}"].to_numpy(float), be[f"hi_{tag}"].to_numpy(float) - e])
            ax.bar(x, e, color=[color(i) for i in range(len(be))], alpha=0.8)
            ax.errorbar(x, e, yerr=err, fmt="none", ecolor="black", lw=0.8, capsize=2)
            ax.axhline(0, color="0.3", lw=0.6)
            ax.set_xticks(x, [("Id" if b == "Identity" else b) for b in be["block"]])
            ax.set_xlabel("block letter (in the candidate vs not)")
            ax.set_ylabel(lab)
        fig.suptitle(f"Block effects, {rep['task']} / {rep['preset']} (n = {rep['n_candidates']}, 95 % CI)",
                     fontsize=8)
        return save_figure(fig, out / "block_effects")


def _depth_width(rep, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    groups = [("depth", "d"), ("max_width", "w")]
    pos, labels, series = [], [], []
    x = 0
    for gi, (by, name) in enumerate(groups):
        g = rep[by]
        for _, r in g.iterrows():
            pos.append(x)
            labels.append(f"{name}={int(r[by])}\nn={int(r['n'])}")
            series.append((gi, r))
            x += 1
        x += 0.6
    with paper_style():
        fig, axes = plt.subplots(1, 2, figsize=FIG_DOUBLE, constrained_layout=True)
        for ax, (tag, lab) in zip(axes, (("score", "1-day score (Dice)"), ("avm", "AVM (Dice; + = lost)"))):
            for xi, (gi, r) in zip(pos, series):
                m = float(r[f"mean_{tag}"])
                lo, hi = float(r[f"lo_{tag}"]), float(r[f"hi_{tag}"])
                err = None if not np.isfinite(lo) else [[m - lo], [hi - m]]
                ax.errorbar([xi], [m], yerr=err, fmt="o" if gi == 0 else "s", color=color(gi), capsize=2, lw=0.8)
            ax.set_xticks(pos, labels)
            ax.set_xlabel("d = depth, w = maximum width (n candidates)")
            ax.set_ylabel(lab)
        fig.suptitle(f"Mean per depth and per maximum width, {rep['task']} / {rep['preset']} (95 % CI)", fontsize=8)
        return save_figure(fig, out / "depth_width")


def _pareto(bench, rep, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    df = bench.table(preset=rep["preset"], task=rep["task"])
    targets = [(c, lab) for c, lab in PARETO_TARGETS if c in rep["pareto"]]
    with paper_style():
        fig, axes = plt.subplots(1, len(targets), figsize=(FIG_DOUBLE[0], 2.6), squeeze=False, sharey=True,
                                 constrained_layout=True)
        for i, (ax, (col, lab)) in enumerate(zip(axes[0], targets)):
            ax.scatter(df[col], df["score_1d_mean"], s=5, color=color(0), alpha=0.5, lw=0, label="candidate")
            f = rep["pareto"][col].sort_values(col)
            ax.step(f[col], f["score_1d_mean"], where="post", color=color(3), lw=1.0)
            ax.scatter(f[col], f["score_1d_mean"], s=14, color=color(3), zorder=3, label="Pareto front")
            ax.set_xlabel(lab)
            ax.set_title(f"{len(f)} on the front")
            if i == 0:
                ax.set_ylabel("analog 1-day score (Dice)")
                ax.legend(loc="lower right")
        return save_figure(fig, out / "pareto")


def _standalone(rep, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    sa = rep["standalone"]
    t = sa["table"]
    seeds = [c[:-len("_score_1d")] for c in t.columns if c.startswith("standalone-s") and c.endswith("_score_1d")]
    panels = [("supernet_score_1d", "standalone_score_1d", "analog 1-day: supernet", "stand-alone (mean of seeds)",
               sa["analog"]),
              ("supernet_digital", "standalone_digital", "digital: supernet", "stand-alone (mean of seeds)",
               sa["digital"])]
    if len(seeds) >= 2:
        panels.append((f"{seeds[0]}_score_1d", f"{seeds[1]}_score_1d", "analog 1-day: stand-alone seed 0",
                       "stand-alone seed 1", sa["analog_ceiling"]))
    with paper_style():
        fig, axes = plt.subplots(1, len(panels), figsize=(FIG_DOUBLE[0], 2.6), squeeze=False,
                                 constrained_layout=True)
        for i, (ax, (xc, yc, xl, yl, tau)) in enumerate(zip(axes[0], panels)):
            ax.scatter(t[xc], t[yc], s=10, color=color(i), lw=0)
            ax.set_xlabel(f"{xl} (Dice)")
            ax.set_ylabel(f"{yl} (Dice)")
            ax.set_title(f"$\\tau_b$ = {tau['tau_b']:.2f} (K = {sa['k']})")
        return save_figure(fig, out / "supernet_vs_standalone")


def plot_report(bench, rep: dict[str, Any], out: str | Path) -> list[Path]:
    """Write every figure of :func:`analogmed.nasbench.report.nasbench_report` ``rep`` to ``out``."""
    out = Path(out)
    df = bench.table(preset=rep["preset"], task=rep["task"])
    paths = _digital_vs_analog(df, rep, out)
    paths += _block_effects(rep, out)
    paths += _depth_width(rep, out)
    if rep["pareto"]:
        paths += _pareto(bench, rep, out)
    if rep.get("standalone"):
        paths += _standalone(rep, out)
    return paths


__all__ = ["plot_report"]
