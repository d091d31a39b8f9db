"""Figures of a study (``analogmed plot STUDY_OR_DB``), all in the house style of :mod:`analogmed.plots.style`.

- ``summary.csv``: robustness metrics per (model, task, preset) (:func:`analogmed.evaluate.robustness.summarize`);
- ``drift_<task>_<preset>``: drift curves, Dice vs log time, mean +/- std over hardware instances, one
  line per model, dashed = its digital score (:func:`analogmed.plots.drift.plot_drift_curves`);
- ``groups_<task>``: model groups (e.g. isotropic vs pyramidal, the ``group`` key of the study's
  models): 1-day score and AVM per model, coloured by group (only when the study has >= 2 groups);
- ``latency_<task>_<preset>``: AVM vs latency and 1-day score vs latency per digital platform, with
  the Pareto front (higher 1-day score, lower latency) -- for search-space models whose ops the
  platform's LUT prices (:mod:`analogmed.latency`).

Hook for other figure kinds (reliability diagrams, uncertainty maps of the UQ studies):
:func:`register_figure` adds ``fn(table, models, out_dir) -> list[Path]`` to :data:`EXTRA_FIGURES`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from analogmed.io import check_output_dir, output_set, relocate, write_text_atomic
from analogmed.plots.style import FIG_DOUBLE, FIG_SINGLE, color, marker, paper_style, save_figure

#: Extra figure makers: ``fn(table: DataFrame, models: DataFrame, out_dir: Path) -> list[Path]``.
EXTRA_FIGURES: list[Callable] = []


def register_figure(fn: Callable) -> Callable:
    """Register an extra study figure (decorator); it is called by :func:`plot_study`."""
    EXTRA_FIGURES.append(fn)
    return fn


def study_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Robustness metrics per (label, task, preset) with the model group and id."""
    from analogmed.evaluate.robustness import summarize

    df = table.copy()
    df["model_id"] = df["label"].fillna(df["model_id"])
    s = summarize(df)
    groups = table.drop_duplicates("label").set_index("label")["model_group"]
    s.insert(1, "model_group", s["model_id"].map(groups))
    return s.rename(columns={"model_id": "label"})


def plot_study(db: str | Path, out_dir: str | Path) -> list[Path]:
    """Write every figure of the study in ``db`` (a results.sqlite, study dir or study file) to ``out_dir``.

    All files or none: they are drawn into a temporary folder and moved into ``out_dir`` at the end
    (:func:`analogmed.io.output_set`). Figures name networks by their labels (e.g. ``C16-E32-C64``).
    """
    from analogmed.study.store import open_results

    check_output_dir(out_dir, "figure folder")
    with open_results(db) as store:
        table = store.table()
        models = store.models()
    if table.empty:
        from analogmed.errors import UserError

        raise UserError(f"{db} holds no results yet; run the study first (analogmed study run FILE)")
    with output_set(out_dir) as stage:
        files = _draw(table, models, stage)
        return relocate(files, stage, Path(out_dir))


def _draw(table: pd.DataFrame, models: pd.DataFrame, out: Path) -> list[Path]:
    files = []
    summary = study_summary(table)
    files.append(write_text_atomic(out / "summary.csv", summary.to_csv(index=False)))
    from analogmed.plots.drift import plot_drift_curves

    for task, g in table.groupby("task", sort=False):
        g = g.assign(model=g["label"].fillna(g["model_id"]))
        for preset, gp in g.groupby("preset", sort=False):
            files += plot_drift_curves(gp, out / f"drift_{task}_{preset}", title=f"{task} on {preset}",
                                       group_by=("model",), digital=True)
        s = summary[summary["task"] == task]
        if s["model_group"].nunique() >= 2:
            files += plot_groups(s, out / f"groups_{task}", title=task)
        files += plot_latency(s, models, out, task)
    for fn in EXTRA_FIGURES:
        files += fn(table, models, out)
    return files


