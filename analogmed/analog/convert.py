"""Digital network -> analog network, and the hardware life cycle: program, drift, calibrate.

``to_analog(model, preset)`` deep-copies ``model`` and converts **every** ``nn.Linear``,
``nn.Conv1d/2d/3d``, ``nn.ConvTranspose2d/3d`` and the projections of ``nn.MultiheadAttention``
to aihwkit analog layers through aihwkit's own ``convert_to_analog`` with an extended conversion map
(see :mod:`analogmed.analog.layers`). A layer aihwkit cannot represent (``groups != 1``, a non-zero
padding mode) stays digital and is listed, with the reason, by :func:`conversion_report`.

A *hardware instance* is one programming of the weights: :func:`program` samples programming noise
and drift coefficients (aihwkit ``program_analog_weights``); :func:`drift` applies drift and read
noise for an inference time t (s) to the stored programmed weights (aihwkit
``drift_analog_weights``). Both are seeded, so the same seeds give bit-identical outputs.
"""
from __future__ import annotations

import copy
import math
from typing import Iterable

import pandas as pd
import torch
from aihwkit.nn import AnalogConv2d, AnalogLinear
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.nn.modules.base import AnalogLayerBase
from torch import nn

from analogmed.analog.layers import (AnalogConv1dTorch, AnalogConv3dTorch, AnalogConvTranspose2d,
                                     AnalogConvTranspose3d, SplitMultiheadAttention)
from analogmed.analog.presets import Preset, load_preset
from analogmed.errors import UserError

#: digital class -> analog class (aihwkit's conversion map, extended).
CONVERSION_MAP = {
    nn.Linear: AnalogLinear,
    nn.modules.linear.NonDynamicallyQuantizableLinear: AnalogLinear,
    nn.Conv1d: AnalogConv1dTorch,
    nn.Conv2d: AnalogConv2d,
    nn.Conv3d: AnalogConv3dTorch,
    nn.ConvTranspose2d: AnalogConvTranspose2d,
    nn.ConvTranspose3d: AnalogConvTranspose3d,
}
#: digital layer types whose weights are MVMs (must end up analog).
MVM_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.MultiheadAttention)


def _unsupported_reason(module: nn.Module) -> str | None:
    """Why aihwkit cannot make this MVM layer analog, or None."""
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.groups != 1:
            return f"groups={module.groups} (aihwkit analog convs need groups=1)"
        if module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r} (aihwkit needs 'zeros')"
        if isinstance(module.padding, str):
            return f"padding={module.padding!r} (needs explicit padding)"
    if type(module) not in CONVERSION_MAP and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        return f"subclass {type(module).__name__} of a torch layer (its forward may differ)"
    return None


def _split_attention(model: nn.Module, prefix: str = "") -> dict[str, str]:
    """Replace every nn.MultiheadAttention in place by its 4-Linear equivalent; returns the ones that
    cannot be split (name -> reason), which stay digital."""
    kept = {}
    for name, child in list(model.named_children()):
        full = f"{prefix}{name}"
        if isinstance(child, nn.MultiheadAttention):
            try:
                setattr(model, name, SplitMultiheadAttention.from_mha(child))
            except ValueError as exc:
                kept[full] = f"MultiheadAttention: {exc}"
        else:
            kept.update(_split_attention(child, f"{full}."))
    return kept


def to_analog(model: nn.Module, preset: str | Preset, hwa: bool = False) -> nn.Module:
    """Analog copy of ``model`` on ``preset`` (name, path or :class:`Preset`).

    ``hwa=True`` uses the preset's hardware-aware training config (weight-noise injection etc.).
    The result is an aihwkit ``AnalogWrapper`` root (``program_analog_weights`` etc. work on it),
    in eval mode, on the device of ``model``. It records ``analogmed_preset`` (the preset dict) and
    ``analogmed_digital`` (layers left digital: name -> reason).
    """
    preset = load_preset(preset)
    work = copy.deepcopy(model)
    excluded = _split_attention(work)
    for name, mod in work.named_modules():
        if name in excluded:
            continue
        if isinstance(mod, MVM_TYPES) and not isinstance(mod, AnalogLayerBase):
            reason = _unsupported_reason(mod)
            if reason:
                excluded[name] = reason
    amodel = convert_to_analog(work, preset.rpu_config(hwa=hwa), conversion_map=CONVERSION_MAP,
                               exclude_modules=list(excluded), inplace=True, ensure_analog_root=True)
    amodel.analogmed_preset = preset.to_dict()
    amodel.analogmed_digital = excluded
    return amodel.eval()


