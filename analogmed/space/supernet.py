"""Weight-sharing supernet: every candidate block at every level, one path per forward.

A :class:`Supernet` covers the architectures of one task whose non-Identity blocks output the
widths of a fixed schedule (``widths[l]`` at level ``l``) and whose depth is ``1..len(widths)``;
every level may hold any block of :data:`~analogmed.space.blocks.BLOCKS`.

Weight sharing: one module per (level, block letter), built at the widest channels the level can
see. Because Identity keeps the channels of the level above, a level's input width depends on the
path (``in_channels`` or any earlier width); a path uses the leading slice of every weight
(``weight[:out, :in]``, the first channels), so all paths through a block train the same tensor.
The fuse conv after a skip concatenation ``cat(y, up)`` slices the first ``c`` channels of both
halves. BatchNorm layers always see their level's full width (only non-Identity blocks have
them), so their statistics are never sliced.

:meth:`Supernet.subnet` copies the sliced weights into a stand-alone
:class:`~analogmed.space.builder.Candidate`: ``subnet(arch)(x) == supernet(x, arch)`` in eval mode.
Module names: ``blocks["<l>_<X>"]``, ``ups["<l>_<X>"]`` (the counterpart bringing level ``l`` back
to ``l-1``), ``fuses["<l>"]``, ``heads["<l>"]`` (segmentation: level 0 only; classification: the
last level of each depth).
"""
from __future__ import annotations

import random
from typing import Any, Sequence

import torch
from torch import nn
from torch.func import functional_call

from analogmed.errors import UserError
from analogmed.space.architecture import Architecture
from analogmed.space.blocks import BLOCKS, IDENTITY, ClassifierHead, check_letter, make_block, make_fuse, \
    make_head, make_pool, make_up
from analogmed.space.builder import Candidate, check_input, run_encoder, run_unet


