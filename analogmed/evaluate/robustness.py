"""Drift robustness of a trained network on analog hardware (AnalogNAS metrics).

A *repetition* is a freshly programmed hardware instance (new programming noise and drift
coefficients); each instance is then drifted to every time of the grid and scored on the task.

Metrics (:func:`summarize`), per (model_id, task, preset):

- ``score_1s``: mean task score (Dice for segmentation, F1 for classification) at t = 1 s;
- ``score_1d_mean`` / ``score_1d_std``: mean and sample standard deviation (ddof = 1, NaN for one
  repetition) over repetitions at t = 1 day (86 400 s);
- ``avm`` (accuracy variation over one month) = ``score(1 s) - score(30 d)`` (means over
  repetitions). **Positive AVM = the network lost accuracy over the month**;
- ``mean_<t>`` / ``std_<t>`` at every time of the grid (labels from :func:`time_label`);
- ``digital_score``: the same network evaluated digitally, for reference.

- ``avm_pct`` = 100 * ``avm``: the AVM in percentage points of the score (Dice / F1 / accuracy in
  %), AnalogNAS's unit: AnalogNAS rejects candidates with an AVM above 10 points.

Variation semantics (``variation``, recorded in every row and the summary):

- ``"instances"`` (default): every repetition is a freshly *programmed* instance (programming noise,
  drift coefficients, read and output noise all vary);
- ``"reads"``: ONE programmed instance (``derive_seed(seed, "program", 0)``) re-drifted and re-read
  per repetition (read noise, output noise only), as IBM's AnalogNAS-Bench computes its "std" over 25
  ``drift_analog_weights`` calls of one programmed model.

Engines (``engine``, recorded in every row): ``"fast"`` (default) runs the analog forwards through
:mod:`analogmed.analog.fast` (programming, drift and drift compensation with aihwkit's noise-model
formulas vectorised over all tiles, :mod:`analogmed.analog.fast_drift`, then a folded native forward;
statistically identical to aihwkit, not bit-identical); ``"aihwkit"`` runs aihwkit's per-tile
programming, drift and torch tile forward.

Seeds: repetition ``r`` is programmed with ``derive_seed(seed, "program", r)``, drifted with
``derive_seed(seed, "drift", r, t)`` and evaluated (output noise) under
``derive_seed(seed, "eval", r, t)``: the same seed and engine give bit-identical tables. These seeds
do not depend on the model, so repetition ``r`` of two models with the same tile shapes shares its
random draws (common random numbers): differences between models of one table are less noisy, but
the models' scores are *not* independent samples of the hardware noise (a test across models that
treats them as independent, e.g. a paired t-test over a benchmark's candidates against another
engine, overstates its significance; give every model its own seed for such a test).
"""
from __future__ import annotations

import math
import os
import time
import weakref
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.seeding import derive_seed

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86_400.0, 604_800.0
MONTH = 30 * DAY
YEAR = 365 * DAY
#: Default drift-time grid (s): 1 s, 1 h, 1 d, 1 w, 30 d, 90 d, 180 d, 365 d.
DEFAULT_TIMES_S = (1.0, HOUR, DAY, WEEK, MONTH, 90 * DAY, 180 * DAY, YEAR)
#: Variation semantics of the repetitions (see the module docstring).
VARIATIONS = ("instances", "reads")
#: Times every study includes so the summary metrics exist.
REQUIRED_TIMES_S = (1.0, DAY, MONTH)


#: Longest monthly drift grid (months): 100 years of 30-day months, far past any device's retention.
MAX_MONTHS = 1200


def month_grid(months: int) -> tuple[float, ...]:
    """1 s, 1 h, 1 d, 1 w, then every 30-day month up to ``months`` (s)."""
    if months < 1 or months > MAX_MONTHS:
        raise UserError(f"--months {months} is invalid; give a number of months from 1 to {MAX_MONTHS} "
                        f"({MAX_MONTHS // 12} years)")
    return (1.0, HOUR, DAY, WEEK) + tuple(MONTH * k for k in range(1, months + 1))


def check_times(times_s: Sequence[float]) -> tuple[float, ...]:
    """Validated, sorted, de-duplicated grid that contains 1 s, 1 d and 30 d."""
    out = []
    for t in times_s:
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise UserError(f"drift time {t!r} is not a number of seconds") from None
        if not math.isfinite(t) or t < 0:
            raise UserError(f"drift time {t!r} s is invalid; times must be >= 0 seconds")
        out.append(t)
    return tuple(sorted(set(out) | set(REQUIRED_TIMES_S)))


