"""The searched space (one width schedule, shared by every task) and its hardware cost.

An *encoding* is one letter per supernet level, ``("C", "Identity", "Zero")``: level 0 holds a
block of the supernet, deeper levels may also hold ``Zero`` (the U-Net stops there). Encodings are
canonicalised (levels from the first Zero on dropped), so the *key* of an architecture is the
tuple of its blocks and its label (``C8-Id``) is shared by all tasks: the same blocks and widths,
each task with its own input channels and classes.

Hardware cost (:class:`HardwareCost`): latency (ms) and energy (mJ) of one inference at the task's
input size, batch 1, as the sum over the candidate's ops (``Architecture.ops``):

* digital platforms: the platform LUT (``digital/<name>.csv``), energy = latency x typical power;
* ``hermes``: every op's module (the very modules the candidate is built from) priced on IBM's
  HERMES chip by :func:`analogmed.latency.analog_cost` (tiles of the ``hermes`` preset, four-phase
  read mode); ops without analog layers (pool, concat, Identity) cost 0.
"""
from __future__ import annotations

import itertools
import statistics
from typing import Sequence

import torch

from analogmed.errors import UserError
from analogmed.space.architecture import Architecture
from analogmed.space.blocks import IDENTITY, ZERO

DIGITAL_PLATFORMS = ("raspberry-pi3", "laptop-ryzen7-6800h", "this-machine")
ALL_PLATFORMS = DIGITAL_PLATFORMS + ("hermes",)


def task_keys(tasks: Sequence) -> list[str]:
    """A unique key per task: its name, or ``<name>-<i>`` when one name is given twice (other options)."""
    names = [t.name for t in tasks]
    return names if len(set(names)) == len(names) else [f"{n}-{i}" for i, n in enumerate(names)]


class SearchSpace:
    """Encodings over the levels of a supernet schedule, for one or more tasks.

    Args:
        supernets: one :class:`~analogmed.space.supernet.Supernet` per task (same spatial dims,
            input channels, widths and letters).
        tasks: the matching ``analogmed.data`` tasks.
    """

    def __init__(self, supernets: Sequence, tasks: Sequence):
        s0 = supernets[0]
        self.supernets, self.tasks = list(supernets), list(tasks)
        self.spatial_dims, self.widths, self.letters = s0.spatial_dims, tuple(s0.widths), tuple(s0.letters)
        self.depth = len(self.widths)
        self.keys = task_keys(self.tasks)

    def choices(self, level: int) -> tuple[str, ...]:
        """Letters level ``level`` may hold (``Zero`` from level 1 on)."""
        return self.letters if level == 0 else (ZERO,) + self.letters

    @staticmethod
    def canonical(encoding: Sequence[str]) -> tuple[str, ...]:
        enc = tuple(encoding)
        return enc[:enc.index(ZERO)] if ZERO in enc else enc

    def arch(self, encoding: Sequence[str], task_index: int = 0) -> Architecture:
        """The architecture of ``encoding`` for task ``task_index`` (that task's channels and classes)."""
        key = self.canonical(encoding)
        sn = self.supernets[task_index]
        return Architecture(sn.spatial_dims, sn.in_channels, sn.out_channels, key, self.widths[:len(key)],
                            sn.head_kind)

    def label(self, encoding: Sequence[str]) -> str:
        return self.arch(encoding).label

    def enumerate(self, depth: int | None = None) -> list[tuple[str, ...]]:
        """Every canonical key (of depth ``depth``, or of every depth 1..max)."""
        depths = [depth] if depth else range(1, self.depth + 1)
        return [tuple(p) for L in depths for p in itertools.product(self.letters, repeat=L)]

    def size(self) -> int:
        return len(self.enumerate())


def _op_inputs(op) -> list[torch.Tensor]:
    if op.kind == "concat":
        return [torch.zeros(1, op.in_channels, *op.size), torch.zeros(1, op.extra, *op.size)]
    return [torch.zeros(1, op.in_channels, *op.size)]


