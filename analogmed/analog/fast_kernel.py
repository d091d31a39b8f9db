"""The fused output pass of the fast analog engine: a small compiled C kernel with a plain-torch fallback.

One call finishes the raw MVM output ``y`` of one input tile (normalised units) for every element
``e`` (channel ``c = (e // inner) % C``)::

    v = y + sigma * N(0, 1)                 output noise (aihwkit ``forward.out_noise``)
    v = round(v * fl(1/step)) * step        ADC quantisation (step = out_res * 2 * out_bound), half-even;
                                            aihwkit divides by step: the two differ only within ~1 ulp of
                                            a rounding tie (~1e-5 of the outputs; tests allow 1e-4)
    v = clamp(v, -bound, bound)             ADC range (``out_bound``)
    out = acc + v * scale[c] (+ bias[c])    digital scales, partial sums of split tiles, digital bias

The Gaussian numbers come from a stateless counter-based generator: one keyed 32-bit integer hash of
``(seed, pair)`` per pair of elements, whose two 16-bit halves index a table of 65536 equiprobable
standard-normal quantiles (:func:`normal_table`), so the same seed gives identical outputs. The C kernel
and the torch fallback hash alike, read the same table and evaluate the same float operations, so
they give identical outputs too (tested).

Build: ``csrc/fused_out.c`` is compiled at first use with the system C compiler (``$CC`` or ``cc``,
``-O3 -march=native -ffp-contract=off``) into a shared library cached under
``analogmed.paths.cache_dir() / "kernels"`` (keyed by a hash of the source, flags and CPU features) and called
through ctypes on the tensors' memory. Why not a torch C++ extension: compiling against torch's
headers takes ~50 s here, needs ninja, and ties the binary to one torch ABI (the trap aihwkit's C++
tile fell into); the C kernel builds in about a second and only touches float arrays. Why not at
install time: the package stays a pure-Python wheel and still works where no compiler exists.
Without a compiler, when the build fails, on non-CPU tensors, or with ``ANALOGMED_NO_KERNEL=1``, the
plain-torch fallback runs (one note on stderr when a build fails).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

_LOCK = threading.Lock()
_STATE: dict = {"tried": False, "lib": None, "error": ""}
_SRC = Path(__file__).resolve().parent / "csrc" / "fused_out.c"
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-std=c99"]
_M32 = 0xFFFFFFFF


def kernel_disabled() -> bool:
    """True when ``ANALOGMED_NO_KERNEL=1`` forces the plain-torch path."""
    return os.environ.get("ANALOGMED_NO_KERNEL", "") not in ("", "0")


def _cpu_tag() -> str:
    """The CPU's feature flags (the library is built with -march=native, so the cache key has them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _compile(cc: str, flags: list[str], out: str) -> str:
    res = subprocess.run([cc, *flags, "-o", out, str(_SRC), "-lm"], capture_output=True, text=True, timeout=120)
    return "" if res.returncode == 0 else (res.stderr or res.stdout).strip()[:300]


def _build() -> ctypes.CDLL:
    from analogmed.paths import cache_dir

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise RuntimeError("no C compiler (cc/gcc/clang) on PATH")
    key = hashlib.sha256(_SRC.read_bytes() + " ".join([cc, _cpu_tag()] + _FLAGS).encode()).hexdigest()[:16]
    folder = cache_dir() / "kernels"
    folder.mkdir(parents=True, exist_ok=True)
    lib = folder / f"fused_out-{key}.so"
    if not lib.is_file():
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            err = _compile(cc, _FLAGS + ["-march=native"], tmp)  # AVX2 etc. where the compiler knows the CPU
            if err:
                err = _compile(cc, _FLAGS, tmp)
            if err:
                raise RuntimeError(f"{Path(cc).name} failed: {err}")
            os.chmod(tmp, 0o755)
            os.replace(tmp, lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    dll = ctypes.CDLL(str(lib))
    f = dll.analogmed_fused_out
    f.restype = None
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_float,
                  ctypes.c_float, ctypes.c_float, ctypes.c_uint64, ctypes.c_void_p]
    u = dll.analogmed_untap
    u.restype = None
    u.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 7
    d = dll.analogmed_dac
    d.restype = None
    d.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_float,
                  ctypes.c_int, ctypes.c_float, ctypes.c_float, ctypes.c_float]
    return dll


