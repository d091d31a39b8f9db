"""Speed benchmark: digital vs analog forward (aihwkit torch tile and the fast engine), one run.

Not a test: it reports medians and ratios of one run on this machine (the machine is shared and
noisy: only ratios measured in the same run are comparable). Models (``MODELS``):

* ``monai-unet-2d``: MONAI ``UNet(2D, 1 -> 2, channels (16, 32, 64, 128), strides 2)``, input
  ``batch x 1 x size x size`` (default 8 x 1 x 128 x 128);
* ``candidate-2d``: the search-space candidate ``sample_architecture(seed=0, spatial_dims=2)``, same input;
* ``candidate-3d``: ``sample_architecture(seed=0, spatial_dims=3)``, input ``1 x 1 x size3^3`` (32^3);
* ``unetr-3d``: the zoo UNETR (``size="small"``), input ``1 x 1 x size3^3``.

Analog models: ``analogmed.analog.to_analog(model, preset)``, programmed (seed 0) and drifted to 1 day.
Timing: ``rounds`` rounds, each timing digital and aihwkit forwards interleaved (d, a, d, a, ...),
then digital and fast forwards interleaved (warm-up + ``repeats`` pairs); reported: the median over
rounds of each time's per-round median, and ``ratio = fast / digital`` / ``aihwkit_ratio = aihwkit /
digital`` as the medians over all rounds of the ratios of *adjacent* calls (the machine is shared:
a load burst hits both calls of a pair, not one engine's whole block); ``ratio_best`` = fastest fast
forward / fastest digital forward (the least load-affected estimate on a busy machine). Drift-study throughput:
one repetition = ``program`` + 4 x (``drift`` to 60 s / 1 h / 1 d / 30 d + one forward of the
batch), timed per engine; ``evals_per_s`` = 4 / its wall time. ``layers``: per layer kind (e.g.
``Conv2d k3``, ``ConvTranspose2d k2s2``, ``Linear``), the summed fast and native-digital time of
that kind's layers on their recorded inputs and the ratio (the breakdown shows which kinds stay
above 1.5x). ``digital_page_faults`` / ``fast_page_faults``: median minor page faults per forward (memory
that glibc returns to the OS and torch maps again on the next call: ~0.5-1 us each here; they make
the digital forward noisy, the fast engine keeps its DAC scratch and has ~0).
"""
from __future__ import annotations

import platform as _pyplatform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from analogmed.latency.timing import time_call, torch_threads

DRIFT_TIMES_S = (60.0, 3600.0, 86400.0, 30 * 86400.0)
MODELS = ("monai-unet-2d", "candidate-2d", "candidate-3d", "unetr-3d")


def monai_unet() -> nn.Module:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64, 128), strides=(2, 2, 2))


def build_bench_model(name: str, batch: int, size: int, size3: int) -> tuple[str, nn.Module, torch.Tensor]:
    """(description, digital model in eval mode, input) of one benchmark model."""
    g = torch.Generator().manual_seed(0)
    if name == "monai-unet-2d":
        return "MONAI UNet (16,32,64,128)", monai_unet().eval(), torch.randn(batch, 1, size, size, generator=g)
    if name in ("candidate-2d", "candidate-3d"):
        from analogmed.space.architecture import sample_architecture
        from analogmed.space.builder import build_candidate

        d = 2 if name.endswith("2d") else 3
        arch = sample_architecture(seed=0, spatial_dims=d)
        shape = (batch, 1, size, size) if d == 2 else (1, 1, size3, size3, size3)
        label = getattr(arch, "label", None) or getattr(arch, "id", "")
        return f"space candidate {label} (seed 0)", build_candidate(arch).eval(), torch.randn(*shape, generator=g)
    if name == "unetr-3d":
        from analogmed.models import build_model

        spec = {"family": "zoo", "name": "unetr", "size": "small", "spatial_dims": 3, "in_channels": 1,
                "out_channels": 2, "img_size": [size3] * 3}
        return "MONAI UNETR (small)", build_model(spec).eval(), torch.randn(1, 1, size3, size3, size3, generator=g)
    raise ValueError(f"unknown bench model {name!r}; choose from {', '.join(MODELS)}")


def _kind(layer) -> str:
    k = getattr(layer, "kernel_size", None)
    base = type(layer).__name__.replace("Analog", "").replace("Torch", "")
    if k is None:
        return base
    ks = "x".join(map(str, k)) if len(set(k)) > 1 else str(k[0])
    st = getattr(layer, "stride", (1,))
    return f"{base} k{ks}" + (f"s{st[0]}" if max(st) > 1 else "")


