"""Analytical latency model for platforms we cannot time (Raspberry Pi 3, the laptop).

Per op (a roofline with a dispatch overhead)::

    latency_s = (CALL_CYCLES + kernels x (overhead_cycles + [threads > 1] x sync_cycles)) / clock
              + max( flops / (peak_1 x (1 + par_eff x (threads - 1)) x eff[family]),
                     bytes / (bandwidth x eff_mem) )

``peak_1`` = clock x fp32 FLOP/cycle (one core), ``threads`` (of the LUT row or the platform) and
``bandwidth`` come from the platform TOML;
``flops``, ``bytes``, ``kernels`` from :mod:`analogmed.latency.counting`. ``family`` is ``conv``
(2-D conv blocks, 1x1 fuse/head), ``conv3d``, ``convT`` (up-sampling), ``linear`` (block A),
``pool`` (max-pooling) or ``memory`` (concat, identity, nearest up-sampling: bandwidth only).
The nine free numbers (six efficiencies, ``overhead_cycles``, ``par_eff``, ``sync_cycles``) are
either the
:data:`DEFAULT_PARAMS` (a priori guesses, never fitted) or fitted to a measured LUT with
:func:`fit_params` (least squares on log latency) and then carried to another platform's spec.

Thread scaling is fitted when the measured tables include more than one thread count (this machine
ships 1- and 2-thread tables: small ops get *slower* with 2 threads, large ones ~1.6x faster).
Honest limits: the efficiencies fitted on one micro-architecture (x86 + oneDNN here) are assumed to
hold on another (ARM NEON kernels on a Pi); scaling measured from 1 to 2 threads is extrapolated to
4 (Pi) and 8 (laptop) threads; caches are ignored
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

#: Upper bound of a fitted efficiency: > 1 means the cores ran above the spec's clock (turbo).
EFF_MAX = 1.5
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
        par_eff: speed-up each extra thread adds to compute, as a fraction of one thread (0..1].
        sync_cycles: extra cycles per kernel when more than one thread runs (fork/join).
        fitted_on: where the numbers come from (``default`` or the LUT they were fitted to).
    """

    eff_conv: float = 0.3
    eff_conv3d: float = 0.3
    eff_convT: float = 0.2
    eff_linear: float = 0.2
    eff_pool: float = 0.05
    eff_memory: float = 0.5
    overhead_cycles: float = 20_000.0
    par_eff: float = 0.8
    sync_cycles: float = 20_000.0
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
               platform: Platform, params: ModelParams, threads=None) -> np.ndarray:
    """Vectorised model latency in ms (arrays of equal length; ``threads`` per row or the platform's)."""
    th = np.broadcast_to(np.asarray(platform.threads if threads is None else threads, float), np.shape(flops))
    th = np.minimum(th, platform.cores)
    eff = np.array([params.eff(f) for f in families])
    peak = platform.clock_ghz * 1e9 * platform.fp32_flops_per_cycle * (1 + params.par_eff * (th - 1))
    compute_s = np.where(np.array(families) == "memory", 0.0, np.asarray(flops, float) / (peak * eff))
    memory_s = np.asarray(nbytes, float) / (platform.bandwidth_gbs * 1e9 * params.eff_memory)
    per_kernel = params.overhead_cycles + np.where(th > 1, params.sync_cycles, 0.0)
    overhead_s = (CALL_CYCLES + np.asarray(kernels, float) * per_kernel) / (platform.clock_ghz * 1e9)
    return 1e3 * (overhead_s + np.maximum(compute_s, memory_s))


def _counts_frame(ops: list[Op]) -> pd.DataFrame:
    rows = []
    for op in ops:
        c = count_op(op)
        rows.append({**op_row(op), "flops": c.flops, "bytes": c.bytes, "kernels": c.kernels})
    return pd.DataFrame(rows)


def predict_table(table: pd.DataFrame, platform: Platform, params: ModelParams,
                  use_row_threads: bool = True) -> np.ndarray:
    """Model latency (ms) for the rows of a LUT-like frame (needs key, flops, bytes, kernels).

    With ``use_row_threads`` and a ``threads`` column, each row is predicted at its own thread
    count (for checking against measured rows); otherwise at ``platform.threads``.
    """
    fams = [op_family(Op.from_key(k)) for k in table["key"]]
    th = table["threads"].to_numpy(float) if use_row_threads and "threads" in table else None
    return predict_ms(table["flops"].to_numpy(), table["bytes"].to_numpy(),
                      table["kernels"].to_numpy(), fams, platform, params, th)


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
    ms = predict_table(df, platform, params, use_row_threads=False)
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
    """Fit the free numbers to measured LUT rows of ``platform`` (least squares, log latency).

    Rows may come from several thread counts (``threads`` column); ``par_eff`` and ``sync_cycles``
    are fitted only if more than one count is present (else they keep their defaults).
    Efficiencies are bounded to [1e-3, EFF_MAX], ``par_eff`` to [1e-3, 1], cycles to [0, 1e7]. A family with no
    ops keeps its default.
    """
    from scipy.optimize import least_squares

    fams = [op_family(Op.from_key(k)) for k in measured["key"]]
    y = np.log(measured["latency_ms"].to_numpy(float).clip(1e-6))
    f, b, k, th = (measured[c].to_numpy(float) for c in ("flops", "bytes", "kernels", "threads"))
    present = set(fams)
    multi = len(set(th)) > 1
    d = DEFAULT_PARAMS
    n = len(FAMILIES)

    def unpack(z):
        extra = {"par_eff": float(np.exp(z[n + 1])), "sync_cycles": float(np.exp(z[n + 2]))} if multi else {}
        return ModelParams(**{f"eff_{fam}": float(np.exp(v)) for fam, v in zip(FAMILIES, z[:n])},
                           overhead_cycles=float(np.exp(z[n])), fitted_on=name, **extra)

    def resid(z):
        return np.log(predict_ms(f, b, k, fams, platform, unpack(z), th)) - y

    # log-parameters, bounded: efficiencies [1e-3, EFF_MAX], cycles [1, 1e7], par_eff [1e-3, 1]
    lo = [np.log(1e-3)] * n + [0.0] + ([np.log(1e-3), 0.0] if multi else [])
    hi = [np.log(EFF_MAX)] * n + [np.log(1e7)] + ([0.0, np.log(1e7)] if multi else [])
    z0 = np.clip(np.log([d.eff(fam) for fam in FAMILIES] + [d.overhead_cycles]
                        + ([d.par_eff, d.sync_cycles] if multi else [])), lo, hi)
    res = least_squares(resid, z0, bounds=(lo, hi), method="trf", x_scale=1.0, max_nfev=2000)
    p = unpack(res.x)
    # families without data keep their defaults
    kw = asdict(p)
    for fam in FAMILIES:
        if fam not in present:
            kw[f"eff_{fam}"] = getattr(d, f"eff_{fam}")
    return ModelParams(**kw)
