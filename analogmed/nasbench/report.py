"""What the benchmark table says (``analogmed nasbench report``); figures in :mod:`analogmed.plots.nasbench`.

For one task and preset (candidates with supernet weights unless stated):

* **digital vs analog**: Kendall tau-b (``scipy.stats.kendalltau``, variant b) between the digital
  score and the analog 1-day score over all candidates, with its p-value; the same against AVM; the
  overlap of the top-``top`` candidates by digital score and by analog 1-day score;
* **block effects**: for every block letter of the space, the difference in mean 1-day score (and
  in mean AVM) between candidates that contain the letter at any level and those that do not, with a
  95 % Welch confidence interval; the mean per depth and per maximum width with 95 % t-intervals;
* **Pareto fronts**: non-dominated candidates for (1-day score max, Raspberry Pi 3 latency min),
  (1-day score, laptop latency), (1-day score, HERMES energy);
* **supernet vs stand-alone** (candidates also trained from scratch, variants ``standalone-s<i>``):
  tau-b between the supernet-inherited and the stand-alone (mean over seeds) analog 1-day score, the
  same for the digital score, and the split-half ceiling: tau-b between stand-alone seed 0 and seed 1.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analogmed.errors import UserError

PARETO_TARGETS = (("latency_ms@raspberry-pi3", "Raspberry Pi 3 latency (ms)"),
                  ("latency_ms@laptop-ryzen7-6800h", "laptop (Ryzen 7 6800H) latency (ms)"),
                  ("hermes_energy_mj", "HERMES energy (mJ, four-phase)"))


def _tau(x, y) -> dict[str, float]:
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return {"tau_b": float("nan"), "p_value": float("nan"), "n": int(ok.sum())}
    r = kendalltau(x[ok], y[ok], variant="b")
    return {"tau_b": float(r.statistic), "p_value": float(r.pvalue), "n": int(ok.sum())}


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Difference of means ``mean(a) - mean(b)`` and its 95 % Welch confidence interval."""
    from scipy import stats

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan"), float("nan")
    d = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = float(stats.t.ppf(0.975, dof)) * se
    return d, d - h, d + h


def _mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    from scipy import stats

    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


def block_effects(df: pd.DataFrame, letters: list[str] | None = None) -> pd.DataFrame:
    """One row per block letter: ``n_with, n_without``, and for ``score_1d_mean`` and ``avm`` the effect
    (mean with - mean without) and its 95 % CI (``effect_score, lo_score, hi_score, effect_avm, ...``)."""
    blocks = df["blocks"].str.split(",")
    letters = letters or sorted({b for bs in blocks for b in bs})
    out = []
    for letter in letters:
        has = np.array([letter in bs for bs in blocks])
        row: dict[str, Any] = {"block": letter, "n_with": int(has.sum()), "n_without": int((~has).sum())}
        for col, tag in (("score_1d_mean", "score"), ("avm", "avm"), ("digital_score", "digital")):
            v = df[col].to_numpy(float)
            e, lo, hi = _welch(v[has], v[~has])
            row.update({f"effect_{tag}": e, f"lo_{tag}": lo, f"hi_{tag}": hi})
        out.append(row)
    return pd.DataFrame(out)


