"""Candidate builder: :class:`~analogmed.space.architecture.Architecture` -> plain ``torch.nn.Module``.

:func:`build_candidate` assembles the blocks of :mod:`analogmed.space.blocks` into the recursive
U-Net (or encoder + classifier) the architecture describes. The forward pass lives in
:func:`run_unet` / :func:`run_encoder`, shared with the weight-sharing supernet, so that a
sub-network and the supernet path it came from compute the same function.

Module layout (state-dict names): ``levels.<l>.block``, ``levels.<l>.up`` (levels >= 1, the
counterpart that brings level ``l`` back to level ``l-1``), ``levels.<l>.fuse`` (levels with a
deeper level), ``head`` (1x1 conv, or ``head.linear`` for classification).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from analogmed.errors import UserError
from analogmed.space.architecture import Architecture
from analogmed.space.blocks import ClassifierHead, make_block, make_fuse, make_head, make_pool, make_up


def run_unet(x: torch.Tensor, blocks: Sequence[nn.Module], ups: Sequence[nn.Module | None],
             fuses: Sequence[nn.Module | None], pool: nn.Module, head: nn.Module) -> torch.Tensor:
    """Recursive U-Net forward: ``[B, C_in, *S] -> [B, C_out, *S]``.

    Level ``l``: ``y = blocks[l](x)``; if level ``l+1`` exists
    ``y = fuses[l](cat(y, ups[l+1](level_{l+1}(pool(y)))))``. Output ``head(level_0(x))``.
    """
    depth = len(blocks)

    def level(l: int, h: torch.Tensor) -> torch.Tensor:
        y = blocks[l](h)
        if l + 1 < depth:
            u = ups[l + 1](level(l + 1, pool(y)))
            y = fuses[l](torch.cat([y, u], dim=1))
        return y

    return head(level(0, x))


def run_encoder(x: torch.Tensor, blocks: Sequence[nn.Module], pool: nn.Module, head: nn.Module) -> torch.Tensor:
    """Encoder + classifier forward: blocks and max-pools alternate, then ``head`` -> ``[B, C_out]``."""
    for l, block in enumerate(blocks):
        x = block(pool(x) if l else x)
    return head(x)


def check_input(x: torch.Tensor, arch: Architecture) -> None:
    """Raise :class:`UserError` if ``x`` is not ``[B, in_channels, *S]`` with ``S`` fitting the depth."""
    if x.dim() != arch.spatial_dims + 2 or x.shape[1] != arch.in_channels:
        raise UserError(f"candidate {arch.id} expects input [B, {arch.in_channels}, "
                        f"{', '.join('S' * arch.spatial_dims)}], got {list(x.shape)}")
    arch.check_input_size(x.shape[2:])


class Level(nn.Module):
    """One U-Net level's modules: ``block``, ``up`` (``None`` at level 0), ``fuse`` (``None`` at the last)."""

    def __init__(self, block: nn.Module, up: nn.Module | None, fuse: nn.Module | None):
        super().__init__()
        self.block = block
        self.up = up
        self.fuse = fuse


class Candidate(nn.Module):
    """A search-space candidate built from ``arch`` (see :mod:`analogmed.space.architecture`).

    Input ``[B, in_channels, *S]`` with every ``S`` a multiple of ``2**(depth-1)``; output logits
    ``[B, out_channels, *S]`` (segmentation) or ``[B, out_channels]`` (classification).
    ``arch_dict`` holds the canonical architecture, ``arch_id`` its id.
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        self.arch_id = arch.id
        self.arch_dict = arch.to_dict()
        d, c = arch.spatial_dims, arch.channels()
        seg = arch.head == "segmentation"
        levels = []
        for l, b in enumerate(arch.blocks):
            up = make_up(b, d, c[l + 1], c[l]) if (seg and l > 0) else None
            fuse = make_fuse(d, c[l + 1]) if (seg and l + 1 < arch.depth) else None
            levels.append(Level(make_block(b, d, c[l], c[l + 1]), up, fuse))
        self.levels = nn.ModuleList(levels)
        self.pool = make_pool(d)
        self.head = make_head(d, c[1], arch.out_channels) if seg else ClassifierHead(c[-1], arch.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.arch)
        blocks = [lv.block for lv in self.levels]
        if self.arch.head == "classification":
            return run_encoder(x, blocks, self.pool, self.head)
        return run_unet(x, blocks, [lv.up for lv in self.levels], [lv.fuse for lv in self.levels],
                        self.pool, self.head)

    def extra_repr(self) -> str:
        return f"id={self.arch_id}, label={self.arch.label}, head={self.arch.head}"


def build_candidate(arch: Architecture | dict) -> Candidate:
    """Build the plain torch module of ``arch`` (an :class:`Architecture` or its dict)."""
    if isinstance(arch, dict):
        arch = Architecture.from_dict(arch)
    if not isinstance(arch, Architecture):
        raise UserError(f"build_candidate needs an Architecture or its dict, not {type(arch).__name__}")
    return Candidate(arch)


__all__ = ["Candidate", "Level", "build_candidate", "check_input", "run_encoder", "run_unet"]
