"""Vectorised programming, drift and global drift compensation over all tiles of a network.

aihwkit programs and drifts tile by tile (``program_weights`` / ``drift_weights`` of every
``TorchInferenceTile``), and each drift runs a noisy forward of an identity probe through the tile to
get the drift-compensation ``alpha``: a few dozen small torch calls per tile and per (instance, t).
:class:`FlatNoise` does the same computation once on the concatenation of all tiles' weights (a flat
vector of N elements, a per-element tile index), with aihwkit's own formulas:

- ``PCMLikeNoiseModel`` with the ``SinglePairConductanceConverter``: per-tile ``scale_ratio =
  (g_max - g_min) / max|W|``, ``g± = clamp(±W * scale_ratio, 0, g_max) + g_min``; programming noise
  ``g + prog_noise_scale * sig_prog(g) * randn`` (clamped at 0) and drift coefficients ``nu`` per
  conductance slice; programmed weights ``(g+ - g-) / scale_ratio``; drift to t re-converts the
  programmed weights (a new per-tile scale), ``g * ((t + t_0) / t_0) ** -nu`` plus accumulated 1/f read
  noise, and converts back (``analogmed`` never changes aihwkit's constants: they are read from the
  tile's noise model);
- ``GlobalDriftCompensation``: the readout of an identity probe through the tile forward (DAC of the
  one-hot inputs, output noise, ADC rounding and clamp) is ``W^T`` plus noise, quantised: its mean
  absolute value after programming is the baseline, after drift the current value,
  ``alpha = baseline / current``.

The random draws come from a private ``torch.Generator`` seeded with the given seed, drawn in another order than
aihwkit's per-tile calls, so the numbers differ from aihwkit's while their distribution is the same
(tested: means and stds of programmed and drifted weights and of alpha over many instances).
The results are written back into the tiles (``programmed_weights``, ``drift_noise_parameters``,
``drift_baseline``, ``tile.tile.weight``, ``alpha``), so a tile afterwards holds what aihwkit's own
``program_weights`` / ``drift_weights`` would have left there (in distribution).

Networks whose tiles use another noise model, converter, compensation or an unsupported forward
keep aihwkit's per-tile path (:attr:`FlatNoise.reason` says why).
"""
from __future__ import annotations

import math

import torch
from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
from aihwkit.nn.modules.base import AnalogLayerBase
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor, nn

from analogmed.analog.fast_kernel import dac

_ZERO_CLIP = 1e-7  # aihwkit.inference.converter.conductance._ZERO_CLIP


def _zero_clip() -> float:
    try:
        from aihwkit.inference.converter import conductance
        return float(conductance._ZERO_CLIP)
    except (ImportError, AttributeError):
        return _ZERO_CLIP


def _nm_key(nm) -> tuple:
    return (nm.g_max, nm.g_converter.g_min, nm.g_converter.g_max, tuple(nm.prog_coeff),
            nm.prog_coeff_g_max_reference, nm.t_0, nm.t_read, nm.prog_noise_scale, nm.read_noise_scale,
            nm.drift_scale)


def _fwd_key(f) -> tuple:
    return (bool(f.is_perfect), f.inp_res, f.inp_bound, f.out_res, f.out_bound, f.out_noise)


def _unsupported(amodel: nn.Module, tiles: list) -> str | None:
    from analogmed.analog.fast import _unsupported as fast_unsupported

    if not tiles:
        return "no analog tiles"
    keys = set()
    for tile in tiles:
        if type(tile) is not TorchInferenceTile:
            return f"tile class {type(tile).__name__}"
        why = fast_unsupported(tile)
        if why:
            return why
        rpu = tile.rpu_config
        nm = rpu.noise_model
        if type(nm) is not PCMLikeNoiseModel:
            return f"noise model {type(nm).__name__}"
        if type(nm.g_converter) is not SinglePairConductanceConverter:
            return f"conductance converter {type(nm.g_converter).__name__}"
        comp = getattr(rpu, "drift_compensation", None)
        if comp is not None and type(comp) is not GlobalDriftCompensation:
            return f"drift compensation {type(comp).__name__}"
        if nm.g_converter.g_min != 0.0:
            return "g_min > 0"
        if tile.in_trans or tile.out_trans:
            return "transposed tile"
        keys.add((_nm_key(nm), _fwd_key(rpu.forward), comp is None))
    if len(keys) > 1:
        return "tiles with different noise models or forward settings"
    return None