def load_kernel():
    """The compiled kernel library (ctypes), or None (disabled / no compiler / build failed)."""
    if kernel_disabled():
        return None
    with _LOCK:
        if not _STATE["tried"]:
            _STATE["tried"] = True
            try:
                _STATE["lib"] = _build()
            except Exception as exc:  # noqa: BLE001 - any build problem means: use the torch path
                _STATE["error"] = f"{type(exc).__name__}: {exc}"
                print(f"note: analogmed fast engine: C kernel unavailable ({_STATE['error'][:200]}); "
                      "using the plain-torch output pass", file=sys.stderr)
        return _STATE["lib"]


def kernel_status() -> str:
    """'kernel', or 'torch (<why>)' when the fallback runs."""
    if kernel_disabled():
        return "torch (ANALOGMED_NO_KERNEL=1)"
    return "kernel" if load_kernel() is not None else f"torch ({_STATE['error']})"


# -- the generator in torch ops (bit-identical to the C code) ----------------------------------------
def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def _h(v: int) -> int:
    v &= _M32
    v ^= v >> 16
    v = (v * 0x7FEB352D) & _M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & _M32
    return v ^ (v >> 16)


def _keys(seed: int) -> tuple[int, int]:
    seed &= (1 << 64) - 1
    return _h((seed & _M32) ^ 0x9E3779B9), _h(((seed >> 32) + 0x85EBCA6B) & _M32)


#: 16-bit indices: the generator draws from 2**16 equiprobable normal quantiles
TABLE_BITS = 16
_TABLES: dict = {}


def normal_table(device=None) -> torch.Tensor:
    """The generator's table, float32 ``[65536]``: the standard-normal quantiles at the bin centres
    ``(i + 0.5) / 65536`` (float64 ``ndtri``), rescaled so the table's mean square is exactly 1 (the
    bin-centre quantiles alone have variance 0.99987). Odd-symmetric (``t[65535 - i] == -t[i]``);
    largest |value| 4.33 (a normal draw beyond that has probability 1.5e-5). Built once per device."""
    key = str(device or "cpu")
    t = _TABLES.get(key)
    if t is None:
        n = 1 << TABLE_BITS
        q = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)
        q = (q - q.flip(0)) / 2                  # exactly odd-symmetric
        t = _TABLES[key] = (q / q.square().mean().sqrt()).to(torch.float32).to(device or "cpu")
    return t


def gaussian(n: int, seed: int, device=None) -> torch.Tensor:
    """The first ``n`` standard normal float32 numbers of the generator for ``seed`` (torch ops):
    pair ``p`` hashes ``(seed, p)`` to 32 bits, whose high and low 16 bits index :func:`normal_table`."""
    k1, k2 = _keys(int(seed))
    pairs = (n + 1) // 2
    c = torch.arange(pairs, dtype=torch.int64, device=device) & _M32
    h = _hash32((_hash32(c ^ k1) + k2) & _M32)
    idx = torch.stack((h >> 16, h & 0xFFFF), dim=1).reshape(-1)[:n]
    return normal_table(c.device)[idx]


def fused_out_torch(y: torch.Tensor, acc: torch.Tensor | None, scale: torch.Tensor, bias: torch.Tensor | None,
                    inner: int, sigma: float, step: float, bound: float, seed: int) -> torch.Tensor:
    """Plain-torch version of the fused pass (any device). ``y``: any shape whose flattened element
    ``e`` has channel ``(e // inner) % C``; ``scale``, ``bias``: [C]. Returns ``acc`` updated in
    place, or a new tensor shaped like ``y``."""
    c = scale.numel()
    shape = y.shape
    v = y.reshape(-1, c, inner)
    f32 = torch.float32
    if sigma > 0:
        v = v + torch.tensor(sigma, dtype=f32, device=y.device) * gaussian(y.numel(), seed, y.device).view_as(v)
    if step > 0:
        st = torch.tensor(step, dtype=f32, device=y.device)
        v = torch.round(v * torch.tensor(recip(step), dtype=f32, device=y.device)) * st
    bd = float(torch.tensor(bound, dtype=f32))
    v = v.clamp(-bd, bd) * scale.view(1, c, 1)
    if acc is not None:
        v = acc.reshape(-1, c, inner) + v
    if bias is not None:
        v = v + bias.view(1, c, 1)
    if acc is not None:
        acc.copy_(v.view(shape))
        return acc
    return v.reshape(shape)


def recip(x: float) -> float:
    """``fl32(1 / x)``: the float32 reciprocal the DAC/ADC multiply by (computed in double, rounded once)."""
    return struct.unpack("f", struct.pack("f", 1.0 / x))[0]


