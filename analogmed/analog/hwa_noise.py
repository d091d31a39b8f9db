"""Training-time weight noise drawn from the inference preset's own device model (``weight_noise_type =
"preset"`` in a preset's ``[training]`` table).

aihwkit's torch tile only injects ADD_NORMAL / MULT_NORMAL noise in training (its PCM_NOISE modifier needs
the C++ tile). :class:`PresetNoiseSimulatorTile` replaces the tile's training-time weights by those of a
fresh *hardware instance* of the preset at every training forward: the preset's noise model
(``noise_model.apply_noise``: programming noise, drift-exponent spread and read noise, sampled anew) applied
to the tile's normalised weights at ``t = modifier.pcm_t_inference`` seconds, then one global scale per tile
as aihwkit's ``GlobalDriftCompensation`` would restore (ratio of the L1 norms). The gradient passes
straight through (``w + (w_instance - w).detach()``). Evaluation (``is_test``) is unchanged: no noise.
"""
from __future__ import annotations

import torch
from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile
from torch import Tensor


class PresetNoiseSimulatorTile(TorchSimulatorTile):
    """aihwkit torch simulator tile whose training forward uses a fresh programmed + drifted instance of the
    rpu_config's noise model (tensor shapes as :class:`TorchSimulatorTile`: weight [d_size, x_size])."""

    def __init__(self, x_size: int, d_size: int, rpu_config, bias: bool = False, **kw):
        super().__init__(x_size, d_size, rpu_config, bias=bias, **kw)
        self._noise_model = rpu_config.noise_model
        self._noise_t_s = float(rpu_config.modifier.pcm_t_inference)
        self._compensate = rpu_config.drift_compensation is not None

    def instance_weights(self, weight: Tensor) -> Tensor:
        """Weights of one sampled hardware instance at the training noise time (no gradient)."""
        with torch.no_grad():
            w = weight.detach()
            noisy = self._noise_model.apply_noise(w, self._noise_t_s)
            if self._compensate:
                noisy = noisy * (w.abs().sum() / noisy.abs().sum().clamp_min(1e-12))
        return noisy

    def forward(self, x_input: Tensor, bias: bool = False, in_trans: bool = False, out_trans: bool = False,
                is_test: bool = False, non_blocking: bool = False) -> Tensor:
        if is_test or in_trans or out_trans:
            return super().forward(x_input, bias, in_trans, out_trans, is_test, non_blocking)
        weights = self.weight + (self.instance_weights(self.weight) - self.weight).detach()
        return self._analog_mvm.matmul(weights, x_input, self._f_io, False, is_test=is_test,
                                       out_noise_values=self.out_noise_values)