class FlatNoise:
    """Program / drift / drift-compensate all analog tiles of ``amodel`` at once (module docstring).

    ``reason``: None when the vectorised path applies, else why not (then use aihwkit's
    ``program`` / ``drift``). Usage::

        fn = FlatNoise(amodel)
        fn.program(seed); fn.drift(t, seed)   # tiles now hold the drifted weights and alpha
    """

    def __init__(self, amodel: nn.Module):
        self.tiles: list[TorchInferenceTile] = []
        for m in amodel.modules():
            if isinstance(m, AnalogLayerBase) and hasattr(m, "analog_module"):
                self.tiles.extend(m.analog_tiles())
        self.reason = _unsupported(amodel, self.tiles)
        if self.reason:
            return
        t0 = self.tiles[0]
        nm = t0.rpu_config.noise_model
        self.nm = nm
        self.g_max, self.g_min = float(nm.g_converter.g_max), float(nm.g_converter.g_min)
        self.comp = getattr(t0.rpu_config, "drift_compensation", None) is not None
        f = t0.rpu_config.forward
        from analogmed.analog.fast import _steps
        self.perfect = bool(f.is_perfect)
        self.out_step = 0.0 if self.perfect else _steps(f.out_res, f.out_bound)
        self.out_bound = math.inf if self.perfect or f.out_bound <= 0 else float(f.out_bound)
        self.sigma = 0.0 if self.perfect else float(f.out_noise)
        inp_step = 0.0 if self.perfect else _steps(f.inp_res, f.inp_bound)
        inp_bound = math.inf if f.inp_bound <= 0 else float(f.inp_bound)
        self.probe = float(dac(torch.ones(1), None, self.perfect, inp_step, inp_bound)[0])  # DAC(1.0), CPU
        refs, self.shapes = [], []
        for tile in self.tiles:
            if tile.reference_combined_weights is None:  # as aihwkit's first program_weights
                tile.reference_combined_weights = torch.Tensor(tile.tile.get_weights())
            refs.append(tile.reference_combined_weights.detach().reshape(-1))
            self.shapes.append(tuple(tile.tile.weight.shape))
        self.sizes = [math.prod(s) for s in self.shapes]
        self.ref = torch.cat(refs)
        dev = self.ref.device
        self.seg = torch.repeat_interleave(torch.arange(len(self.tiles)), torch.tensor(self.sizes)).to(dev)
        self.counts = torch.tensor(self.sizes, dtype=self.ref.dtype, device=dev)
        self.programmed: Tensor | None = None

    # --- aihwkit's formulas, vectorised -------------------------------------------------------------
    def _seg_absmax(self, w: Tensor) -> Tensor:
        out = torch.zeros(len(self.tiles), dtype=w.dtype, device=w.device)
        return out.scatter_reduce_(0, self.seg, w.abs(), reduce="amax", include_self=True)

    def _to_g(self, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        scale = (self.g_max - self.g_min) / self._seg_absmax(w).clamp(min=_zero_clip())
        sw = w * scale[self.seg]
        return (sw.clamp(min=0.0, max=self.g_max) + self.g_min,
                (-sw).clamp(min=0.0, max=self.g_max) + self.g_min, scale)

    def _from_g(self, gp: Tensor, gn: Tensor, scale: Tensor) -> Tensor:
        return ((gp - self.g_min) - (gn - self.g_min)) / scale[self.seg]

    def _prog_noise(self, g: Tensor, n: Tensor) -> Tensor:
        nm = self.nm
        mat, sig = 1, nm.prog_coeff[0]
        for c in nm.prog_coeff[1:]:
            mat = mat * (g / nm.g_max)
            sig = sig + mat * c
        sig = sig * (nm.g_max / nm.prog_coeff_g_max_reference)
        return (g + nm.prog_noise_scale * sig * n).clamp_(min=0.0)

    def _nu(self, g: Tensor, n: Tensor) -> Tensor:
        g_rel = torch.clamp(torch.abs(g / self.nm.g_max), min=_zero_clip())
        lg = torch.log(g_rel)
        mu = (-0.0155 * lg + 0.0244).clamp(min=0.049, max=0.1)
        sd = (-0.0125 * lg - 0.0059).clamp(min=0.008, max=0.045)
        return torch.abs(mu + sd * n).clamp(min=0.0) * self.nm.drift_scale

    def _drift_g(self, g: Tensor, nu: Tensor, qs: Tensor, t_inference: float, n: Tensor) -> Tensor:
        nm = self.nm
        t = t_inference + nm.t_0
        g_drift = g * torch.pow(t / nm.t_0, -nu) if t > nm.t_0 else g
        sig = math.sqrt(math.log((t + nm.t_read) / (2 * nm.t_read)))
        return (g_drift + torch.abs(g_drift) * nm.read_noise_scale * (qs * sig) * n).clamp(min=0.0)

    def _qs(self, g: Tensor) -> Tensor:
        return (0.0088 / ((torch.abs(g) / self.nm.g_max) ** 0.65).clamp(min=1e-3)).clamp(max=0.2)

    def _readout(self, w: Tensor, gen: torch.Generator) -> Tensor:
        """Per-tile ``clamp(mean|forward(eye)|, 1e-4)`` of the weights ``w`` (flat) -> [tiles]."""
        v = w * self.probe if self.probe != 1.0 else w
        if self.sigma > 0:
            v = v + self.sigma * torch.randn(v.shape, dtype=v.dtype, device=v.device, generator=gen)
        if self.out_step > 0:
            v = torch.round(v / self.out_step) * self.out_step
        if self.out_bound < math.inf:
            v = v.clamp(-self.out_bound, self.out_bound)
        s = torch.zeros(len(self.tiles), dtype=v.dtype, device=v.device).index_add_(0, self.seg, v.abs())
        return torch.clamp(s / self.counts, min=0.0001)

    # --- public ----------------------------------------------------------------------------------
    @torch.no_grad()
    def program(self, seed: int) -> None:
        """Program a fresh instance from the reference weights (draws from a private ``torch.Generator``
        seeded with ``seed``; torch's global stream is untouched) and write it into the tiles."""
        gen = torch.Generator(device=self.ref.device).manual_seed(int(seed))
        gp, gn, scale = self._to_g(self.ref)
        n = torch.randn(4, gp.numel(), dtype=gp.dtype, device=gp.device, generator=gen)
        gp_prog, gn_prog = self._prog_noise(gp, n[0]), self._prog_noise(gn, n[1])
        self.nu = (self._nu(gp, n[2]), self._nu(gn, n[3]))
        self.programmed = self._from_g(gp_prog, gn_prog, scale)
        # drift re-converts the programmed weights: precompute what does not depend on t. With g_min = 0
        # one conductance of each pair is exactly 0 and stays 0 under drift and read noise, so only the
        # other one ("active", with its slice's nu) is drifted: the same float result per element.
        gp2, gn2, scale2 = self._to_g(self.programmed)
        pos = gp2 > 0
        self.g_act = torch.where(pos, gp2, gn2)
        self.sign = torch.where(pos, 1.0, torch.where(gn2 > 0, -1.0, 0.0)).to(gp2.dtype)
        self.nu_act = torch.where(pos, self.nu[0], self.nu[1])
        self.qs_act = self._qs(self.g_act)
        self.scale2 = scale2[self.seg]
        self.baseline = self._readout(self.programmed, gen) if self.comp else None
        for k, (tile, sl) in enumerate(self._slices()):
            tile.programmed_weights = self.programmed[sl].view(self.shapes[k])
            tile.drift_noise_parameters = [self.nu[0][sl].view(self.shapes[k]), self.nu[1][sl].view(self.shapes[k])]
            tile.tile.set_weights(tile.programmed_weights)
            if self.comp:
                tile.drift_readout_tensor = None
                tile.drift_baseline = self.baseline[k].clone()

    @torch.no_grad()
    def drift(self, t_inference_s: float, seed: int) -> None:
        """Drift the programmed instance to ``t_inference_s`` seconds (read noise seeded with ``seed``),
        recompute alpha and write weights and alpha into the tiles."""
        if self.programmed is None:
            raise RuntimeError("FlatNoise.drift before program")
        gen = torch.Generator(device=self.ref.device).manual_seed(int(seed))
        g = self.g_act
        n = torch.randn(g.shape, dtype=g.dtype, device=g.device, generator=gen)
        w = (self.sign * self._drift_g(g, self.nu_act, self.qs_act, float(t_inference_s), n)) / self.scale2
        alpha = self.baseline / self._readout(w, gen) if self.comp else None
        for k, (tile, sl) in enumerate(self._slices()):
            tile.tile.weight.data.copy_(w[sl].view(self.shapes[k]))
            if self.comp:
                tile.__dict__.pop("alpha", None)
                tile.alpha = alpha[k].clone()
        self.drifted, self.alpha = w, alpha

    def _slices(self):
        off = 0
        for tile, n in zip(self.tiles, self.sizes):
            yield tile, slice(off, off + n)
            off += n
