"""The search-space candidates' max-pool before and after the fast inference path, in one process.

For ``candidate-2d`` and ``candidate-3d`` of ``analogmed bench`` (the same models and inputs), times
interleaved, 1 thread: the digital forward with torch's max-pool (``nn.MaxPool2d/3d``, as before
2026-11-26), the digital forward with :func:`analogmed.space.blocks.max_pool_k2s2` (the default now) and the
fast analog forward (pcm, programmed and drifted to 1 day). Prints medians and the median ratios of
adjacent calls (fast / digital against each digital baseline).

    python scripts/bench_pool.py [--repeats 40]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    from torch import nn

    from analogmed.analog import drift, load_preset, program, to_analog
    from analogmed.analog.fast import FastEngine
    from analogmed.latency.bench import build_bench_model
    from analogmed.space.blocks import _PoolK2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--models", default="candidate-2d,candidate-3d")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for name in a.models.split(","):
        _, model, x = build_bench_model(name, 8, 128, 32)
        am = to_analog(model, load_preset("pcm")).eval()
        program(am, 0)
        drift(am, 86_400.0, 0)
        FastEngine(am, quiet=True)
        pools = [m for m in model.modules() if isinstance(m, _PoolK2)]

        def torch_pool(on: bool) -> None:
            for p in pools:  # the instance attribute shadows the class's fast forward
                if on:
                    base = nn.MaxPool3d if isinstance(p, nn.MaxPool3d) else nn.MaxPool2d
                    p.forward = base.forward.__get__(p)
                else:
                    p.__dict__.pop("forward", None)

        def dig_old():
            torch_pool(True)
            try:
                model(x)
            finally:
                torch_pool(False)

        fns = {"digital, torch max-pool": dig_old, "digital, fast pool": lambda: model(x), "analog fast": lambda: am(x)}
        times = {k: [] for k in fns}
        with torch.no_grad():
            for i in range(a.repeats + 3):
                for k, f in fns.items():
                    t0 = time.perf_counter()
                    f()
                    if i >= 3:
                        times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        r_old = statistics.median(f / d for f, d in zip(times["analog fast"], times["digital, torch max-pool"]))
        r_new = statistics.median(f / d for f, d in zip(times["analog fast"], times["digital, fast pool"]))
        print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()))
        gain = statistics.median(o / n for o, n in zip(times["digital, torch max-pool"], times["digital, fast pool"]))
        print(f"  fast/digital: {r_old:.2f} against torch's max-pool, {r_new:.2f} against the fast pool; "
              f"digital speed-up from the pool {gain:.2f}x")


if __name__ == "__main__":
    main()
