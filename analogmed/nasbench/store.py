"""From the build's SQLite store to the versioned benchmark artefact (Parquet + JSON metadata).

:func:`benchmark_tables` turns the store into two pandas tables:

* the **benchmark table**: one row per (task, candidate, variant, preset) with the candidate
  (``arch_id, label, blocks, widths, depth, params, macs``), its digital score, the analog robustness
  metrics of :func:`analogmed.evaluate.robustness.summarize` (``score_1s, score_1d_mean, score_1d_std,
  score_30d, avm``, ``mean_<t>``/``std_<t>`` at every t), the analog ``engine``, the HERMES cost
  (``hermes_tiles, hermes_mvms, hermes_latency_ms, hermes_energy_mj`` four-phase, ``hermes_1p_*``
  one-phase) and ``latency_ms@<platform>`` / ``energy_mj@<platform>`` for every platform of ``digital/``;
* the **rows table**: every evaluation (t, hardware instance) as stored, with ``engine`` and ``variant``.

:func:`export_benchmark` writes ``<stem>.parquet`` (benchmark), ``<stem>-rows.parquet`` (rows) and
``<stem>.json`` (metadata: ``format``, ``format_version``, space, tasks, presets, seeds, drift grid,
engine, supernets, package versions, row counts), all three together or none
(:func:`analogmed.io.output_set`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from analogmed.errors import UserError

FORMAT = "analogmed-nasbench"
#: Version of the benchmark files this analogmed writes and the newest it reads.
FORMAT_VERSION = 1
#: Columns that differ between two identical builds (timing, dates, versions).
VOLATILE_COLUMNS = ("wall_s", "prep_s", "finished_at", "versions")


def open_build(path: str | Path):
    """The store of a build file (its default folder), a build folder or a ``results.sqlite``."""
    from analogmed.nasbench.build import DB_NAME, bench_dir_for, open_store
    from analogmed.nasbench.config import load_bench_config

    p = Path(path)
    if p.suffix == ".toml" or (not p.exists() and p.suffix == ""):
        p = bench_dir_for(load_bench_config(p))
    if p.is_dir():
        p = p / DB_NAME
    if not p.is_file():
        raise UserError(f"benchmark store {p} not found; build it first (analogmed nasbench build FILE)")
    return open_store(p, create=False)


def benchmark_tables(store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(benchmark table, rows table) of a build store (see the module docstring)."""
    from analogmed.evaluate.robustness import summarize

    cands = pd.read_sql_query("SELECT * FROM nb_candidates ORDER BY task, variant, arch_id, preset", store.conn)
    if cands.empty:
        raise UserError(f"{store.path} holds no finished candidate yet; run analogmed nasbench build first")
    rows = store.table()
    keys = set(zip(cands["model_key"], cands["task"], cands["preset"]))
    rows = rows[[k in keys for k in zip(rows["model_key"], rows["task"], rows["preset"])]].copy()
    info = cands.set_index(["model_key", "task", "preset"])
    rows["variant"] = [info.loc[k, "variant"] for k in zip(rows["model_key"], rows["task"], rows["preset"])]
    rows["engine"] = [info.loc[k, "engine"] for k in zip(rows["model_key"], rows["task"], rows["preset"])]
    rows = rows.drop(columns=["model_group"], errors="ignore")
    s = summarize(rows.drop(columns=["engine", "variation"], errors="ignore").assign(model_id=rows["model_key"]))
    s = s.rename(columns={"model_id": "model_key"})
    models = pd.read_sql_query("SELECT model_key, label, spec FROM models", store.conn)
    archs = {k: json.loads(v)["arch"] for k, v in zip(models["model_key"], models["spec"])}
    labels = dict(zip(models["model_key"], models["label"]))
    recs = []
    for _, c in cands.iterrows():
        a = archs[c["model_key"]]
        static = json.loads(c["row"])
        rec = {"task": c["task"], "arch_id": c["arch_id"], "label": labels.get(c["model_key"]),
               "variant": c["variant"], "preset": c["preset"], "engine": c["engine"],
               "depth": len(a["blocks"]), "blocks": ",".join(a["blocks"]),
               "widths": ",".join(str(w) for w in a["widths"]), "spatial_dims": a["spatial_dims"],
               "model_key": c["model_key"]}
        rec.update({k: v for k, v in static.items() if k != "digital_score"})
        rec["wall_s"] = float(c["wall_s"])
        rec["finished_at"] = c["finished_at"]
        recs.append(rec)
    table = pd.DataFrame(recs).merge(s, on=["model_key", "task", "preset"], how="left")
    front = ["task", "arch_id", "label", "variant", "preset", "engine", "spatial_dims", "depth", "blocks", "widths",
             "params", "macs", "repeats", "digital_score", "score_1s", "score_1d_mean", "score_1d_std", "score_30d",
             "avm"]
    rest = [c for c in table.columns if c not in front and c not in ("model_key",)]
    lat = sorted(c for c in rest if "@" in c)
    other = [c for c in rest if c not in lat and c not in VOLATILE_COLUMNS]
    table = table[front + other + lat + [c for c in VOLATILE_COLUMNS if c in table.columns]]
    table = table.sort_values(["task", "variant", "arch_id", "preset"]).reset_index(drop=True)
    rows = rows.sort_values(["task", "model_key", "preset", "t_inference_s", "repetition"]).reset_index(drop=True)
    return table, rows


