"""The op grid a latency table (LUT) covers, and random search-space candidates to validate LUT sums.

**Grid** (:func:`op_grid`): for an input of spatial size ``S`` and ``levels`` levels, level ``l``
runs at ``S / 2**l``; every block letter the spatial dims allow, at every level, for every
(in, out) width pair the space allows (in = the previous level's width, or the task's input
channels at level 0), plus its up-sampling counterpart (out -> in at the level below's
resolution), max-pooling, skip concatenation, the 1x1 fuse after it and the 1x1 head. Defaults
(:data:`DEFAULT_GRID`): 2-D inputs 64x64 and 128x128, widths (8, 16, 32, 64), 4 levels; 3-D input
32x32x32, widths (8, 16, 32), 3 levels; 1 input channel; heads to 2, 3 or 4 classes.
"""
from __future__ import annotations

import random

from analogmed.errors import UserError
from analogmed.latency.ops import CONV_BLOCKS_2D, CONV_BLOCKS_3D, Op
from analogmed.latency.validate import Candidate

DEFAULT_GRID = {
    2: {"input_size": (64, 64), "input_sizes": ((64, 64), (128, 128)), "widths": (8, 16, 32, 64), "levels": 4,
        "in_channels": 1, "out_channels": 4, "head_channels": (2, 3, 4)},
    3: {"input_size": (32, 32, 32), "input_sizes": ((32, 32, 32),), "widths": (8, 16, 32), "levels": 3,
        "in_channels": 1, "out_channels": 4, "head_channels": (2, 3, 4)},
}


def blocks_for(spatial_dims: int) -> tuple[str, ...]:
    """Non-zero blocks a U-Net level may hold (Zero ends the recursion and has no op)."""
    return ("Identity", "A") + (CONV_BLOCKS_2D if spatial_dims == 2 else CONV_BLOCKS_3D)


def level_size(input_size: tuple[int, ...], level: int) -> tuple[int, ...]:
    return tuple(s // 2**level for s in input_size)


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


def random_candidates(n: int, seed: int = 0, spatial_dims: int = 2,
                      input_size: tuple[int, ...] | None = None, widths: tuple[int, ...] | None = None,
                      levels: int | None = None) -> list[Candidate]:
    """``n`` seeded random search-space candidates as :class:`Candidate` (ops + builder): the space's own
    sampler and builder, uniform over the space, depths that fit ``input_size``. ``widths`` / ``levels``
    restrict them (e.g. to a small LUT grid)."""
    from analogmed.latency.candidate import arch_ops
    from analogmed.space.architecture import MAX_DEPTH, sample_architecture
    from analogmed.space.builder import build_candidate

    if n < 1:
        raise UserError(f"--candidates {n} is invalid; time at least 1 candidate (e.g. 50)")
    size = tuple(input_size or DEFAULT_GRID[spatial_dims]["input_size"])
    grid = DEFAULT_GRID[spatial_dims]
    fits = max(d for d in range(1, MAX_DEPTH[spatial_dims] + 1) if all(s % 2 ** (d - 1) == 0 for s in size))
    fits = min(fits, levels or fits)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        arch = sample_architecture(spatial_dims=spatial_dims, in_channels=grid["in_channels"],
                                   out_channels=rng.choice(grid["head_channels"]), max_depth=fits,
                                   widths=widths, rng=rng)
        out.append(Candidate(name=f"{arch.id}:{arch.label}", ops=arch_ops(arch, size),
                             build=(lambda a=arch: build_candidate(a)), input_shape=(1, arch.in_channels, *size)))
    return out