def dac_torch(x: torch.Tensor, ir: torch.Tensor | None, perfect: bool, step: float, bound: float) -> torch.Tensor:
    """Input range clamp and DAC quantisation in torch ops (aihwkit's ``apply_input_range``, ``/ input_range``,
    ``UniformQuantize``, clamp to ``inp_bound``), the same float operations as the C kernel: a perfect tile
    divides by ``ir`` as aihwkit does; a quantising one multiplies by ``recip(ir * step)`` once instead of
    dividing twice (a different rounding only within ~2 ulps of a tie, ~1e-5 of the inputs)."""
    v = 1.0 if ir is None else float(ir.item())
    if ir is not None:
        x = torch.clamp(x, min=-abs(v), max=abs(v))
    if perfect:
        return x / ir if ir is not None else x
    if step > 0:
        x = torch.round(x * recip(v * step)) * step
    elif ir is not None:
        x = x / ir
    return torch.clamp(x, min=-bound, max=bound)


def is_dense(x: torch.Tensor) -> bool:
    """True when ``x`` covers exactly ``x.numel()`` consecutive elements of memory (a permutation of a
    contiguous layout: no gaps, no overlaps), so an elementwise kernel can run on its memory directly."""
    if x.is_contiguous():
        return True
    dims = sorted((st, sz) for st, sz in zip(x.stride(), x.shape) if sz != 1)
    expect = 1
    for st, sz in dims:
        if st != expect:
            return False
        expect *= sz
    return True


def _dac_args(ir_value: float | None, perfect: bool, step: float, bound: float) -> tuple:
    """The C DAC's arguments after ``(x, out, n)``: has_ir, |ir|, ir, perfect, step, fl(1 / (ir * step)), bound."""
    v = 1.0 if ir_value is None else float(ir_value)
    return (int(ir_value is not None), abs(v), v, int(perfect), float(step), recip(v * step) if step > 0 else 0.0,
            float(bound))


def _out_args(sigma: float, step: float, bound: float) -> tuple:
    """The C output pass's noise / ADC arguments: sigma, step, fl(1 / step), bound."""
    return float(sigma), float(step), recip(step) if step > 0 else 0.0, float(bound)


