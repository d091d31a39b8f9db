"""Cost of one candidate on every platform: analog (AIMC chip) vs the digital LUTs.

Used by ``analogmed cost``. A candidate is a search-space ``Architecture`` (JSON written by
``analogmed arch``) or a ``{"family": "space"}`` model spec.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from analogmed.errors import UserError
from analogmed.latency.analog_cost import CHIPS, AnalogCost, model_analog_cost
from analogmed.latency.candidate import arch_ops, digital_cost, load_arch_json
from analogmed.latency.ops import Op

DEFAULT_PLATFORMS = ("raspberry-pi3", "laptop-ryzen7-6800h", "this-machine")


@dataclass
class LoadedCandidate:
    """A candidate ready to price: ``ops`` at ``input_size``, ``model`` and its input shape."""

    name: str
    ops: list[Op]
    model: nn.Module
    input_shape: tuple[int, ...]


def load_candidate(path: str | os.PathLike, input_size: tuple[int, ...] | None = None) -> LoadedCandidate:
    """Read a candidate JSON (an Architecture or a ``{"family": "space"}`` model spec).

    ``input_size``: spatial size; UserError naming the sizes the architecture accepts if it does not fit.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"architecture file {p} not found; give the JSON of a candidate")
    try:
        json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"architecture file {p} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    arch = load_arch_json(p)
    from analogmed.space.builder import build_candidate

    if input_size:
        arch.check_input_size(input_size)
    ops = arch_ops(arch, input_size)
    size = tuple(input_size) if input_size else ops[0].size
    model = build_candidate(arch)
    return LoadedCandidate(p.stem, ops, model, (1, ops[0].in_channels, *size))


def preset_tile_size(preset: str | None) -> tuple[int, int, str]:
    """(rows, cols, where from) of the analog preset's tile; HERMES 256 x 256 if none is given."""
    if not preset:
        return 256, 256, "HERMES core (no preset)"
    try:
        from analogmed.analog import load_preset
    except ImportError:
        raise UserError("analogmed.analog is not installed; run without --preset (256x256 tiles)") from None
    pr = load_preset(preset)
    for rows_k, cols_k in (("tile_rows", "tile_cols"), ("max_input_size", "max_output_size")):
        r, c = getattr(pr, rows_k, None), getattr(pr, cols_k, None)
        if r and c:
            return int(r), int(c), f"preset {preset}"
    ts = getattr(pr, "tile_size", None)
    if ts:
        r, c = (ts, ts) if isinstance(ts, int) else ts
        return int(r), int(c), f"preset {preset}"
    m = pr.rpu_config().mapping
    return int(m.max_input_size), int(m.max_output_size), f"preset {preset} (rpu_config mapping)"


def cost_table(cand: LoadedCandidate, platforms=DEFAULT_PLATFORMS, preset: str | None = None,
               digital_folder: Path | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per target (two HERMES read modes, then each digital platform).

    Columns: ``target, latency_ms, energy_mj, tiles, mvms, source``. Also returns a dict of extras
    (tile size, chips needed, utilization).
    """
    rows, rows_ac = [], {}
    tr, tc, tile_src = preset_tile_size(preset)
    for mode, chip in CHIPS.items():
        ac: AnalogCost = model_analog_cost(cand.model, cand.input_shape, tr, tc, chip)
        rows_ac[mode] = ac
        rows.append({"target": f"analog {chip.name}", "latency_ms": ac.latency_ms, "energy_mj": ac.energy_mj,
                     "tiles": ac.tiles, "mvms": ac.mvms, "source": "model (chip figures)"})
    from analogmed.latency.candidate import load_table

    for name in platforms:
        dc = digital_cost(cand.ops, name, load_table(name, digital_folder))
        rows.append({"target": name, "latency_ms": dc.latency_ms, "energy_mj": dc.energy_mj,
                     "tiles": None, "mvms": None, "source": f"LUT ({dc.source})"})
    ac = rows_ac["four-phase"]
    extras = {"tile": f"{tr}x{tc} ({tile_src})", "chips": ac.chips, "utilization": ac.utilization,
              "layers": len(ac.layers), "ops": len(cand.ops), "replicas": ac.replicas,
              "replicated_ms": {m: a.latency_replicated_ms for m, a in rows_ac.items()}}
    return pd.DataFrame(rows), extras
