"""One uncertainty experiment for a checkpoint: metrics table + reliability diagram + uncertainty maps.

:func:`run_uq` is what ``analogmed uq`` calls. Writes (atomically, at the end) into ``out_dir``:
``uq.csv`` (one row per method and time), ``reliability.png/.pdf`` (digital, MC dropout if any, analog
MC at every t) and ``uncertainty_maps.png/.pdf`` (analog MC at the first t).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from analogmed.io import check_output_dir, output_set, relocate, write_text_atomic


def run_uq(checkpoint, preset: str = "pcm", times_s: Sequence[float] = (86_400.0,), samples: int = 10,
           seed: int = 0, split: str = "val", out_dir: str | Path | None = None,
           progress: bool = True, engine: str = "fast",
           variation: str = "instances") -> tuple[pd.DataFrame, list[Path]]:
    """Uncertainty metrics of ``checkpoint`` (object or path): digital vs MC dropout vs analog MC."""
    from analogmed.analog import load_preset
    from analogmed.evaluate.robustness import check_times, prepare_analog
    from analogmed.models import model_id, model_label
    from analogmed.plots.uq import plot_reliability, plot_uncertainty_maps
    from analogmed.train.checkpoint import load_checkpoint
    from analogmed.uq.mc import (analog_mc, check_samples, digital_predict, has_dropout, mc_dropout,
                                 split_batches)
    from analogmed.uq.metrics import uq_metrics

    from analogmed.analog.fast import check_engine
    from analogmed.evaluate.robustness import check_variation

    check_output_dir(out_dir)
    check_samples(samples)
    check_engine(engine)
    check_variation(variation)
    times = [float(t) for t in times_s]
    if not times:
        from analogmed.errors import UserError
        raise UserError("--times is empty; give comma-separated drift times in seconds, e.g. 86400")
    check_times(times)
    preset = load_preset(preset)
    ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    task, model = ckpt.task(), ckpt.model
    batches, labels = split_batches(task, split)
    mid = model_id(ckpt.spec)
    curves = {"digital": digital_predict(model, task, split)}
    if has_dropout(model):
        curves["MC dropout"] = mc_dropout(model, task, samples, seed, split)
    amodel = prepare_analog(model, task, preset, seed=seed)
    analog = {}
    for t in times:
        analog[t] = analog_mc(model, task, preset, t, samples, seed, split, progress=progress, amodel=amodel,
                              engine=engine, variation=variation)
    rows = []
    nan = float("nan")
    for name, probs in curves.items():
        rows.append({"model_id": mid, "method": name.lower().replace(" ", "-"), "preset": "", "t_inference_s": nan,
                     "samples": probs.shape[0], **uq_metrics(probs, labels, task.num_classes)})
    from analogmed.evaluate.robustness import time_label
    for t, probs in analog.items():
        rows.append({"model_id": mid, "method": "analog-mc", "preset": preset.name, "t_inference_s": t,
                     "samples": samples, "engine": engine, "variation": variation,
                     **uq_metrics(probs, labels, task.num_classes)})
        curves[f"analog MC, {preset.name}, t={time_label(t)}"] = probs
    df = pd.DataFrame(rows)
    files: list[Path] = []
    if out_dir is not None:  # all files or none (analogmed.io.output_set)
        with output_set(out_dir) as out:
            files.append(write_text_atomic(out / "uq.csv", df.to_csv(index=False)))
            files += plot_reliability(curves, labels, out / "reliability",
                                      title=f"{model_label(ckpt.spec)} on {task.name}")
            images = torch.cat(batches)
            first = analog[times[0]]
            if images.dim() == 5:  # 3D: central axial slice
                z = images.shape[-1] // 2
                images, lab, first = images[..., z], labels[..., z], first[..., z]
            else:
                lab = labels
            files += plot_uncertainty_maps(images, lab, first, out / "uncertainty_maps",
                                           title=f"{model_label(ckpt.spec)}: analog MC ({samples} instances, "
                                                 f"{preset.name}, t={time_label(times[0])})")
            files = relocate(files, out, Path(out_dir))
    return df, files
