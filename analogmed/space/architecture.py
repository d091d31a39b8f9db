"""Architecture: the immutable description of one search-space candidate, its id and its ops.

A candidate is a recursive U-Net (segmentation) or its encoder (classification):

* level ``l`` (``l = 0..depth-1``) runs at spatial size ``S / 2**l`` and holds one block
  (:mod:`analogmed.space.blocks`) mapping ``c[l-1] -> c[l]`` channels (``c[-1] = in_channels``);
* segmentation: if level ``l+1`` exists, the block's output ``y`` is max-pooled, passed through level
  ``l+1``, brought back by level ``l+1``'s up-sampling counterpart (``c[l+1] -> c[l]``, x2),
  concatenated with ``y`` (the skip) and fused by a 1x1 conv (``2 c[l] -> c[l]``); a 1x1 conv head
  maps ``c[0]`` to ``out_channels`` logits at full resolution;
* classification: blocks and max-pools alternate down the levels, then global average pooling and
  a ``nn.Linear(c[depth-1], out_channels)`` head.

**Zero** means "this level has no block": the recursion stops there, so ``Zero`` at level ``l``
makes a network of depth ``l`` and every level below it is ignored. Level 0 cannot be Zero.
**Identity** keeps the channels (``c[l] = c[l-1]``) and the resolution of its level; its
up-sampling counterpart is nearest-neighbour x2. **A** is a per-voxel ``nn.Linear`` over channels.

Canonical form (equal networks share one id): levels from the first Zero on are dropped, and the
width of an Identity level is replaced by the channels it keeps. ``widths`` are the output channels
of each level's block and must be in :data:`WIDTHS`. The id is ``"arch-"`` + the first 12 hex
digits of the SHA-256 of the canonical JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from analogmed.errors import UserError
from analogmed.space.blocks import BLOCKS, IDENTITY, ZERO, check_letter

FORMAT = "analogmed-space/1"
#: Channel widths a non-Identity block may output, per spatial dims.
WIDTHS = {2: (8, 16, 32, 64), 3: (8, 16, 32)}
#: Deepest U-Net (number of levels) per spatial dims.
MAX_DEPTH = {2: 4, 3: 3}
#: Input sizes the latency tables cover, and the default one (``ops()`` without a size).
INPUT_SIZES = {2: ((64, 64), (128, 128)), 3: ((32, 32, 32),)}
DEFAULT_INPUT_SIZE = {2: (64, 64), 3: (32, 32, 32)}
HEADS = ("segmentation", "classification")
_KEYS = {"format", "spatial_dims", "in_channels", "out_channels", "head", "blocks", "widths"}


class ArchOp(NamedTuple):
    """One op of a candidate, as the latency tables price it.

    ``kind``: ``block:<letter>``, ``up:<letter>``, ``pool``, ``concat``, ``fuse``, ``head`` (1x1 conv)
    or ``classify`` (global average pool + linear). ``size``: spatial shape of the op's (first)
    input, batch 1. ``extra``: channels of the second input (``concat``), else 0.
    """

    kind: str
    spatial_dims: int
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    extra: int = 0


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"architecture: {what} must be an integer, not {value!r}")
    return value


@dataclass(frozen=True)
class Architecture:
    """One candidate (see the module docstring). Built in canonical form; use :meth:`from_dict`.

    Attributes:
        spatial_dims: 2 or 3.
        in_channels: image channels (>= 1).
        out_channels: classes (segmentation logits incl. background, or classification labels).
        blocks: one block letter per level (no Zero once canonical), length = depth.
        widths: output channels of each level's block (the kept channels for Identity).
        head: ``"segmentation"`` (U-Net, output ``[B, out, *S]``) or ``"classification"``
            (encoder + global pool + linear, output ``[B, out]``).
    """

    spatial_dims: int
    in_channels: int
    out_channels: int
    blocks: tuple[str, ...]
    widths: tuple[int, ...]
    head: str = "segmentation"

    def __post_init__(self) -> None:
        d = _int(self.spatial_dims, "spatial_dims")
        if d not in (2, 3):
            raise UserError(f"architecture: spatial_dims must be 2 or 3, not {d}")
        cin, cout = _int(self.in_channels, "in_channels"), _int(self.out_channels, "out_channels")
        if cin < 1 or cout < 1:
            raise UserError(f"architecture: in_channels and out_channels must be >= 1, not {cin}, {cout}")
        if self.head not in HEADS:
            raise UserError(f"architecture: head must be one of {', '.join(HEADS)}, not {self.head!r}")
        blocks, widths = list(self.blocks), list(self.widths)
        if len(blocks) != len(widths):
            raise UserError(f"architecture: {len(blocks)} blocks but {len(widths)} widths; give one width per level")
        for b in blocks:
            if not isinstance(b, str):
                raise UserError(f"architecture: block {b!r} must be a letter string")
            check_letter(b, d)
        if ZERO in blocks:
            cut = blocks.index(ZERO)
            blocks, widths = blocks[:cut], widths[:cut]
        if not blocks:
            raise UserError("architecture: level 0 needs a block (not Zero); e.g. blocks [\"C\"], widths [16]")
        if len(blocks) > MAX_DEPTH[d]:
            raise UserError(f"architecture: depth {len(blocks)} exceeds the {d}-D maximum {MAX_DEPTH[d]}; "
                            f"use at most {MAX_DEPTH[d]} levels")
        canon, prev = [], cin
        for l, (b, w) in enumerate(zip(blocks, widths)):
            if b == IDENTITY:
                w = prev
            else:
                w = _int(w, f"width of level {l}")
                if w not in WIDTHS[d]:
                    raise UserError(f"architecture: width {w} at level {l} is not allowed in {d}-D; "
                                    f"use one of {', '.join(map(str, WIDTHS[d]))}")
            canon.append(w)
            prev = w
        object.__setattr__(self, "blocks", tuple(blocks))
        object.__setattr__(self, "widths", tuple(canon))

    # ------------------------------------------------------------------ encoding

    @property
    def depth(self) -> int:
        """Number of levels (non-Zero blocks)."""
        return len(self.blocks)

    def channels(self) -> list[int]:
        """``[in_channels, c[0], ..., c[depth-1]]``: the input channels, then each level's block output."""
        return [self.in_channels, *self.widths]

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-able dict (``from_dict(to_dict())`` is the identity)."""
        return {"format": FORMAT, "spatial_dims": self.spatial_dims, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "head": self.head, "blocks": list(self.blocks),
                "widths": list(self.widths)}

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON (sorted keys; compact unless ``indent``)."""
        if indent is None:
            return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @property
    def id(self) -> str:
        """``arch-<12 hex>``: SHA-256 of the canonical JSON (equal networks share one id)."""
        return "arch-" + hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """Short readable form, e.g. ``C16-E32-Id-G64`` (see :meth:`from_label`)."""
        return "-".join("Id" if b == IDENTITY else f"{b}{w}" for b, w in zip(self.blocks, self.widths))

    @classmethod
    def from_dict(cls, d: Any) -> "Architecture":
        """Validate and canonicalise a dict (``to_dict()`` output or hand-written).

        Required: ``spatial_dims``, ``blocks``, ``widths`` (``null`` allowed for Identity/Zero
        levels). Optional: ``in_channels`` (1), ``out_channels`` (2), ``head`` ("segmentation").
        """
        if not isinstance(d, dict):
            raise UserError(f"an architecture must be a JSON object, not {type(d).__name__}")
        unknown = set(d) - _KEYS
        if unknown:
            raise UserError(f"architecture: unknown key(s) {', '.join(sorted(unknown))}; "
                            f"valid keys: {', '.join(sorted(_KEYS))}")
        missing = [k for k in ("spatial_dims", "blocks", "widths") if k not in d]
        if missing:
            raise UserError(f"architecture: missing key(s) {', '.join(missing)}")
        if d.get("format", FORMAT) != FORMAT:
            raise UserError(f"architecture: format {d['format']!r} is not {FORMAT!r}")
        if not isinstance(d["blocks"], list) or not isinstance(d["widths"], list):
            raise UserError("architecture: 'blocks' and 'widths' must be lists")
        widths = [w if w is not None else 0 for w in d["widths"]]
        return cls(spatial_dims=d["spatial_dims"], in_channels=d.get("in_channels", 1),
                   out_channels=d.get("out_channels", 2), blocks=tuple(d["blocks"]),
                   widths=tuple(widths), head=d.get("head", "segmentation"))

    @classmethod
    def from_label(cls, label: str, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 2,
                   head: str = "segmentation") -> "Architecture":
        """Parse :attr:`label` (``C16-E32-Id-G64``; ``Id`` = Identity, ``Zero`` ends the net)."""
        blocks, widths = [], []
        for tok in str(label).strip().split("-"):
            if tok in ("Id", IDENTITY, ZERO):
                blocks.append(IDENTITY if tok != ZERO else ZERO)
                widths.append(0)
                continue
            letter, digits = tok[:1], tok[1:]
            if not letter or not digits.isdigit():
                raise UserError(f"architecture label {label!r}: bad level {tok!r}; "
                                f"write <letter><width> (e.g. C16), Id or Zero, joined by '-'")
            blocks.append(letter)
            widths.append(int(digits))
        return cls(spatial_dims, in_channels, out_channels, tuple(blocks), tuple(widths), head)

    def check_task(self, task) -> None:
        """Raise :class:`UserError` if the architecture does not fit ``task`` (an ``analogmed.data`` task):
        spatial dims, input channels, classes (``num_classes``) and head kind must match."""
        head = "classification" if task.kind == "classification" else "segmentation"
        want = {"spatial_dims": task.spatial_dims, "in_channels": task.in_channels,
                "out_channels": task.num_classes, "head": head}
        for key, value in want.items():
            if getattr(self, key) != value:
                raise UserError(f"architecture {self.id} has {key}={getattr(self, key)!r} but task {task.name} "
                                f"needs {value!r}; sample it with --{key.replace('_', '-')} {value}")
        if head == "segmentation":
            self.check_input_size(task.image_size)

    # ------------------------------------------------------------------ sizes and ops

    def check_input_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Return ``input_size`` as a tuple, or raise :class:`UserError` if the depth does not fit it.

        Every spatial dimension must be divisible by ``2**(depth-1)`` (the pooling steps).
        """
        size = tuple(int(s) for s in input_size)
        if len(size) != self.spatial_dims:
            raise UserError(f"input size {size} has {len(size)} dims; this architecture is "
                            f"{self.spatial_dims}-D")
        f = 2 ** (self.depth - 1)
        if any(s < f or s % f for s in size):
            raise UserError(f"input size {'x'.join(map(str, size))} does not fit depth {self.depth}: every "
                            f"dimension must be a positive multiple of {f}; use fewer levels or another size")
        return size

    def ops(self, input_size: Sequence[int] | None = None) -> list[ArchOp]:
        """The ops the candidate runs on one input of spatial shape ``input_size`` (batch 1).

        Segmentation order: per level ``l`` ``block``, then if a deeper level exists ``pool``,
        ``up:<letter of l+1>`` (at level ``l+1``'s size), ``concat`` and ``fuse``; finally ``head``.
        Classification: ``block`` and ``pool`` alternating, then ``classify``.
        Default size: :data:`DEFAULT_INPUT_SIZE`.
        """
        size = self.check_input_size(input_size or DEFAULT_INPUT_SIZE[self.spatial_dims])
        d, c = self.spatial_dims, self.channels()
        at = [tuple(s // 2 ** l for s in size) for l in range(self.depth)]
        ops: list[ArchOp] = []
        if self.head == "classification":
            for l, b in enumerate(self.blocks):
                if l:
                    ops.append(ArchOp("pool", d, c[l], c[l], at[l - 1]))
                ops.append(ArchOp(f"block:{b}", d, c[l], c[l + 1], at[l]))
            ops.append(ArchOp("classify", d, c[-1], self.out_channels, at[-1]))
            return ops
        for l, b in enumerate(self.blocks):
            ops.append(ArchOp(f"block:{b}", d, c[l], c[l + 1], at[l]))
            if l + 1 < self.depth:
                w = c[l + 1]
                ops.append(ArchOp("pool", d, w, w, at[l]))
                ops.append(ArchOp(f"up:{self.blocks[l + 1]}", d, c[l + 2], w, at[l + 1]))
                ops.append(ArchOp("concat", d, w, 2 * w, at[l], extra=w))
                ops.append(ArchOp("fuse", d, 2 * w, w, at[l]))
        ops.append(ArchOp("head", d, c[1], self.out_channels, size))
        return ops


def load_architecture(path: str | os.PathLike) -> Architecture:
    """Read an architecture JSON file: the canonical dict, or a model spec ``{"family": "space", "arch": {...}}``.

    Missing, malformed or truncated files and invalid architectures raise :class:`UserError`.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"architecture file {p} does not exist; write one with `analogmed arch sample --out {p}`")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"architecture file {p} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                        f"is it truncated?") from None
    except UnicodeDecodeError:
        raise UserError(f"architecture file {p} is not a text JSON file") from None
    if isinstance(data, dict) and data.get("family") == "space" and isinstance(data.get("arch"), dict):
        data = data["arch"]
    try:
        return Architecture.from_dict(data)
    except UserError as exc:
        raise UserError(f"{p}: {exc}") from None