class Supernet(nn.Module):
    """The weight-sharing supernet of one task (see the module docstring).

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: the task's image channels and classes.
        widths: output width of every non-Identity block at level ``l`` (length = max depth).
        blocks: the block letters a level may hold (default: all of the spatial dims).
        head: ``"segmentation"`` or ``"classification"``.

    ``forward(x, arch)``: ``[B, in_channels, *S] -> [B, out_channels, *S]`` (or ``[B, out_channels]``)
    along the path of ``arch``.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 2,
                 widths: Sequence[int] = (8, 16, 32, 64), blocks: Sequence[str] | None = None,
                 head: str = "segmentation"):
        super().__init__()
        d = int(spatial_dims)
        blocks = tuple(blocks or BLOCKS.get(d, ()))
        widths = tuple(int(w) for w in widths)
        # validate through Architecture: the widest path of the schedule must be a valid candidate
        Architecture(d, in_channels, out_channels, ("A",) * len(widths), widths, head)
        for b in blocks:
            check_letter(b, d)
            if b not in BLOCKS[d]:
                raise UserError(f"supernet: block {b!r} has no module; use some of {', '.join(BLOCKS[d])}")
        if not blocks:
            raise UserError("supernet: give at least one block letter")
        self.config = {"spatial_dims": d, "in_channels": int(in_channels), "out_channels": int(out_channels),
                       "widths": list(widths), "blocks": list(blocks), "head": head}
        self.spatial_dims, self.in_channels, self.out_channels = d, int(in_channels), int(out_channels)
        self.widths, self.letters, self.head_kind = widths, blocks, head
        seg = head == "segmentation"
        self.blocks, self.ups, self.fuses, self.heads = (nn.ModuleDict() for _ in range(4))
        ins = {self.in_channels}          # possible input widths of level l
        for l, w in enumerate(widths):
            cin = max(ins)
            outs = set(ins) if IDENTITY in blocks else set()
            for b in blocks:
                if b == IDENTITY:
                    continue
                outs.add(w)
                self.blocks[f"{l}_{b}"] = make_block(b, d, cin, w)
                if seg and l > 0:
                    self.ups[f"{l}_{b}"] = make_up(b, d, w, cin)
            if seg and l + 1 < len(widths):
                self.fuses[str(l)] = make_fuse(d, max(outs))
            if (seg and l == 0) or not seg:
                self.heads[str(l)] = (make_head(d, max(outs), self.out_channels) if seg
                                      else ClassifierHead(max(outs), self.out_channels))
            ins = outs
        self.pool = make_pool(d)
        self._identity = nn.Identity()
        self._upsample = make_up(IDENTITY, d, 1, 1)
        self._shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}

    # ------------------------------------------------------------------ paths

    @property
    def max_depth(self) -> int:
        return len(self.widths)

    def space_size(self) -> int:
        """Number of architectures the supernet covers: ``sum_{L=1..max_depth} len(blocks)**L``."""
        n = len(self.letters)
        return sum(n ** L for L in range(1, self.max_depth + 1))

    def sample(self, rng: random.Random | int) -> Architecture:
        """A uniformly random architecture of the supernet's space (``rng``: ``random.Random`` or seed)."""
        rng = rng if isinstance(rng, random.Random) else random.Random(int(rng))
        n = len(self.letters)
        depths = list(range(1, self.max_depth + 1))
        depth = rng.choices(depths, weights=[float(n) ** L for L in depths])[0]
        blocks = tuple(rng.choice(self.letters) for _ in range(depth))
        return Architecture(self.spatial_dims, self.in_channels, self.out_channels, blocks,
                            self.widths[:depth], self.head_kind)

    def check(self, arch: Architecture) -> None:
        """Raise :class:`UserError` (naming the mismatch) if ``arch`` is not a path of this supernet."""
        c = self.config
        for key in ("spatial_dims", "in_channels", "out_channels", "head"):
            if getattr(arch, key) != c[key]:
                raise UserError(f"architecture {arch.id} has {key}={getattr(arch, key)!r} but the supernet "
                                f"{c[key]!r}; sample architectures from this supernet")
        if arch.depth > self.max_depth:
            raise UserError(f"architecture {arch.id} has depth {arch.depth} > supernet depth {self.max_depth}")
        for l, (b, w) in enumerate(zip(arch.blocks, arch.widths)):
            if b not in self.letters:
                raise UserError(f"architecture {arch.id}: block {b} at level {l} is not in the supernet "
                                f"({', '.join(self.letters)})")
            if b != IDENTITY and w != self.widths[l]:
                raise UserError(f"architecture {arch.id}: width {w} at level {l} is not the supernet's "
                                f"{self.widths[l]}; use the supernet's width schedule {list(self.widths)}")

    def _shapes_of(self, key: tuple) -> dict[str, tuple[int, ...]]:
        """Parameter/buffer shapes of the stand-alone module ``key`` (built on the meta device, cached)."""
        if key not in self._shapes:
            d, kind = self.spatial_dims, key[0]
            with torch.device("meta"):
                m = {"block": lambda: make_block(key[1], d, key[2], key[3]),
                     "up": lambda: make_up(key[1], d, key[2], key[3]),
                     "fuse": lambda: make_fuse(d, key[1]),
                     "head": lambda: make_head(d, key[1], key[2]),
                     "classify": lambda: ClassifierHead(key[1], key[2])}[kind]()
            self._shapes[key] = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        return self._shapes[key]

    def _sliced(self, module: nn.Module, key: tuple) -> dict[str, torch.Tensor]:
        """The path's slices of ``module``'s parameters (views: gradients reach the shared tensors)."""
        shapes = self._shapes_of(key)
        out = {}
        for name, t in module.named_parameters():
            if key[0] == "fuse" and name == "weight":
                big, c = t.shape[0], key[1]
                idx = torch.cat([torch.arange(c), big + torch.arange(c)]).to(t.device)
                out[name] = t[:c].index_select(1, idx)
            else:
                out[name] = t[tuple(slice(0, s) for s in shapes[name])]
        for name, b in module.named_buffers():
            if tuple(b.shape) != shapes[name]:  # BatchNorm always runs at its level's full width
                raise RuntimeError(f"supernet: buffer {name} of {key} would need slicing")
        return out

    def path(self, arch: Architecture) -> dict[str, Any]:
        """``arch``'s path: for ``blocks``, ``ups``, ``fuses`` (lists by level) and ``head`` a
        ``(module, key)`` pair (``key`` names the stand-alone module's shape, ``None`` = no weights)
        or ``None`` where the level has no such module."""
        self.check(arch)
        c = arch.channels()
        seg = arch.head == "segmentation"
        blocks, ups, fuses = [], [], []
        for l, b in enumerate(arch.blocks):
            if b == IDENTITY:
                blocks.append((self._identity, None))
                ups.append((self._upsample, None) if seg and l else None)
            else:
                blocks.append((self.blocks[f"{l}_{b}"], ("block", b, c[l], c[l + 1])))
                ups.append((self.ups[f"{l}_{b}"], ("up", b, c[l + 1], c[l])) if seg and l else None)
            fuses.append((self.fuses[str(l)], ("fuse", c[l + 1])) if seg and l + 1 < arch.depth else None)
        head = ((self.heads["0"], ("head", c[1], self.out_channels)) if seg else
                (self.heads[str(arch.depth - 1)], ("classify", c[-1], self.out_channels)))
        return {"blocks": blocks, "ups": ups, "fuses": fuses, "head": head}

    def _callable(self, entry):
        if entry is None:
            return None
        module, key = entry
        if key is None:
            return module
        state = self._sliced(module, key)
        return lambda h: functional_call(module, state, (h,), strict=False)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        check_input(x, arch)
        p = self.path(arch)
        blocks = [self._callable(e) for e in p["blocks"]]
        head = self._callable(p["head"])
        if arch.head == "classification":
            return run_encoder(x, blocks, self.pool, head)
        return run_unet(x, blocks, [self._callable(e) for e in p["ups"]],
                        [self._callable(e) for e in p["fuses"]], self.pool, head)

    def subnet(self, arch: Architecture) -> Candidate:
        """A stand-alone :class:`~analogmed.space.builder.Candidate` of ``arch`` with the path's weights
        (sliced parameters and BatchNorm statistics copied, not shared)."""
        from analogmed.space.builder import build_candidate

        p = self.path(arch)
        model = build_candidate(arch)
        pairs = [(lv.block, p["blocks"][l]) for l, lv in enumerate(model.levels)]
        pairs += [(lv.up, p["ups"][l]) for l, lv in enumerate(model.levels)]
        pairs += [(lv.fuse, p["fuses"][l]) for l, lv in enumerate(model.levels)]
        pairs.append((model.head, p["head"]))
        with torch.no_grad():
            for small, entry in pairs:
                if entry is None or entry[1] is None:
                    continue
                module, key = entry
                state = {k: v.detach().clone() for k, v in self._sliced(module, key).items()}
                state.update({k: v.detach().clone() for k, v in module.named_buffers()})
                small.load_state_dict(state)
        return model.train(self.training)


__all__ = ["Supernet"]