def dac(x: torch.Tensor, ir: torch.Tensor | None, perfect: bool, step: float, bound: float,
        ir_value: float | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The input (DAC) side of one tile: the C kernel for CPU float32 tensors, else :func:`dac_torch`.
    ``ir_value``: ``float(ir)`` when the caller has it already (saves a tensor read per call). ``out``: a
    contiguous tensor of ``x``'s shape and dtype to write into (the kernel path only; the result is returned
    either way)."""
    lib = load_kernel() if (x.device.type == "cpu" and x.dtype == torch.float32) else None
    if lib is None:
        return dac_torch(x, ir, perfect, step, bound)
    # elementwise: a dense tensor in any order of dimensions (e.g. ChannelLinear's ``movedim`` view of a
    # channel-first map) is processed in its memory order, into an output with the same strides
    fits = out is not None and out.is_contiguous() and out.shape == x.shape and out.dtype == x.dtype
    if fits and x.is_contiguous():
        src = x
    elif fits and not is_dense(x):     # a view with gaps (a split tile's slice): gather it into out, then in place
        src = out.copy_(x)
    else:
        src = x if is_dense(x) else x.contiguous()
        out = torch.empty_like(src)
    v = None if ir is None else float(ir.item()) if ir_value is None else ir_value
    lib.analogmed_dac(src.data_ptr(), out.data_ptr(), src.numel(), *_dac_args(v, perfect, step, bound))
    return out


def fused_out(y: torch.Tensor, acc: torch.Tensor | None, scale: torch.Tensor, bias: torch.Tensor | None,
              inner: int, sigma: float, step: float, bound: float, seed: int, inplace: bool = False) -> torch.Tensor:
    """The fused output pass (module docstring): the C kernel for CPU float32 tensors when it is
    available, else :func:`fused_out_torch`. Same arguments and result as :func:`fused_out_torch`;
    ``inplace=True`` (``y`` is a scratch tensor of the caller) lets the kernel write the result into ``y``
    when there is no ``acc`` (no new output tensor, one memory stream less)."""
    lib = load_kernel() if (y.device.type == "cpu" and y.dtype == torch.float32) else None
    if lib is None:
        return fused_out_torch(y, acc, scale, bias, inner, sigma, step, bound, seed)
    if inplace and not y.is_contiguous():
        inplace = False
    y = y.contiguous()
    out = acc if acc is not None else (y if inplace else torch.empty_like(y))
    if not out.is_contiguous():
        return fused_out_torch(y, acc, scale, bias, inner, sigma, step, bound, seed)
    sc = scale.detach().to(torch.float32).contiguous()
    bs = None if bias is None else bias.detach().to(torch.float32).contiguous()
    lib.analogmed_fused_out(y.data_ptr(), out.data_ptr(), y.numel(), int(inner), sc.numel(), sc.data_ptr(),
                            None if bs is None else bs.data_ptr(), int(acc is not None), *_out_args(sigma, step, bound),
                            int(seed) & ((1 << 64) - 1), normal_table().data_ptr())
    return out


def untap(cols: torch.Tensor, kernel: tuple[int, ...], s_in: tuple[int, ...]) -> torch.Tensor:
    """col2im of a transposed conv with non-overlapping taps (kernel == stride, no padding), a pure copy:
    ``cols`` [B, C, *kernel, *s_in] -> [B, C, *(s * k)]. The C kernel for contiguous CPU float32 tensors
    (one pass, the two taps of k = 2 interleaved), else a torch permute (the same values)."""
    n = len(kernel)
    b, c = cols.shape[:2]
    shape = (b, c, *[s * k for s, k in zip(s_in, kernel)])
    lib = load_kernel() if (cols.device.type == "cpu" and cols.dtype == torch.float32 and n in (2, 3)
                            and cols.is_contiguous()) else None
    if lib is None:
        perm = [0, 1] + [x for i in range(n) for x in (2 + n + i, 2 + i)]
        return cols.permute(*perm).reshape(shape)
    k = (1,) * (3 - n) + tuple(kernel)
    s = (1,) * (3 - n) + tuple(s_in)
    out = torch.empty(shape, dtype=cols.dtype, device=cols.device)
    lib.analogmed_untap(cols.data_ptr(), out.data_ptr(), b * c, *k, *s)
    return out


class TileKernel:
    """The C kernel's DAC and output pass for one input tile, with the tile's constants converted once
    (at fold time), so a call costs about the ctypes call itself (~2 us, against ~10 us through
    :func:`dac` / :func:`fused_out`, which check and convert their arguments on every call). Only for
    dense CPU float32 tensors; :meth:`make` returns None where the kernel does not apply (no kernel,
    a perfect tile, another dtype or device) and the caller uses the general functions (same numbers).
    ``scale`` / ``bias`` (float32 ``[C]``) stay referenced here: the kernel reads their memory."""

    __slots__ = ("lib", "scale", "bias", "dac_args", "out_args")

    @classmethod
    def make(cls, ir_value: float | None, perfect: bool, inp_step: float, inp_bound: float, scale: torch.Tensor,
             bias: torch.Tensor | None, sigma: float, out_step: float, out_bound: float) -> TileKernel | None:
        """``ir_value``: the tile's static input range (None: none); ``inp_step`` / ``out_step``: DAC / ADC
        steps (0: off); ``inp_bound`` / ``out_bound``: clamp bounds; ``sigma``: output noise std (normalised
        units); ``scale`` / ``bias``: per output column (``bias`` None: no digital bias in this tile)."""
        lib = load_kernel()
        f32 = torch.float32
        ok = scale.device.type == "cpu" and scale.dtype == f32 and (
            bias is None or (bias.device.type == "cpu" and bias.dtype == f32))
        if lib is None or not ok or perfect:
            return None
        self = cls()
        self.lib = lib
        self.scale = scale.detach().contiguous()
        self.bias = None if bias is None else bias.detach().contiguous()
        self.dac_args = _dac_args(ir_value, False, inp_step, inp_bound)
        self.out_args = (self.scale.numel(), self.scale.data_ptr(), None if self.bias is None else self.bias.data_ptr(),
                         *_out_args(sigma, out_step, out_bound), normal_table().data_ptr())
        return self

    def dac(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """:func:`dac` of ``x`` into ``out``: both contiguous, or both dense with the same strides (the
        kernel runs in memory order); ``out`` may be ``x``."""
        self.lib.analogmed_dac(x.data_ptr(), out.data_ptr(), x.numel(), *self.dac_args)
        return out

    def out(self, y: torch.Tensor, out: torch.Tensor, inner: int, add: bool, seed: int) -> torch.Tensor:
        """:func:`fused_out` of contiguous ``y`` into contiguous ``out`` (``y`` itself, or the accumulator
        with ``add``); ``inner``: elements per channel run (1: channel-last)."""
        c, sp, bp, sigma, step, inv, bound, tab = self.out_args
        self.lib.analogmed_fused_out(y.data_ptr(), out.data_ptr(), y.numel(), inner, c, sp, bp, int(add), sigma,
                                     step, inv, bound, seed & 0xFFFFFFFFFFFFFFFF, tab)
        return out
