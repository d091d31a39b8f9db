"""Analog in-memory computing (AIMC) cost of a network: tiles, MVMs, latency and energy per inference.

Every Conv/ConvTranspose/Linear layer becomes a weight matrix held in crossbar tiles
(``rows x cols`` cells, the preset's tile size). One matrix-vector multiply (MVM) on a tile
produces ``cols`` outputs from ``rows`` inputs:

* ``Conv{1,2,3}d``: matrix ``(in_channels/groups x prod(kernel)) x out_channels``; one MVM per tile
  per output position (im2col).
* ``ConvTranspose{2,3}d``: matrix ``in_channels x (out_channels/groups x prod(kernel))``; one MVM per
  tile per input position.
* ``Linear``: matrix ``in_features x out_features``; one MVM per tile per input vector.

Latency assumes weight-stationary mapping with all tiles of a layer working in parallel and layers
running one after the other (no inter-layer pipelining): ``sum_layers(positions) x t_mvm``.
Energy counts every tile MVM as a full-array operation: ``2 x rows x cols / (TOPS/W)``.
Digital auxiliary work (BatchNorm, activations, pooling, concatenation, ADC calibration) and
data movement between cores are NOT included: the figures are a lower bound of a real deployment.

Chip constants: IBM HERMES project chip, M. Le Gallo et al., "A 64-core mixed-signal in-memory
compute chip based on phase-change memory for deep neural network inference", Nature Electronics
6, 680-693 (2023), arXiv:2212.02872:

* 64 AIMC cores, each a 256 x 256 crossbar of PCM unit cells, 14 nm CMOS, 8-bit input/output MVM;
* peak 16.1 TOPS at 2.48 TOPS/W in the four-phase (high-precision) read mode;
* peak 63.1 TOPS at 9.76 TOPS/W in the one-phase read mode.

Derived (not separately published here, computed from the figures above): one MVM of a 256 x 256
core is ``2 x 256 x 256 = 131 072`` ops, so the time per core MVM is
``131 072 x 64 / peak_TOPS`` = 521 ns (four-phase) and 133 ns (one-phase), and the energy per full
core MVM is ``131 072 / (TOPS/W)`` = 52.9 nJ (four-phase) and 13.4 nJ (one-phase).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn


@dataclass(frozen=True)
class AIMCChip:
    """Published figures of an AIMC chip (see the module docstring for the source).

    Attributes:
        name: chip and read mode.
        cores: crossbar cores on one chip.
        core_rows, core_cols: cells per core.
        peak_tops: peak throughput, 1e12 ops/s (1 MAC = 2 ops), whole chip.
        tops_per_w: energy efficiency at peak, 1e12 ops/J.
        source: citation.
    """

    name: str
    cores: int
    core_rows: int
    core_cols: int
    peak_tops: float
    tops_per_w: float
    source: str

    @property
    def ops_per_core_mvm(self) -> int:
        return 2 * self.core_rows * self.core_cols

    @property
    def t_mvm_ns(self) -> float:
        """Time of one core MVM, ns = ops per MVM x cores / peak ops/s."""
        return self.ops_per_core_mvm * self.cores / (self.peak_tops * 1e12) * 1e9

    def e_mvm_nj(self, rows: int, cols: int) -> float:
        """Energy of one MVM on a ``rows x cols`` tile, nJ (full-array ops at the chip's TOPS/W)."""
        return 2 * rows * cols / (self.tops_per_w * 1e12) * 1e9

    @property
    def power_w(self) -> float:
        """Chip power at peak, W = TOPS / (TOPS/W)."""
        return self.peak_tops / self.tops_per_w


_HERMES_SRC = ("Le Gallo et al., Nature Electronics 6, 680-693 (2023), arXiv:2212.02872: 64 cores of "
               "256x256 PCM cells, 14 nm; 16.1 TOPS @ 2.48 TOPS/W (four-phase), "
               "63.1 TOPS @ 9.76 TOPS/W (one-phase)")
HERMES_FOUR_PHASE = AIMCChip("IBM HERMES (four-phase)", 64, 256, 256, 16.1, 2.48, _HERMES_SRC)
HERMES_ONE_PHASE = AIMCChip("IBM HERMES (one-phase)", 64, 256, 256, 63.1, 9.76, _HERMES_SRC)
CHIPS = {"four-phase": HERMES_FOUR_PHASE, "one-phase": HERMES_ONE_PHASE}


def analog_layers(model: nn.Module, *inputs: torch.Tensor) -> pd.DataFrame:
    """One row per Conv/ConvTranspose/Linear layer of ``model(*inputs)``.

    Columns: ``layer`` (module name), ``type``, ``rows`` (matrix inputs), ``cols`` (matrix outputs),
    ``positions`` (MVMs of the whole matrix per inference, batch included).
    """
    names = {m: n for n, m in model.named_modules()}
    rows: list[dict] = []

    def hook(m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Linear):
            r, c, pos = m.in_features, m.out_features, x.numel() // m.in_features
        elif isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            k = math.prod(m.kernel_size)
            r, c = m.in_channels // m.groups, m.out_channels * k
            pos = x.numel() // m.in_channels * m.groups
        else:  # Conv
            k = math.prod(m.kernel_size)
            r, c = m.in_channels // m.groups * k, m.out_channels
            pos = out.numel() // m.out_channels * m.groups
        rows.append({"layer": names.get(m, type(m).__name__), "type": type(m).__name__,
                     "rows": int(r), "cols": int(c), "positions": int(pos)})

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in kinds]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "type", "rows", "cols", "positions"])