class HardwareCost:
    """Latency (ms) and energy (mJ) of candidates on one platform (see the module docstring)."""

    def __init__(self, platform: str):
        self.platform = platform
        self._cache: dict[str, tuple[float, float]] = {}
        if platform == "hermes":
            from analogmed.analog import load_preset
            from analogmed.latency import HERMES_FOUR_PHASE

            preset = load_preset("hermes")
            self.tile = (preset.tile_rows, preset.tile_cols)
            self.chip = HERMES_FOUR_PHASE
        elif platform in DIGITAL_PLATFORMS:
            from analogmed.latency import load_platform, load_table

            self.plat = load_platform(platform)
            self.table = load_table(self.plat)
        else:
            raise UserError(f"unknown platform {platform!r}; use one of {', '.join(ALL_PLATFORMS)}")

    def op_cost(self, archop) -> tuple[float, float]:
        """(latency ms, energy mJ) of one op of ``Architecture.ops`` (UserError if a LUT lacks it)."""
        from analogmed.latency.candidate import as_op

        op = as_op(archop)
        if op.key in self._cache:
            return self._cache[op.key]
        if self.platform == "hermes":
            from analogmed.latency.analog_cost import analog_cost, analog_layers
            from analogmed.space import latency_op_module

            module = latency_op_module(archop)
            if module is None:
                raise UserError(f"hermes cost: op {op.key!r} has no module in the search space")
            layers = analog_layers(module.eval(), *_op_inputs(archop))
            if len(layers):
                c = analog_cost(layers, self.tile[0], self.tile[1], self.chip)
                cost = (c.latency_ms, c.energy_mj)
            else:
                cost = (0.0, 0.0)
        else:
            ms = self.table.latency_ms(op)
            cost = (ms, ms * self.plat.typical_power_w)
        self._cache[op.key] = cost
        return cost

    def arch_cost(self, arch: Architecture, input_size: Sequence[int]) -> tuple[float, float]:
        """(latency ms, energy mJ) of one inference of ``arch`` on one input of spatial ``input_size``."""
        lat = en = 0.0
        for op in arch.ops(tuple(input_size)):
            a, b = self.op_cost(op)
            lat, en = lat + a, en + b
        return lat, en

    def encoding_cost(self, space: SearchSpace, encoding: Sequence[str]) -> tuple[float, float]:
        """Mean over the space's tasks of :meth:`arch_cost` (tasks differ only in channels/classes)."""
        costs = [self.arch_cost(space.arch(encoding, i), t.image_size) for i, t in enumerate(space.tasks)]
        return (statistics.fmean(c[0] for c in costs), statistics.fmean(c[1] for c in costs))

    def level_cost(self, space: SearchSpace, level: int, letter: str) -> float:
        """``Lat(o)``: latency (ms) of level ``level`` when it holds ``letter`` (task 0's size).

        The ops attributed to a level: its block, its up-sampling counterpart (levels >= 1), and the
        level's U-Net glue (pool, concat, fuse) when a deeper level exists. The other levels hold the
        first non-Identity letter of the space (so the level's input width is the schedule's).
        """
        ref = next((b for b in space.letters if b != IDENTITY), space.letters[0])
        enc = [ref] * space.depth
        enc[level] = letter
        arch = space.arch(enc)
        ops = arch.ops(space.tasks[0].image_size)
        lat, lev = 0.0, -1
        for op in ops:  # order: block(lv), then pool(lv), up(lv+1), concat(lv), fuse(lv) if lv+1 exists; head
            kind = op.kind
            if kind.startswith("block:"):
                lev += 1
                mine = lev == level
            elif kind.startswith("up:"):
                mine = lev + 1 == level
            elif kind in ("pool", "concat", "fuse"):
                mine = lev == level
            else:
                mine = False
            if mine:
                lat += self.op_cost(op)[0]
        return lat

    def check_space(self, space: SearchSpace) -> None:
        """Price every op of every architecture of ``space`` (UserError naming a missing LUT op)."""
        seen = set()
        for key in space.enumerate():
            for i, t in enumerate(space.tasks):
                for op in space.arch(key, i).ops(t.image_size):
                    if op not in seen:
                        seen.add(op)
                        try:
                            self.op_cost(op)
                        except UserError as exc:
                            raise UserError(f"platform {self.platform}: {exc}") from None


__all__ = ["ALL_PLATFORMS", "DIGITAL_PLATFORMS", "HardwareCost", "SearchSpace", "task_keys"]
