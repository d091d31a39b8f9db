"""Fast analog inference engine: aihwkit's ``TorchInferenceRPUConfig`` forward, folded into native ops.

aihwkit's torch tile runs every analog layer as im2col + one noisy, quantised mat-mul per tile. For
the settings our presets use, the same numbers come out of a cheaper order of operations:

1. once per (hardware instance, t) — after :func:`analogmed.analog.program` / ``drift`` — each tile's
   programmed and drifted weights (normalised conductance units, aihwkit ``tile.tile.weight``) are
   copied into a native weight per *input* tile (``[C_out, C_in_tile, *kernel]``, zero where another
   input tile owns the column), and the digital factors of each output column are folded into one
   vector ``scale = input_range * mapping_scale * alpha`` (alpha = global drift compensation);
2. per forward and input tile: the input range clamp and divide and the DAC quantisation
   (``round(x / step) * step``, clamp to ``inp_bound``) run on the feature map (they are elementwise,
   so they commute with im2col, and zero padding stays zero); then the native ``F.conv1d/2d/3d`` or
   ``F.linear`` (transposed convs: a mat-mul into per-tap columns, then col2im);
3. one fused pass per output element (:mod:`analogmed.analog.fast_kernel`): output noise, ADC
   rounding and clamp, scale, accumulation of the split input tiles, digital bias.

That is aihwkit's order (``pre_forward`` -> ``_prepare_input`` -> mat-mul -> ``_finalize_output`` ->
``post_forward`` scales -> alpha -> partial-tile sum -> bias), except that the mat-mul sums in
another order: with noise off, outputs equal aihwkit's up to float rounding, which can move an ADC
rounding tie by one step in very rare elements. Output noise uses the engine's own seeded generator,
so with noise on the outputs are equal *in distribution* (tested: error std and mean |error|).

Settings the engine does not cover (noise / bound management, input noise, asymmetries, output
noise per column, learned out scaling, quantised periphery, non-torch tiles) make that layer run
through aihwkit's own forward, with a one-line note (:attr:`FastEngine.notes`).

Usage::

    program(amodel, seed); drift(amodel, t, seed)
    with fast_engine(amodel):          # folds the current weights; restores aihwkit forwards on exit
        y = amodel(x)
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from aihwkit.nn import AnalogConv1d, AnalogConv2d, AnalogConv3d, AnalogLinear
from aihwkit.nn.modules.base import AnalogLayerBase
from aihwkit.simulator.parameters.enums import (AnalogMVType, BoundManagementType, NoiseManagementType)
from aihwkit.simulator.tiles.array import TileModuleArray
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor, nn

from analogmed.analog.fast_kernel import TileKernel, dac, fused_out, is_dense, untap
from analogmed.analog.layers import _AnalogConvTransposeNd

ENGINES = ("fast", "aihwkit")


def check_engine(engine: str) -> str:
    """Validate an engine name ('fast' or 'aihwkit')."""
    from analogmed.errors import UserError

    if engine not in ENGINES:
        raise UserError(f"engine {engine!r} is unknown; use one of {', '.join(ENGINES)}")
    return engine


def _unsupported(tile) -> str | None:
    """Why the fast engine cannot reproduce this tile's forward, or None."""
    if type(tile) is not TorchInferenceTile:
        return f"tile class {type(tile).__name__}"
    f = tile.rpu_config.forward
    if f.is_perfect:
        return None
    checks = [
        (f.mv_type != AnalogMVType.ONE_PASS, "mv_type"),
        (f.noise_management != NoiseManagementType.NONE, "noise management"),
        (f.bound_management != BoundManagementType.NONE, "bound management"),
        (f.inp_noise > 0, "input noise"),
        (f.inp_asymmetry != 0 or f.out_asymmetry != 0, "in/out asymmetry"),
        (f.out_scale != 1.0, "out_scale"),
        (f.inp_sto_round or f.out_sto_round, "stochastic rounding"),
        (getattr(tile.tile, "out_noise_values", None) is not None, "per-column output noise"),
        (tile.out_scaling_alpha is not None, "learned out scaling"),
        (hasattr(tile.rpu_config.pre_post, "periph_quant"), "quantised periphery"),
        (tile.training, "training mode"),
    ]
    for bad, what in checks:
        if bad:
            return what
    return None


def _steps(res: float, bound: float) -> float:
    """aihwkit's quantisation step (``UniformQuantize``): res (or 1/states) * 2 * bound; 0 = off."""
    if res <= 0:
        return 0.0
    res = 1.0 / res if res > 1.0 else res
    return res * 2.0 * bound


