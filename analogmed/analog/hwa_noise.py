"""Training-time weight noise drawn from the inference preset's own device model (``weight_noise_type =
"preset"`` in a preset's ``[training]`` table).

aihwkit's torch tile only injects ADD_NORMAL / MULT_NORMAL noise in training (its PCM_NOISE modifier needs
the C++ tile). :class:`PresetNoiseSimulatorTile` replaces the tile's training-time weights by those of a
fresh *hardware instance* of the preset at every training forward: the preset's noise model
(``noise_model.apply_noise``: programming noise, drift-exponent spread and read noise, sampled anew) applied
to the tile's normalised weights at ``t = noise_t_s`` seconds (default ``modifier.pcm_t_inference``;
:func:`set_noise_time` changes it, e.g. one draw per training step), then one global scale per tile as
aihwkit's ``GlobalDriftCompensation`` would restore (ratio of the L1 norms), applied either to the weights
before the MVM (``compensation = "weights"``: the ADC sees undrifted output magnitudes) or to the tile output
after the ADC (``"output"``: as at inference, where alpha is digital and the ADC range ``out_bound`` clips the
drifted, smaller raw outputs). The gradient passes straight through (the weights' gradient is that of the
noise-free tile in both cases). Evaluation (``is_test``) is unchanged: no noise.
"""
from __future__ import annotations

import torch
from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile
from torch import Tensor, nn


class PresetNoiseSimulatorTile(TorchSimulatorTile):
    """aihwkit torch simulator tile whose training forward uses a fresh programmed + drifted instance of the
    rpu_config's noise model (tensor shapes as :class:`TorchSimulatorTile`: weight [d_size, x_size])."""

    def __init__(self, x_size: int, d_size: int, rpu_config, bias: bool = False, **kw):
        super().__init__(x_size, d_size, rpu_config, bias=bias, **kw)
        self._noise_model = rpu_config.noise_model
        self.noise_t_s = float(rpu_config.modifier.pcm_t_inference)
        self._compensate = rpu_config.drift_compensation is not None
        self.compensation = getattr(rpu_config, "analogmed_noise_compensation", "weights")

    def instance(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        """(drifted weights of one sampled hardware instance at ``noise_t_s``, global compensation factor
        ``sum|w| / sum|w_instance|``; 1 without drift compensation), no gradient."""
        with torch.no_grad():
            w = weight.detach()
            noisy = self._noise_model.apply_noise(w, self.noise_t_s)
            factor = (w.abs().sum() / noisy.abs().sum().clamp_min(1e-12)) if self._compensate else w.new_ones(())
        return noisy, factor

    def instance_weights(self, weight: Tensor) -> Tensor:
        """Weights of one sampled hardware instance, compensated (``compensation = "weights"``)."""
        noisy, factor = self.instance(weight)
        return noisy * factor

    def forward(self, x_input: Tensor, bias: bool = False, in_trans: bool = False, out_trans: bool = False,
                is_test: bool = False, non_blocking: bool = False) -> Tensor:
        if is_test or in_trans or out_trans:
            return super().forward(x_input, bias, in_trans, out_trans, is_test, non_blocking)
        noisy, factor = self.instance(self.weight)
        if self.compensation == "output":
            base = self.weight / factor
            weights = base + (noisy - base).detach()
            out = self._analog_mvm.matmul(weights, x_input, self._f_io, False, is_test=is_test,
                                          out_noise_values=self.out_noise_values)
            return out * factor
        weights = self.weight + (noisy * factor - self.weight).detach()
        return self._analog_mvm.matmul(weights, x_input, self._f_io, False, is_test=is_test,
                                       out_noise_values=self.out_noise_values)


def noise_tiles(amodel: nn.Module) -> list[PresetNoiseSimulatorTile]:
    """The preset-noise simulator tiles of an analog model (empty for other training noise)."""
    return [t.tile for t in amodel.analog_tiles() if isinstance(getattr(t, "tile", None), PresetNoiseSimulatorTile)]


def set_noise_time(amodel: nn.Module, t_s: float) -> None:
    """Set the drift time (seconds) of the instances every preset-noise tile of ``amodel`` samples."""
    for tile in noise_tiles(amodel):
        tile.noise_t_s = float(t_s)


def log_uniform_time(t_min_s: float, t_max_s: float) -> float:
    """One drift time (seconds), log-uniform in [t_min_s, t_max_s], drawn from torch's global generator."""
    import math

    u = float(torch.rand(()))
    return math.exp(math.log(t_min_s) + u * (math.log(t_max_s) - math.log(t_min_s)))
