"""analogmed.space: the recursive U-Net search space (blocks Zero, Identity, A, B-M).

* :mod:`~analogmed.space.blocks` -- the blocks, their up-sampling counterparts, the U-Net glue;
* :mod:`~analogmed.space.architecture` -- :class:`Architecture` (canonical JSON, id, ops, sampler);
* :mod:`~analogmed.space.builder` -- :func:`build_candidate` (Architecture -> ``nn.Module``);
* :mod:`~analogmed.space.supernet` -- the weight-sharing supernet and its sub-networks;
* :mod:`~analogmed.space.mednasbench` -- MED-NAS-Bench ``sampleN.json`` configs as 2-D models.

:func:`latency_op_module` is the hook :mod:`analogmed.latency` uses to time the very modules a
candidate is made of.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from analogmed.space.architecture import (DEFAULT_INPUT_SIZE, INPUT_SIZES, MAX_DEPTH, WIDTHS, Architecture,
                                          ArchOp, sample_architecture, space_size)
from analogmed.space.blocks import (BLOCKS, LETTERS, ClassifierHead, make_block, make_fuse, make_head,
                                    make_pool, make_up)
from analogmed.space.builder import build_candidate


class Concat(nn.Module):
    """Skip concatenation along channels: ``([B, C1, *S], [B, C2, *S]) -> [B, C1+C2, *S]``."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], dim=1)


def latency_op_module(op: Any) -> nn.Module | None:
    """The module a candidate runs for ``op`` (an :class:`ArchOp` or latency ``Op``); ``None`` if unknown.

    ``block:<X>`` -> :func:`make_block`, ``up:<X>`` -> :func:`make_up`, ``pool``, ``concat``
    (two inputs), ``fuse``, ``head`` (1x1 conv), ``classify`` (global pool + linear).
    """
    kind, d = op.kind, op.spatial_dims
    if d not in (2, 3):
        return None
    try:
        if kind.startswith("block:"):
            return make_block(kind[6:], d, op.in_channels, op.out_channels)
        if kind.startswith("up:"):
            return make_up(kind[3:], d, op.in_channels, op.out_channels)
    except Exception:  # a letter this space does not define: let latency use its reference
        return None
    if kind == "pool":
        return make_pool(d)
    if kind == "concat":
        return Concat()
    if kind == "fuse":
        return make_fuse(d, op.out_channels)
    if kind == "head":
        return make_head(d, op.in_channels, op.out_channels)
    if kind == "classify":
        return ClassifierHead(op.in_channels, op.out_channels)
    return None


__all__ = ["Architecture", "ArchOp", "BLOCKS", "DEFAULT_INPUT_SIZE", "INPUT_SIZES", "LETTERS", "MAX_DEPTH",
           "WIDTHS", "build_candidate", "latency_op_module", "make_block", "make_up", "sample_architecture",
           "space_size"]
