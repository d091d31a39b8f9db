"""FlatNoise vs aihwkit's per-tile program/drift, end to end over independent candidates (issue #11).

Both paths use the fast forward; only the hardware instances come from different generators. Every
candidate gets its own study seed (``derive_seed(BASE, "e2e", arch.id)``), so the candidate-level
differences are independent and a paired test over candidates is valid (with one seed for all candidates,
repetition r of every candidate shares its random draws and such a test overstates significance).

    python scripts/engine_flatnoise_check.py SUPERNET.pt --candidates 172 --instances 10 --out e2e.csv

SUPERNET.pt: the 2-D benchmark's supernet checkpoint (``analogmed supernet train`` / the nasbench cache).
Prints per t (1 s, 1 d, 30 d): mean scores, the mean paired difference (FlatNoise - aihwkit), its
standard error, the paired t-test and Wilcoxon p-values. Takes ~4-7 s per candidate at 10 instances.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from scipy import stats


def main() -> None:
    import analogmed.evaluate.robustness as rb
    from analogmed.data import get_task
    from analogmed.nasbench import load
    from analogmed.seeding import derive_seed
    from analogmed.space.architecture import Architecture
    from analogmed.train.supernet import load_supernet, recalibrate_bn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("supernet")
    ap.add_argument("--candidates", type=int, default=60)
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--sample-seed", type=int, default=7, help="which candidates of the aihwkit benchmark")
    ap.add_argument("--seed-base", type=int, default=12345)
    ap.add_argument("--out", default="flatnoise-check.csv")
    a = ap.parse_args()
    torch.set_num_threads(1)
    times = (1.0, rb.DAY, rb.MONTH)
    sn = load_supernet(a.supernet)
    task = get_task(name="mni152-tissue", spatial_dims=2, size=64, seed=0)
    labels = load("nasbench-mni152-2d-aihwkit").table()["label"].drop_duplicates()
    labels = labels.sample(a.candidates, random_state=a.sample_seed).tolist()
    rows, t0 = [], time.time()
    for ci, lab in enumerate(labels):
        arch = Architecture.from_label(lab, spatial_dims=2, in_channels=1, out_channels=3)
        model = recalibrate_bn(sn.supernet.subnet(arch), task, 8)
        seed = derive_seed(a.seed_base, "e2e", arch.id)
        for flat in (False, True):
            rb.FLAT_NOISE_IN_STUDIES = flat
            amodel = rb.prepare_analog(model, task, "pcm", seed=seed)
            for r in range(a.instances):
                for row in rb.evaluate_instance(amodel, task, times, r, seed, "val", 8, "fast"):
                    rows.append({"label": lab, "flat": flat, "t": row["t_inference_s"], "rep": r,
                                 "score": row["score"]})
        print(f"{ci + 1}/{len(labels)} {lab} {time.time() - t0:.0f} s", flush=True)
        pd.DataFrame(rows).to_csv(a.out, index=False)
    rb.FLAT_NOISE_IN_STUDIES = True
    df = pd.DataFrame(rows)
    for t in times:
        m = df[df.t == t].groupby(["label", "flat"]).score.mean().unstack()
        d = m[True] - m[False]
        print(f"t={t:.0f} s: aihwkit {m[False].mean():.4f} FlatNoise {m[True].mean():.4f} diff {d.mean():+.4f} "
              f"(se {d.std() / np.sqrt(len(d)):.4f}) paired t p={stats.ttest_rel(m[True], m[False]).pvalue:.3f} "
              f"Wilcoxon p={stats.wilcoxon(d).pvalue:.3f}")


if __name__ == "__main__":
    main()
