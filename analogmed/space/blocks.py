"""The search space's blocks: one encoder block per U-Net level and its up-sampling counterpart.

The talk's table (``shared/DESIGN.md``), with plain torch layers only, so that analog conversion
(aihwkit) finds every ``nn.Linear`` / ``nn.Conv*`` / ``nn.ConvTranspose*``:

======== ====================================== =========================================
block    encoder block ``in -> out``            up-sampling counterpart ``out -> in`` (x2)
======== ====================================== =========================================
Zero     no block: the U-Net stops above it      none
Identity identity (``out == in``)               nearest-neighbour up-sampling x2
A        ``nn.Linear(in, out)`` per voxel        ``nn.Linear(out, in)`` per voxel, then
         over the channel axis (a 1x1 conv)     nearest-neighbour up-sampling x2
B        Conv k3 (pad 1), ReLU                  ConvTranspose(out, in, k2, s2)
C        Conv k3, BatchNorm, ReLU               ConvTranspose(out, in, k2, s2)
D        Conv k3, LeakyReLU(0.01)               ConvTranspose(out, in, k2, s2)
E        Conv k3, BatchNorm, LeakyReLU(0.01)    ConvTranspose(out, in, k2, s2)
F / G    B then C / D then E (second: out->out)  ConvTranspose(out, in, k2, s2)
H..M     the 3-D versions of B..G (Conv3d,      ConvTranspose3d(out, in, k2, s2)
         BatchNorm3d)
======== ====================================== =========================================

Every block keeps the spatial shape of its input: ``[B, in, *S] -> [B, out, *S]``. The
up-sampling counterpart doubles it: ``[B, out, *S/2] -> [B, in, *S]``. Zero has no module:
it is an encoding symbol that ends the recursion (see :mod:`analogmed.space.architecture`).
The U-Net glue is also here: :func:`make_pool` (max-pool k2 s2), :func:`make_fuse` (1x1 conv
``2c -> c`` after the skip concatenation) and :func:`make_head` (1x1 conv to the classes).
"""
from __future__ import annotations

import torch
from torch import nn

from analogmed.errors import UserError

ZERO = "Zero"
IDENTITY = "Identity"
#: Convolutional blocks per spatial dims.
CONV_BLOCKS = {2: ("B", "C", "D", "E", "F", "G"), 3: ("H", "I", "J", "K", "L", "M")}
#: Non-Zero blocks a level may hold, per spatial dims (Zero is allowed in encodings, see architecture).
BLOCKS = {d: (IDENTITY, "A") + CONV_BLOCKS[d] for d in (2, 3)}
#: Every symbol of the space, per spatial dims, including Zero.
LETTERS = {d: (ZERO,) + BLOCKS[d] for d in (2, 3)}
#: Double blocks: first then second single block.
DOUBLE_BLOCKS = {"F": ("B", "C"), "G": ("D", "E"), "L": ("H", "I"), "M": ("J", "K")}
#: Single conv blocks: (batch norm?, leaky ReLU?)
SINGLE_BLOCKS = {"B": (False, False), "C": (True, False), "D": (False, True), "E": (True, True),
                 "H": (False, False), "I": (True, False), "J": (False, True), "K": (True, True)}
LEAKY_SLOPE = 0.01


def block_dims(letter: str) -> int | None:
    """Spatial dims a block letter belongs to (2 or 3), ``None`` for dims-free ones (Zero, Identity, A)."""
    for d in (2, 3):
        if letter in CONV_BLOCKS[d]:
            return d
    return None


def check_letter(letter: str, spatial_dims: int) -> None:
    """Raise :class:`UserError` if ``letter`` is not a symbol of the ``spatial_dims``-D space."""
    if spatial_dims not in (2, 3):
        raise UserError(f"spatial_dims must be 2 or 3, not {spatial_dims!r}")
    if letter not in LETTERS[spatial_dims]:
        other = block_dims(letter) if isinstance(letter, str) else None
        hint = f" (a {other}-D block)" if other else ""
        raise UserError(f"block {letter!r}{hint} is not in the {spatial_dims}-D space; "
                        f"use one of {', '.join(LETTERS[spatial_dims])}")