@dataclass
class _InTile:
    """One input tile of a layer: which input features it reads and its folded weight."""

    lo: int                 # first input feature (flattened C_in * prod(k) index for convs)
    hi: int                 # one past the last
    c0: int                 # first input channel touched
    c1: int                 # one past the last channel touched
    input_range: Tensor | None
    ir_value: float | None  # float(input_range)
    weight: Tensor          # conv: [C_out, c1 - c0, *k]; linear / transposed: [out_features, hi - lo]
    scale: Tensor           # [out_features] = input_range * mapping_scale * alpha per output column
    kernel: TileKernel | None = None  # the C kernel's DAC / output pass with this tile's constants (None: general path)


@dataclass
class _Folded:
    kind: str               # "linear" | "conv" | "convT"
    tiles: list[_InTile] = field(default_factory=list)
    bias: Tensor | None = None
    inp_step: float = 0.0
    inp_bound: float = math.inf
    out_step: float = 0.0
    out_bound: float = math.inf
    sigma: float = 0.0
    perfect: bool = False
    bias_rows: Tensor | None = None  # convT with non-overlapping taps: bias per (C_out, tap) row, added in the pass
    name: str = ""          # the layer's name in the model (for :func:`clip_counter`)


#: per-layer ADC saturation counts while a :func:`clip_counter` is active (None: off, costs one check per tile)
_CLIP: dict[str, list[int]] | None = None


#: callback(layer name, raw tile output) while a :func:`raw_outputs` is active (None: off)
_RAW = None


@contextlib.contextmanager
def raw_outputs(callback):
    """Inside, every fast-engine tile MVM calls ``callback(layer name, y)`` with its raw output ``y``
    (normalised units: after the DAC and the mat-mul, before output noise, ADC and the digital scales;
    conv ``[B, C_out, *S]``, linear ``[..., out_features]``). Used to calibrate the ADC headroom."""
    global _RAW
    prev, _RAW = _RAW, callback
    try:
        yield
    finally:
        _RAW = prev


@contextlib.contextmanager
def clip_counter():
    """Diagnostic: inside, every fast-engine tile MVM counts its raw outputs (normalised units, after the
    DAC and the mat-mul, before output noise, ADC and the digital scales) with ``|y| >= out_bound``.

    Yields a dict ``layer name -> [clipped, total]`` (summed over the input tiles and forwards of the layer),
    and ``layer name + ":dac" -> [clipped, total]``: inputs at or beyond the tile's input range (DAC clipping).
    Output noise (std ``out_noise``, 0.04 on pcm vs out_bound 10) is not included, so elements within a few
    noise stds of the bound may be counted one way or the other. Off (the default), the engine runs unchanged.
    """
    global _CLIP
    prev, _CLIP = _CLIP, {}
    try:
        yield _CLIP
    finally:
        _CLIP = prev


def _tile_grid(layer) -> tuple[list[list], list[int], list[int], Tensor | None]:
    mod = layer.analog_module
    if isinstance(mod, TileModuleArray):
        grid = [list(row) for row in mod.array]
        return grid, list(mod.in_sizes), list(mod.out_sizes), mod.bias
    bias = mod.bias if getattr(mod, "digital_bias", False) else None
    return [[mod]], [mod.in_size], [mod.out_size], bias