def _digital_op(layer, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The native digital op with the layer's shapes (random weights): what the digital layer costs."""
    from analogmed.analog.layers import _AnalogConvTransposeNd

    if isinstance(layer, _AnalogConvTransposeNd):
        w = torch.randn(layer.in_channels, layer.out_channels, *layer.kernel_size)
        b = torch.randn(layer.out_channels)
        op = {2: F.conv_transpose2d, 3: F.conv_transpose3d}[layer.SPATIAL_DIMS]
        return lambda: op(x, w, b, layer.stride, layer.padding, layer.output_padding, 1, layer.dilation)
    if hasattr(layer, "kernel_size"):
        w = torch.randn(layer.out_channels, layer.in_channels, *layer.kernel_size)
        b = torch.randn(layer.out_channels)
        op = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(layer.kernel_size)]
        return lambda: op(x, w, b, layer.stride, layer.padding, layer.dilation)
    w = torch.randn(layer.out_features, layer.in_features)
    b = torch.randn(layer.out_features)
    return lambda: F.linear(x, w, b)


@torch.no_grad()
def layer_breakdown(am: nn.Module, x: torch.Tensor, repeats: int = 3) -> list[dict]:
    """Per layer kind: summed fast-engine and native digital time (ms) on the recorded inputs."""
    from aihwkit.nn.modules.base import AnalogLayerBase

    from analogmed.analog.fast import fast_engine

    layers = [(n, m) for n, m in am.named_modules() if isinstance(m, AnalogLayerBase) and hasattr(m, "analog_module")]
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: inputs.setdefault(n, args[0])) for n, m in layers]
    try:
        with fast_engine(am, quiet=True):
            am(x)
    finally:
        for h in hooks:
            h.remove()
    kinds: dict[str, dict] = {}
    with fast_engine(am, quiet=True):
        for n, m in layers:
            if n not in inputs:
                continue
            xi = inputs[n]
            fast = time_call(lambda: m(xi), warmup=1, repeats=repeats).median_ms
            dig = time_call(_digital_op(m, xi), warmup=1, repeats=repeats).median_ms
            k = kinds.setdefault(_kind(m), {"kind": _kind(m), "layers": 0, "fast_ms": 0.0, "digital_ms": 0.0})
            k["layers"] += 1
            k["fast_ms"] += fast
            k["digital_ms"] += dig
    out = sorted(kinds.values(), key=lambda r: -r["fast_ms"])
    for r in out:
        r["ratio"] = r["fast_ms"] / r["digital_ms"] if r["digital_ms"] > 0 else float("nan")
    return out


def _minflt() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@torch.no_grad()
def _paired(fns: list[Callable[[], object]], repeats: int, warmup: int = 2,
            faults: list[list[int]] | None = None) -> list[list[float]]:
    """Time the calls of ``fns`` interleaved (f0, f1, f0, f1, ...; ``warmup`` untimed rounds first):
    ``repeats`` times (ms) per function. Adjacent calls see the same machine load, so the ratio of the
    i-th times of two functions is robust on a shared, noisy machine. ``faults``: one list per function
    that receives each call's minor page faults (fresh memory the allocator maps: a noisy, real cost)."""
    for _ in range(warmup):
        for f in fns:
            f()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, f in enumerate(fns):
            p0 = _minflt()
            t0 = time.perf_counter()
            f()
            out[k].append((time.perf_counter() - t0) * 1e3)
            if faults is not None:
                faults[k].append(_minflt() - p0)
    return out


def _drift_rep(am, x, engine: str) -> float:
    """Wall time (s) of one drift-study repetition: program + 4 x (drift + forward)."""
    from analogmed.analog import drift, program
    from analogmed.analog.fast import fast_engine

    with torch.no_grad():
        t0 = time.perf_counter()
        program(am, 1)
        for t in DRIFT_TIMES_S:
            drift(am, t, 1)
            if engine == "fast":
                with fast_engine(am, quiet=True):
                    am(x)
            else:
                am(x)
        return time.perf_counter() - t0


