"""Diagnostic (docs/hwa.md, 3D section): ADC saturation and DAC clipping per analog layer vs drift time.

For each network (the digital checkpoint cached by ``scripts/hwa_bench.py``, and optionally its cached HWA
checkpoint) and each preset variant, program ``--instances`` hardware instances (the seeds of a drift study,
``derive_seed(seed, "program", r)`` ...), drift each to every t, and score the val split with the fast engine
while :func:`analogmed.analog.fast.clip_counter` counts, per analog layer, the raw tile outputs with
``|y| >= out_bound`` (ADC saturation) and the inputs at or beyond the tile's input range (DAC clipping).

Preset variants (overrides of the base preset's ``[forward]``):

- ``base``: the preset as shipped;
- ``noclip``: ``out_bound`` x1024 with 10 more ADC bits: the same ADC step, no saturation in practice;
- ``headroom`` / ``headroom-0.5``: the preset as shipped, then :func:`analogmed.analog.convert.adc_headroom`
  (quantile 0.999 of the raw outputs at most 1.0 / 0.5 x out_bound) after the input ranges are set;

Usage::

    python scripts/hwa_saturation.py --nets arch:K16-I16-H16 --dims 3 --epochs 160 --hwa-epochs 160 \\
        --which plain,hwa --instances 3 --out docs/hwa-data/saturation.csv

One CSV row per (net, which, variant, t, instance, layer): ``clip_adc`` / ``clip_dac`` (fractions),
``alpha`` (mean global drift compensation of the layer's tiles), ``fan_in`` (rows of the layer's MVM),
``score`` (the instance's Dice at t; repeated on the layer rows).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import pandas as pd
import torch

VARIANTS = {"base": {}, "noclip": {"out_bound_x": 1024.0, "out_bits_plus": 10},
            "headroom": {"headroom": (0.999, 1.0)}, "headroom-0.5": {"headroom": (0.999, 0.5)}}


def _bench():
    spec = importlib.util.spec_from_file_location("hwa_bench", Path(__file__).with_name("hwa_bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def preset_variant(base, name: str, training: dict | None = None):
    """``base`` (a Preset) with the forward overrides of VARIANTS[name] (and ``training`` as its table)."""
    from analogmed.analog.presets import Preset, PresetFile

    v = VARIANTS[name]
    d = base.spec.model_dump(mode="json")
    if "out_bound_x" in v:
        d["forward"]["out_bound"] = d["forward"]["out_bound"] * v["out_bound_x"]
        d["forward"]["out_res_bits"] = d["forward"]["out_res_bits"] + v["out_bits_plus"]
    if training is not None:
        d["training"] = training
    return Preset(name=f"{base.name}-{name}" if v else base.name, path=base.path, spec=PresetFile.model_validate(d))


def fan_in(layer) -> int:
    from aihwkit.nn import AnalogConv1d, AnalogConv2d, AnalogConv3d
    if isinstance(layer, (AnalogConv1d, AnalogConv2d, AnalogConv3d)):
        return int(layer.in_channels * math.prod(layer.kernel_size))
    return int(getattr(layer, "in_features", getattr(layer, "in_channels", 0)))


def measure(model, task, preset, instances: int, times: list[float], seed: int, headroom=None) -> list[dict]:
    """Rows (t, instance, layer, clip_adc, clip_dac, alpha, fan_in, score) for one model on one preset."""
    from aihwkit.nn.modules.base import AnalogLayerBase

    from analogmed.analog.fast import FastEngine, clip_counter
    from analogmed.evaluate.robustness import _manual_seed, flat_noise, prepare_analog, scorer
    from analogmed.seeding import derive_seed

    amodel = prepare_analog(model, task, preset, seed=seed)
    amodel.eval()
    if headroom:
        from analogmed.analog.convert import adc_headroom
        from analogmed.evaluate.robustness import calibration_batches
        widened = adc_headroom(amodel, calibration_batches(task, 4), quantile=headroom[0], fill=headroom[1])
        print("widened:", {k: round(v, 2) for k, v in widened.items()})
    layers = {n: m for n, m in amodel.named_modules() if isinstance(m, AnalogLayerBase) and hasattr(m, "analog_module")}
    flat = flat_noise(amodel)
    rows = []
    for r in range(instances):
        flat.program(derive_seed(seed, "program", r))
        eng = None
        for t in times:
            flat.drift(t, derive_seed(seed, "drift", r, repr(float(t))))
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                _manual_seed(derive_seed(seed, "eval", r, repr(float(t))))
                sc = scorer(task, "val", 8)
                if eng is None:
                    eng = FastEngine(amodel, quiet=True)
                else:
                    eng.refresh()
                with clip_counter() as cnt:
                    score = sc(amodel)["score"]
            for name, layer in layers.items():
                adc, dac = cnt.get(name, [0, 0]), cnt.get(name + ":dac", [0, 0])
                alphas = [float(tile.alpha) for tile in layer.analog_tiles()
                          if getattr(tile, "alpha", None) is not None]
                rows.append({"t_s": float(t), "instance": r, "layer": name, "kind": type(layer).__name__,
                             "fan_in": fan_in(layer),
                             "clip_adc": adc[0] / adc[1] if adc[1] else float("nan"),
                             "clip_dac": dac[0] / dac[1] if dac[1] else float("nan"),
                             "alpha": sum(alphas) / len(alphas) if alphas else float("nan"), "score": score})
        eng.remove()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", required=True)
    ap.add_argument("--dims", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=40, help="digital epochs of the cached checkpoint")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hwa-epochs", type=int, default=None, help="HWA epochs of the cached HWA checkpoint")
    ap.add_argument("--hwa-variant", default="recipe", help="hwa_bench variant of the cached HWA checkpoint "
                    "(recipe13: the recipe before the 3D work, as in docs/hwa-data/saturation.csv)")
    ap.add_argument("--which", default="plain", help="comma list of plain, hwa")
    ap.add_argument("--variants", default="base,noclip")
    ap.add_argument("--times", default="1,3600,86400,2592000")
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--preset", default="pcm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hwa-exp/ckpt"))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from analogmed.analog.hwa import hwa_config
    from analogmed.analog.presets import load_preset
    from analogmed.data import get_task
    from analogmed.train import TrainConfig, load_checkpoint

    hb = _bench()
    task = get_task("mni152-tissue", spatial_dims=a.dims, seed=a.seed)
    base = load_preset(a.preset)
    times = [float(x) for x in a.times.split(",")]
    for net in hb.expand(a.nets):
        name, spec = hb.build_net(net, task)
        cfg = TrainConfig(epochs=a.epochs, lr=a.lr, seed=a.seed, device="cpu", progress=False, val_every=0)
        key = hb._key([spec, task.spec, cfg.recipe()])
        for which in a.which.split(","):
            if which == "plain":
                path = a.cache / f"{key}.pt"
            else:
                training = {**base.spec.training.model_dump(), **hb.VARIANTS[a.hwa_variant]}
                if a.hwa_epochs:
                    training["epochs"] = a.hwa_epochs
                hcfg = hwa_config(preset_variant(base, "base", training), seed=a.seed, device="cpu", progress=False)
                path = a.cache / f"hwa-{hb._key([key, False, training, hcfg.recipe()])}.pt"
            if not path.is_file():
                print(f"{name} {which}: no cached checkpoint {path.name}; run scripts/hwa_bench.py first")
                continue
            ck = load_checkpoint(path)
            for v in a.variants.split(","):
                t0 = time.perf_counter()
                rows = measure(ck.model, task, preset_variant(base, v), a.instances, times, a.seed,
                               headroom=VARIANTS[v].get("headroom"))
                df = pd.DataFrame(rows).assign(net=name, dims=a.dims, which=which, variant=v,
                                               preset=a.preset, seed=a.seed, checkpoint=path.name)
                if a.out.is_file():
                    df = pd.concat([pd.read_csv(a.out), df], ignore_index=True)
                tmp = a.out.with_name(a.out.name + ".tmp")
                df.to_csv(tmp, index=False)
                tmp.replace(a.out)
                s = pd.DataFrame(rows)
                per_t = s.groupby("t_s").agg(score=("score", "mean"), adc=("clip_adc", "mean"),
                                             adc_max=("clip_adc", "max"), dac=("clip_dac", "mean"))
                print(f"{name} {which} {v} ({time.perf_counter() - t0:.0f}s)")
                print(per_t.to_string(float_format=lambda x: f"{x:.4f}"), flush=True)
                print(json.dumps(s[s.t_s == times[0]].groupby("layer").clip_adc.mean().round(4).to_dict()))


if __name__ == "__main__":
    main()
