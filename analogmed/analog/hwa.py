"""Hardware-aware (HWA) training: fine-tune a digitally trained network on noisy analog layers.

The recipe is aihwkit's (and IBM AnalogNAS-Bench's), read from the preset's ``[training]`` table:
the network is converted with ``to_analog(model, preset, hwa=True)`` so every Conv / Linear /
transposed conv trains on an aihwkit tile that, at every forward in training mode,

- injects weight noise (``weight_noise_type`` ADD_NORMAL, std ``weight_noise`` = 0.06 of max |w|),
- clips the weights after every optimiser step (``clip_type`` fixed value 1.0 on the remapped scale),
- remaps them channel-wise so the largest |w| per output uses the full conductance range,
- learns a static input range per tile (the DAC full scale; initialised from 10 batches).

The optimiser is torch's AdamW wrapped by aihwkit's ``AnalogOptimizer`` (which applies the tiles'
post-update steps: clipping, remapping). After training, the digital weights are read back from the
tiles (``get_weights``, weight scaling applied) into the original digital architecture, and the learned
input ranges are stored in the checkpoint (``recipe["hwa"]["input_ranges"]``, tile name -> range), so
``analogmed drift`` / studies use them instead of post-training calibration.

This lives in ``analogmed.analog`` (not ``analogmed.train``) because it needs analog layers; it reuses
the training loop :func:`analogmed.train.fit`.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from aihwkit.nn.modules.base import AnalogLayerBase
from torch import nn

from analogmed.analog.convert import to_analog
from analogmed.analog.presets import load_preset
from analogmed.errors import UserError
from analogmed.seeding import derive_seed, seed_everything
from analogmed.train.checkpoint import Checkpoint
from analogmed.train.digital import TrainConfig, fit

INPUT_RANGES_ATTR = "analogmed_input_ranges"


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


def analog_to_digital_state(amodel: nn.Module, digital: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``digital`` (the architecture ``amodel`` was converted from) with the analog
    layers' weights read back from their tiles and every other tensor (norms...) copied by name."""
    state = {k: v.clone() for k, v in digital.state_dict().items()}
    a_state = amodel.state_dict()
    for key in state:
        if key in a_state and a_state[key].shape == state[key].shape:
            state[key] = a_state[key].detach().clone()
    for name, layer in amodel.named_modules():
        if isinstance(layer, AnalogLayerBase) and hasattr(layer, "analog_module"):
            weight, bias = layer.get_weights()
            wkey = f"{name}.weight"
            if wkey not in state:
                raise UserError(f"hardware-aware training: layer {name!r} has no digital counterpart "
                                "(networks with nn.MultiheadAttention are not supported for HWA)")
            state[wkey] = weight.reshape(state[wkey].shape).detach().clone()
            if bias is not None and f"{name}.bias" in state:
                state[f"{name}.bias"] = bias.detach().clone()
    return state


def hwa_finetune(ckpt: Checkpoint, preset: Any = "pcm", cfg: TrainConfig | None = None,
                 task=None) -> Checkpoint:
    """Hardware-aware fine-tuning of a digitally trained checkpoint on ``preset``'s training config.

    Returns a new :class:`Checkpoint` (same spec and task; digital weights read back from the tiles;
    ``recipe["hwa"]`` records the preset, its training table, the epochs/lr/seed and the learned input
    ranges; ``recipe["pretrain"]`` the digital recipe it started from).
    """
    preset = load_preset(preset)
    cfg = cfg or TrainConfig(epochs=20, lr=1e-3)
    cfg.check()
    task = task or ckpt.task()
    from aihwkit.optim import AnalogOptimizer

    seed_everything(derive_seed(cfg.seed, "hwa"))
    digital = copy.deepcopy(ckpt.model).cpu()
    amodel = to_analog(digital, preset, hwa=True)
    amodel.train()
    opt = AnalogOptimizer(torch.optim.AdamW, amodel.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt.regroup_param_groups(amodel)
    record = fit(amodel, task, cfg, optimizer=opt)
    amodel.eval().cpu()
    ranges = tile_input_ranges(amodel)
    trained = copy.deepcopy(ckpt.model).cpu()
    trained.load_state_dict(analog_to_digital_state(amodel, trained))
    trained.eval()
    setattr(trained, INPUT_RANGES_ATTR, ranges)
    recipe = {**cfg.recipe(), "hwa": {"preset": preset.name, "training": preset.spec.training.model_dump(),
                                      "optimizer": "aihwkit AnalogOptimizer(AdamW)", "input_ranges": ranges},
              "pretrain": dict(ckpt.recipe), "init_model_id": ckpt.model_id}
    from analogmed.evaluate.metrics import evaluate_model
    record["val_digital"] = evaluate_model(trained, task, "val")
    return Checkpoint(model=trained, spec=dict(ckpt.spec), task_spec=dict(ckpt.task_spec), seed=int(cfg.seed),
                      recipe=recipe, metrics=record)