def plot_groups(summary: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Two panels: 1-day score (mean +/- std) and AVM per model, models coloured by group, one
    marker per preset."""
    import matplotlib.pyplot as plt

    s = summary.sort_values(["model_group", "label", "preset"]).reset_index(drop=True)
    groups = list(dict.fromkeys(s["model_group"].fillna("other")))
    presets = list(dict.fromkeys(s["preset"]))
    labels = list(dict.fromkeys(s["label"]))
    with paper_style():
        fig, axes = plt.subplots(1, 2, figsize=FIG_DOUBLE)
        for _, r in s.iterrows():
            gi = groups.index(r["model_group"] if isinstance(r["model_group"], str) else "other")
            pi = presets.index(r["preset"])
            x = labels.index(r["label"]) + (pi - (len(presets) - 1) / 2) * 0.15
            axes[0].errorbar(x, r["score_1d_mean"], yerr=np.nan_to_num(r["score_1d_std"]), fmt=marker(pi),
                             color=color(gi), capsize=2)
            axes[1].plot(x, r["avm"], marker(pi), color=color(gi))
        for ax, ylab in zip(axes, ("1-day score (Dice, mean ± std)", "AVM = score(1 s) − score(30 d)")):
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
            ax.set_xlabel("network")
            ax.set_ylabel(ylab)
        axes[1].axhline(0, color="0.5", linewidth=0.6)
        handles = [plt.Line2D([], [], color=color(i), marker="o", linestyle="", label=g) for i, g in enumerate(groups)]
        handles += [plt.Line2D([], [], color="0.3", marker=marker(i), linestyle="", label=p)
                    for i, p in enumerate(presets)]
        axes[1].legend(handles=handles, loc="best")
        if title:
            fig.suptitle(f"{title}: network groups")
        return save_figure(fig, stem)


def model_latency(models: pd.DataFrame, task: str) -> pd.DataFrame:
    """Latency (ms) of each search-space model of ``task`` on every digital platform whose LUT prices
    it, at the task's input size (batch 1): columns ``label, platform, latency_ms, energy_mj``
    (platforms whose LUT lacks an op are left out)."""
    from analogmed.errors import UserError
    from analogmed.latency import digital_cost, list_platforms
    from analogmed.latency.candidate import arch_ops
    from analogmed.space.architecture import Architecture

    rows = []
    for _, m in models[models["task"] == task].iterrows():
        spec = json.loads(m["spec"])
        if spec.get("family") != "space":
            continue
        try:
            size = m.get("image_size")
            ops = arch_ops(Architecture.from_dict(spec["arch"]), tuple(json.loads(size)) if size else None)
        except (UserError, ValueError, TypeError):
            continue
        for plat in list_platforms():
            name = plat if isinstance(plat, str) else getattr(plat, "name", str(plat))
            try:
                c = digital_cost(ops, name)
            except UserError:
                continue
            rows.append({"label": m["label"], "platform": name, "latency_ms": c.latency_ms, "energy_mj": c.energy_mj})
    return pd.DataFrame(rows, columns=["label", "platform", "latency_ms", "energy_mj"])


def pareto_mask(latency: np.ndarray, score: np.ndarray) -> np.ndarray:
    """True for points not dominated by another (lower-or-equal latency and higher-or-equal score,
    one strictly)."""
    lat, sc = np.asarray(latency, float), np.asarray(score, float)
    keep = np.ones(len(lat), bool)
    for i in range(len(lat)):
        dom = (lat <= lat[i]) & (sc >= sc[i]) & ((lat < lat[i]) | (sc > sc[i]))
        keep[i] = not dom.any()
    return keep


def plot_latency(summary: pd.DataFrame, models: pd.DataFrame, out: Path, task: str) -> list[Path]:
    """Per preset: AVM vs latency and 1-day score vs latency (Pareto front) for every platform."""
    import matplotlib.pyplot as plt

    lat = model_latency(models, task)
    if lat.empty:
        return []
    files = []
    platforms = list(dict.fromkeys(lat["platform"]))
    for preset, s in summary.groupby("preset", sort=False):
        d = lat.merge(s[["label", "avm", "score_1d_mean", "score_1d_std"]], on="label")
        if d.empty:
            continue
        with paper_style():
            fig, axes = plt.subplots(1, 2, figsize=FIG_DOUBLE)
            for i, p in enumerate(platforms):
                g = d[d["platform"] == p].sort_values("latency_ms")
                axes[0].plot(g["latency_ms"], g["avm"], marker(i), color=color(i), label=p)
                axes[1].errorbar(g["latency_ms"], g["score_1d_mean"], yerr=np.nan_to_num(g["score_1d_std"]),
                                 fmt=marker(i), color=color(i), capsize=2, label=p)
                front = g[pareto_mask(g["latency_ms"].to_numpy(), g["score_1d_mean"].to_numpy())]
                axes[1].step(front["latency_ms"], front["score_1d_mean"], where="post", color=color(i),
                             linewidth=0.8)
                for _, r in (g.iterrows() if i == 0 else ()):
                    axes[1].annotate(r["label"], (r["latency_ms"], r["score_1d_mean"]), fontsize=5,
                                     xytext=(2, 2), textcoords="offset points")
            for ax in axes:
                ax.set_xscale("log")
                ax.set_xlabel("latency per forward (ms, log scale)")
            axes[0].set_ylabel("AVM = score(1 s) − score(30 d)")
            axes[1].set_ylabel("1-day score (Dice, mean ± std)")
            axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="platform\n(line: Pareto front)")
            fig.suptitle(f"{task} on analog preset {preset}: robustness vs digital latency")
            files += save_figure(fig, out / f"latency_{task}_{preset}")
    return files


__all__ = ["EXTRA_FIGURES", "FIG_SINGLE", "model_latency", "pareto_mask", "plot_groups", "plot_latency",
           "plot_study", "register_figure", "study_summary"]