def time_label(t_s: float) -> str:
    """Short label of a time in seconds: ``1s``, ``1h``, ``1d``, ``1w``, ``30d``, ``365d``..."""
    t = float(t_s)
    for unit, name in ((DAY, "d"), (HOUR, "h"), (MINUTE, "min")):
        if t >= unit and (t / unit).is_integer():
            if name == "d" and t / DAY == 7:
                return "1w"
            return f"{int(t / unit)}{name}"
    return f"{t:g}s"


def calibration_batches(task, n_batches: int, batch_size: int = 8) -> list[torch.Tensor]:
    """The first ``n_batches`` un-augmented training batches (inputs only), in split order."""
    ds = task.dataset("train", augment=False)
    n = min(len(ds), n_batches * batch_size)
    items = [ds[i]["image"] for i in range(n)]
    return [torch.stack(items[i:i + batch_size]) for i in range(0, n, batch_size)]


def prepare_analog(model: nn.Module, task, preset, seed: int = 0, hwa: bool = False) -> nn.Module:
    """Convert ``model`` to analog on ``preset`` and set its tiles' input ranges: the ones learned by
    hardware-aware training when the model carries them (``model.analogmed_input_ranges``), else
    calibrated on ``task``'s train split (sub-sampling seeded with ``derive_seed(seed, "calibrate")``);
    then, with the preset's ``[input_range] adc_headroom > 0``, widened where the raw tile outputs would
    saturate the ADC (:func:`analogmed.analog.convert.adc_headroom`, on the same calibration batches)."""
    from analogmed.analog import calibrate, load_preset, to_analog

    preset = load_preset(preset)
    amodel = to_analog(model, preset, hwa=hwa)
    learned = getattr(model, "analogmed_input_ranges", None)
    if learned and preset.spec.input_range.enable and not preset.spec.forward.is_perfect:
        from analogmed.analog.convert import set_tile_input_ranges
        set_tile_input_ranges(amodel, learned)  # ranges learned by hardware-aware training
    else:
        calibrate(amodel, calibration_batches(task, preset.spec.input_range.batches), preset,
                  seed=derive_seed(seed, "calibrate"))
    ir = preset.spec.input_range
    if ir.adc_headroom > 0 and ir.enable and not preset.spec.forward.is_perfect:
        from analogmed.analog.convert import adc_headroom
        adc_headroom(amodel, calibration_batches(task, ir.batches), quantile=ir.adc_headroom_quantile,
                     fill=ir.adc_headroom)
    return amodel


class _Scorer:
    """:func:`analogmed.evaluate.metrics.evaluate_model` with the split's batches loaded once (a drift
    study scores the same items hundreds of times) and the segmentation scores from confusion counts
    (:func:`analogmed.evaluate.metrics.score_batches` with ``counts=True``); gives the same dict (tested)."""

    def __init__(self, task, split: str, batch_size: int):
        from torch.utils.data import DataLoader

        self.task = task
        with torch.random.fork_rng(devices=[]):  # loading must not move the caller's random stream
            loader = DataLoader(task.dataset(split, augment=False), batch_size=batch_size, shuffle=False)
            self.batches = [(b["image"], b["label"]) for b in loader]

    def __call__(self, model: nn.Module) -> dict[str, float]:
        from analogmed.evaluate.metrics import score_batches

        # evaluate_model's DataLoader iterator draws one base seed from torch's generator: draw it too, so
        # the forward noise (and so every score) equals evaluate_model's under the same seed.
        torch.empty((), dtype=torch.int64).random_()
        return score_batches(model, self.task, self.batches, counts=True)


_SCORERS: list[tuple[object, str, int, _Scorer]] = []


def scorer(task, split: str = "val", batch_size: int = 8) -> _Scorer:
    """The cached :class:`_Scorer` of (task, split, batch_size) (the last 4 are kept)."""
    for t, sp, bs, sc in _SCORERS:
        if t is task and sp == split and bs == batch_size:
            return sc
    sc = _Scorer(task, split, batch_size)
    _SCORERS.append((task, split, batch_size, sc))
    del _SCORERS[:-4]
    return sc


def check_variation(variation: str) -> str:
    """Validate a variation name ('instances' or 'reads')."""
    if variation not in VARIATIONS:
        raise UserError(f"variation {variation!r} is unknown; use instances (re-program every repetition) "
                        "or reads (program once, re-drift and re-read)")
    return variation