class ChannelLinear(nn.Module):
    """``nn.Linear(in_channels, out_channels)`` applied at every voxel over the channel axis.

    Shapes: ``[B, in_channels, *S] -> [B, out_channels, *S]`` (1x1 convolution semantics). The
    weight lives in the plain ``nn.Linear`` :attr:`linear`, so analog conversion maps it to an
    ``AnalogLinear`` (aihwkit's linear layers act on the last axis; we move channels there).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.movedim(1, -1)).movedim(-1, 1).contiguous()


def _conv(d: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[d]


def _single(letter: str, d: int, cin: int, cout: int) -> nn.Sequential:
    bn, leaky = SINGLE_BLOCKS[letter]
    layers: list[nn.Module] = [_conv(d)(cin, cout, kernel_size=3, padding=1)]
    if bn:
        layers.append({2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[d](cout))
    layers.append(nn.LeakyReLU(LEAKY_SLOPE) if leaky else nn.ReLU())
    return nn.Sequential(*layers)


def _check(letter: str, spatial_dims: int, in_channels: int, out_channels: int) -> None:
    check_letter(letter, spatial_dims)
    if letter == ZERO:
        raise UserError("block 'Zero' has no module: it ends the U-Net (drop the level instead)")
    if int(in_channels) < 1 or int(out_channels) < 1:
        raise UserError(f"block {letter}: channels must be >= 1, not {in_channels} -> {out_channels}")
    if letter == IDENTITY and in_channels != out_channels:
        raise UserError(f"block Identity keeps the channels; got {in_channels} -> {out_channels}")


def make_block(letter: str, spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """The encoder block ``letter``: ``[B, in_channels, *S] -> [B, out_channels, *S]``."""
    _check(letter, spatial_dims, in_channels, out_channels)
    if letter == IDENTITY:
        return nn.Identity()
    if letter == "A":
        return ChannelLinear(in_channels, out_channels)
    if letter in DOUBLE_BLOCKS:
        a, b = DOUBLE_BLOCKS[letter]
        return nn.Sequential(_single(a, spatial_dims, in_channels, out_channels),
                             _single(b, spatial_dims, out_channels, out_channels))
    return _single(letter, spatial_dims, in_channels, out_channels)


def make_up(letter: str, spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """The up-sampling counterpart of ``letter``: ``[B, in_channels, *S] -> [B, out_channels, *2S]``.

    ``in_channels`` is the block's output width and ``out_channels`` its input width (the table's
    ``(out, in)``).
    """
    _check(letter, spatial_dims, in_channels, out_channels)
    if letter == IDENTITY:
        return nn.Upsample(scale_factor=2, mode="nearest")
    if letter == "A":
        return nn.Sequential(ChannelLinear(in_channels, out_channels),
                             nn.Upsample(scale_factor=2, mode="nearest"))
    ct = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[spatial_dims]
    return ct(in_channels, out_channels, kernel_size=2, stride=2)


def max_pool_k2s2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool{1,2,3}d(x, 2)`` (kernel 2, stride 2, floor mode) as pairwise ``torch.maximum`` of
    strided views, one spatial axis after the other: ``[B, C, *S] -> [B, C, *(S // 2)]``.

    The values are exactly the pooling op's (a maximum is exact; NaN propagates as in max-pool). On CPU
    it is 5-10x faster than torch's ``max_pool2d/3d`` kernels (measured, torch 2.13, 1 thread:
    16x16x128x128 25 ms -> 2.1 ms; 1x16x32^3 2.4 ms -> 0.23 ms), which took a quarter to a third of a
    search-space candidate's digital forward. No indices and a different tie rule for gradients (ties
    share them), so :class:`MaxPoolK2` uses it only where no gradient is needed."""
    for ax in range(2, x.dim()):
        n = x.shape[ax] // 2
        pre = (slice(None),) * ax
        x = torch.maximum(x[pre + (slice(0, 2 * n, 2),)], x[pre + (slice(1, 2 * n, 2),)])
    return x


class _PoolK2:
    """Mixin: inference (no gradient needed) through :func:`max_pool_k2s2`, training through torch's
    max-pool (its gradient rule, bit-identical training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and x.requires_grad) or min(x.shape[2:], default=0) < 2:
            return super().forward(x)  # (and torch's message for a map too small to pool)
        return max_pool_k2s2(x)


class MaxPool2dK2(_PoolK2, nn.MaxPool2d):
    """``nn.MaxPool2d(2, 2)`` with the fast inference path of :func:`max_pool_k2s2`."""

    def __init__(self):
        super().__init__(kernel_size=2, stride=2)


class MaxPool3dK2(_PoolK2, nn.MaxPool3d):
    """``nn.MaxPool3d(2, 2)`` with the fast inference path of :func:`max_pool_k2s2`."""

    def __init__(self):
        super().__init__(kernel_size=2, stride=2)


def make_pool(spatial_dims: int) -> nn.Module:
    """Down-sampling between levels: max-pool k2 s2, ``[B, C, *S] -> [B, C, *S/2]``
    (an ``nn.MaxPool2d/3d`` whose inference forward is :func:`max_pool_k2s2`)."""
    return {2: MaxPool2dK2, 3: MaxPool3dK2}[spatial_dims]()


def make_fuse(spatial_dims: int, channels: int) -> nn.Module:
    """After the skip concatenation: 1x1 conv ``[B, 2*channels, *S] -> [B, channels, *S]``."""
    return _conv(spatial_dims)(2 * channels, channels, kernel_size=1)


def make_head(spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """Segmentation head: 1x1 conv ``[B, in_channels, *S] -> [B, out_channels, *S]`` (logits)."""
    return _conv(spatial_dims)(in_channels, out_channels, kernel_size=1)


class ClassifierHead(nn.Module):
    """Classification head: global average pool then ``nn.Linear``: ``[B, C, *S] -> [B, out_channels]``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(2).mean(dim=2))
