"""Benchmark of hardware-aware training (docs/hwa.md): plain vs HWA, drop of the 1-day Dice on a preset.

Usage (from the repository root, 1 CPU thread)::

    python scripts/hwa_bench.py --nets arch:C16-E32-C64 --variants recipe,old --out hwa-levers.csv
    python scripts/hwa_bench.py --nets random2d:10 --variants recipe --out hwa-random.csv
    python scripts/hwa_bench.py --nets random2d:10 --baseline budget --variants budget+recipe --out conv.csv

``--nets``: comma list of ``zoo:<name>`` (small size), ``arch:<label>``, ``random2d:<n>`` / ``random3d:<n>``
(search-space candidates ``sample_architecture(seed=1000..1000+n-1)``). ``--variants``: names of
:data:`VARIANTS` (overrides of the preset's ``[training]`` table; ``budget``, ``budget-last``: noise-free
controls) or ``budget+<variant>`` (that variant's HWA fine-tuning the ``budget`` control's checkpoint, i.e.
the plain network trained on noise-free for 40 more epochs). ``--baseline budget`` compares with that
converged network (plain_* columns, drop, reduction) instead of the plain one. One CSV row per (network,
variant, baseline) is appended as soon as it is done (columns aligned by name); rows already in the CSV are
skipped (resumable). Digital, budget and HWA checkpoints are cached under ``--cache``.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import torch

#: pcm's [training] schedule until 2026-11-26 (40 epochs, analog selection by 3 instances every epochs / 4):
#: pinned in the variants measured with it, so they (and their cached checkpoints' keys) keep their meaning
_PRE26 = {"epochs": 40, "select_instances": 3, "select_every": 0}

#: the 3D knobs at their values before the 3D work (the old "recipe"), with that schedule
_R13 = {**_PRE26, "noise_time_min_s": 0.0, "noise_compensation": "weights", "range_init": "data",
        "range_headroom": 0.0}

#: lever name -> overrides of the inference preset's [training] table ("recipe" = the preset's own)
VARIANTS: dict[str, dict] = {
    "recipe": {},
    # the recipe before issue #13 (pcm.toml [training] until then)
    "old": {**_R13,
            "weight_noise_type": "add_normal", "weight_noise": 0.06, "clip_type": "fixed_value",
            "clip_fixed_value": 1.0, "remap": "channelwise", "learn_input_range": True, "input_range_init": 3.0,
            "input_range_init_from_data": 10, "input_range_init_std_alpha": 3.0, "input_range_decay": 0.001,
            "input_min_percentage": 0.95, "ranges": "learned", "start": "finetune", "epochs": 20,
            "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "cosine", "warmup_epochs": 0,
            "batchnorm": "train", "select": "training"},
}


def _old(**kw) -> dict:
    return {**VARIANTS["old"], **kw}


VARIANTS.update({
    "old-calibrated": _old(ranges="calibrated"),
    "old-ranges-init50": _old(input_range_init_from_data=50, input_range_decay=0.01, input_min_percentage=0.995),
    "old-noise0.03": _old(weight_noise=0.03),
    "old-noise0.10": _old(weight_noise=0.10),
    "old-noise0.15": _old(weight_noise=0.15),
    "old-mult0.10": _old(weight_noise_type="mult_normal", weight_noise=0.10),
    "old-layerwise": _old(remap="layerwise", clip_type="layer_gaussian", clip_sigma=2.0, clip_fixed_value=-1.0),
    "old-lr3e-4": _old(lr=3e-4),
    "old-lr3e-3": _old(lr=3e-3),
    "old-ep40": _old(epochs=40),
    "old-warmup": _old(warmup_epochs=2),
    "old-bnfreeze": _old(batchnorm="freeze"),
    "old-select-analog": _old(select="analog"),
    "old-scratch": _old(start="scratch", epochs=60, lr=3e-3),
    "preset": _old(weight_noise_type="preset"),
    "preset-30d": _old(weight_noise_type="preset", noise_time_s=2_592_000.0),
    "preset-calibrated": _old(weight_noise_type="preset", ranges="calibrated"),
    "preset-select-analog": _old(weight_noise_type="preset", select="analog"),
    "preset-bnfreeze": _old(weight_noise_type="preset", batchnorm="freeze"),
    "preset-layerwise": _old(weight_noise_type="preset", remap="layerwise", clip_type="layer_gaussian",
                             clip_sigma=2.0, clip_fixed_value=-1.0),
    "preset-ep40": _old(weight_noise_type="preset", epochs=40),
    "preset-lr3e-4": _old(weight_noise_type="preset", lr=3e-4),
    "preset-warmup": _old(weight_noise_type="preset", warmup_epochs=2),
    "combo": _old(weight_noise_type="preset", noise_time_s=2_592_000.0, batchnorm="freeze"),
    "combo-select-analog": _old(weight_noise_type="preset", noise_time_s=2_592_000.0, batchnorm="freeze",
                                select="analog"),
    "combo40": _old(weight_noise_type="preset", noise_time_s=2_592_000.0, batchnorm="freeze", epochs=40),
    "combo80": _old(weight_noise_type="preset", noise_time_s=2_592_000.0, batchnorm="freeze", epochs=80),
    "combo40-lr3e-3": _old(weight_noise_type="preset", noise_time_s=2_592_000.0, batchnorm="freeze", epochs=40,
                           lr=3e-3),
    "combo40-select-analog": _old(weight_noise_type="preset", noise_time_s=2_592_000.0, batchnorm="freeze",
                                  epochs=40, select="analog"),
    "preset-scratch": _old(weight_noise_type="preset", start="scratch", epochs=60, lr=3e-3),
    # the pcm recipe from a fresh init for digital + HWA epochs (80 = 40 + 40); BatchNorm statistics are
    # trained (there are no digital statistics to freeze)
    "scratch": {"start": "scratch", "epochs": 80, "batchnorm": "train"},
    # budget control (not HWA): continue the plain checkpoint with the recipe's epochs / lr / schedule /
    # weight decay and its checkpoint selection (analog 1-day score every select_every epochs), without any
    # noise: plain digital training (see budget_control)
    # stronger / longer schedules of the pcm recipe (for networks short of 50 %)
    "ep80": {"epochs": 80},
    "ep80-lr1e-3": {"epochs": 80, "lr": 1e-3},
    "noise1y": {"noise_time_s": 31_536_000.0},
    # the pcm recipe fine-tuning the budget control's checkpoint (digital 40 + 40 noise-free epochs) instead
    # of the plain one: HWA on a longer-trained network
    # 3D (docs/hwa.md "3D"). "recipe" is pcm's [training] table as it is now; the CSV rows named "recipe" in
    # docs/hwa-data/networks*.csv before the 3D work are "recipe13" (the knobs below at their old values)
    "recipe13": dict(_R13),
    # the training instances' drift compensation after the ADC as at inference ("output"), and/or one drift
    # time per training step drawn log-uniformly in [1 s, noise_time_s]
    "adcout": {**_R13, "noise_compensation": "output"},
    "tlog": {**_R13, "noise_time_min_s": 1.0},
    "adcout-tlog": {**_R13, "noise_compensation": "output", "noise_time_min_s": 1.0},
    # ... + learned ranges start from the inference ranges with ADC headroom (run with --preset pcm-headroom)
    "adcout-tlog-hr": {**_R13, "noise_compensation": "output", "noise_time_min_s": 1.0, "range_init": "inference"},
    # ... the same on pcm itself: the start ranges widened by the training table's range_headroom (= the
    # current pcm recipe)
    "adcout-tlog-rh": {**_PRE26, "noise_compensation": "output", "noise_time_min_s": 1.0, "range_init": "inference",
                       "range_headroom": 1.0},
    # ... + analog selection on the mean of 1 s and 1 d (3 instances each) / of 1 s, 1 d and 30 d
    "adcout-tlog-sel2": {**_R13, "noise_compensation": "output", "noise_time_min_s": 1.0,
                         "select_times_s": [1.0, 86400.0]},
    "adcout-tlog-sel3": {**_R13, "noise_compensation": "output", "noise_time_min_s": 1.0,
                         "select_times_s": [1.0, 86400.0, 2592000.0]},
    # levers for converged networks (docs/hwa.md "2D against converged baselines"; run as budget+<name>), on
    # the recipe of #13 (recipe13) as measured there
    "lr1e-3": {**_R13, "lr": 1e-3},
    "noise1d": {**_R13, "noise_time_s": 86_400.0},
    "sel6": {**_R13, "select_instances": 6, "select_every": 5},
    "ep80-sel6": {**_R13, "epochs": 80, "select_instances": 6, "select_every": 10},
    # the same on the pcm recipe with the 3D knobs on (since 2026-11-26 that recipe's own schedule: = "recipe")
    "now-ep80-sel6": {"epochs": 80, "select_instances": 6, "select_every": 10},
    # clip each layer's weights at clip_sigma * std after every step (aihwkit LAYER_GAUSSIAN, no cap), remap
    # channel-wise as before: fewer outlier weights set each column's conductance scale at inference
    "clip2.5": {**_R13, "clip_type": "layer_gaussian", "clip_sigma": 2.5, "clip_fixed_value": -1.0},
    "clip2.0": {**_R13, "clip_type": "layer_gaussian", "clip_sigma": 2.0, "clip_fixed_value": -1.0},
    # (the noise knobs do not act on noise-free training; at their #13 values the cached checkpoints' keys hold;
    # 40 noise-free epochs whatever the preset's schedule: "budget" is the plain 40 + 40 converged network)
    "budget": {**_R13},
    "budget-last": {**_R13, "select": "last"},
    # budget control of the 80-epoch HWA variants: the plain checkpoint continued noise-free for 80 epochs
    "budget-ep80": {**_R13, "epochs": 80},
})

#: variants that are noise-free digital continuations (budget controls), not hardware-aware training
BUDGET = {"budget", "budget-last", "budget-ep80"}
#: prefix of a variant that fine-tunes the budget control's checkpoint ("budget+<variant>": <variant>'s
#: HWA recipe on the digital 40 + 40 noise-free network instead of the plain 40-epoch one)
ON_BUDGET = "budget+"


def resolve_variant(name: str) -> tuple[str, dict]:
    """(kind, [training] overrides) of a variant name: kind "budget" (noise-free control, :data:`BUDGET`),
    "budget+" (``budget+<variant>``: <variant>'s recipe fine-tuning the ``budget`` checkpoint) or "hwa"
    (fine-tuning the plain checkpoint). Raises ValueError naming the known variants for an unknown name."""
    kind, base = ("budget+", name[len(ON_BUDGET):]) if name.startswith(ON_BUDGET) else ("hwa", name)
    if base not in VARIANTS or (kind == "budget+" and base in BUDGET):
        raise ValueError(f"unknown variant {name!r}: use one of {sorted(VARIANTS)} or budget+<one of the "
                         "non-budget ones>")
    return ("budget" if base in BUDGET else kind), VARIANTS[base]


def build_net(net: str, task):
    """(name, spec) of a network token."""
    kind, _, arg = net.partition(":")
    if kind == "zoo":
        from analogmed.models.zoo import zoo_spec
        return net, zoo_spec(arg, task.spatial_dims, task.in_channels, task.num_classes, task.image_size, "small")
    from analogmed.space.architecture import Architecture
    if kind == "arch":
        a = Architecture.from_label(arg, spatial_dims=task.spatial_dims, in_channels=task.in_channels,
                                    out_channels=task.num_classes)
    else:
        raise ValueError(net)
    return f"arch:{a.label}", {"family": "space", "arch": a.to_dict()}


def expand(nets: str, n_offset: int = 0) -> list[str]:
    out = []
    for tok in nets.split(","):
        kind, _, arg = tok.partition(":")
        if kind in ("random2d", "random3d"):
            from analogmed.space.architecture import sample_architecture
            dims = 2 if kind == "random2d" else 3
            for s in range(int(arg)):
                a = sample_architecture(seed=1000 + s, spatial_dims=dims, out_channels=3)
                out.append(f"arch:{a.label}")
        else:
            out.append(tok)
    return out


def budget_control(ck, task, preset, training: dict, seed: int):
    """Budget control: continue the digital checkpoint ``ck`` noise-free (plain AdamW on the digital network,
    BatchNorm statistics trained as in digital training) for the HWA recipe's ``epochs`` at its ``lr``,
    ``weight_decay`` and ``schedule``. With ``select = "analog"`` the kept epoch is chosen as the recipe's:
    best mean Dice of ``select_instances`` programmed instances of ``preset`` at ``select_time_s`` (val split,
    calibrated input ranges), every ``select_every`` epochs (0: epochs / 4); else the last epoch.
    Returns a :class:`Checkpoint` (recipe kind "digital", ``init_model_id`` = ``ck``)."""
    from analogmed.analog.hwa import analog_val_score
    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.seeding import derive_seed, seed_everything
    from analogmed.train import TrainConfig
    from analogmed.train.checkpoint import Checkpoint
    from analogmed.train.digital import fit

    analog = training["select"] == "analog"
    every = (training.get("select_every") or max(1, int(training["epochs"]) // 4)) if analog else 0
    cfg = TrainConfig(epochs=int(training["epochs"]), lr=float(training["lr"]),
                      weight_decay=float(training["weight_decay"]), schedule=training["schedule"], seed=seed,
                      device="cpu", progress=False, val_every=every)
    seed_everything(derive_seed(seed, "budget"))
    model = copy.deepcopy(ck.model).cpu()
    evaluate = None
    if analog:
        def evaluate(m):
            return {"score": analog_val_score(m, task, preset, training["select_instances"],
                                              training["select_time_s"], seed=seed)}
    record = fit(model, task, cfg, evaluate=evaluate)
    record["selected_by"] = training["select"]
    record["val"] = evaluate_model(model, task, "val")
    model.cpu()
    return Checkpoint(model=model, spec=dict(ck.spec), task_spec=dict(task.spec), seed=seed,
                      recipe={**cfg.recipe(), "init_model_id": ck.model_id, "budget_control": True},
                      metrics=record)


def robust(model, task, preset, repeats, seed):
    from analogmed.evaluate.robustness import DAY, MONTH, drift_study, summarize
    t0 = time.perf_counter()
    df = drift_study(model, task, preset, times_s=(1.0, DAY, MONTH), repeats=repeats, seed=seed, progress=False)
    s = summarize(df).iloc[0]
    return {"engine": str(df["engine"].iloc[0]) if "engine" in df else "aihwkit",
            "digital": s["digital_score"], "s1": s["score_1s"], "d1": s["score_1d_mean"],
            "d1_std": s["score_1d_std"], "d30": s["score_30d"], "avm": s["avm"], "eval_s": time.perf_counter() - t0}


def _append(out: Path, row: dict) -> None:
    """Append one row to the CSV ``out``, aligned by column name (the file is rewritten atomically)."""
    df = pd.DataFrame([row])
    if out.is_file():
        df = pd.concat([pd.read_csv(out), df], ignore_index=True)
    tmp = out.with_name(out.name + ".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(out)


#: [training] knobs added after checkpoints were cached, with the value that reproduces the older recipe:
#: left out of the cache keys at that value, so older cached checkpoints are still found
_NEW_KNOBS = {"noise_time_min_s": 0.0, "noise_compensation": "weights", "select_times_s": (), "range_init": "data",
              "range_headroom": 0.0}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()
                if not (k in _NEW_KNOBS and (v == _NEW_KNOBS[k] or (_NEW_KNOBS[k] == () and v == [])))}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _key(obj) -> str:
    return hashlib.sha1(json.dumps(_strip(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


def prime_study(study: Path, out: Path, cache: Path) -> None:
    """Copy this script's cached checkpoints into the checkpoint folder of a study run (``out``/checkpoints)
    under the study runner's own cache keys, where the study would train exactly the same thing: same spec,
    task, digital recipe and seed (and for ``hwa = true`` entries the same HWA TrainConfig and the preset's
    unmodified ``[training]`` table). Everything else the study trains itself."""
    import shutil

    from analogmed.analog.hwa import hwa_config
    from analogmed.analog.presets import load_preset
    from analogmed.data import get_task
    from analogmed.study.config import load_study
    from analogmed.study.runner import _hash, _spec_for
    from analogmed.train import TrainConfig

    cfg = load_study(study)
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    for task_kw in cfg.tasks:
        task = get_task(**task_kw)
        for entry in cfg.models:
            if entry.checkpoint:
                continue
            spec = _spec_for(entry, task)
            tcfg = TrainConfig(seed=cfg.seed, device="cpu", progress=False, val_every=0, **cfg.train.digital())
            skey = _hash({"spec": spec, "task": task.spec, "recipe": tcfg.recipe(), "seed": cfg.seed})
            bkey = _key([spec, task.spec, tcfg.recipe()])
            src, dst = cache / f"{bkey}.pt", ckdir / f"{skey}.pt"
            if entry.hwa:
                t = cfg.train
                preset = load_preset(t.hwa_preset)
                hcfg = TrainConfig(seed=cfg.seed, device="cpu", progress=False, epochs=t.hwa_epochs, lr=t.hwa_lr,
                                   weight_decay=t.weight_decay, batch_size=t.batch_size, augment=t.augment,
                                   val_every=max(1, t.hwa_epochs // 4))
                mine = hwa_config(preset, seed=cfg.seed, device="cpu", progress=False)
                if mine.recipe() != hcfg.recipe():
                    print(f"prime {entry.name}+hwa: study HWA config differs from the preset's recipe; not primed")
                    continue
                skey = _hash({"digital": skey, "hwa_recipe": hcfg.recipe(), "preset": t.hwa_preset,
                              "preset_spec": preset.to_dict()})
                src = cache / f"hwa-{_key([bkey, False, preset.spec.training.model_dump(), mine.recipe()])}.pt"
                dst = ckdir / f"{skey}.pt"
            if src.is_file() and not dst.exists():
                shutil.copyfile(src, dst)
            what = f"copied {src.name}" if dst.exists() else "not cached"
            print(f"prime {entry.name}: {what}")


def markdown_table(csvs: list[Path], variants: list[str] | None = None) -> str:
    """Markdown table of benchmark CSV rows (docs/hwa.md): plain vs HWA (or control) per (network, variant);
    "meets" = reduction >= 50 % and 1-day std and AVM no worse than plain. Rows with ``baseline = "budget"``
    compare with the converged (budget control) network instead of the plain one: "(vs budget)"."""
    d = pd.concat([pd.read_csv(f) for f in csvs], ignore_index=True)
    if variants:
        d = d[d["variant"].isin(variants)]
    out = ["| network | dims | variant | plain digital | plain 1 d ± std | plain AVM | HWA digital | HWA 1 d ± std "
           "| HWA AVM | drop plain → HWA | reduction | std ok | AVM ok | meets | digital / HWA / eval wall (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in d.iterrows():
        sok, aok = r.hwa_d1_std <= r.plain_d1_std, r.hwa_avm <= r.plain_avm
        meets = r.reduction >= 0.5 and sok and aok
        red = f"{r.reduction:+.0%}" if r.drop_plain > 0.02 else f"({r.reduction:+.0%})"
        base = r.get("baseline", "plain")
        variant = r.variant if not isinstance(base, str) or base == "plain" else f"{r.variant} (vs {base})"
        out.append(f"| {r.net} | {r.dims}D | {variant} | {r.plain_digital:.3f} | {r.plain_d1:.3f} ± "
                   f"{r.plain_d1_std:.3f} | {r.plain_avm:+.3f} | {r.hwa_digital:.3f} | {r.hwa_d1:.3f} ± "
                   f"{r.hwa_d1_std:.3f} | {r.hwa_avm:+.3f} | {r.drop_plain:.3f} → {r.drop_hwa:.3f} | {red} | "
                   f"{'yes' if sok else f'no ({r.hwa_d1_std - r.plain_d1_std:+.3f})'} | "
                   f"{'yes' if aok else f'no ({r.hwa_avm - r.plain_avm:+.3f})'} | {'**yes**' if meets else 'no'} | "
                   f"{r.train_s:.0f} / {r.hwa_s:.0f} / {r.plain_eval_s + r.hwa_eval_s:.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", default="")
    ap.add_argument("--variants", default="recipe")
    ap.add_argument("--preset", default="pcm", help="inference preset (its [training] table is overridden)")
    ap.add_argument("--eval-preset", default=None,
                    help="score plain and HWA networks on this preset instead (e.g. pcm-headroom); training, "
                         "its analog selection and the cache keys stay those of --preset")
    ap.add_argument("--dims", type=int, default=2)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=40, help="digital epochs")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hwa-epochs", type=int, default=None, help="override every variant's epochs")
    ap.add_argument("--baseline", choices=("plain", "budget"), default="plain",
                    help="reference network of the plain_* columns and the drop: the plain digital checkpoint "
                    "(--epochs), or the budget control's (plain + the recipe's epochs noise-free: converged)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hwa-exp/ckpt"))
    ap.add_argument("--prime-study", type=Path, default=None,
                    help="with --out DIR: copy cached checkpoints into study folder DIR (see prime_study) and exit")
    ap.add_argument("--table", default=None, help="comma list of CSVs: print their markdown table and exit")
    ap.add_argument("--table-variants", default=None, help="with --table: only these variants (comma list)")
    a = ap.parse_args()
    if a.table:
        print(markdown_table([Path(f) for f in a.table.split(",")],
                             a.table_variants.split(",") if a.table_variants else None))
        return
    torch.set_num_threads(1)
    if a.prime_study:
        prime_study(a.prime_study, a.out, a.cache)
        return
    from analogmed.analog.hwa import hwa_config, hwa_finetune
    from analogmed.analog.presets import Preset, PresetFile, load_preset
    from analogmed.data import get_task
    from analogmed.train import TrainConfig, load_checkpoint, save_checkpoint, train_model

    kw = {"spatial_dims": a.dims, "seed": a.seed}
    if a.size:
        kw["size"] = a.size
    task = get_task("mni152-tissue", **kw)
    base = load_preset(a.preset)
    evalp = load_preset(a.eval_preset) if a.eval_preset else base
    variants = a.variants.split(",")
    for v in variants:
        try:
            resolve_variant(v)
        except ValueError as exc:
            ap.error(str(exc))
    done = set()
    if a.out.is_file():
        old = pd.read_csv(a.out)
        bl = old["baseline"].fillna("plain") if "baseline" in old else ["plain"] * len(old)
        done = set(zip(old["net"], old["variant"], bl))
    a.cache.mkdir(parents=True, exist_ok=True)

    def recipe_of(overrides: dict):
        """(training table, preset with it, HWA TrainConfig) of the base preset with ``overrides``."""
        training = {**base.spec.training.model_dump(), **overrides}
        if a.hwa_epochs:
            training["epochs"] = a.hwa_epochs
        spec_v = PresetFile.model_validate({**base.spec.model_dump(mode="json"), "training": training})
        pv = Preset(name=base.name, path=base.path, spec=spec_v)
        return training, pv, hwa_config(pv, seed=a.seed, device="cpu", progress=False)

    for net in expand(a.nets):
        name, spec = build_net(net, task)
        todo = [v for v in variants if (name, v, a.baseline) not in done]
        if not todo:
            continue
        cfg = TrainConfig(epochs=a.epochs, lr=a.lr, seed=a.seed, device="cpu", progress=False, val_every=0)
        key = _key([spec, task.spec, cfg.recipe()])
        path = a.cache / f"{key}.pt"
        if path.is_file():
            ck = load_checkpoint(path)
            train_s = float(ck.metrics.get("train_time_s", float("nan")))
        else:
            ck = train_model(spec, task, cfg)
            save_checkpoint(path, ck)
            train_s = ck.metrics["train_time_s"]
        budget_ck = None
        if a.baseline == "budget" or any(resolve_variant(v)[0] == "budget+" for v in todo):
            # the budget control's checkpoint (plain 40 + 40 noise-free epochs): start of budget+<variant>,
            # and with --baseline budget the reference network
            btraining, _, bcfg = recipe_of(VARIANTS["budget"])
            bpath = a.cache / f"hwa-{_key([key, True, btraining, bcfg.recipe()])}.pt"
            if bpath.is_file():
                budget_ck = load_checkpoint(bpath)
            else:
                t0 = time.perf_counter()
                budget_ck = budget_control(ck, task, base, btraining, a.seed)
                budget_ck.metrics["bench_wall_s"] = time.perf_counter() - t0
                save_checkpoint(bpath, budget_ck)
        if a.baseline == "budget":
            plain = robust(budget_ck.model, task, evalp, a.repeats, a.seed)
            train_s += float(budget_ck.metrics.get("bench_wall_s", float("nan")))
        else:
            plain = robust(ck.model, task, evalp, a.repeats, a.seed)
        for v in todo:
            kind, overrides = resolve_variant(v)
            training, pv, hcfg = recipe_of(overrides)
            tag = "budget+" if kind == "budget+" else kind == "budget"
            # HWA on another preset than pcm: its other sections (e.g. adc_headroom) enter the key too
            extra = [] if base.name == "pcm" else [base.spec.model_dump(mode="json", exclude={"training"})]
            hpath = a.cache / f"hwa-{_key([key, tag, training, hcfg.recipe(), *extra])}.pt"
            t0 = time.perf_counter()
            try:
                if hpath.is_file():  # trained by an earlier run (same digital checkpoint and recipe)
                    h = load_checkpoint(hpath)
                elif kind == "budget":
                    h = budget_control(ck, task, base, training, a.seed)
                elif kind == "budget+":
                    h = hwa_finetune(budget_ck, pv, hcfg, task)
                else:
                    h = hwa_finetune(ck, pv, hcfg, task)
            except Exception as exc:  # noqa: BLE001 (a benchmark row that says why)
                print(f"{name} {v}: FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            if not hpath.is_file():
                h.metrics["bench_wall_s"] = time.perf_counter() - t0
                save_checkpoint(hpath, h)
            hwa_s = float(h.metrics.get("bench_wall_s", float("nan")))
            r = robust(h.model, task, evalp, a.repeats, a.seed)
            drop_p, drop_h = plain["digital"] - plain["d1"], plain["digital"] - r["d1"]
            row = {"net": name, "variant": v, "baseline": a.baseline, "preset": evalp.name,
                   "train_preset": base.name, "dims": a.dims, "repeats": a.repeats, "seed": a.seed,
                   **{f"plain_{k}": x for k, x in plain.items()},
                   **{f"hwa_{k}": x for k, x in r.items()},
                   "drop_plain": drop_p, "drop_hwa": drop_h,
                   "reduction": 1 - drop_h / drop_p if drop_p > 0 else float("nan"),
                   "best_epoch": h.metrics.get("best_epoch"), "train_s": train_s, "hwa_s": hwa_s,
                   "recipe": json.dumps(training, sort_keys=True)}
            _append(a.out, row)
            print(f"{name:28s} {v:20s} {a.baseline} d={plain['digital']:.3f} 1d={plain['d1']:.3f}±"
                  f"{plain['d1_std']:.3f} avm={plain['avm']:+.3f} | hwa d={r['digital']:.3f} 1d={r['d1']:.3f}±"
                  f"{r['d1_std']:.3f} avm={r['avm']:+.3f} | drop {drop_p:.3f}->{drop_h:.3f} red "
                  f"{row['reduction']:+.0%} ({hwa_s:.0f}s)", flush=True)

if __name__ == "__main__":
    main()
