"""Latency lookup tables (LUTs): one CSV per platform in ``digital/``, one row per :class:`Op`.

Columns (every row carries its provenance, so a table can be concatenated or filtered freely):

=================  ===========================================================================
``key``            :attr:`Op.key`, e.g. ``block:C|2d|16>32|64x64``
``kind`` ...       ``kind, spatial_dims, in_channels, out_channels, size, extra`` (the op)
``latency_ms``     median forward latency of the op, batch 1, ms
``q1_ms, q3_ms``   quartiles of the timed repeats (measured) or equal to ``latency_ms`` (model)
``repeats``        timed repeats (0 for modelled rows)
``flops, bytes``   work of the op; ``kernels`` leaf modules it runs (:mod:`~.counting`)
``source``         ``measured`` (timed with torch on the platform) or ``model`` (analytical)
``platform``       platform name;  ``cpu_model``, ``torch_version``, ``threads``, ``date``
=================  ===========================================================================
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch
from tqdm import tqdm

from analogmed.errors import UserError
from analogmed.io import atomic_path
from analogmed.latency.counting import count_module
from analogmed.latency.ops import Op, op_module
from analogmed.latency.platform import Platform
from analogmed.latency.timing import time_forward, torch_threads

COLUMNS = ["key", "kind", "spatial_dims", "in_channels", "out_channels", "size", "extra",
           "latency_ms", "q1_ms", "q3_ms", "repeats", "flops", "bytes", "kernels", "source", "platform",
           "cpu_model", "torch_version", "threads", "date"]
SOURCES = ("measured", "model")


def op_row(op: Op) -> dict:
    """The op-describing columns of a LUT row."""
    return {"key": op.key, "kind": op.kind, "spatial_dims": op.spatial_dims,
            "in_channels": op.in_channels, "out_channels": op.out_channels,
            "size": "x".join(str(s) for s in op.size), "extra": op.extra}


def count_op(op: Op):
    """FLOPs/bytes of ``op`` (:class:`~analogmed.latency.counting.Counts`)."""
    module, inputs = op_module(op)
    return count_module(module, *inputs)


def measure_ops(ops: Iterable[Op], platform: Platform, warmup: int = 3, repeats: int = 9,
                min_time_s: float = 0.1, progress: bool = True) -> pd.DataFrame:
    """Time every op with torch on this machine (``platform.threads`` threads): the measured LUT.

    Each op: ``warmup`` untimed forwards, then >= ``repeats`` timed forwards (more, up to 10x, until
    ``min_time_s`` was spent); the median is the latency. Batch 1, fp32, eval mode, no_grad.
    """
    ops = list(dict.fromkeys(ops))
    rows = []
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    with torch_threads(platform.threads):
        for op in tqdm(ops, desc=f"timing ops ({platform.name})", disable=None if progress else True):
            module, inputs = op_module(op)
            counts = count_module(module, *inputs)
            t = time_forward(module, *inputs, warmup=warmup, repeats=repeats, min_time_s=min_time_s)
            rows.append({**op_row(op), "latency_ms": t.median_ms, "q1_ms": t.q1_ms, "q3_ms": t.q3_ms,
                         "repeats": t.repeats, "flops": counts.flops, "bytes": counts.bytes,
                         "kernels": counts.kernels,
                         "source": "measured", "platform": platform.name,
                         "cpu_model": platform.cpu_model, "torch_version": torch.__version__,
                         "threads": platform.threads, "date": today})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_lut(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate ``df`` and write it as CSV atomically."""
    validate_lut(df, str(path))
    with atomic_path(path) as tmp:
        df[COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
        os.chmod(tmp, 0o644)
    return Path(path)


def validate_lut(df: pd.DataFrame, where: str = "LUT") -> pd.DataFrame:
    """Check columns, values and keys of a LUT; raise :class:`UserError` naming the first problem."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{where}: malformed latency table, missing columns {missing}; "
                        f"rebuild it with `analogmed lut build`")
    if df.empty:
        raise UserError(f"{where}: latency table has no rows; rebuild it with `analogmed lut build`")
    lat = pd.to_numeric(df["latency_ms"], errors="coerce")
    bad = df.index[lat.isna() | (lat < 0)]
    if len(bad):
        raise UserError(f"{where}: row {int(bad[0]) + 2} has latency_ms={df.loc[bad[0], 'latency_ms']!r} "
                        f"(need a number >= 0); fix or rebuild the table")
    src = ~df["source"].isin(SOURCES)
    if src.any():
        i = int(df.index[src][0])
        raise UserError(f"{where}: row {i + 2} has source={df.loc[i, 'source']!r} (need one of {SOURCES})")
    for i, key in enumerate(df["key"]):
        try:
            Op.from_key(str(key))
        except (ValueError, TypeError):
            raise UserError(f"{where}: row {i + 2} has malformed op key {key!r} "
                            f"(expected kind|2d|in>out|HxW)") from None
    dup = df["key"].duplicated()
    if dup.any():
        raise UserError(f"{where}: op {df['key'][dup].iloc[0]!r} appears twice; keep one row per op")
    return df


def read_lut(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a LUT CSV; a missing or malformed file raises :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"latency table {path} not found; build it with "
                        f"`analogmed lut build --platform {path.stem}`")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]}); "
                        f"rebuild it with `analogmed lut build`") from None
    return validate_lut(df, str(path))


class LatencyTable:
    """A validated LUT with lookup by :class:`Op` (``table[op]`` -> latency ms)."""

    def __init__(self, df: pd.DataFrame, name: str = "LUT", platform: str | None = None):
        self.df = validate_lut(df, name)
        self.name = name
        self.platform = platform or str(df["platform"].iloc[0])
        self._ms = dict(zip(df["key"].astype(str), df["latency_ms"].astype(float)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyTable":
        df = read_lut(path)
        return cls(df, name=str(path))

    def __contains__(self, op: Op) -> bool:
        return op.key in self._ms

    def __len__(self) -> int:
        return len(self._ms)

    def latency_ms(self, op: Op) -> float:
        """Latency of ``op``; a missing op raises :class:`UserError` naming it and the fix."""
        try:
            return self._ms[op.key]
        except KeyError:
            raise UserError(
                f"latency table {self.name} has no row for op {op.key!r}; rebuild it on a grid that "
                f"contains this op: `analogmed lut build --platform {self.platform} --spatial-dims "
                f"{op.spatial_dims} --input-size <candidate input, e.g. 128x128> --widths <widths>`") from None

    __getitem__ = latency_ms

    @property
    def source(self) -> str:
        """``measured``, ``model`` or ``mixed``."""
        s = set(self.df["source"])
        return s.pop() if len(s) == 1 else "mixed"