def evaluate_instance(amodel: nn.Module, task, times_s: Sequence[float], repetition: int, seed: int,
                      split: str = "val", batch_size: int = 8, engine: str = "fast",
                      variation: str = "instances") -> list[dict]:
    """Program one hardware instance (repetition ``repetition``), drift it to every t and score it.

    ``variation="reads"`` programs instance 0 for every repetition (same programming noise), so only
    drift read noise and output noise vary between repetitions. ``engine``: "fast" or "aihwkit".

    Returns one dict per t: ``t_inference_s``, ``repetition``, ``seed`` (the study seed),
    ``program_seed``, ``engine``, ``variation``, ``score`` and the per-class metrics of
    :func:`evaluate_model`, ``wall_s``.
    """
    from analogmed.analog import drift, program
    from analogmed.analog.fast import FastEngine, check_engine

    check_engine(engine)
    check_variation(variation)
    prog_seed = derive_seed(seed, "program", repetition if variation == "instances" else 0)
    flat = flat_noise(amodel) if engine == "fast" and FLAT_NOISE_IN_STUDIES else None
    if flat is not None:
        amodel.eval()
        flat.program(prog_seed)
    else:
        program(amodel, prog_seed)
    rows = []
    eng = None
    try:
        for t in times_s:
            t0 = time.perf_counter()
            drift_seed = derive_seed(seed, "drift", repetition, repr(float(t)))
            if flat is not None:
                flat.drift(t, drift_seed)
            else:
                drift(amodel, t, drift_seed)
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                _manual_seed(derive_seed(seed, "eval", repetition, repr(float(t))))
                score = scorer(task, split, batch_size)
                if engine == "fast":
                    if eng is None:  # fold once per (instance, t); the engine stays on for the instance
                        eng = FastEngine(amodel, quiet=repetition > 0)
                    else:
                        eng.refresh()
                scores = score(amodel)
            rows.append({"t_inference_s": float(t), "repetition": int(repetition), "seed": int(seed),
                         "program_seed": prog_seed, "engine": engine, "variation": variation, **scores,
                         "wall_s": time.perf_counter() - t0})
    finally:
        if eng is not None:
            eng.remove()
    return rows


def _manual_seed(seed: int) -> None:
    """``torch.manual_seed`` (CPU-only machines: the CPU generator alone, the same numbers without
    torch's lazy CUDA seeding, which records a stack trace per call)."""
    if torch.cuda.is_available():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


_FLAT: "weakref.WeakKeyDictionary[nn.Module, object]" = weakref.WeakKeyDictionary()
#: Drift studies with the fast engine program/drift through :class:`analogmed.analog.fast_drift.FlatNoise`
#: (vectorised over all tiles, aihwkit's formulas, its own seeded generator) when True; False falls back to
#: aihwkit's per-tile ``program`` / ``drift``. An earlier comparison (172 candidates of the 2-D benchmark,
#: paired t p = 0.002 at 30 d) had kept it off; that test was invalid: every candidate uses the same seeds
#: per repetition, so aihwkit's draws are shared across candidates (common random numbers) and the 172
#: differences are not independent. With independent seeds per candidate the engines agree (docs/analog.md).
#: ``ANALOGMED_FLAT_NOISE=0`` in the environment turns it off (to reproduce tables built before it was on,
#: e.g. the shipped benchmarks: same numbers in distribution, not draw for draw).
FLAT_NOISE_IN_STUDIES = os.environ.get("ANALOGMED_FLAT_NOISE", "1") not in ("0", "")


def flat_noise(amodel: nn.Module):
    """The cached :class:`analogmed.analog.fast_drift.FlatNoise` of ``amodel`` (vectorised program /
    drift / drift compensation over all tiles), or None where it does not apply (aihwkit's per-tile
    ``program`` / ``drift`` then run). Built once per converted model: like aihwkit, it keeps the
    reference weights of the first programming."""
    from analogmed.analog.fast_drift import FlatNoise

    fn = _FLAT.get(amodel)
    if fn is None:
        fn = FlatNoise(amodel)
        _FLAT[amodel] = fn
    return None if fn.reason else fn


