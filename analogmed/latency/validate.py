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
from analogmed.latency.model import DEFAULT_PARAMS, fit_params, predict_table
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
                    warmup: int = 3, repeats: int = 9, rounds: int = 3, progress: bool = True) -> pd.DataFrame:
    """Measured end-to-end forward (ms) vs LUT sum (ms), one row per candidate.

    Candidates are timed round-robin ``rounds`` times (each time: warm-up, >= ``repeats`` timed
    forwards, median); the reported ``measured_ms`` is the median of the round medians, so a burst of
    machine noise hits one round of many candidates instead of all rounds of one.
    """
    models = []
    for c in cands:
        models.append((c, c.build().eval(), torch.randn(c.input_shape, generator=torch.Generator().manual_seed(0))))
    per: list[list[float]] = [[] for _ in cands]
    with torch_threads(threads):
        for _ in tqdm(range(rounds), desc="candidate rounds", disable=None if progress else True):
            for i, (c, model, x) in enumerate(models):
                per[i].append(time_forward(model, x, warmup=warmup, repeats=repeats, min_time_s=0.03).median_ms)
    rows = []
    for (c, _, _), ms in zip(models, per):
        rows.append({"candidate": c.name, "n_ops": len(c.ops), "lut_ms": sum(table.latency_ms(op) for op in c.ops),
                     "measured_ms": float(np.median(ms)), "spread_ms": float(max(ms) - min(ms))})
    return pd.DataFrame(rows)


def calibrated_check(check: pd.DataFrame, seed: int = 0) -> dict:
    """Hold-out check of a linear correction ``measured ~ a x lut_ms + b x n_ops``.

    The LUT times each op alone (inputs hot in cache, no neighbours); a whole network runs slower by a
    roughly constant factor plus a per-op cost. Fit ``a, b`` (least squares on relative error) on a
    random half of the candidates and report MAPE/tau on the other half. Returns
    ``{"a", "b", "heldout": summary}``.
    """
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(check))
    tr, te = idx[: len(idx) // 2], idx[len(idx) // 2:]
    y = check["measured_ms"].to_numpy(float)
    X = np.stack([check["lut_ms"].to_numpy(float), check["n_ops"].to_numpy(float)], axis=1)
    w = 1.0 / y[tr]
    coef, *_ = np.linalg.lstsq(X[tr] * w[:, None], y[tr] * w, rcond=None)
    pred = X[te] @ coef
    return {"a": round(float(coef[0]), 4), "b_ms_per_op": round(float(coef[1]), 5),
            "heldout": summary(pred, y[te]), "train_n": len(tr)}


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

    ``measured`` may hold rows of several thread counts (``threads`` column). Returns
    ``{"default": {...}, "crossval": {...}, "fitted_params": ModelParams}`` where each inner dict has
    ``ops`` (all rows) and, per thread count ``t``, ``ops_<t>t`` and (if ``cand_ops`` given)
    ``candidates_<t>t`` summaries (MAPE %, tau, n).
    """
    measured = measured.reset_index(drop=True)
    meas = measured["latency_ms"].to_numpy(float)
    out: dict = {}
    preds = {"default": predict_table(measured, platform, DEFAULT_PARAMS),
             "crossval": crossval_predict(measured, platform, folds=folds, seed=seed)}
    for name, p in preds.items():
        res = {"ops": summary(p, meas)}
        for t in sorted(set(measured["threads"])):
            rows = np.flatnonzero(measured["threads"].to_numpy() == t)
            res[f"ops_{t}t"] = summary(p[rows], meas[rows])
            idx = {measured["key"][i]: i for i in rows}
            usable = [ops for ops in cand_ops if all(o.key in idx for o in ops)]
            if usable:
                cp = [sum(p[idx[o.key]] for o in ops) for ops in usable]
                cm = [sum(meas[idx[o.key]] for o in ops) for ops in usable]
                res[f"candidates_{t}t"] = summary(cp, cm)
        out[name] = res
    out["fitted_params"] = fit_params(measured, platform, name=f"{platform.name} measured LUT")
    return out
