"""A reference U-Net made of exactly the LUT's ops (test helper; formerly analogmed/latency/reference.py).

``enc_l = block_l(c_{l-1} -> c_l)`` at level ``l``; if a deeper level exists:
``pool -> level l+1 -> up_{l+1}(c_{l+1} -> c_l) -> concat(skip, up) -> fuse(1x1 conv 2 c_l -> c_l)``;
finally ``head(c_0 -> out_channels)``. The tests use it to check the op grid and LUT sums on networks
built from the ops alone.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from analogmed.latency.grid import DEFAULT_GRID, blocks_for, level_size
from analogmed.latency.ops import Op, op_module


@dataclass(frozen=True)
class ReferenceUNet:
    """A reference candidate: one block letter and one width per level (see the module docstring).

    ``Identity`` keeps the width of the level above. Shapes: input ``[B, in_channels, *input_size]``,
    output ``[B, out_channels, *input_size]``.
    """

    blocks: tuple[str, ...]
    widths: tuple[int, ...]
    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = 4

    def channels(self) -> list[int]:
        ch, prev = [], self.in_channels
        for b, w in zip(self.blocks, self.widths):
            prev = prev if b == "Identity" else w
            ch.append(prev)
        return ch

    def ops(self, input_size: tuple[int, ...]) -> list[Op]:
        d, ch = self.spatial_dims, self.channels()
        ops: list[Op] = []
        for l, b in enumerate(self.blocks):
            cin = self.in_channels if l == 0 else ch[l - 1]
            size = level_size(input_size, l)
            ops.append(Op(f"block:{b}", d, cin, ch[l], size))
            if l + 1 < len(self.blocks):
                ops.append(Op("pool", d, ch[l], ch[l], size))
                nb = self.blocks[l + 1]
                ops.append(Op(f"up:{nb}", d, ch[l + 1], ch[l], level_size(input_size, l + 1)))
                ops.append(Op("concat", d, ch[l], 2 * ch[l], size, extra=ch[l]))
                ops.append(Op("fuse", d, 2 * ch[l], ch[l], size))
        ops.append(Op("head", d, ch[0], self.out_channels, input_size))
        return ops

    def build(self, input_size: tuple[int, ...]) -> nn.Module:
        return _RefNet(self.ops(input_size), len(self.blocks))


class _RefNet(nn.Module):
    """Runs the ops of a :class:`ReferenceUNet` (modules from :func:`op_module`).

    ``ops()`` lists, per non-last level, ``block, pool, up, concat, fuse`` (5 ops), then the last
    level's block, then the head.
    """

    def __init__(self, ops: list[Op], levels: int):
        super().__init__()
        self.levels = levels
        self.mods = nn.ModuleList(op_module(op)[0] for op in ops)

    def _level(self, x: torch.Tensor, l: int) -> torch.Tensor:
        b = 5 * l
        y = self.mods[b](x)
        if l + 1 < self.levels:
            z = self._level(self.mods[b + 1](y), l + 1)
            u = self.mods[b + 2](z)
            y = self.mods[b + 4](self.mods[b + 3](y, u))
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mods[-1](self._level(x, 0))


def random_reference(rng: random.Random, spatial_dims: int = 2, widths=None, levels=None) -> ReferenceUNet:
    g = DEFAULT_GRID[spatial_dims]
    widths = widths or g["widths"]
    L = rng.randint(1, levels or g["levels"])
    blocks = tuple(rng.choice(blocks_for(spatial_dims)) for _ in range(L))
    ws = tuple(rng.choice(widths) for _ in range(L))
    return ReferenceUNet(blocks, ws, spatial_dims, g["in_channels"], g["out_channels"])


