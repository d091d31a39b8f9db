"""One drift experiment: a trained checkpoint on a hardware preset -> table, summary and figure.

:func:`run_drift` is what ``analogmed drift`` and ``analogmed demo`` call. It validates every input
before any work, and writes its files atomically at the end (nothing half-written):

- ``<out>/drift.csv``: one row per (t_inference_s, repetition) (see
  :func:`analogmed.evaluate.robustness.drift_study`);
- ``<out>/summary.csv``: the robustness metrics (1-day score, 1-day std, AVM, every t);
- ``<out>/drift.png`` and ``<out>/drift.pdf``: the drift curve (mean +/- std over instances).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from analogmed.errors import UserError
from analogmed.evaluate.robustness import DEFAULT_TIMES_S, check_times, drift_study, summarize
from analogmed.io import check_output_dir, output_set, relocate, write_text_atomic


@dataclass
class DriftResult:
    """``table`` (per evaluation), ``summary`` (one row), ``files`` written, the ``preset`` name."""

    table: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]
    preset: str


def run_drift(checkpoint, preset: str, times_s: Sequence[float] = DEFAULT_TIMES_S, repeats: int = 5,
              seed: int = 0, split: str = "val", out_dir: str | Path | None = None,
              progress: bool = True, engine: str = "fast", variation: str = "instances") -> DriftResult:
    """Drift study of ``checkpoint`` (a :class:`Checkpoint` or a path) on ``preset``; optional files.
    ``engine`` ("fast" | "aihwkit") and ``variation`` ("instances" | "reads"): see
    :func:`analogmed.evaluate.robustness.drift_study`."""
    from analogmed.analog import load_preset
    from analogmed.models import model_id, model_label
    from analogmed.plots.drift import plot_drift_curves
    from analogmed.train.checkpoint import load_checkpoint

    check_output_dir(out_dir)
    if int(repeats) < 1:
        raise UserError(f"--repeats {repeats} is invalid; use at least 1 hardware instance")
    from analogmed.analog.fast import check_engine
    from analogmed.evaluate.robustness import check_variation

    check_engine(engine)
    check_variation(variation)
    times = check_times(times_s)
    preset_obj = load_preset(preset)
    preset_obj.check_times(times)
    ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    task = ckpt.task()
    if split not in ("train", "val", "test"):
        raise UserError(f"split {split!r} is invalid; use train, val or test")
    mid = model_id(ckpt.spec)
    df = drift_study(ckpt.model, task, preset_obj, times, repeats=repeats, seed=seed, split=split,
                     model_id=mid, progress=progress, engine=engine, variation=variation)
    summary = summarize(df)
    files: list[Path] = []
    if out_dir is not None:  # all files or none (analogmed.io.output_set)
        with output_set(out_dir) as out:
            files.append(write_text_atomic(out / "drift.csv", df.to_csv(index=False)))
            files.append(write_text_atomic(out / "summary.csv", summary.to_csv(index=False)))
            label = "F1" if task.kind == "classification" else "Dice"
            files += plot_drift_curves(df.assign(model_id=model_label(ckpt.spec)), out / "drift",
                                       title=f"{model_label(ckpt.spec)} on {task.name}", score_label=label)
            files = relocate(files, out, Path(out_dir))
    return DriftResult(df, summary, files, preset_obj.name)