def calibrate(amodel: nn.Module, batches: Iterable[torch.Tensor], preset: str | Preset, seed: int = 0) -> None:
    """Set every tile's static input range from data (aihwkit ``calibrate_input_ranges``).

    ``batches``: input tensors [B, C, *S] (e.g. a few training batches). No-op when the preset
    disables input ranges or calibration. Run it before :func:`program`. ``seed`` fixes aihwkit's
    sub-sampling of the cached inputs.
    """
    from aihwkit.inference.calibration import InputRangeCalibrationType, calibrate_input_ranges

    preset = load_preset(preset)
    ir = preset.spec.input_range
    if not ir.enable or ir.calibrate == "none" or preset.spec.forward.is_perfect:
        return
    kind = {"max": InputRangeCalibrationType.MAX, "cache_quantile": InputRangeCalibrationType.CACHE_QUANTILE,
            "moving_std": InputRangeCalibrationType.MOVING_STD}[ir.calibrate]
    loader = [((x,), {}) for x in batches]
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        calibrate_input_ranges(amodel, kind, loader, quantile=ir.quantile)
    amodel.eval()


def adc_headroom(amodel: nn.Module, batches: Iterable[torch.Tensor], quantile: float = 0.999,
                 fill: float = 1.0, passes: int = 2) -> dict[str, float]:
    """Widen the input ranges of the analog layers whose raw outputs would saturate the ADC.

    The ADC clips each tile's raw output ``y = W_norm @ dac(x / input_range)`` (normalised units) at
    ``out_bound``; global drift compensation (alpha) is applied digitally after it, so the clipping is
    strongest right after programming (t = 1 s, alpha = 1) and eases as the conductances drift (alpha
    grows to ~1.8 at 30 d on pcm). For every analog layer the ``quantile`` of ``|y|`` on ``batches``
    (inputs [B, C, *S]; the current, unprogrammed tile weights, no noise) is measured; where it exceeds
    ``fill * out_bound`` the input ranges of the layer's tiles are multiplied by ``quantile / (fill *
    out_bound)``, which scales ``y`` down by the same factor (the layer's digital output is unchanged
    except where it was clipped; the DAC steps get coarser by that factor). ``passes`` repeats it (a
    widened layer changes what later layers see). Run after the input ranges are set, before programming.

    Returns ``{layer name: total factor}`` for the layers that were widened.
    """
    from analogmed.analog.fast import fast_engine, raw_outputs

    layers = {n: m for n, m in amodel.named_modules()
              if isinstance(m, AnalogLayerBase) and hasattr(m, "analog_module")}
    widened: dict[str, float] = {}
    amodel.eval()
    for _ in range(int(passes)):
        peak: dict[str, float] = {}

        def record(name: str, y: torch.Tensor) -> None:
            v = y.detach().abs().reshape(-1)
            if v.numel() > 1_000_000:  # a fixed, evenly spaced subsample (torch.quantile's size limit)
                v = v[:: v.numel() // 1_000_000 + 1]
            peak[name] = max(peak.get(name, 0.0), float(torch.quantile(v.float(), quantile)))
        with torch.no_grad(), torch.random.fork_rng(devices=[]), fast_engine(amodel, quiet=True), \
                raw_outputs(record):
            for x in batches:
                amodel(x)
        changed = False
        for name, q in peak.items():
            layer = layers.get(name)
            if layer is None:
                continue
            bound = float(next(layer.analog_tiles()).rpu_config.forward.out_bound)
            if bound <= 0 or q <= fill * bound:
                continue
            factor = q / (fill * bound)
            for tile in layer.analog_tiles():
                if getattr(tile, "input_range", None) is not None:
                    tile.set_input_range(float(tile.input_range.detach().reshape(-1)[0]) * factor)
            widened[name] = widened.get(name, 1.0) * factor
            changed = True
        if not changed:
            break
    return widened


def tile_input_ranges(amodel: nn.Module) -> dict[str, float]:
    """Input range of every analog tile that has one: ``{tile name: range}``."""
    out = {}
    for name, tile in amodel.named_analog_tiles():
        rng = getattr(tile, "input_range", None)
        if rng is not None:
            out[name] = float(rng.detach().reshape(-1)[0])
    return out


def set_tile_input_ranges(amodel: nn.Module, ranges: dict[str, float]) -> int:
    """Set stored input ranges on the tiles of ``amodel`` (same conversion); returns tiles set."""
    n = 0
    for name, tile in amodel.named_analog_tiles():
        if name in ranges:
            ir = tile.rpu_config.pre_post.input_range
            if not ir.enable:
                ir.enable, ir.learn_input_range = True, False
                tile.init_input_processing()
            tile.set_input_range(float(ranges[name]))
            n += 1
    return n


def program(amodel: nn.Module, seed: int) -> None:
    """Program a fresh hardware instance: new programming noise and drift coefficients (seeded)."""
    amodel.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        amodel.program_analog_weights()


def drift(amodel: nn.Module, t_inference_s: float, seed: int) -> None:
    """Drift the programmed weights to ``t_inference_s`` seconds after programming (seeded read noise).

    aihwkit re-derives the drifted weights from the stored programmed ones, so calling this for a
    list of times on one instance is a time series of the same hardware.
    """
    t = float(t_inference_s)
    if not math.isfinite(t) or t < 0:
        raise UserError(f"inference time {t_inference_s!r} s is invalid; use a time >= 0 seconds")
    amodel.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        amodel.drift_analog_weights(t)


def _tiles_of(layer: AnalogLayerBase) -> int:
    return sum(1 for _ in layer.analog_tiles())


def conversion_report(amodel: nn.Module, example_input: torch.Tensor | None = None) -> pd.DataFrame:
    """One row per MVM layer of an analog model: where it runs and what it costs.

    Columns: ``layer`` (module name), ``type`` (class), ``analog`` (bool), ``reason`` (why digital,
    or ""), ``in_features``, ``out_features`` (the crossbar matrix), ``tiles`` (physical tiles under
    the preset's tile size), ``macs`` (multiply-accumulates per forward of ``example_input``, when
    given) and ``mac_share`` (fraction of all MACs). Normalisation layers and additive embeddings are
    not MVMs and are not listed.
    """
    rows, macs = [], {}
    hooks = []
    if example_input is not None:
        def hook(name):
            def fn(mod, inp, out):
                x = inp[0]
                if isinstance(mod, (AnalogConvTranspose2d, AnalogConvTranspose3d, nn.ConvTranspose2d,
                                    nn.ConvTranspose3d)):
                    positions = x[0, 0].numel() if x.dim() > 2 else 1
                    macs[name] = (x.shape[0] * positions * mod.in_channels * mod.out_channels
                                  * math.prod(mod.kernel_size))
                elif isinstance(mod, nn.modules.conv._ConvNd):
                    k = math.prod(mod.kernel_size) * mod.in_channels
                    macs[name] = out.numel() * k
                elif isinstance(mod, nn.Linear):
                    macs[name] = out.numel() * mod.in_features
            return fn
        for name, mod in amodel.named_modules():
            if isinstance(mod, MVM_TYPES) or isinstance(mod, (AnalogConvTranspose2d, AnalogConvTranspose3d)):
                hooks.append(mod.register_forward_hook(hook(name)))
        with torch.no_grad():
            was = amodel.training
            amodel.eval()
            amodel(example_input)
            amodel.train(was)
        for h in hooks:
            h.remove()
    reasons = getattr(amodel, "analogmed_digital", {})
    for name, mod in amodel.named_modules():
        is_analog = isinstance(mod, AnalogLayerBase) and hasattr(mod, "analog_module")
        if not is_analog and not isinstance(mod, MVM_TYPES):
            continue
        if is_analog:
            rows.append({"layer": name, "type": type(mod).__name__, "analog": True, "reason": "",
                         "in_features": mod.analog_module.in_size, "out_features": mod.analog_module.out_size,
                         "tiles": _tiles_of(mod), "macs": macs.get(name, float("nan"))})
        else:
            w = getattr(mod, "weight", None)
            rows.append({"layer": name, "type": type(mod).__name__, "analog": False,
                         "reason": reasons.get(name, "not converted"),
                         "in_features": w.shape[1] if w is not None and w.dim() > 1 else 0,
                         "out_features": w.shape[0] if w is not None else 0, "tiles": 0,
                         "macs": macs.get(name, float("nan"))})
    df = pd.DataFrame(rows, columns=["layer", "type", "analog", "reason", "in_features", "out_features",
                                     "tiles", "macs"])
    total = df["macs"].sum()
    df["mac_share"] = df["macs"] / total if total else float("nan")
    return df


def digital_mvm_layers(model: nn.Module) -> list[str]:
    """Names of Conv/Linear/transposed-conv/attention layers that are still digital (should be [])."""
    return [n for n, m in model.named_modules()
            if isinstance(m, MVM_TYPES) and not isinstance(m, AnalogLayerBase)]
