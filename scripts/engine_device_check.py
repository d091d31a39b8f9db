"""The fast engine against aihwkit on one device (issue #11's CUDA item), in one command.

On a GPU the fast engine runs its plain-torch path (no C kernel); this script checks that path there the
way the CPU tests check it here, and times it:

1. noise off (``pcm`` with ``out_noise = 0``, tiles of 100 rows x 24 columns, so every layer is split): for
   every converted layer type, fast and aihwkit outputs of the same programmed and drifted instance differ
   by at most one ADC step, on at most 1e-4 of the elements;
2. noise on (``pcm``, 1 day, one instance read ``--reads`` times per engine): the output-error std and mean
   |error| of the two engines agree within 3 %;
3. forward times (``analogmed bench``'s models, the device synchronised around each call): digital, aihwkit,
   fast, and fast / digital.

    python scripts/engine_device_check.py --device cuda [--json out.json]

Exit code 1 when a check fails. ``--device cpu`` runs the same checks on the CPU (plain-torch path too:
``ANALOGMED_NO_KERNEL=1`` is set, so the C kernel is not used).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["ANALOGMED_NO_KERNEL"] = "1"  # the device path: plain torch ops, on every device

import torch  # noqa: E402
from torch import nn  # noqa: E402

DAY = 86400.0

#: (name, digital layer, input shape): every layer type we convert
LAYERS = [
    ("linear", lambda: nn.Linear(150, 40), (6, 30, 150)),
    ("conv1d", lambda: nn.Conv1d(20, 30, 3, padding=1), (4, 20, 40)),
    ("conv2d", lambda: nn.Conv2d(20, 30, 3, padding=1), (4, 20, 12, 12)),
    ("conv2d-dilated", lambda: nn.Conv2d(13, 30, 3, stride=2, dilation=2, padding=2), (4, 13, 16, 16)),
    ("conv3d", lambda: nn.Conv3d(13, 30, 3, padding=1), (2, 13, 8, 8, 8)),
    ("convT2d-k2s2", lambda: nn.ConvTranspose2d(150, 7, 2, 2), (4, 150, 8, 8)),
    ("convT2d-k3s2", lambda: nn.ConvTranspose2d(30, 7, 3, 2, padding=1, output_padding=1), (4, 30, 8, 8)),
    ("convT3d", lambda: nn.ConvTranspose3d(150, 7, 2, 2), (2, 150, 4, 4, 4)),
]


def _preset(folder: Path, name: str, subs: dict[str, str]) -> str:
    """A copy of hardware/pcm.toml with some ``key = value`` lines replaced."""
    from analogmed.paths import data_dir

    lines = []
    for line in (data_dir("hardware") / "pcm.toml").read_text().splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {subs[key]}" if key in subs and "=" in line else line)
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _analog(layer: nn.Module, preset: str, device: torch.device, seed: int) -> nn.Module:
    from analogmed.analog import drift, program, to_analog

    a = to_analog(nn.Sequential(layer).eval(), preset).eval()
    for tile in a.analog_tiles():
        if tile.input_range is not None:
            tile.input_range.data[:] = 2.0
    a = a.to(device)
    program(a, seed)
    drift(a, DAY, seed + 1)
    return a


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_noise_off(device: torch.device, folder: Path) -> list[dict]:
    """Fast vs aihwkit with output noise off, per layer type, as ``tests/test_fast_engine.py`` checks it on the
    CPU: the largest difference in ADC steps (one step = ``out_step`` x the largest folded scale x the number
    of input tiles) and the fraction of elements that differ at all."""
    from analogmed.analog.fast import _fold, fast_engine

    preset = _preset(folder, "quiet", {"out_noise": "0.0", "tile_rows": "100", "tile_cols": "24"})
    rows = []
    for name, make, shape in LAYERS:
        torch.manual_seed(0)
        a = _analog(make(), preset, device, 1)
        x = torch.randn(*shape, device=device)
        with torch.no_grad():
            ref = a(x)
            with fast_engine(a, quiet=True) as eng:
                got = a(x)
        fo = _fold(a[0])
        lsb = fo.out_step * max(float(t.scale.abs().max()) for t in fo.tiles) * len(fo.tiles)
        diff = (got - ref).abs()
        frac = float((diff > 1e-4 * lsb).double().mean())
        rows.append({"layer": name, "tiles": sum(1 for _ in a.analog_tiles()), "fallback": dict(eng.notes),
                     "max_diff_adc_steps": float(diff.max()) / lsb, "frac_differing": frac,
                     "ok": not eng.notes and float(diff.max()) <= lsb + 1e-5 and frac <= 1e-4})
    return rows


def check_noise_on(device: torch.device, reads: int) -> dict:
    """One ``pcm`` instance at 1 day, read ``reads`` times per engine: std and mean |.| of the output error
    against the digital layer (the instance's weight error is shared; the output noise is each engine's)."""
    import copy

    from analogmed.analog.fast import fast_engine

    torch.manual_seed(0)
    digital = nn.Sequential(nn.Linear(64, 32)).eval()
    a = _analog(copy.deepcopy(digital[0]), "pcm", device, 7)
    digital = digital.to(device)
    x = torch.randn(64, 64, device=device)
    errs: dict[str, list] = {"aihwkit": [], "fast": []}
    with torch.no_grad():
        ref = digital(x)
        for _ in range(reads):
            errs["aihwkit"].append(a(x) - ref)
            with fast_engine(a, quiet=True):
                errs["fast"].append(a(x) - ref)
    out: dict = {}
    for k, v in errs.items():
        e = torch.stack(v).flatten().double()
        out[k] = {"std": float(e.std()), "mean_abs": float(e.abs().mean())}
    out["std_ratio"] = out["fast"]["std"] / out["aihwkit"]["std"]
    out["mean_abs_ratio"] = out["fast"]["mean_abs"] / out["aihwkit"]["mean_abs"]
    out["ok"] = abs(out["std_ratio"] - 1) <= 0.03 and abs(out["mean_abs_ratio"] - 1) <= 0.03
    return out


def _time(fn, device: torch.device, repeats: int) -> float:
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def time_models(device: torch.device, repeats: int) -> list[dict]:
    """``analogmed bench``'s models on ``device``: digital, aihwkit and fast forward (ms), fast / digital."""
    from analogmed.analog import drift, load_preset, program, to_analog
    from analogmed.analog.fast import fast_engine
    from analogmed.latency.bench import MODELS, build_bench_model

    rows = []
    for name in MODELS:
        desc, dm, x = build_bench_model(name, 8, 128, 32)
        am = to_analog(dm, load_preset("pcm")).eval().to(device)
        program(am, 0)
        drift(am, DAY, 0)
        dm, x = dm.to(device), x.to(device)
        with torch.no_grad():
            dig = _time(lambda: dm(x), device, repeats)
            aih = _time(lambda: am(x), device, repeats)
            with fast_engine(am, quiet=True):
                fast = _time(lambda: am(x), device, repeats)
        rows.append({"model": name, "description": desc, "digital_ms": dig, "aihwkit_ms": aih, "fast_ms": fast,
                     "ratio": fast / dig, "aihwkit_ratio": aih / dig})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reads", type=int, default=200, help="noise-on reads of one instance per engine")
    ap.add_argument("--repeats", type=int, default=10, help="timed forwards per model (median)")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: this torch ({torch.__version__}) has no CUDA device; "
              "use --device cpu or a CUDA build of torch", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        res = {"device": str(device), "torch": torch.__version__,
               "noise_off": check_noise_off(device, Path(tmp)), "noise_on": check_noise_on(device, args.reads)}
    if not args.no_timing:
        res["timing"] = time_models(device, args.repeats)
    for r in res["noise_off"]:
        print(f"noise off {r['layer']:15s} tiles {r['tiles']:3d}  max |fast - aihwkit| "
              f"{r['max_diff_adc_steps']:.3f} ADC steps, differing {r['frac_differing']:.1e}  "
              f"{'ok' if r['ok'] else 'FAIL'}")
    n = res["noise_on"]
    print(f"noise on (pcm, 1 d, {args.reads} reads of one instance): error std fast/aihwkit {n['std_ratio']:.4f}, "
          f"mean |error| {n['mean_abs_ratio']:.4f}  {'ok' if n['ok'] else 'FAIL'}")
    for r in res.get("timing", []):
        print(f"{r['model']:14s} digital {r['digital_ms']:8.2f} ms  aihwkit {r['aihwkit_ms']:8.2f} ms  "
              f"fast {r['fast_ms']:8.2f} ms  fast/digital {r['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    ok = all(r["ok"] for r in res["noise_off"]) and n["ok"] and all(math.isfinite(r["ratio"])
                                                                     for r in res.get("timing", []))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
