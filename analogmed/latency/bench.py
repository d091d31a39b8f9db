"""Speed benchmark: digital vs analog (aihwkit torch tile) forward, measured in the same run.

Not a test: it reports medians and the analog/digital ratio of one run on this machine. Models:

* ``monai-unet``: MONAI ``UNet(spatial_dims=2, in_channels=1, out_channels=2,
  channels=(16, 32, 64, 128), strides=(2, 2, 2))``;
* ``candidate``: a search-space candidate (``analogmed.space`` sampler, seed 0).

Input: ``batch x 1 x size x size`` (default 8 x 1 x 128 x 128). Analog models come from
``analogmed.analog.to_analog(model, load_preset(preset))``; without ``analogmed.analog``, from
``aihwkit.nn.conversion.convert_to_analog`` with a default ``TorchInferenceRPUConfig`` (the
result says which). Timing: ``rounds`` round-robin rounds, each timing the digital then the analog
model (warm-up + ``repeats`` forwards, median); reported: median over rounds of each and of the
per-round ratio. One drift-study repetition is timed as ``program`` + 4 x (``drift`` to
60 s / 1 h / 1 d / 30 d + one forward of the batch).
"""
from __future__ import annotations

import platform as _pyplatform
import statistics
import time
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from analogmed.latency.timing import time_forward, torch_threads

DRIFT_TIMES_S = (60.0, 3600.0, 86400.0, 30 * 86400.0)


def monai_unet() -> nn.Module:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64, 128), strides=(2, 2, 2))


def bench_candidate(size: int) -> tuple[str, nn.Module]:
    """(description, model) of the benchmark's search-space candidate."""
    from analogmed.space import architecture as A
    from analogmed.space.builder import build_candidate

    arch = A.sample_architecture(seed=0, spatial_dims=2)
    return f"space candidate {arch.id} {arch.label} (seed 0)", build_candidate(arch)


def analog_converter(preset: str) -> tuple[str, Callable[[nn.Module], nn.Module],
                                           Callable[[nn.Module, int], None], Callable[[nn.Module, float, int], None]]:
    """(description, to_analog, program, drift) from analogmed.analog or plain aihwkit."""
    try:
        from analogmed.analog import drift, load_preset, program, to_analog

        pr = load_preset(preset)
        return (f"analogmed.analog.to_analog(preset {preset})", lambda m: to_analog(m, pr), program, drift)
    except ImportError:
        from aihwkit.nn.conversion import convert_to_analog
        from aihwkit.simulator.configs import TorchInferenceRPUConfig

        def prog(m, seed):
            torch.manual_seed(seed)
            m.program_analog_weights()

        def dr(m, t, seed):
            torch.manual_seed(seed)
            m.drift_analog_weights(t)

        return ("aihwkit convert_to_analog(TorchInferenceRPUConfig()) (analogmed.analog not installed)",
                lambda m: convert_to_analog(m, TorchInferenceRPUConfig()), prog, dr)


def run_bench(threads: int = 1, batch: int = 8, size: int = 128, repeats: int = 5, rounds: int = 3,
              preset: str = "pcm", drift_rep: bool = True, progress: bool = True) -> dict:
    """Run the benchmark; returns a JSON-able dict (``rows``: one per model, plus the settings)."""
    torch.manual_seed(0)
    conv_desc, to_analog, program, drift = analog_converter(preset)
    cand_desc, cand = bench_candidate(size)
    models = {"monai-unet (16,32,64,128)": monai_unet(), "candidate": cand}
    x = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
    rows = []
    with torch_threads(threads):
        for name, dm in models.items():
            dm.eval()
            am = to_analog(dm).eval()
            program(am, 0)
            dig, ana, ratio = [], [], []
            for _ in tqdm(range(rounds), desc=name, disable=None if progress else True):
                d = time_forward(dm, x, warmup=2, repeats=repeats).median_ms
                a = time_forward(am, x, warmup=2, repeats=repeats).median_ms
                dig.append(d)
                ana.append(a)
                ratio.append(a / d)
            row = {"model": name, "digital_ms": statistics.median(dig), "analog_ms": statistics.median(ana),
                   "ratio": statistics.median(ratio), "digital_rounds_ms": dig, "analog_rounds_ms": ana}
            if drift_rep:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    program(am, 1)
                    for t in DRIFT_TIMES_S:
                        drift(am, t, 1)
                        am(x)
                    row["drift_rep_s"] = time.perf_counter() - t0
            rows.append(row)
    return {"rows": rows, "threads": threads, "input": [batch, 1, size, size], "repeats": repeats,
            "rounds": rounds, "analog": conv_desc, "candidate": cand_desc, "torch": torch.__version__,
            "cpu": _pyplatform.processor() or _pyplatform.machine(),
            "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}


def format_bench(res: dict) -> str:
    """A plain-text table of :func:`run_bench`'s result."""
    lines = [f"input {'x'.join(map(str, res['input']))}, {res['threads']} thread(s), "
             f"{res['rounds']} rounds x {res['repeats']} repeats (medians); analog: {res['analog']}",
             f"candidate: {res['candidate']}",
             f"{'model':28s} {'digital ms':>11s} {'analog ms':>10s} {'analog/digital':>15s} {'drift rep s':>12s}"]
    for r in res["rows"]:
        dr = f"{r['drift_rep_s']:.2f}" if "drift_rep_s" in r else "-"
        lines.append(f"{r['model']:28s} {r['digital_ms']:11.1f} {r['analog_ms']:10.1f} {r['ratio']:15.2f} {dr:>12s}")
    return "\n".join(lines)