def _fold(layer, check: bool = True) -> _Folded | str:
    """Fold one analog layer's current tile state; returns a reason string if unsupported
    (``check=False``: the layer passed the check before and its settings did not change)."""
    grid, in_sizes, out_sizes, bias = _tile_grid(layer)
    for row in grid if check else ():
        for tile in row:
            why = _unsupported(tile)
            if why:
                return why
    first = grid[0][0]
    f = first.rpu_config.forward
    comp = getattr(first.rpu_config, "drift_compensation", None) is not None
    if isinstance(layer, _AnalogConvTransposeNd):
        kind, k = "convT", 1
        bias = layer.bias
    elif isinstance(layer, (AnalogConv1d, AnalogConv2d, AnalogConv3d)):
        kind, k = "conv", math.prod(layer.kernel_size)
    elif isinstance(layer, AnalogLinear):
        kind, k = "linear", 1
    else:
        return f"layer class {type(layer).__name__}"
    out = _Folded(kind=kind, perfect=bool(f.is_perfect))
    if not f.is_perfect:
        out.inp_bound = f.inp_bound if f.inp_bound > 0 else math.inf
        out.inp_step = _steps(f.inp_res, f.inp_bound)
        out.out_bound = f.out_bound if f.out_bound > 0 else math.inf
        out.out_step = _steps(f.out_res, f.out_bound)
        out.sigma = float(f.out_noise)
    out.bias = None if bias is None else bias.detach()
    lo = 0
    for row, n_in in zip(grid, in_sizes):
        hi = lo + n_in
        weights, scales = [], []
        ir = row[0].input_range
        for tile in row:
            w = tile.tile.weight.detach()
            s = torch.ones(w.shape[0], dtype=w.dtype, device=w.device)
            if tile.input_range is not None:
                s = s * tile.input_range.detach()
            ms = tile.get_mapping_scales()
            if ms is not None:
                s = s * ms.detach().view(-1) if ms.numel() > 1 else s * ms.detach()
            if comp and not tile.training:
                s = s * tile.alpha.detach()
            weights.append(w)
            scales.append(s)
        w = torch.cat(weights, 0) if len(weights) > 1 else weights[0].clone()  # a snapshot of the tiles
        if kind == "conv":
            c0, c1 = lo // k, -(-hi // k)
            if lo == c0 * k and hi == c1 * k:  # the tile holds whole input channels
                w = w.reshape(w.shape[0], c1 - c0, *layer.kernel_size)
            else:
                full = w.new_zeros(w.shape[0], (c1 - c0) * k)
                full[:, lo - c0 * k: hi - c0 * k] = w
                w = full.view(w.shape[0], c1 - c0, *layer.kernel_size)
        else:
            c0, c1 = lo, hi
        out.tiles.append(_InTile(lo, hi, c0, c1, None if ir is None else ir.detach(),
                                 None if ir is None else float(ir.detach().item()), w.contiguous(),
                                 torch.cat(scales).contiguous()))
        lo = hi
    if kind == "convT" and out.bias is not None and _non_overlapping(layer):
        out.bias_rows = out.bias.repeat_interleave(math.prod(layer.kernel_size)).contiguous()
    last_bias = out.bias_rows if kind == "convT" else out.bias
    for i, t in enumerate(out.tiles):
        t.kernel = TileKernel.make(t.ir_value, out.perfect, out.inp_step, out.inp_bound, t.scale,
                                   last_bias if i == len(out.tiles) - 1 else None, out.sigma, out.out_step,
                                   out.out_bound)
    return out


def _non_overlapping(layer) -> bool:
    """A transposed conv whose taps never overlap (k == stride, e.g. k2s2; no padding, dilation 1): every
    output element is exactly one (tap, input position) column of the MVM."""
    return tuple(layer.kernel_size) == tuple(layer.stride) and all(d == 1 for d in layer.dilation) \
        and all(p == 0 for p in layer.padding) and all(o == 0 for o in layer.output_padding)


#: per-thread scratch for DAC outputs (see :func:`_dac`)
_SCRATCH = threading.local()


def _scratch(x: Tensor, like: bool = False) -> Tensor | None:
    """This thread's reusable buffer shaped as ``x`` (grown to the largest ``x`` seen), or None with
    autograd on or off the CPU; ``like=True``: with ``x``'s strides (``x`` dense, see
    :func:`~analogmed.analog.fast_kernel.is_dense`), else contiguous. The DAC output of a tile is read
    once, by that tile's MVM, before the next DAC runs, so one buffer serves every layer; a fresh multi-MB
    tensor per call costs page faults (a 4 MB map here: ~3 ns per element against 0.4 ns for the DAC
    itself). :meth:`FastEngine.remove` frees it."""
    if torch.is_grad_enabled() or not x.is_cpu:
        return None
    buf = getattr(_SCRATCH, "buf", None)
    n = x.numel()
    if buf is None or buf.numel() < n or buf.dtype != x.dtype:
        buf = _SCRATCH.buf = torch.empty(n, dtype=x.dtype)
    if like:
        return buf.as_strided(x.shape, x.stride())  # ~2 us; buf[:n].view(shape) takes ~5 us
    return buf[:n].view(x.shape)


def _dac(x: Tensor, t: _InTile, fo: _Folded) -> Tensor:
    """Input range clamp and DAC quantisation (:func:`analogmed.analog.fast_kernel.dac`), into the
    thread's scratch buffer when autograd is off."""
    if _CLIP is not None and t.ir_value is not None:
        c = _CLIP.setdefault(fo.name + ":dac", [0, 0])
        c[0] += int((x.abs() >= t.ir_value).sum())
        c[1] += x.numel()
    if t.kernel is not None and x.is_cpu and x.dtype is torch.float32 and (x.is_contiguous() or is_dense(x)):
        out = _scratch(x, like=True)  # a dense view (e.g. ChannelLinear's movedim) runs in memory order
        if out is not None:
            return t.kernel.dac(x, out)
    return dac(x, t.input_range, fo.perfect, fo.inp_step, fo.inp_bound, t.ir_value, out=_scratch(x))


