"""How right are the tables? Two checks, both on the machine we can time.

* :func:`candidate_check`: LUT sum vs measured end-to-end forward of whole candidates.
* :func:`model_check`: the analytical model of this machine (from its own spec) vs its measured LUT,
  over ops and over whole candidates: with a priori parameters, and with parameters fitted on the
  other folds (k-fold cross-validation, the way the Pi 3 / laptop tables are made from this one).

Metrics: MAPE = mean(|pred - meas| / meas) in %, Kendall tau-b between predicted and measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau
from tqdm import tqdm

from analogmed.latency.lut import LatencyTable
from analogmed.latency.model import DEFAULT_PARAMS, ModelParams, fit_params, predict_table
from analogmed.latency.ops import Op
from analogmed.latency.platform import Platform
from analogmed.latency.timing import time_forward, torch_threads


def mape(pred, meas) -> float:
    """Mean absolute percentage error, %."""
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    return float(np.mean(np.abs(pred - meas) / meas) * 100)


def tau(pred, meas) -> float:
    """Kendall tau-b between two rankings."""
    return float(kendalltau(pred, meas).statistic)


@dataclass(frozen=True)
class Candidate:
    """A candidate for validation: its ``ops`` (priced by the LUT) and a ``build()`` of its model."""

    name: str
    ops: list[Op]
    build: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]   # (1, C, *spatial)


def candidate_check(cands: Sequence[Candidate], table: LatencyTable, threads: int = 1,
                    warmup: int = 3, repeats: int = 9, progress: bool = True) -> pd.DataFrame:
    """Measured end-to-end median forward (ms) vs LUT sum (ms), one row per candidate."""
    rows = []
    with torch_threads(threads):
        for c in tqdm(cands, desc="candidates", disable=None if progress else True):
            model = c.build().eval()
            x = torch.randn(c.input_shape, generator=torch.Generator().manual_seed(0))
            t = time_forward(model, x, warmup=warmup, repeats=repeats, min_time_s=0.05)
            pred = sum(table.latency_ms(op) for op in c.ops)
            rows.append({"candidate": c.name, "n_ops": len(c.ops), "lut_ms": pred,
                         "measured_ms": t.median_ms, "iqr_ms": t.iqr_ms})
    return pd.DataFrame(rows)


def summary(pred, meas) -> dict:
    """``{"mape_pct", "tau", "n"}``."""
    return {"mape_pct": round(mape(pred, meas), 1), "tau": round(tau(pred, meas), 3), "n": len(meas)}


def crossval_predict(measured: pd.DataFrame, platform: Platform, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold model predictions (ms): each op predicted with params fitted on the other folds."""
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(measured)) % folds
    pred = np.zeros(len(measured))
    for k in range(folds):
        train = measured[fold != k]
        params = fit_params(train, platform, name=f"fold {k}")
        pred[fold == k] = predict_table(measured[fold == k], platform, params)
    return pred


def model_check(measured: pd.DataFrame, platform: Platform, cand_ops: Sequence[Sequence[Op]] = (),
                folds: int = 5, seed: int = 0) -> dict:
    """Model-vs-measured for the machine that ``measured`` (a measured LUT frame) was timed on.

    Returns ``{"default": {...}, "crossval": {...}, "fitted_params": ModelParams}`` where each inner
    dict has ``ops`` and (if ``cand_ops`` given) ``candidates`` summaries (MAPE %, tau, n).
    """
    meas = measured["latency_ms"].to_numpy(float)
    out: dict = {}
    preds = {"default": predict_table(measured, platform, DEFAULT_PARAMS),
             "crossval": crossval_predict(measured, platform, folds=folds, seed=seed)}
    idx = {k: i for i, k in enumerate(measured["key"])}
    for name, p in preds.items():
        res = {"ops": summary(p, meas)}
        if cand_ops:
            cp = [sum(p[idx[o.key]] for o in ops) for ops in cand_ops]
            cm = [sum(meas[idx[o.key]] for o in ops) for ops in cand_ops]
            res["candidates"] = summary(cp, cm)
        out[name] = res
    out["fitted_params"] = fit_params(measured, platform, name=f"{platform.name} measured LUT")
    return out


def fitted_or_default(params: ModelParams | None) -> ModelParams:
    return params or DEFAULT_PARAMS
