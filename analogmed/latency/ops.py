"""The ops a latency table prices: one :class:`Op` per (kind, spatial dims, channels, input shape).

An op is everything a candidate runs between two tensors of the U-Net: an encoder block
(``block:C``), its up-sampling counterpart (``up:C``), down-sampling (``pool``), the skip merge
(``concat``) and the 1x1 convolution after it (``fuse``), the output head (``head``). Its :attr:`Op.key` is the
row key of a LUT, e.g.
``block:C|2d|16>32|64x64`` (input spatial shape, batch 1).

:func:`op_module` builds the torch module an op runs (with example inputs) so the LUT builder can
time it. When the search space (``analogmed.space``) provides a module factory for an op, that
factory is used, so the table times the very modules :func:`build_candidate` assembles; otherwise
the reference definitions below (the talk's block table) are used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from analogmed.errors import UserError

CONV_BLOCKS_2D = ("B", "C", "D", "E", "F", "G")
CONV_BLOCKS_3D = ("H", "I", "J", "K", "L", "M")
#: For the double blocks: F = B then C, G = D then E (2-D); L = H then I, M = J then K (3-D).
DOUBLE_BLOCKS = {"F": ("B", "C"), "G": ("D", "E"), "L": ("H", "I"), "M": ("J", "K")}
_BN = {"C", "E", "I", "K"}
_LEAKY = {"D", "E", "J", "K"}


@dataclass(frozen=True)
class Op:
    """One priced operation.

    Attributes:
        kind: ``block:<letter>`` / ``up:<letter>`` / ``pool`` / ``concat`` / ``head`` / other names a
            search space defines.
        spatial_dims: 2 or 3.
        in_channels: channels of the (first) input.
        out_channels: channels of the output.
        size: spatial shape of the (first) input, batch 1: ``(H, W)`` or ``(H, W, D)``.
        extra: kind-specific integer (``concat``: channels of the second input; 0 otherwise).
    """

    kind: str
    spatial_dims: int
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    extra: int = 0

    @property
    def key(self) -> str:
        """Stable string key, e.g. ``block:C|2d|16>32|64x64`` (``concat`` adds ``+<extra>``)."""
        ch = f"{self.in_channels}>{self.out_channels}"
        if self.extra:
            ch = f"{self.in_channels}+{self.extra}>{self.out_channels}"
        return f"{self.kind}|{self.spatial_dims}d|{ch}|{'x'.join(str(s) for s in self.size)}"

    @classmethod
    def from_key(cls, key: str) -> "Op":
        """Parse :attr:`key` back into an :class:`Op` (raises ``ValueError`` if malformed)."""
        kind, dims, ch, size = key.split("|")
        cin, cout = ch.split(">")
        extra = 0
        if "+" in cin:
            cin, e = cin.split("+")
            extra = int(e)
        return cls(kind, int(dims.rstrip("d")), int(cin), int(cout),
                   tuple(int(s) for s in size.split("x")), extra)

    @property
    def block(self) -> str | None:
        """The block letter of ``block:X`` / ``up:X`` ops, else ``None``."""
        return self.kind.split(":", 1)[1] if ":" in self.kind else None

    def input_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the example inputs (batch 1)."""
        shapes = [(1, self.in_channels, *self.size)]
        if self.kind == "concat":
            shapes.append((1, self.extra, *self.size))
        return shapes


# ------------------------------------------------------------------ reference modules


def _conv(d: int):
    return {2: nn.Conv2d, 3: nn.Conv3d}[d]


def _single_conv(letter: str, d: int, cin: int, cout: int) -> nn.Module:
    layers: list[nn.Module] = [_conv(d)(cin, cout, kernel_size=3, padding=1)]
    if letter in _BN:
        layers.append({2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[d](cout))
    layers.append(nn.LeakyReLU(0.01) if letter in _LEAKY else nn.ReLU())
    return nn.Sequential(*layers)


def reference_block(letter: str, spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """The talk's encoder block ``letter`` (``Identity``, ``A``, ``B``..``M``) as a module."""
    if letter == "Identity":
        return nn.Identity()
    if letter == "A":
        return _ChannelLinear(in_channels, out_channels)
    if letter in DOUBLE_BLOCKS:
        a, b = DOUBLE_BLOCKS[letter]
        return nn.Sequential(_single_conv(a, spatial_dims, in_channels, out_channels),
                             _single_conv(b, spatial_dims, out_channels, out_channels))
    if letter in CONV_BLOCKS_2D + CONV_BLOCKS_3D:
        return _single_conv(letter, spatial_dims, in_channels, out_channels)
    raise KeyError(letter)


def reference_up(letter: str, spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """Up-sampling counterpart: ConvTranspose k2 s2 (conv blocks); Linear then nearest x2 (A);
    nearest x2 (Identity)."""
    up = nn.Upsample(scale_factor=2, mode="nearest")
    if letter == "Identity":
        return up
    if letter == "A":
        return nn.Sequential(_ChannelLinear(in_channels, out_channels), up)
    ct = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[spatial_dims]
    return ct(in_channels, out_channels, kernel_size=2, stride=2)


class _ChannelLinear(nn.Module):
    """``nn.Linear`` over the channel axis of ``[B, C, *S]`` (a 1x1 convolution)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.movedim(1, -1)).movedim(-1, 1).contiguous()


class _Cat(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], dim=1)


def reference_module(op: Op) -> nn.Module:
    """The reference module of ``op`` (see the module docstring)."""
    d = op.spatial_dims
    if op.kind.startswith("block:"):
        return reference_block(op.block, d, op.in_channels, op.out_channels)
    if op.kind.startswith("up:"):
        return reference_up(op.block, d, op.in_channels, op.out_channels)
    if op.kind == "pool":
        return {2: nn.MaxPool2d, 3: nn.MaxPool3d}[d](2)
    if op.kind == "concat":
        return _Cat()
    if op.kind in ("head", "fuse"):
        return _conv(d)(op.in_channels, op.out_channels, kernel_size=1)
    raise KeyError(op.kind)


#: A hook the search space can set: ``fn(op) -> nn.Module | None`` (None = use the reference).
OP_FACTORY: Callable[[Op], nn.Module | None] | None = None


def op_module(op: Op) -> tuple[nn.Module, list[torch.Tensor]]:
    """The module ``op`` runs and random example inputs (seeded, batch 1)."""
    module = None
    factory = OP_FACTORY or _space_factory()
    if factory is not None:
        module = factory(op)
    if module is None:
        try:
            module = reference_module(op)
        except KeyError:
            raise UserError(f"op {op.key!r} has no module definition; check the op kind "
                            f"(block:<letter>, up:<letter>, pool, concat, fuse, head)") from None
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(s, generator=g) for s in op.input_shapes()]
    return module.eval(), inputs


def _space_factory() -> Callable[[Op], Any] | None:
    """``analogmed.space.latency_op_module`` if the search space defines one."""
    try:
        import analogmed.space as space
    except ImportError:
        return None
    return getattr(space, "latency_op_module", None)