def drift_study(model: nn.Module, task, preset, times_s: Sequence[float] = DEFAULT_TIMES_S, repeats: int = 5,
                seed: int = 0, split: str = "val", model_id: str = "model", progress: bool = True,
                batch_size: int = 8, engine: str = "fast", variation: str = "instances") -> pd.DataFrame:
    """Score ``model`` on ``repeats`` programmed instances of ``preset`` at every drift time.

    ``engine``: "fast" (default) or "aihwkit" forwards; ``variation``: "instances" (re-program every
    repetition) or "reads" (program once, re-drift and re-read), see the module docstring.

    Returns one row per (t_inference_s, repetition) with columns ``model_id, task, preset,
    t_inference_s, repetition, seed, program_seed, engine, variation, score, <per-class metrics>,
    digital_score, wall_s``.
    """
    from analogmed.analog.fast import check_engine
    from analogmed.analog import load_preset
    from analogmed.evaluate.metrics import evaluate_model

    if int(repeats) < 1:
        raise UserError(f"repeats {repeats} is invalid; use at least 1 hardware instance")
    check_engine(engine)
    check_variation(variation)
    times = check_times(times_s)
    preset = load_preset(preset)
    preset.check_times(times)
    digital = evaluate_model(model, task, split=split, batch_size=batch_size)["score"]
    amodel = prepare_analog(model, task, preset, seed=seed)
    rows = []
    bar = tqdm(total=repeats * len(times), desc=f"drift {model_id} on {preset.name}", unit="eval",
               disable=not progress)
    for r in range(int(repeats)):
        for row in evaluate_instance(amodel, task, times, r, seed, split, batch_size, engine, variation):
            rows.append(row)
            bar.update(1)
    bar.close()
    df = pd.DataFrame(rows)
    df.insert(0, "preset", preset.name)
    df.insert(0, "task", task.name)
    df.insert(0, "model_id", model_id)
    df["digital_score"] = digital
    return df


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model_id, task, preset): the robustness metrics (see module docstring)."""
    if df.empty:
        raise UserError("no drift results to summarise")
    keys = [k for k in ("model_id", "task", "preset", "engine", "variation") if k in df.columns]
    out = []
    for key, g in df.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        stats = g.groupby("t_inference_s")["score"].agg(["mean", "std", "count"])
        row = dict(zip(keys, key))
        row["repeats"] = int(g["repetition"].nunique())

        def at(t, col="mean"):
            return float(stats.loc[t, col]) if t in stats.index else float("nan")

        row["digital_score"] = float(g["digital_score"].iloc[0]) if "digital_score" in g else float("nan")
        row["score_1s"] = at(1.0)
        row["score_1d_mean"] = at(DAY)
        row["score_1d_std"] = at(DAY, "std")
        row["score_30d"] = at(MONTH)
        row["avm"] = row["score_1s"] - row["score_30d"]
        row["avm_pct"] = 100.0 * row["avm"]
        for t in stats.index:
            row[f"mean_{time_label(t)}"] = float(stats.loc[t, "mean"])
            row[f"std_{time_label(t)}"] = float(stats.loc[t, "std"])
        out.append(row)
    return pd.DataFrame(out)


def curve(df: pd.DataFrame) -> pd.DataFrame:
    """Long table for plotting: (model_id, task, preset, t_inference_s) -> mean, std, n."""
    keys = [k for k in ("model_id", "task", "preset", "engine", "variation") if k in df.columns]
    g = df.groupby(keys + ["t_inference_s"], sort=False, dropna=False)["score"]
    return g.agg(mean="mean", std="std", n="count").reset_index()


def format_summary(summary: pd.DataFrame) -> str:
    """Human-readable table of the headline metrics and the curve (3 decimals)."""
    lines = []
    for _, r in summary.iterrows():
        what = "hardware instances" if r.get("variation", "instances") == "instances" else \
            "reads of one programmed instance"
        lines.append(f"{r.get('model_id', '')} on {r.get('task', '')}, preset {r.get('preset', '')}, "
                     f"{r['repeats']} {what}" + (f", engine {r['engine']}" if "engine" in r else ""))
        lines.append(f"  digital score      {r['digital_score']:.3f}")
        lines.append(f"  score at 1 s       {r['score_1s']:.3f}")
        lines.append(f"  1-day score        {r['score_1d_mean']:.3f} +/- {_fmt(r['score_1d_std'])} (std)")
        lines.append(f"  AVM (1 s - 30 d)   {r['avm']:+.3f}   ({r['avm'] * 100:+.1f} points; positive = lost over "
                     "the month)")
        times = [c[5:] for c in summary.columns if c.startswith("mean_") and not np.isnan(r[c])]
        lines.append("  t       " + " ".join(f"{t:>7}" for t in times))
        lines.append("  mean    " + " ".join(f"{r['mean_' + t]:7.3f}" for t in times))
        lines.append("  std     " + " ".join(f"{_fmt(r['std_' + t]):>7}" for t in times))
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "n/a" if v != v else f"{v:.3f}"
