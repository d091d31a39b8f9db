"""Analytical latency model for platforms we cannot time (Raspberry Pi 3, the laptop).

Per op (a roofline with a dispatch overhead)::

    latency_s = (CALL_CYCLES + kernels x overhead_cycles) / clock
              + max( flops / (peak_flops x eff[family]),  bytes / (bandwidth x eff_mem) )

``peak_flops`` = threads x clock x fp32 FLOP/cycle and ``bandwidth`` come from the platform TOML;
``flops``, ``bytes``, ``kernels`` from :mod:`analogmed.latency.counting`. ``family`` is ``conv``
(2-D conv blocks, 1x1 fuse/head), ``conv3d``, ``convT`` (up-sampling), ``linear`` (block A),
``pool`` (max-pooling) or ``memory`` (concat, identity, nearest up-sampling: bandwidth only).
The seven free numbers (six efficiencies, ``overhead_cycles``) are either the
:data:`DEFAULT_PARAMS` (a priori guesses, never fitted) or fitted to a measured LUT with
:func:`fit_params` (least squares on log latency) and then carried to another platform's spec.

Honest limits: the efficiencies fitted on one micro-architecture (x86 + oneDNN here) are assumed to
hold on another (ARM NEON kernels on a Pi); thread scaling is assumed linear; caches are ignored
(``bytes`` is DRAM traffic with no reuse). :func:`analogmed.latency.validate.model_check` measures
how wrong this is on the one machine we can time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analogmed.latency.lut import COLUMNS, count_op, op_row
from analogmed.latency.ops import Op
from analogmed.latency.platform import Platform

#: Cycles of one Python module call (an nn.Identity op costs ~1 us at 2.6 GHz on this machine).
CALL_CYCLES = 2_000.0
FAMILIES = ("conv", "conv3d", "convT", "linear", "pool", "memory")


@dataclass(frozen=True)
class ModelParams:
    """Free numbers of the model: achieved fraction of peak per family, DRAM efficiency, overhead.

    Attributes:
        eff_conv, eff_conv3d, eff_convT, eff_linear, eff_pool: achieved fraction of fp32 peak
            (0..1]; pooling counts one FLOP per compared element.
        eff_mem: achieved fraction of DRAM bandwidth (0..1].
        overhead_cycles: CPU cycles of framework dispatch per kernel (leaf module).
        fitted_on: where the numbers come from (``default`` or the LUT they were fitted to).
    """

    eff_conv: float = 0.3
    eff_conv3d: float = 0.3
    eff_convT: float = 0.2
    eff_linear: float = 0.2
    eff_pool: float = 0.05
    eff_memory: float = 0.5
    overhead_cycles: float = 20_000.0
    fitted_on: str = "default"

    def eff(self, family: str) -> float:
        return getattr(self, f"eff_{family}")


#: A priori parameters (no fitting): typical fractions of peak for small fp32 convolutions on a CPU
#: and ~8 us of PyTorch eager dispatch per kernel at 2.5 GHz.
DEFAULT_PARAMS = ModelParams()


def op_family(op: Op) -> str:
    """``conv`` / ``conv3d`` / ``convT`` / ``linear`` / ``pool`` / ``memory`` (module docstring)."""
    b = op.block
    if op.kind.startswith("block:") and b not in ("Identity", "A"):
        return "conv3d" if op.spatial_dims == 3 else "conv"
    if op.kind.startswith("up:") and b not in ("Identity", "A"):
        return "convT"
    if b == "A":
        return "linear"
    if op.kind in ("head", "fuse"):
        return "conv"
    if op.kind == "pool":
        return "pool"
    return "memory"


def predict_ms(flops: np.ndarray, nbytes: np.ndarray, kernels: np.ndarray, families: list[str],
               platform: Platform, params: ModelParams) -> np.ndarray:
    """Vectorised model latency in ms (arrays of equal length)."""
    eff = np.array([params.eff(f) for f in families])
    compute_s = np.where(np.array(families) == "memory", 0.0,
                         np.asarray(flops, float) / (platform.peak_gflops * 1e9 * eff))
    memory_s = np.asarray(nbytes, float) / (platform.bandwidth_gbs * 1e9 * params.eff_memory)
    overhead_s = (CALL_CYCLES + np.asarray(kernels, float) * params.overhead_cycles) / (platform.clock_ghz * 1e9)
    return 1e3 * (overhead_s + np.maximum(compute_s, memory_s))


def _counts_frame(ops: list[Op]) -> pd.DataFrame:
    rows = []
    for op in ops:
        c = count_op(op)
        rows.append({**op_row(op), "flops": c.flops, "bytes": c.bytes, "kernels": c.kernels})
    return pd.DataFrame(rows)


def predict_table(table: pd.DataFrame, platform: Platform, params: ModelParams) -> np.ndarray:
    """Model latency (ms) for the rows of a LUT-like frame (needs key, flops, bytes, kernels)."""
    fams = [op_family(Op.from_key(k)) for k in table["key"]]
    return predict_ms(table["flops"].to_numpy(), table["bytes"].to_numpy(),
                      table["kernels"].to_numpy(), fams, platform, params)


def model_lut(ops: list[Op] | pd.DataFrame, platform: Platform, params: ModelParams = DEFAULT_PARAMS,
              date: str | None = None) -> pd.DataFrame:
    """A LUT for ``platform`` from the model: every row ``source = model``.

    Args:
        ops: the ops, or a LUT-like frame that already has their counts (e.g. the measured host LUT).
        platform: the target platform spec.
        params: model parameters (fitted ones record their origin in ``torch_version``'s place).
    """
    import datetime as _dt

    df = ops.copy() if isinstance(ops, pd.DataFrame) else _counts_frame(list(ops))
    ms = predict_table(df, platform, params)
    df["latency_ms"] = ms
    df["q1_ms"] = ms
    df["q3_ms"] = ms
    df["repeats"] = 0
    df["source"] = "model"
    df["platform"] = platform.name
    df["cpu_model"] = platform.cpu_model
    df["torch_version"] = f"n/a (model; params {params.fitted_on})"
    df["threads"] = platform.threads
    df["date"] = date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    return df[COLUMNS].reset_index(drop=True)


def fit_params(measured: pd.DataFrame, platform: Platform, name: str = "measured LUT") -> ModelParams:
    """Fit the seven free numbers to a measured LUT of ``platform`` (least squares, log latency).

    Efficiencies are bounded to [1e-3, 1], overhead to [0, 1e7] cycles. A family with no ops keeps
    its default.
    """
    from scipy.optimize import minimize

    fams = [op_family(Op.from_key(k)) for k in measured["key"]]
    y = np.log(measured["latency_ms"].to_numpy(float).clip(1e-6))
    f, b, k = (measured[c].to_numpy(float) for c in ("flops", "bytes", "kernels"))
    present = set(fams)
    d = DEFAULT_PARAMS

    n = len(FAMILIES)

    def unpack(z):
        e = np.exp(np.clip(z[:n], np.log(1e-3), 0.0))
        return ModelParams(**{f"eff_{fam}": float(v) for fam, v in zip(FAMILIES, e)},
                           overhead_cycles=float(np.exp(np.clip(z[n], 0, np.log(1e7)))), fitted_on=name)

    def loss(z):
        p = unpack(z)
        return float(np.mean((np.log(predict_ms(f, b, k, fams, platform, p)) - y) ** 2))

    z0 = np.log([d.eff(fam) for fam in FAMILIES] + [d.overhead_cycles])
    res = minimize(loss, z0, method="Nelder-Mead", options={"maxiter": 8000, "xatol": 1e-4, "fatol": 1e-9})
    p = unpack(res.x)
    # families without data keep their defaults
    kw = asdict(p)
    for fam in FAMILIES:
        if fam not in present:
            kw[f"eff_{fam}"] = getattr(d, f"eff_{fam}")
    return ModelParams(**kw)
