"""Latency and energy of a whole candidate from a LUT: the sum over its ops.

``latency_ms = sum(LUT[op] for op in ops)``, ``energy_mj = latency_ms x platform.typical_power_w``
(ms x W = mJ). The ops of a search-space candidate come from
``Architecture.ops(input_size)`` (``analogmed.space``), converted by :func:`as_op`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from analogmed.errors import UserError
from analogmed.latency.lut import LatencyTable
from analogmed.latency.ops import Op
from analogmed.latency.platform import Platform, load_platform, lut_path


def _get(x: Any, *names: str, default=None):
    for n in names:
        if isinstance(x, dict) and n in x:
            return x[n]
        if hasattr(x, n):
            return getattr(x, n)
    return default


def as_op(x: Any) -> Op:
    """Convert one op of ``Architecture.ops()`` (an :class:`Op`, a dict or an object with the
    fields ``kind, spatial_dims, in_channels, out_channels, size[, extra]``) into an :class:`Op`."""
    if isinstance(x, Op):
        return x
    if isinstance(x, str):
        return Op.from_key(x)
    size = _get(x, "size", "input_size", "spatial_shape", "shape")
    return Op(kind=str(_get(x, "kind", "op", "name")),
              spatial_dims=int(_get(x, "spatial_dims", default=len(size))),
              in_channels=int(_get(x, "in_channels")), out_channels=int(_get(x, "out_channels")),
              size=tuple(int(s) for s in size), extra=int(_get(x, "extra", "skip_channels", default=0) or 0))


def arch_ops(arch: Any, input_size: tuple[int, ...] | None = None) -> list[Op]:
    """The ops of a search-space candidate at ``input_size`` (its default if ``None``)."""
    ops = arch.ops(input_size) if input_size is not None else arch.ops()
    return [as_op(o) for o in ops]


@dataclass(frozen=True)
class DigitalCost:
    """One candidate on one digital platform: ``latency_ms``, ``energy_mj``, LUT ``source``."""

    platform: str
    latency_ms: float
    energy_mj: float
    source: str
    n_ops: int


def load_table(platform: Platform | str, folder: Path | None = None) -> LatencyTable:
    """The LUT of ``platform`` (``digital/<name>.csv`` or ``folder/<name>.csv``)."""
    name = platform.name if isinstance(platform, Platform) else platform
    return LatencyTable.load(lut_path(name, folder))


def digital_cost(ops: Iterable[Op], platform: Platform | str, table: LatencyTable | None = None) -> DigitalCost:
    """Latency (ms) and energy (mJ) of running ``ops`` once on ``platform``.

    A missing op raises :class:`UserError` naming the op and the ``lut build`` command that adds it.
    """
    plat = platform if isinstance(platform, Platform) else load_platform(platform)
    table = table or load_table(plat)
    ops = list(ops)
    ms = sum(table.latency_ms(op) for op in ops)
    return DigitalCost(plat.name, ms, ms * plat.typical_power_w, table.source, len(ops))


def load_arch_json(path: str | os.PathLike):
    """An :class:`analogmed.space.architecture.Architecture` from a JSON file (UserError if bad)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"architecture file {p} not found; write one with `analogmed arch sample`")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"architecture file {p} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        from analogmed.space.architecture import Architecture
    except ImportError:
        raise UserError("the search space (analogmed.space.architecture) is not installed") from None
    if isinstance(data, dict) and "arch" in data and isinstance(data["arch"], dict):
        data = data["arch"]  # a model spec {"family": "space", "arch": {...}}
    try:
        return Architecture.from_dict(data)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"architecture file {p} is not a valid architecture ({exc})") from None
