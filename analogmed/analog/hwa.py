"""Hardware-aware (HWA) training: train a network on noisy analog layers so it survives programming and drift.

The recipe is the preset's ``[training]`` table (``pcm``: ours, measured in docs/hwa.md; ``analognas``: IBM
AnalogNAS-Bench's). The network (the digital checkpoint, or its architecture freshly initialised with
``start = "scratch"``) is converted with ``to_analog(model, preset, hwa=True)`` so every Conv / Linear /
transposed conv trains on an aihwkit tile that, at every training forward,

- perturbs the weights: ADD_NORMAL / MULT_NORMAL (aihwkit modifiers), or ``"preset"``: a fresh programmed
  instance of the preset's own device model at ``noise_time_s`` (or, with ``noise_time_min_s > 0``, at a
  drift time drawn log-uniformly per training forward), drift-compensated before or after the ADC
  (``noise_compensation``; :mod:`analogmed.analog.hwa_noise`);
- clips and remaps them after every optimiser step (``clip_type``, ``remap``);
- learns a static input range per tile (the DAC full scale; init from data, aihwkit's decay).

The optimiser (AdamW or SGD) is wrapped by aihwkit's ``AnalogOptimizer`` (which applies the tiles' post-update
steps); the schedule is cosine or constant with an optional linear warm-up; BatchNorm statistics are updated
or frozen (``batchnorm``). The kept epoch is chosen by ``select``: the best mean score of programmed
instances of the preset at ``select_time_s`` (analog), the best training-noise validation score, or the last.
After training, the digital weights are read back from the tiles (``get_weights``, weight scaling applied)
into the original digital architecture; the learned input ranges are stored in the checkpoint
(``recipe["hwa"]["input_ranges"]``, tile name -> range) and, with ``ranges = "learned"``, used by
``analogmed drift`` / studies instead of post-training calibration.

This lives in ``analogmed.analog`` (not ``analogmed.train``) because it needs analog layers; it reuses
the training loop :func:`analogmed.train.fit`.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from aihwkit.nn.modules.base import AnalogLayerBase
from torch import nn

from analogmed.analog.convert import set_tile_input_ranges, tile_input_ranges, to_analog
from analogmed.analog.presets import load_preset
from analogmed.errors import UserError
from analogmed.seeding import derive_seed, seed_everything
from analogmed.train.checkpoint import Checkpoint
from analogmed.train.digital import TrainConfig, fit

INPUT_RANGES_ATTR = "analogmed_input_ranges"
__all__ = ["INPUT_RANGES_ATTR", "analog_to_digital_state", "analog_val_score", "hwa_config", "hwa_finetune",
           "set_tile_input_ranges", "tile_input_ranges"]


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


def hwa_config(preset: Any = "pcm", **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of ``preset``'s ``[training]`` recipe (epochs, lr, weight decay, schedule,
    selection cadence); keyword ``overrides`` that are not None win (e.g. ``epochs=5, seed=1``)."""
    t = load_preset(preset).spec.training
    kw: dict[str, Any] = {"epochs": t.epochs, "lr": t.lr, "weight_decay": t.weight_decay, "schedule": t.schedule}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    if "val_every" not in kw:
        kw["val_every"] = 0 if t.select == "last" else (t.select_every or max(1, int(kw["epochs"]) // 4))
    return TrainConfig(**kw)


def _digital_copy(amodel: nn.Module, base: nn.Module, ranges: bool) -> nn.Module:
    """Digital ``base`` architecture with the weights of the (training) analog model; with ``ranges`` the
    tiles' learned input ranges are attached (``INPUT_RANGES_ATTR``)."""
    trained = copy.deepcopy(base).cpu()
    trained.load_state_dict(analog_to_digital_state(amodel, trained))
    trained.eval()
    if ranges:
        setattr(trained, INPUT_RANGES_ATTR, tile_input_ranges(amodel))
    elif hasattr(trained, INPUT_RANGES_ATTR):
        delattr(trained, INPUT_RANGES_ATTR)
    return trained


def analog_val_score(model: nn.Module, task, preset: Any = "pcm", instances: int = 3,
                     t_s: float | Sequence[float] = 86_400.0, seed: int = 0, split: str = "val") -> float:
    """Mean task score of ``instances`` programmed hardware instances of ``preset`` (inference config) of
    the digital ``model``, drifted to ``t_s`` seconds (one time, or several: the mean over times and
    instances), on ``split``. Input ranges: the model's learned
    ones when it carries them, else calibrated (as :func:`analogmed.evaluate.robustness.prepare_analog`).
    Seeds derive from ``seed`` under the tag "select" (disjoint from drift studies' seeds); the global RNG
    state is restored afterwards."""
    from analogmed.evaluate.robustness import evaluate_instance, prepare_analog

    sel_seed = derive_seed(seed, "select")
    with torch.random.fork_rng(devices=[]):
        amodel = prepare_analog(model, task, preset, seed=sel_seed)
        times = [float(t_s)] if isinstance(t_s, (int, float)) else [float(t) for t in t_s]
        scores = [row["score"] for r in range(int(instances))
                  for row in evaluate_instance(amodel, task, times, r, sel_seed, split=split)]
    return float(sum(scores) / len(scores))


def hwa_finetune(ckpt: Checkpoint, preset: Any = "pcm", cfg: TrainConfig | None = None,
                 task=None) -> Checkpoint:
    """Hardware-aware training of a digitally trained checkpoint with ``preset``'s ``[training]`` recipe.

    ``cfg`` gives epochs, lr, weight decay, schedule, batch size, seed, augmentation and the selection
    cadence (``val_every``); default :func:`hwa_config` (the preset's recipe). The preset's ``[training]``
    table gives the rest: the injected noise, clipping, remapping and input-range settings of the training
    tiles, ``start`` (fine-tune ``ckpt`` or train its architecture from a fresh init), the optimiser
    (AdamW or SGD, wrapped by aihwkit's ``AnalogOptimizer``), ``warmup_epochs``, ``batchnorm`` ("freeze"
    keeps the digital running statistics and normalises with them), ``select`` (which weights are kept:
    best analog validation score of ``select_instances`` programmed instances at ``select_time_s``, or their
    mean over ``select_times_s``; best training-noise validation score; or the last) and ``ranges`` (keep
    the learned input ranges for inference, or drop them so that evaluation re-calibrates).

    Returns a new :class:`Checkpoint` (same spec and task; digital weights read back from the tiles;
    ``recipe["hwa"]`` records the preset, its full training table, the effective epochs/lr/seed, the
    learned input ranges and which ones inference uses; ``recipe["pretrain"]`` the digital recipe it
    started from; ``metrics["history"]`` the per-epoch loss and selection score).
    """
    preset = load_preset(preset)
    t = preset.spec.training
    if not preset.has_noise_model:
        raise UserError(f"preset {preset.name!r} has no device noise model, so hardware-aware "
                        "training has nothing to train against; use e.g. --preset pcm")
    cfg = cfg or hwa_config(preset)
    cfg.check()
    task = task or ckpt.task()
    from aihwkit.optim import AnalogOptimizer

    if t.start == "scratch" and t.batchnorm == "freeze":
        raise UserError(f"preset {preset.name!r} [training]: start = 'scratch' has no digital BatchNorm "
                        "statistics for batchnorm = 'freeze' to keep; set batchnorm = 'train' (or start = "
                        "'finetune')")
    seed_everything(derive_seed(cfg.seed, "hwa"))
    if t.start == "scratch":
        from analogmed.models import build_model
        seed_everything(derive_seed(cfg.seed, "hwa-init"))
        digital = build_model(dict(ckpt.spec)).cpu()
    else:
        digital = copy.deepcopy(ckpt.model).cpu()
    base = copy.deepcopy(digital)
    amodel = to_analog(digital, preset, hwa=True)
    if t.range_init == "inference":  # start from the inference ranges (calibrated, ADC headroom) of the start
        from analogmed.evaluate.robustness import prepare_analog
        with torch.random.fork_rng(devices=[]):
            ref = prepare_analog(digital, task, preset, seed=cfg.seed)  # applies [input_range] adc_headroom
            if t.range_headroom > 0 and t.range_headroom != preset.spec.input_range.adc_headroom:
                from analogmed.analog.convert import adc_headroom
                from analogmed.evaluate.robustness import calibration_batches
                adc_headroom(ref, calibration_batches(task, preset.spec.input_range.batches),
                             quantile=preset.spec.input_range.adc_headroom_quantile, fill=t.range_headroom)
            start = tile_input_ranges(ref)
        set_tile_input_ranges(amodel, start)
        for tile in amodel.analog_tiles():  # no aihwkit init from data on top
            if getattr(tile, "input_range_update_idx", None) is not None:
                tile.input_range_update_idx.data.fill_(float(tile.rpu_config.pre_post.input_range.init_from_data))
    amodel.train()
    if t.optimizer == "sgd":
        opt = AnalogOptimizer(torch.optim.SGD, amodel.parameters(), lr=cfg.lr, momentum=t.momentum,
                              nesterov=t.nesterov and t.momentum > 0, weight_decay=cfg.weight_decay)
    else:
        opt = AnalogOptimizer(torch.optim.AdamW, amodel.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt.regroup_param_groups(amodel)
    hook = None
    if t.batchnorm == "freeze":
        norms = [m for m in amodel.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

        def freeze(mod: nn.Module, inp: Any) -> None:  # after fit's model.train(): norms use running stats
            for norm in norms:
                norm.eval()
        hook = amodel.register_forward_pre_hook(freeze) if norms else None
    time_hook = None
    if t.weight_noise_type == "preset" and t.noise_time_min_s > 0:
        from analogmed.analog.hwa_noise import log_uniform_time, set_noise_time

        def draw_time(mod: nn.Module, inp: Any) -> None:  # one drift time per training forward, whole network
            if mod.training:
                set_noise_time(mod, log_uniform_time(t.noise_time_min_s, t.noise_time_s))
        time_hook = amodel.register_forward_pre_hook(draw_time)
    evaluate = None
    if t.select == "analog":
        def evaluate(m: nn.Module) -> dict[str, float]:
            trained = _digital_copy(m, base, ranges=t.ranges == "learned")
            return {"score": analog_val_score(trained, task, preset, t.select_instances,
                                              t.select_times_s or t.select_time_s, seed=cfg.seed)}
    record = fit(amodel, task, cfg, optimizer=opt, evaluate=evaluate, warmup_epochs=t.warmup_epochs)
    for h in (hook, time_hook):
        if h is not None:
            h.remove()
    amodel.eval().cpu()
    ranges = tile_input_ranges(amodel)
    trained = _digital_copy(amodel, base, ranges=t.ranges == "learned")
    recipe = {**cfg.recipe(), "kind": "hwa",
              "hwa": {"preset": preset.name, "training": t.model_dump(), "preset_spec": preset.to_dict(),
                      "optimizer": f"aihwkit AnalogOptimizer({'SGD' if t.optimizer == 'sgd' else 'AdamW'})",
                      "input_ranges": ranges, "inference_ranges": t.ranges},
              "pretrain": dict(ckpt.recipe), "init_model_id": ckpt.model_id}
    from analogmed.evaluate.metrics import evaluate_model
    record["selected_by"] = t.select
    record["val_digital"] = evaluate_model(trained, task, "val")
    return Checkpoint(model=trained, spec=dict(ckpt.spec), task_spec=dict(task.spec), seed=int(cfg.seed),
                      recipe=recipe, metrics=record)