def _per_level_choices(spatial_dims: int, blocks: Sequence[str], widths: Sequence[int]) -> int:
    non_id = [b for b in blocks if b != IDENTITY]
    return len(non_id) * len(widths) + (IDENTITY in blocks)


def space_size(spatial_dims: int = 2, max_depth: int | None = None, blocks: Sequence[str] | None = None,
               widths: Sequence[int] | None = None) -> int:
    """Number of distinct canonical architectures for one task (fixed channels and head).

    Each level holds Identity (width forced) or a non-Identity block with any width:
    ``n = len(non-Identity blocks) * len(widths) + 1`` choices per level, and
    ``size = sum_{L=1..max_depth} n**L``.
    """
    blocks = tuple(blocks or BLOCKS[spatial_dims])
    widths = tuple(widths or WIDTHS[spatial_dims])
    n = _per_level_choices(spatial_dims, blocks, widths)
    return sum(n ** L for L in range(1, (max_depth or MAX_DEPTH[spatial_dims]) + 1))


def sample_architecture(seed: int | None = 0, spatial_dims: int = 2, in_channels: int = 1,
                        out_channels: int = 2, head: str = "segmentation", max_depth: int | None = None,
                        depth: int | None = None, blocks: Sequence[str] | None = None,
                        widths: Sequence[int] | None = None,
                        rng: random.Random | None = None) -> Architecture:
    """A uniformly random canonical architecture (the same ``seed`` gives the same one).

    Uniform over the space counted by :func:`space_size`: the depth ``L`` is drawn with probability
    ``n**L / sum_k n**k`` (or fixed by ``depth``), then every level uniformly among its ``n``
    (block, width) choices. ``blocks`` / ``widths`` restrict the choices; ``rng`` (a
    ``random.Random``) replaces ``seed`` when given.
    """
    if spatial_dims not in (2, 3):
        raise UserError(f"spatial_dims must be 2 or 3, not {spatial_dims!r}")
    rng = rng or random.Random(seed)
    blocks = tuple(blocks or BLOCKS[spatial_dims])
    for b in blocks:
        check_letter(b, spatial_dims)
        if b == ZERO:
            raise UserError("sample_architecture: blocks must not contain Zero (depth is drawn instead)")
    widths = tuple(widths or WIDTHS[spatial_dims])
    top = max_depth or MAX_DEPTH[spatial_dims]
    if depth is not None and not 1 <= depth <= MAX_DEPTH[spatial_dims]:
        raise UserError(f"depth {depth} is not in 1..{MAX_DEPTH[spatial_dims]} for {spatial_dims}-D")
    if not 1 <= top <= MAX_DEPTH[spatial_dims]:
        raise UserError(f"max_depth {top} is not in 1..{MAX_DEPTH[spatial_dims]} for {spatial_dims}-D")
    choices = [(b, w) for b in blocks if b != IDENTITY for w in widths]
    if IDENTITY in blocks:
        choices.append((IDENTITY, 0))
    n = len(choices)
    if depth is None:
        depths = list(range(1, top + 1))
        depth = rng.choices(depths, weights=[float(n) ** L for L in depths])[0]
    levels = [rng.choice(choices) for _ in range(depth)]
    return Architecture(spatial_dims, in_channels, out_channels, tuple(b for b, _ in levels),
                        tuple(w for _, w in levels), head)


__all__ = ["Architecture", "ArchOp", "DEFAULT_INPUT_SIZE", "FORMAT", "HEADS", "INPUT_SIZES", "MAX_DEPTH",
           "WIDTHS", "load_architecture", "sample_architecture", "space_size"]
