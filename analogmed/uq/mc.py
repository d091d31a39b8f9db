"""Monte-Carlo predictions: analog hardware instances, MC dropout, and the deterministic digital reference.

- :func:`analog_mc`: R freshly programmed hardware instances of ``preset``, each drifted to
  ``t_inference_s`` and run once (programming noise, drift variation, read and output noise) — the
  analog network used as an ensemble.
- :func:`mc_dropout`: the digital network with its dropout layers active, R passes (the
  conventional Bayesian approximation; only for models with dropout p > 0).
- :func:`digital_predict`: one deterministic digital pass (R = 1).

All return softmax probabilities [R, N, C, *S] for the N items of ``split`` (segmentation tasks) and
are seeded: instance r uses ``derive_seed(seed, "program", r)`` like the drift studies, so the
analog MC at t is the same hardware as repetition r of a drift study with the same seed.
``engine`` ("fast" | "aihwkit") and ``variation`` ("instances": R programmed instances; "reads": one
programmed instance re-drifted and re-read R times) as in
:func:`analogmed.evaluate.robustness.drift_study`.
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.seeding import derive_seed


def split_batches(task, split: str = "val", batch_size: int = 8):
    """(list of input batches [B, C, *S], labels [N, *S]) of a segmentation task's split."""
    if task.kind != "segmentation":
        raise UserError(f"uncertainty maps need a segmentation task; {task.name} is {task.kind}")
    ds = task.dataset(split, augment=False)
    items = [ds[i] for i in range(len(ds))]
    xs = torch.stack([it["image"] for it in items])
    labels = torch.stack([it["label"][0] for it in items]).long()
    return [xs[i:i + batch_size] for i in range(0, len(xs), batch_size)], labels


@torch.no_grad()
def _forward(model: nn.Module, batches) -> torch.Tensor:
    return torch.cat([model(x).float().softmax(1) for x in batches])


def digital_predict(model: nn.Module, task, split: str = "val", batch_size: int = 8) -> torch.Tensor:
    """[1, N, C, *S] probabilities of one deterministic digital pass."""
    batches, _ = split_batches(task, split, batch_size)
    model.eval()
    return _forward(model, batches).unsqueeze(0)


def has_dropout(model: nn.Module) -> bool:
    """True when the model has a dropout layer with p > 0."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def mc_dropout(model: nn.Module, task, samples: int, seed: int = 0, split: str = "val",
               batch_size: int = 8) -> torch.Tensor:
    """[R, N, C, *S] probabilities with dropout active (everything else in eval mode)."""
    check_samples(samples)
    if not has_dropout(model):
        raise UserError("MC dropout needs a model with dropout > 0 (e.g. a zoo spec with dropout=0.1)")
    batches, _ = split_batches(task, split, batch_size)
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    out = []
    try:
        for m in drops:
            m.train()
        for r in range(samples):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(seed, "dropout", r))
                out.append(_forward(model, batches))
    finally:
        model.eval()
    return torch.stack(out)


def check_samples(samples: int) -> None:
    if int(samples) < 2:
        raise UserError(f"samples {samples} is invalid; Monte-Carlo uncertainty needs at least 2 samples")


def analog_mc(model: nn.Module, task, preset, t_inference_s: float, samples: int, seed: int = 0,
              split: str = "val", batch_size: int = 8, progress: bool = False,
              amodel: nn.Module | None = None, engine: str = "fast", variation: str = "instances") -> torch.Tensor:
    """[R, N, C, *S] probabilities of R programmed hardware instances drifted to ``t_inference_s``.

    ``amodel``: an already converted and calibrated analog model (from
    :func:`analogmed.evaluate.robustness.prepare_analog`) to reuse across times.
    """
    from analogmed.analog import drift, program
    from analogmed.analog import load_preset
    from analogmed.analog.fast import check_engine, fast_engine
    from analogmed.evaluate.robustness import check_times, check_variation, prepare_analog

    check_engine(engine)
    check_variation(variation)
    check_samples(samples)
    check_times([t_inference_s])
    preset = load_preset(preset)
    preset.check_times([t_inference_s])
    batches, _ = split_batches(task, split, batch_size)
    amodel = amodel if amodel is not None else prepare_analog(model, task, preset, seed=seed)
    out = []
    for r in tqdm(range(int(samples)), desc="analog MC", disable=not progress):
        if variation == "instances" or r == 0:
            program(amodel, derive_seed(seed, "program", r))
        drift(amodel, t_inference_s, derive_seed(seed, "drift", r, repr(float(t_inference_s))))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "eval", r, repr(float(t_inference_s))))
            if engine == "fast":
                with fast_engine(amodel, quiet=r > 0):
                    out.append(_forward(amodel, batches))
            else:
                out.append(_forward(amodel, batches))
    return torch.stack(out)


def uq_evaluate(model: nn.Module, task, preset, times_s, samples: int = 10, seed: int = 0,
                split: str = "val", batch_size: int = 8, progress: bool = False, engine: str = "fast",
                variation: str = "instances") -> list[dict]:
    """Uncertainty metrics of the digital pass, MC dropout (if the model has dropout) and analog MC at
    every t of ``times_s``. One dict per (method, t) with ``method``, ``t_inference_s`` (NaN for the
    digital methods), ``samples``, ``engine`` and ``variation`` (analog rows) and the keys of
    :func:`analogmed.uq.metrics.uq_metrics`."""
    from analogmed.analog import load_preset
    from analogmed.evaluate.robustness import check_times, prepare_analog
    from analogmed.uq.metrics import uq_metrics

    check_samples(samples)
    times = [float(t) for t in times_s]
    check_times(times)
    preset = load_preset(preset)
    _, labels = split_batches(task, split, batch_size)
    nan = float("nan")
    rows = [{"method": "digital", "preset": "", "t_inference_s": nan, "samples": 1,
             **uq_metrics(digital_predict(model, task, split, batch_size), labels, task.num_classes)}]
    if has_dropout(model):
        rows.append({"method": "mc-dropout", "preset": "", "t_inference_s": nan, "samples": int(samples),
                     **uq_metrics(mc_dropout(model, task, samples, seed, split, batch_size), labels,
                                  task.num_classes)})
    amodel = prepare_analog(model, task, preset, seed=seed)
    for t in times:
        probs = analog_mc(model, task, preset, t, samples, seed, split, batch_size, progress, amodel=amodel,
                          engine=engine, variation=variation)
        rows.append({"method": "analog-mc", "preset": preset.name, "t_inference_s": t, "samples": int(samples),
                     "engine": engine, "variation": variation, **uq_metrics(probs, labels, task.num_classes)})
    return rows