#: per-thread seed stream of the forward in progress (see :func:`_seed`)
_SEEDS = threading.local()
_M64 = (1 << 64) - 1


def _forward_start(module, args) -> None:
    """Forward pre-hook on the model: a new seed stream for this forward (its base seed is drawn by the
    first tile that needs one, so a forward without noisy fast tiles draws nothing)."""
    _SEEDS.active, _SEEDS.base, _SEEDS.count = True, None, 0


def _forward_done(module, args, output) -> None:
    _SEEDS.active = False


def _seed() -> int:
    """A 64-bit seed for the output noise of one tile MVM. Inside a model forward: one base seed per
    forward from torch's global generator, and the tile's position in the forward, mixed by SplitMix64's
    finaliser (a few integer operations, where a ``torch.randint`` per tile costs ~3 us plus its share of
    cache misses); a layer called on its own draws its seed from torch's generator. Either way
    ``torch.manual_seed`` makes a forward reproducible and every tile MVM gets its own stream."""
    if not getattr(_SEEDS, "active", False):
        return int(torch.randint(0, 2 ** 62, (1,)).item())
    if _SEEDS.base is None:
        _SEEDS.base = int(torch.randint(0, 2 ** 62, (1,)).item())
    _SEEDS.count = c = _SEEDS.count + 1
    z = (_SEEDS.base + c * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _finish(y: Tensor, acc: Tensor | None, t: _InTile, bias: Tensor | None, inner: int, fo: _Folded) -> Tensor:
    if fo.perfect:
        v = y * t.scale.view(1, -1, *([1] * (y.dim() - 2))) if inner > 1 else y * t.scale
        if acc is not None:
            v = acc + v
        if bias is not None:
            v = v + (bias.view(1, -1, *([1] * (y.dim() - 2))) if inner > 1 else bias)
        return v
    if _RAW is not None:
        _RAW(fo.name, y)
    if _CLIP is not None and math.isfinite(fo.out_bound):
        c = _CLIP.setdefault(fo.name, [0, 0])
        c[0] += int((y.abs() >= fo.out_bound).sum())
        c[1] += y.numel()
    seed = _seed() if fo.sigma > 0 else 0
    if t.kernel is not None and y.is_cpu and y.dtype is torch.float32 and y.is_contiguous() and (
            acc is None or acc.is_contiguous()) and (bias is None) == (t.kernel.bias is None):
        return t.kernel.out(y, y if acc is None else acc, inner, acc is not None, seed)
    return fused_out(y, acc, t.scale, bias, inner, fo.sigma, fo.out_step, fo.out_bound, seed, inplace=True)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _conv_forward(layer, fo: _Folded, x: Tensor) -> Tensor:
    batched = x.dim() == len(layer.kernel_size) + 2
    if not batched:
        x = x.unsqueeze(0)
    conv = _CONV[len(layer.kernel_size)]
    acc = None
    last = len(fo.tiles) - 1
    for i, t in enumerate(fo.tiles):
        xq = _dac(x if last == 0 else x[:, t.c0:t.c1], t, fo)
        y = conv(xq, t.weight, None, layer.stride, layer.padding, layer.dilation)
        inner = math.prod(y.shape[2:])
        acc = _finish(y.contiguous(), acc, t, fo.bias if i == last else None, inner, fo)
    return acc if batched else acc.squeeze(0)


def _linear_forward(fo: _Folded, x: Tensor) -> Tensor:
    acc = None
    last = len(fo.tiles) - 1
    for i, t in enumerate(fo.tiles):
        xq = _dac(x if last == 0 else x[..., t.lo:t.hi], t, fo)
        y = F.linear(xq, t.weight)
        acc = _finish(y.contiguous(), acc, t, fo.bias if i == last else None, 1, fo)
    return acc


def _col2im(cols: Tensor, layer, s_in: tuple[int, ...]) -> Tensor:
    """cols [B, C_out, *k, *S_in] -> [B, C_out, *S_out] (overlap-add, crop by padding)."""
    n = layer.SPATIAL_DIMS
    b, c = cols.shape[:2]
    ks, st, dl = layer.kernel_size, layer.stride, layer.dilation
    if _non_overlapping(layer):
        # non-overlapping taps (k2s2): out[s * k + t] = cols[t, s]
        return untap(cols, tuple(ks), tuple(s_in))
    full = tuple((s - 1) * sd + d * (k - 1) + 1 + op for s, sd, d, k, op in zip(
        s_in, st, dl, ks, layer.output_padding))
    out = cols.new_zeros(b, c, *full)
    for tap in torch.cartesian_prod(*[torch.arange(k) for k in ks]).reshape(-1, n).tolist():
        dst = tuple(slice(t * d, t * d + (s - 1) * sd + 1, sd) for t, d, s, sd in zip(tap, dl, s_in, st))
        out[(slice(None), slice(None)) + dst] += cols[(slice(None), slice(None)) + tuple(tap)]
    crop = tuple(slice(p, p + o) for p, o in zip(layer.padding, layer.output_shape(s_in)))
    return out[(slice(None), slice(None)) + crop]


def _convT_forward(layer, fo: _Folded, x: Tensor) -> Tensor:
    n = layer.SPATIAL_DIMS
    batched = x.dim() == n + 2
    if not batched:
        x = x.unsqueeze(0)
    b, s_in = x.shape[0], tuple(x.shape[2:])
    flat = x.reshape(b, x.shape[1], -1)                       # [B, C_in, L]
    acc = None
    inner = flat.shape[2]
    last = len(fo.tiles) - 1
    for i, t in enumerate(fo.tiles):
        xq = _dac(flat if last == 0 else flat[:, t.lo:t.hi], t, fo)
        y = torch.matmul(t.weight, xq)                        # [B, C_out * prod(k), L]
        acc = _finish(y.contiguous(), acc, t, fo.bias_rows if i == last else None, inner, fo)
    cols = acc.view(b, layer.out_channels, *layer.kernel_size, *s_in)
    out = _col2im(cols, layer, s_in)
    if fo.bias is not None and fo.bias_rows is None:
        out = out + fo.bias.view(1, -1, *([1] * n))
    return out if batched else out.squeeze(0)


def _make_forward(layer, fo: _Folded):
    if fo.kind == "conv":
        return lambda x: _conv_forward(layer, fo, x)
    if fo.kind == "convT":
        return lambda x: _convT_forward(layer, fo, x)
    return lambda x: _linear_forward(fo, x)


class FastEngine:
    """Swaps the forward of every analog layer of ``amodel`` for the folded fast forward.

    ``refresh()`` re-folds after the tiles changed (a new program / drift); ``remove()`` restores
    aihwkit's forwards. ``notes``: layer name -> why it kept aihwkit's forward (printed once).
    """

    def __init__(self, amodel: nn.Module, quiet: bool = False):
        self.amodel = amodel
        self.quiet = quiet
        self.notes: dict[str, str] = {}
        self._checked: set[str] = set()  # layers whose settings passed the check (tile settings are fixed)
        self._layers: list[tuple[str, nn.Module]] = [
            (n, m) for n, m in amodel.named_modules() if isinstance(m, AnalogLayerBase) and hasattr(m, "analog_module")]
        self._hooks = [amodel.register_forward_pre_hook(_forward_start),
                       amodel.register_forward_hook(_forward_done, always_call=True)]
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        for name, layer in self._layers:
            fo = _fold(layer, check=name not in self._checked)
            if isinstance(fo, str):
                layer.__dict__.pop("forward", None)
                if name not in self.notes and not self.quiet:
                    print(f"note: fast engine: {name or type(layer).__name__} runs on aihwkit ({fo})",
                          file=sys.stderr)
                self.notes[name] = fo
                continue
            fo.name = name
            layer.forward = _make_forward(layer, fo)
            self._checked.add(name)

    def remove(self) -> None:
        for _, layer in self._layers:
            layer.__dict__.pop("forward", None)
        _SCRATCH.__dict__.pop("buf", None)  # this thread's DAC scratch
        for h in self._hooks:
            h.remove()
        self._hooks = []
        _SEEDS.active = False


@contextlib.contextmanager
def fast_engine(amodel: nn.Module, quiet: bool = False):
    """Context manager: inside, ``amodel(x)`` runs the fast engine on the *current* programmed and
    drifted tile state (fold once on entry; call ``.refresh()`` on the yielded engine after a new
    ``drift``)."""
    eng = FastEngine(amodel, quiet=quiet)
    try:
        yield eng
    finally:
        eng.remove()
