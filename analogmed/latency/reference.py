"""The op grid a LUT covers, and a reference U-Net candidate to validate LUT sums against.

**Grid** (:func:`op_grid`): for an input of spatial size ``S`` and ``levels`` levels, level ``l``
runs at ``S / 2**l``; every block letter the spatial dims allow, at every level, for every
(in, out) width pair the space allows (in = the previous level's width, or the task's input
channels at level 0), plus its up-sampling counterpart (out -> in at the level below's
resolution), max-pooling, skip concatenation, the 1x1 fuse after it and the 1x1 head. Defaults
(:data:`DEFAULT_GRID`): 2-D inputs 64x64 and 128x128, widths (8, 16, 32, 64), 4 levels; 3-D input
32x32x32, widths (8, 16, 32), 3 levels; 1 input channel; heads to 2, 3 or 4 classes.

**Reference candidate** (:class:`ReferenceUNet`): a recursive U-Net made of exactly these ops --
``enc_l = block_l(c_{l-1} -> c_l)`` at level ``l``; if a deeper level exists:
``pool -> level l+1 -> up_{l+1}(c_{l+1} -> c_l) -> concat(skip, up) -> fuse(1x1 conv 2 c_l -> c_l)``;
finally ``head(c_0 -> out_channels)``. It is the stand-in used to validate the LUT method while
the search space (``analogmed.space``) is not installed; :func:`random_candidates` uses the space's
own sampler and builder when it exists.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from analogmed.latency.ops import CONV_BLOCKS_2D, CONV_BLOCKS_3D, Op, op_module
from analogmed.latency.validate import Candidate

DEFAULT_GRID = {
    2: {"input_size": (64, 64), "input_sizes": ((64, 64), (128, 128)), "widths": (8, 16, 32, 64), "levels": 4, "in_channels": 1,
        "out_channels": 4, "head_channels": (2, 3, 4)},
    3: {"input_size": (32, 32, 32), "input_sizes": ((32, 32, 32),), "widths": (8, 16, 32), "levels": 3, "in_channels": 1,
        "out_channels": 4, "head_channels": (2, 3, 4)},
}


def blocks_for(spatial_dims: int) -> tuple[str, ...]:
    """Non-zero blocks a U-Net level may hold (Zero ends the recursion and has no op)."""
    return ("Identity", "A") + (CONV_BLOCKS_2D if spatial_dims == 2 else CONV_BLOCKS_3D)


def level_size(input_size: tuple[int, ...], level: int) -> tuple[int, ...]:
    return tuple(s // 2**level for s in input_size)


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


def op_grid(spatial_dims: int = 2, input_size: tuple[int, ...] | None = None,
            widths: tuple[int, ...] | None = None, levels: int | None = None,
            in_channels: int | None = None, out_channels: int | None = None) -> list[Op]:
    """Every op a candidate of the grid can contain (module docstring; defaults :data:`DEFAULT_GRID`)."""
    g = DEFAULT_GRID[spatial_dims]
    input_size = tuple(input_size or g["input_size"])
    widths = tuple(widths or g["widths"])
    levels = levels or g["levels"]
    cin0 = in_channels or g["in_channels"]
    heads = (out_channels,) if out_channels else g["head_channels"]
    d = spatial_dims
    ops: list[Op] = []
    ins = {cin0}
    for l in range(levels):
        size = level_size(input_size, l)
        outs = set(widths) | ins  # Identity keeps the width
        for b in blocks_for(d):
            for ci in sorted(ins):
                for co in ([ci] if b == "Identity" else widths):
                    ops.append(Op(f"block:{b}", d, ci, co, size))
                    if l > 0:  # decoder: up from this level to the one above, at this level's size
                        ops.append(Op(f"up:{b}", d, co, ci, size))
        for c in sorted(outs):
            if l + 1 < levels:
                ops.append(Op("pool", d, c, c, size))
                ops.append(Op("concat", d, c, 2 * c, size, extra=c))
                ops.append(Op("fuse", d, 2 * c, c, size))
            if l == 0:
                ops.extend(Op("head", d, c, h, size) for h in heads)
        ins = outs
    return list(dict.fromkeys(ops))


def random_reference(rng: random.Random, spatial_dims: int = 2, widths=None, levels=None) -> ReferenceUNet:
    g = DEFAULT_GRID[spatial_dims]
    widths = widths or g["widths"]
    L = rng.randint(1, levels or g["levels"])
    blocks = tuple(rng.choice(blocks_for(spatial_dims)) for _ in range(L))
    ws = tuple(rng.choice(widths) for _ in range(L))
    return ReferenceUNet(blocks, ws, spatial_dims, g["in_channels"], g["out_channels"])


def random_candidates(n: int, seed: int = 0, spatial_dims: int = 2,
                      input_size: tuple[int, ...] | None = None, widths: tuple[int, ...] | None = None,
                      levels: int | None = None) -> list[Candidate]:
    """``n`` seeded random candidates as :class:`Candidate` (ops + builder): search-space candidates
    (``analogmed.space`` sampler and builder, uniform over the space, depths that fit ``input_size``),
    or reference U-Nets when the search space is not installed. ``widths`` / ``levels`` restrict the
    space candidates (e.g. to a small LUT grid)."""
    size = tuple(input_size or DEFAULT_GRID[spatial_dims]["input_size"])
    try:
        from analogmed.space.architecture import MAX_DEPTH, sample_architecture
        from analogmed.space.builder import build_candidate
    except ModuleNotFoundError:
        sample_architecture = None
    if sample_architecture is not None:
        from analogmed.latency.candidate import arch_ops

        grid = DEFAULT_GRID[spatial_dims]
        fits = max(d for d in range(1, MAX_DEPTH[spatial_dims] + 1) if all(s % 2 ** (d - 1) == 0 for s in size))
        fits = min(fits, levels or fits)
        rng = random.Random(seed)
        out = []
        for i in range(n):
            arch = sample_architecture(spatial_dims=spatial_dims, in_channels=grid["in_channels"],
                                       out_channels=rng.choice(grid["head_channels"]), max_depth=fits,
                                       widths=widths, rng=rng)
            out.append(Candidate(name=f"{arch.id}:{arch.label}", ops=arch_ops(arch, size),
                                 build=(lambda a=arch: build_candidate(a)), input_shape=(1, arch.in_channels, *size)))
        return out
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = random_reference(rng, spatial_dims)
        out.append(Candidate(name=f"ref{i}:{'-'.join(r.blocks)}/{'-'.join(map(str, r.widths))}",
                             ops=r.ops(size), build=(lambda r=r: r.build(size)),
                             input_shape=(1, r.in_channels, *size)))
    return out