def group_means(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean 1-day score and AVM per value of ``by`` (``depth`` or ``max_width``) with 95 % t-intervals."""
    d = df.assign(max_width=[max(int(w) for w in ws.split(",")) for ws in df["widths"]])
    out = []
    for key, g in d.groupby(by):
        row: dict[str, Any] = {by: int(key), "n": len(g)}
        for col, tag in (("score_1d_mean", "score"), ("avm", "avm")):
            m, lo, hi = _mean_ci(g[col].to_numpy(float))
            row.update({f"mean_{tag}": m, f"lo_{tag}": lo, f"hi_{tag}": hi})
        out.append(row)
    return pd.DataFrame(out)


def standalone_check(bench, preset: str, task: str) -> dict[str, Any] | None:
    """Supernet-inherited vs stand-alone ranking (see the module docstring); None without stand-alone rows."""
    full = bench.table(variant=None, preset=preset, task=task)
    sa = full[full["variant"].str.startswith("standalone-s")]
    if sa.empty:
        return None
    seeds = sorted(sa["variant"].unique())
    piv_a = sa.pivot_table(index="arch_id", columns="variant", values="score_1d_mean")
    piv_d = sa.pivot_table(index="arch_id", columns="variant", values="digital_score")
    piv_a = piv_a.dropna()
    piv_d = piv_d.loc[piv_a.index]
    sn = full[full["variant"] == "supernet"].set_index("arch_id").loc[piv_a.index]
    out: dict[str, Any] = {"k": int(len(piv_a)), "seeds": len(seeds)}
    out["analog"] = _tau(sn["score_1d_mean"], piv_a.mean(axis=1))
    out["digital"] = _tau(sn["digital_score"], piv_d.mean(axis=1))
    if len(seeds) >= 2:
        out["analog_ceiling"] = _tau(piv_a[seeds[0]], piv_a[seeds[1]])
        out["digital_ceiling"] = _tau(piv_d[seeds[0]], piv_d[seeds[1]])
    out["standalone_digital_vs_analog"] = _tau(piv_d.mean(axis=1), piv_a.mean(axis=1))
    out["table"] = pd.DataFrame({"arch_id": piv_a.index, "label": sn["label"].to_numpy(),
                                 "supernet_score_1d": sn["score_1d_mean"].to_numpy(),
                                 "supernet_digital": sn["digital_score"].to_numpy(),
                                 "standalone_score_1d": piv_a.mean(axis=1).to_numpy(),
                                 "standalone_digital": piv_d.mean(axis=1).to_numpy(),
                                 **{f"{s}_score_1d": piv_a[s].to_numpy() for s in seeds},
                                 **{f"{s}_digital": piv_d[s].to_numpy() for s in seeds}})
    return out


def nasbench_report(bench, preset: str | None = None, task: str | None = None, top: int = 10) -> dict[str, Any]:
    """The report of one task and preset (defaults: the first of each). Returns a dict; DataFrames under
    ``block_effects``, ``depth``, ``max_width``, ``pareto`` (dict objective -> front) and ``standalone.table``."""
    preset = preset or bench.presets[0]
    task = task or bench.tasks[0]
    df = bench.table(preset=preset, task=task)
    if len(df) < 3:
        raise UserError(f"the benchmark has {len(df)} candidates for {task}/{preset}; a report needs at least 3")
    rep: dict[str, Any] = {"benchmark": bench.meta.get("name"), "task": task, "preset": preset,
                           "engine": bench.meta.get("engine"), "n_candidates": int(len(df)),
                           "repetitions": bench.meta.get("repetitions")}
    rep["digital_vs_analog_1d"] = _tau(df["digital_score"], df["score_1d_mean"])
    rep["digital_vs_avm"] = _tau(df["digital_score"], df["avm"])
    rep["analog_1s_vs_30d"] = _tau(df["score_1s"], df["score_30d"])
    k = min(top, len(df))
    top_d = df.nlargest(k, "digital_score")["label"].tolist()
    top_a = df.nlargest(k, "score_1d_mean")["label"].tolist()
    rep["top"] = {"k": k, "overlap": len(set(top_d) & set(top_a)), "by_digital": top_d, "by_analog_1d": top_a}
    letters = (bench.meta.get("space", {}).get(task, {}) or {}).get("blocks")
    be = block_effects(df, letters)
    rep["block_effects"] = be
    ok = be.dropna(subset=["effect_score"])
    if not ok.empty:
        rep["most_robust_block"] = ok.loc[ok["effect_score"].idxmax(), "block"]
        rep["least_robust_block"] = ok.loc[ok["effect_score"].idxmin(), "block"]
        okv = be.dropna(subset=["effect_avm"])
        rep["lowest_avm_block"] = okv.loc[okv["effect_avm"].idxmin(), "block"]
        rep["highest_avm_block"] = okv.loc[okv["effect_avm"].idxmax(), "block"]
    rep["depth"] = group_means(df, "depth")
    rep["max_width"] = group_means(df, "max_width")
    rep["pareto"] = {}
    for col, _ in PARETO_TARGETS:
        if col in df.columns:
            rep["pareto"][col] = bench.pareto(["score_1d_mean", col], preset=preset, task=task)[
                ["arch_id", "label", "score_1d_mean", col]]
    rep["score_1d_range"] = [float(df["score_1d_mean"].min()), float(df["score_1d_mean"].max())]
    rep["avm_range"] = [float(df["avm"].min()), float(df["avm"].max())]
    rep["standalone"] = standalone_check(bench, preset, task)
    return rep


def _plain(obj):
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict(orient="records")
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


def format_report(rep: dict[str, Any]) -> str:
    """Markdown summary of :func:`nasbench_report` (3 decimals)."""
    t = rep["digital_vs_analog_1d"]
    lines = [f"# Analog MED-NAS-Bench report: {rep['benchmark']} ({rep['task']}, preset {rep['preset']}, "
             f"engine {rep['engine']})", "",
             f"- candidates: {rep['n_candidates']} (supernet weights, BN recalibrated), "
             f"{rep['repetitions']} hardware instances each",
             f"- 1-day score range {rep['score_1d_range'][0]:.3f} .. {rep['score_1d_range'][1]:.3f}; "
             f"AVM range {rep['avm_range'][0]:+.3f} .. {rep['avm_range'][1]:+.3f}",
             f"- **digital score vs analog 1-day score: Kendall tau-b = {t['tau_b']:.3f}** (p = {t['p_value']:.2g}, "
             f"n = {t['n']})",
             f"- digital score vs AVM: tau-b = {rep['digital_vs_avm']['tau_b']:.3f}; analog 1 s vs 30 d: "
             f"tau-b = {rep['analog_1s_vs_30d']['tau_b']:.3f}",
             f"- top-{rep['top']['k']} by digital vs by analog 1-day: **{rep['top']['overlap']} in common**",
             f"  - by digital: {', '.join(rep['top']['by_digital'])}",
             f"  - by analog:  {', '.join(rep['top']['by_analog_1d'])}"]
    if "most_robust_block" in rep:
        lines.append(f"- block with the largest 1-day score effect: **{rep['most_robust_block']}**, smallest: "
                     f"**{rep['least_robust_block']}**; lowest AVM effect: {rep['lowest_avm_block']}, highest: "
                     f"{rep['highest_avm_block']}")
    lines += ["", "## Block effects (mean with the block - mean without, 95 % Welch CI)", "",
              "| block | n with | 1-day score effect [95 % CI] | AVM effect [95 % CI] | digital effect |",
              "|---|---|---|---|---|"]
    for _, r in rep["block_effects"].iterrows():
        lines.append(f"| {r['block']} | {int(r['n_with'])} | {r['effect_score']:+.3f} [{r['lo_score']:+.3f}, "
                     f"{r['hi_score']:+.3f}] | {r['effect_avm']:+.4f} [{r['lo_avm']:+.4f}, {r['hi_avm']:+.4f}] | "
                     f"{r['effect_digital']:+.3f} |")
    for by in ("depth", "max_width"):
        lines += ["", f"## Per {by} (mean, 95 % CI)", "", f"| {by} | n | 1-day score | AVM |", "|---|---|---|---|"]
        for _, r in rep[by].iterrows():
            lines.append(f"| {int(r[by])} | {int(r['n'])} | {r['mean_score']:.3f} "
                         f"[{r['lo_score']:.3f}, {r['hi_score']:.3f}] | "
                         f"{r['mean_avm']:+.4f} [{r['lo_avm']:+.4f}, {r['hi_avm']:+.4f}] |")
    lines += ["", "## Pareto fronts (1-day score max, cost min)", ""]
    for col, front in rep["pareto"].items():
        pts = ", ".join(f"{r['label']} ({r['score_1d_mean']:.3f}, {r[col]:.3g})" for _, r in front.iterrows())
        lines.append(f"- {col}: {len(front)} candidates: {pts}")
    sa = rep.get("standalone")
    lines += ["", "## Supernet vs stand-alone ranking", ""]
    if sa is None:
        lines.append("- no stand-alone rows in this benchmark ([standalone] k = 0, or not built yet)")
    else:
        lines.append(f"- K = {sa['k']} candidates, stand-alone training with {sa['seeds']} seeds (mean)")
        lines.append(f"- analog 1-day: supernet vs stand-alone tau-b = **{sa['analog']['tau_b']:.3f}** "
                     f"(p = {sa['analog']['p_value']:.2g})" + (
                         f"; split-half ceiling (seed vs seed) = **{sa['analog_ceiling']['tau_b']:.3f}**"
                         if "analog_ceiling" in sa else ""))
        lines.append(f"- digital: supernet vs stand-alone tau-b = **{sa['digital']['tau_b']:.3f}** "
                     f"(p = {sa['digital']['p_value']:.2g})" + (
                         f"; ceiling = **{sa['digital_ceiling']['tau_b']:.3f}**" if "digital_ceiling" in sa else ""))
        lines.append(f"- stand-alone digital vs stand-alone analog 1-day: tau-b = "
                     f"{sa['standalone_digital_vs_analog']['tau_b']:.3f}")
    return "\n".join(lines)


def write_report(rep: dict[str, Any], out: str | Path) -> list[Path]:
    """``report.md``, ``report.json`` and ``block_effects.csv`` in ``out`` (atomically)."""
    from analogmed.io import atomic_path, write_text_atomic

    out = Path(out)
    paths = [write_text_atomic(out / "report.md", format_report(rep) + "\n"),
             write_text_atomic(out / "report.json", json.dumps(_plain(rep), indent=1, default=str))]
    with atomic_path(out / "block_effects.csv") as tmp:
        rep["block_effects"].to_csv(tmp, index=False)
    paths.append(out / "block_effects.csv")
    return paths


__all__ = ["PARETO_TARGETS", "block_effects", "format_report", "group_means", "nasbench_report", "standalone_check",
           "write_report"]