@dataclass(frozen=True)
class AnalogCost:
    """Cost of one inference on an AIMC chip.

    Attributes: ``tiles`` (crossbar tiles holding all weights), ``chips`` (chips needed at
    ``chip.cores`` tiles each), ``mvms`` (tile MVMs per inference), ``latency_ms``, ``energy_mj``,
    ``utilization`` (used cells / tile cells), ``layers`` (the per-layer frame);
    ``replicas`` / ``latency_replicated_ms``: the same with weights copied onto idle cores.
    """

    chip: AIMCChip
    tile_rows: int
    tile_cols: int
    tiles: int
    chips: int
    mvms: int
    latency_ms: float
    energy_mj: float
    utilization: float
    layers: pd.DataFrame

    @property
    def replicas(self) -> int:
        """Copies of all weights that fit on the chip's idle cores (1 if the network fills it)."""
        return max(1, self.chip.cores // max(self.tiles, 1))

    @property
    def latency_replicated_ms(self) -> float:
        """Latency if the positions of every layer are split over :attr:`replicas` weight copies
        (same energy: the MVM count does not change)."""
        return self.latency_ms / self.replicas


def analog_cost(layers: pd.DataFrame, tile_rows: int = 256, tile_cols: int = 256,
                chip: AIMCChip = HERMES_FOUR_PHASE) -> AnalogCost:
    """Tiles, MVMs, latency (ms) and energy (mJ) per inference from :func:`analog_layers`.

    Args:
        layers: frame with ``rows, cols, positions`` per layer.
        tile_rows, tile_cols: crossbar tile size (the preset's; HERMES cores are 256 x 256).
        chip: chip figures for MVM time and energy.
    """
    df = layers.copy()
    df["tiles"] = [math.ceil(r / tile_rows) * math.ceil(c / tile_cols) for r, c in zip(df["rows"], df["cols"])]
    df["mvms"] = df["tiles"] * df["positions"]
    df["latency_ms"] = df["positions"] * chip.t_mvm_ns * 1e-6
    df["energy_mj"] = df["mvms"] * chip.e_mvm_nj(tile_rows, tile_cols) * 1e-6
    tiles = int(df["tiles"].sum())
    cells = float((df["rows"] * df["cols"]).sum())
    return AnalogCost(chip=chip, tile_rows=tile_rows, tile_cols=tile_cols, tiles=tiles,
                      chips=max(1, math.ceil(tiles / chip.cores)), mvms=int(df["mvms"].sum()),
                      latency_ms=float(df["latency_ms"].sum()), energy_mj=float(df["energy_mj"].sum()),
                      utilization=cells / (tiles * tile_rows * tile_cols) if tiles else 0.0, layers=df)


def model_analog_cost(model: nn.Module, input_shape: tuple[int, ...], tile_rows: int = 256,
                      tile_cols: int = 256, chip: AIMCChip = HERMES_FOUR_PHASE) -> AnalogCost:
    """:func:`analog_cost` of ``model`` on one input of ``input_shape`` = ``(B, C, *spatial)``."""
    x = torch.zeros(input_shape)
    return analog_cost(analog_layers(model, x), tile_rows, tile_cols, chip)
