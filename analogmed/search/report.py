"""Plain-text tables (no extra dependency): a DataFrame as a Markdown table."""
from __future__ import annotations

import pandas as pd


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as a GitHub Markdown table, floats with ``digits`` decimals."""
    def fmt(v):
        if isinstance(v, float):
            return "" if v != v else f"{v:.{digits}f}"
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


__all__ = ["compare_objectives", "markdown_table"]


def compare_objectives(selected: pd.DataFrame, standalone: pd.DataFrame | None = None) -> pd.DataFrame:
    """The digital vs the analog-aware objective, paired per (method, seed): one row per measure with the
    mean over pairs of each objective's selection, and how often the analog objective's is better / worse
    (pairs that selected the same architecture excluded).

    Measures: ``sn_score_1d`` / ``sn_avm`` (supernet sub-network, the search's own analog evaluation or
    table row), ``latency_ms``; with ``standalone`` ("(T)" rows, mean over tasks) ``T_score_1d``,
    ``T_avm``, ``T_digital``. Empty when the search did not run both objectives.
    """
    if selected.empty or not {"digital", "analog"} <= set(selected["objective"]):
        return pd.DataFrame()
    keys = ["method", "seed"]
    d = selected[selected["objective"] == "digital"].set_index(keys)
    a = selected[selected["objective"] == "analog"].set_index(keys)
    pairs = d.join(a, how="inner", lsuffix="_d", rsuffix="_a")
    measures = {"sn_score_1d": +1, "sn_avm": -1, "latency_ms": -1}
    if standalone is not None and not standalone.empty:
        per = standalone.groupby(["objective", *keys])[["score_1d", "avm", "digital_score"]].mean()
        per.columns = ["T_score_1d", "T_avm", "T_digital"]
        for obj, suf in (("digital", "_d"), ("analog", "_a")):
            if obj in per.index.get_level_values(0):
                pairs = pairs.join(per.loc[obj].add_suffix(suf), how="left")
        measures.update({"T_score_1d": +1, "T_avm": -1, "T_digital": +1})
    differ = pairs["label_d"] != pairs["label_a"]
    rows = []
    for m, sign in measures.items():
        if f"{m}_d" not in pairs.columns or f"{m}_a" not in pairs.columns:
            continue
        ok = pairs[[f"{m}_d", f"{m}_a"]].notna().all(axis=1)
        diff = (pairs[f"{m}_a"] - pairs[f"{m}_d"])[ok & differ] * sign
        rows.append({"measure": m, "pairs": int(ok.sum()), "same_architecture": int((ok & ~differ).sum()),
                     "digital_objective": float(pairs.loc[ok, f"{m}_d"].mean()),
                     "analog_objective": float(pairs.loc[ok, f"{m}_a"].mean()),
                     "analog_better": int((diff > 1e-12).sum()), "analog_worse": int((diff < -1e-12).sum())})
    return pd.DataFrame(rows)
