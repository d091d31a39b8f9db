"""Drift-study throughput of the demo network, aihwkit vs the fast engine (issue #11), one process.

The demo's drift study (C16-E32-C64 on mni152-tissue, ``pcm``, 25 instances x 8 times) through three
paths, run instance by instance in turn so that all of them see the same machine load:
``aihwkit`` (aihwkit's program, drift and forward), ``fast`` (fast forward, aihwkit's per-tile program /
drift) and ``fast+flat`` (fast forward + FlatNoise, the default of drift studies).

    python scripts/engine_drift_speed.py [--instances 25]

Prints wall seconds, evaluations/s, the 1-day mean +- std and the speed-ups against aihwkit. Uses (or
trains, ~25 s) the demo checkpoint of ``analogmed demo``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    import analogmed.evaluate.robustness as rb
    from analogmed.demo import run_demo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=25)
    a = ap.parse_args()
    torch.set_num_threads(1)
    res = run_demo(progress=False)
    from analogmed.data import get_task
    from analogmed.demo import demo_config

    _, task_kw, _ = demo_config()
    task = get_task(**task_kw)
    am = rb.prepare_analog(res.checkpoint.model, task, "pcm", seed=0)
    times = rb.DEFAULT_TIMES_S
    paths = {"aihwkit": ("aihwkit", False), "fast": ("fast", False), "fast+flat": ("fast", True)}
    wall = {k: [] for k in paths}
    day = {k: [] for k in paths}
    for eng, flat in paths.values():  # warm-up (kernel build, caches)
        rb.FLAT_NOISE_IN_STUDIES = flat
        rb.evaluate_instance(am, task, times[:1], 0, 0, engine=eng)
    for r in range(a.instances):
        for k, (eng, flat) in paths.items():
            rb.FLAT_NOISE_IN_STUDIES = flat
            t0 = time.perf_counter()
            rows = rb.evaluate_instance(am, task, times, r, 0, engine=eng)
            wall[k].append(time.perf_counter() - t0)
            day[k].append(next(x["score"] for x in rows if x["t_inference_s"] == rb.DAY))
    rb.FLAT_NOISE_IN_STUDIES = True
    n = a.instances * len(times)
    for k in paths:
        tot = sum(wall[k])
        print(f"{k:10s} {tot:7.2f} s  {n / tot:6.2f} evaluations/s  1-day {statistics.mean(day[k]):.3f} "
              f"+- {statistics.stdev(day[k]):.3f}")
    for k in ("fast", "fast+flat"):
        print(f"speed-up {k} vs aihwkit: {sum(wall['aihwkit']) / sum(wall[k]):.2f}x (median of per-instance "
              f"ratios {statistics.median(x / y for x, y in zip(wall['aihwkit'], wall[k])):.2f}x)")


if __name__ == "__main__":
    main()