def _package_versions() -> dict[str, str]:
    from analogmed.study.store import versions

    out = versions()
    for mod in ("pandas", "pyarrow", "numpy", "scipy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - recorded as unknown
            out[mod] = "unknown"
    return out


def export_benchmark(path: str | Path, dest: str | Path | None = None) -> Path:
    """Write the benchmark of a build (see :func:`open_build`) to ``dest`` (``.parquet``; default
    ``<build dir>/<name>.parquet``) with ``-rows.parquet`` and ``.json`` beside it. Returns the JSON path."""
    from analogmed.io import check_output_file, output_set

    with open_build(path) as store:
        table, rows = benchmark_tables(store)
        meta = store.meta()
        db = store.path
    cfg = json.loads(meta.get("config", "{}"))
    name = meta.get("study", "benchmark")
    dest = Path(dest) if dest is not None else db.parent / f"{name}.parquet"
    if dest.suffix != ".parquet":
        raise UserError(f"export file {dest}: give a .parquet name (the JSON metadata is written beside it)")
    check_output_file(dest, "benchmark file")
    supernets = json.loads(meta.get("supernets", "{}"))
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
        "description": cfg.get("description", ""),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "table": dest.name, "rows": f"{dest.stem}-rows.parquet",
        "n_candidates": int(table.loc[table["variant"] == "supernet", ["task", "arch_id"]].drop_duplicates().shape[0]),
        "n_table_rows": int(len(table)), "n_evaluations": int(len(rows)),
        "tasks": [s["task_spec"] for s in supernets.values()],
        "space": {t: {"spatial_dims": s["config"]["spatial_dims"], "widths": s["config"]["widths"],
                      "blocks": s["config"]["blocks"], "head": s["config"]["head"], "space_size": s["space_size"],
                      "in_channels": s["config"]["in_channels"], "out_channels": s["config"]["out_channels"]}
                  for t, s in supernets.items()},
        "supernets": supernets,
        "candidates": cfg.get("candidates"),
        "presets": cfg.get("presets_resolved", cfg.get("presets")),
        "times_s": cfg.get("times_resolved"), "repetitions": cfg.get("repetitions"),
        "split": cfg.get("split"),
        "seeds": {"seed": cfg.get("seed"), "sampling": "derive_seed(seed, 'rank')",
                  "program": "derive_seed(seed, 'program', repetition)",
                  "drift": "derive_seed(seed, 'drift', repetition, repr(t))",
                  "eval": "derive_seed(seed, 'eval', repetition, repr(t))",
                  "standalone": "seed + i for variant standalone-s<i>"},
        "engine": cfg.get("engine_resolved"), "platforms": cfg.get("platforms_resolved"),
        "standalone": cfg.get("standalone"), "finetune_epochs": cfg.get("finetune_epochs"), "hwa": cfg.get("hwa"),
        "fingerprint": meta.get("fingerprint"), "build_config": cfg,
        "metrics": {"score": "task score (Dice mean over foreground classes / F1 macro)",
                    "avm": "score(1 s) - score(30 d); positive = lost accuracy over the month",
                    "score_1d_std": "sample std (ddof=1) over hardware instances at t = 1 d",
                    "latency_ms@<platform>": "LUT sum, batch 1 at the task's input size (ms)",
                    "energy_mj@<platform>": "latency x the platform's typical power (mJ)",
                    "hermes_*": "IBM HERMES four-phase (hermes_1p_*: one-phase) tiles, MVMs, ms, mJ per inference"},
        "versions": _package_versions(),
    }
    with output_set(dest.parent) as stage:  # the three files appear together or not at all
        table.to_parquet(stage / dest.name, index=False)
        rows.to_parquet(stage / f"{dest.stem}-rows.parquet", index=False)
        (stage / f"{dest.stem}.json").write_text(json.dumps(metadata, indent=1, sort_keys=True, default=str))
    return dest.with_suffix(".json")


__all__ = ["FORMAT", "FORMAT_VERSION", "VOLATILE_COLUMNS", "benchmark_tables", "export_benchmark", "open_build"]