def run_bench(threads: int = 1, batch: int = 8, size: int = 128, size3: int = 32, repeats: int = 5,
              rounds: int = 3, preset: str = "pcm", drift_rep: bool = True, breakdown: bool = True,
              models: tuple[str, ...] = MODELS, progress: bool = True) -> dict:
    """Run the benchmark; returns a JSON-able dict (``rows``: one per model, plus the settings)."""
    from analogmed.analog import drift, load_preset, program, to_analog
    from analogmed.analog.fast import fast_engine
    from analogmed.analog.fast_kernel import kernel_status

    pr = load_preset(preset)
    rows = []
    with torch_threads(threads):
        for name in models:
            torch.manual_seed(0)
            desc, dm, x = build_bench_model(name, batch, size, size3)
            am = to_analog(dm, pr).eval()
            program(am, 0)
            drift(am, 86400.0, 0)
            dig, aih, fst, pairs, apairs, best_d, best_f = [], [], [], [], [], [], []
            flt: list[list[int]] = [[], []]  # minor page faults per call: digital, fast
            for _ in tqdm(range(rounds), desc=name, disable=None if progress else True):
                aih_d = _paired([lambda: dm(x), lambda: am(x)], repeats)
                with fast_engine(am, quiet=True):
                    fst_d = _paired([lambda: dm(x), lambda: am(x)], repeats, faults=flt)
                dig.append(statistics.median(fst_d[0] + aih_d[0]))
                aih.append(statistics.median(aih_d[1]))
                fst.append(statistics.median(fst_d[1]))
                pairs += [f / d for d, f in zip(*fst_d)]
                best_d.append(min(fst_d[0] + aih_d[0]))
                best_f.append(min(fst_d[1]))
                apairs += [a / d for d, a in zip(*aih_d)]
            row = {"model": name, "description": desc, "input": list(x.shape),
                   "digital_ms": statistics.median(dig), "aihwkit_ms": statistics.median(aih),
                   "fast_ms": statistics.median(fst),
                   "ratio": statistics.median(pairs), "aihwkit_ratio": statistics.median(apairs),
                   "ratio_best": min(best_f) / min(best_d), "pair_ratios": pairs,
                   "digital_rounds_ms": dig, "aihwkit_rounds_ms": aih, "fast_rounds_ms": fst,
                   "digital_page_faults": statistics.median(flt[0]), "fast_page_faults": statistics.median(flt[1])}
            if drift_rep:
                rep_a, rep_f = [], []
                for _ in range(max(1, min(rounds, 3))):
                    rep_a.append(_drift_rep(am, x, "aihwkit"))
                    rep_f.append(_drift_rep(am, x, "fast"))
                row["drift_rep_aihwkit_s"] = statistics.median(rep_a)
                row["drift_rep_fast_s"] = statistics.median(rep_f)
                row["evals_per_s_aihwkit"] = len(DRIFT_TIMES_S) / row["drift_rep_aihwkit_s"]
                row["evals_per_s_fast"] = len(DRIFT_TIMES_S) / row["drift_rep_fast_s"]
                row["evals_speedup"] = statistics.median(a / f for a, f in zip(rep_a, rep_f))
            if breakdown:
                row["layers"] = layer_breakdown(am, x, repeats=max(1, min(repeats, 3)))
            rows.append(row)
    return {"rows": rows, "threads": threads, "repeats": repeats, "rounds": rounds, "preset": pr.name,
            "output_pass": kernel_status(), "torch": torch.__version__,
            "cpu": _pyplatform.processor() or _pyplatform.machine(),
            "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}


def format_bench(res: dict) -> str:
    """A plain-text table of :func:`run_bench`'s result (+ layer kinds above 1.5x)."""
    nan = float("nan")
    lines = [f"{res['threads']} thread(s), {res['rounds']} rounds x {res['repeats']} repeats (medians), "
             f"preset {res['preset']}, fast output pass: {res['output_pass']}",
             f"{'model':14s} {'input':>14s} {'digital ms':>10s} {'aihwkit ms':>10s} {'fast ms':>8s} "
             f"{'aihwkit/dig':>11s} {'fast/dig':>8s} {'best':>5s} {'evals/s aihwkit':>15s} {'evals/s fast':>12s} "
             f"{'speedup':>7s} {'faults dig/fast':>15s}"]
    for r in res["rows"]:
        ev = (f"{r['evals_per_s_aihwkit']:15.2f} {r['evals_per_s_fast']:12.2f} {r['evals_speedup']:7.2f}"
              if "evals_per_s_fast" in r else f"{'-':>15s} {'-':>12s} {'-':>7s}")
        lines.append(f"{r['model']:14s} {'x'.join(map(str, r['input'])):>14s} {r['digital_ms']:10.1f} "
                     f"{r['aihwkit_ms']:10.1f} {r['fast_ms']:8.1f} {r['aihwkit_ratio']:11.2f} {r['ratio']:8.2f} "
                     f"{r.get('ratio_best', float('nan')):5.2f} {ev} "
                     f"{r.get('digital_page_faults', nan):>7.0f}/{r.get('fast_page_faults', nan):<7.0f}")
    for r in res["rows"]:
        slow = [k for k in r.get("layers", []) if k["ratio"] > 1.5]
        if slow:
            lines.append(f"{r['model']}: layer kinds above 1.5x digital (fast ms / digital ms, layers):")
            for k in slow:
                lines.append(f"  {k['kind']:24s} {k['fast_ms']:8.2f} / {k['digital_ms']:7.2f} = {k['ratio']:5.2f}x "
                             f"({k['layers']} layers)")
    return "\n".join(lines)
