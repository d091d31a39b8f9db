"""Build an analog MED-NAS-Bench: every candidate of a supernet's space scored digitally and on analog hardware.

Per task of the build file (:class:`~analogmed.nasbench.config.BenchConfig`):

1. the **supernet** (:class:`analogmed.space.supernet.Supernet`): the given checkpoint (checked against
   the task and the space) or trained here with :func:`analogmed.train.supernet.train_supernet` and
   cached by content hash in ``cache_dir()/nasbench/supernets/<key>.pt``;
2. the **candidates**: N distinct architectures drawn uniformly from the supernet's space
   (:func:`analogmed.train.supernet.sample_distinct`, seeded), every architecture (``"all"``), or an
   explicit list of labels;
3. per candidate one **job** (the unit of work and of resumption): the sub-network with inherited
   weights (:meth:`Supernet.subnet`) and re-estimated BatchNorm statistics
   (:func:`analogmed.train.supernet.recalibrate_bn`), optionally fine-tuned and/or hardware-aware
   trained; its digital score; per preset the analog conversion + input-range calibration
   (:func:`analogmed.evaluate.robustness.prepare_analog`) and ``repetitions`` hardware instances
   programmed and drifted to every t (:func:`~analogmed.evaluate.robustness.evaluate_instance`);
   parameters, MACs and the analog cost on IBM HERMES (:func:`analogmed.latency.model_analog_cost`).
   Digital latency / energy on every platform of ``digital/`` is the LUT sum
   (:func:`analogmed.latency.digital_cost`), computed by the driver (it also checks every op is priced
   before any work starts).
4. ``standalone.k`` of the candidates are also trained from scratch with ``standalone.seeds`` seeds
   (:func:`analogmed.train.train_model`) and evaluated the same way (variant ``standalone-s<i>``).

Storage: the study store (:class:`analogmed.study.store.Store`, SQLite WAL) at
``runs/nasbench/<name>/results.sqlite``: analog rows in its ``results`` table (model key =
``<arch id>`` or ``<arch id>/standalone-s<i>``), networks in ``models``, plus a table
``nb_candidates`` with one row per (candidate, task, preset): the per-candidate figures (JSON) and
the analog ``engine``. A job's analog rows are committed first, then its candidate rows in one
transaction: a job counts as done when its candidate rows exist, so a kill at any moment (``kill -9``)
loses at most the running jobs, and resuming re-runs only those (every draw is seeded, so the table
is the same).

Seeds: the supernet is trained with ``seed``; candidates are drawn with ``derive_seed(seed, "rank")``;
every candidate's hardware instances use the study seeds of
:func:`~analogmed.evaluate.robustness.evaluate_instance` with base ``seed`` (so a row equals
``analogmed drift --seed SEED`` on the same sub-network); stand-alone seed ``i`` trains with ``seed + i``.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.nasbench.config import BenchConfig, load_bench_config
from analogmed.seeding import derive_seed

DB_NAME = "results.sqlite"

CAND_SCHEMA = """
CREATE TABLE IF NOT EXISTS nb_candidates (
    model_key TEXT NOT NULL, task TEXT NOT NULL, preset TEXT NOT NULL, arch_id TEXT NOT NULL,
    variant TEXT NOT NULL, engine TEXT NOT NULL, row TEXT NOT NULL, wall_s REAL NOT NULL,
    finished_at TEXT NOT NULL, PRIMARY KEY (model_key, task, preset));
"""


def bench_dir_for(cfg: BenchConfig, out: str | Path | None = None) -> Path:
    """``out`` or ``runs/nasbench/<name>``."""
    return Path(out) if out is not None else Path("runs") / "nasbench" / cfg.name


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- engine --------------------------------------------------------------------------------------
def _engine_params() -> tuple[bool, bool, Any]:
    """(prepare_analog takes ``engine``, evaluate_instance takes ``engine``, drift_study's default)."""
    from analogmed.evaluate import robustness as rb

    prep = "engine" in inspect.signature(rb.prepare_analog).parameters
    inst = "engine" in inspect.signature(rb.evaluate_instance).parameters
    ds = inspect.signature(rb.drift_study).parameters.get("engine")
    return prep, inst, (ds.default if ds is not None else None)


def resolve_engine(requested: str = "auto") -> str:
    """The analog engine the build uses: ``"auto"`` = ``"fast"`` when
    :mod:`analogmed.evaluate.robustness` offers an ``engine`` argument, else aihwkit's tile (``"aihwkit"``)."""
    prep, inst, default = _engine_params()
    if not (prep or inst):
        if requested not in ("auto", "aihwkit"):
            raise UserError(f"engine {requested!r} is not available in this analogmed (only aihwkit's tile); "
                            "use engine = \"auto\" or \"aihwkit\"")
        return "aihwkit"
    if requested == "auto":
        return "fast"
    return requested


def _engine_kw(engine: str) -> tuple[dict, dict]:
    prep, inst, _ = _engine_params()
    if not (prep or inst):
        return {}, {}
    return ({"engine": engine} if prep else {}), ({"engine": engine} if inst else {})


# -- the unit of work (runs on workers) ------------------------------------------------------------
_TASKS: dict[str, Any] = {}


def _task(spec: dict):
    from analogmed.data import get_task

    key = json.dumps(spec, sort_keys=True)
    if key not in _TASKS:
        _TASKS[key] = get_task(**spec)
    return _TASKS[key]


def run_candidate(sn_ckpt, job: dict) -> dict:
    """Score one candidate (one job; see the module docstring) and return its results.

    ``sn_ckpt``: a :class:`~analogmed.train.supernet.SupernetCheckpoint` (may be ``None`` for stand-alone
    variants). ``job``: plain dict (``task_spec, arch, variant, train_seed, presets, times_s,
    repetitions, seed, split, batch_size, recalibrate_bn, finetune_epochs, finetune_lr, hwa, hwa_epochs,
    hwa_lr, hwa_preset, standalone_epochs, standalone_lr, standalone_batch_size, engine``).

    Returns ``{"static": {...}, "analog": {preset: [row dicts]}, "wall_s": s}``; ``static`` holds
    ``digital_score, params, macs, hermes_*`` (tiles, MVMs, latency ms, energy mJ in both read modes)
    and ``prep_s`` (seconds to build/train the network).
    """
    import torch

    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.evaluate.robustness import evaluate_instance, prepare_analog
    from analogmed.latency.analog_cost import CHIPS, analog_cost, analog_layers
    from analogmed.space.architecture import Architecture
    from analogmed.train.digital import TrainConfig

    t0 = time.perf_counter()
    task = _task(job["task_spec"])
    arch = Architecture.from_dict(job["arch"])
    spec = {"family": "space", "arch": arch.to_dict()}
    seed = int(job["seed"])
    if job["variant"] == "supernet":
        from analogmed.train.supernet import recalibrate_bn

        model = sn_ckpt.supernet.subnet(arch)
        if job["recalibrate_bn"]:
            recalibrate_bn(model, task, job["batch_size"])
        if job["finetune_epochs"]:
            from analogmed.train.digital import fit

            fit(model, task, TrainConfig(epochs=job["finetune_epochs"], lr=job["finetune_lr"],
                                         batch_size=job["batch_size"], seed=derive_seed(seed, "finetune", arch.id),
                                         device="cpu", augment=False, val_every=0, progress=False))
    else:
        from analogmed.train.digital import train_model

        ck = train_model(spec, task, TrainConfig(epochs=job["standalone_epochs"], lr=job["standalone_lr"],
                                                 batch_size=job["standalone_batch_size"], seed=int(job["train_seed"]),
                                                 device="cpu", augment=False, progress=False))
        model = ck.model
    model.eval()
    if job["hwa"]:
        from analogmed.analog.hwa import hwa_finetune
        from analogmed.train.checkpoint import Checkpoint

        ck = hwa_finetune(Checkpoint(model, spec, dict(task.spec), seed), job["hwa_preset"],
                          TrainConfig(epochs=job["hwa_epochs"], lr=job["hwa_lr"], batch_size=job["batch_size"],
                                      seed=derive_seed(seed, "hwa", arch.id), device="cpu", augment=False,
                                      progress=False), task)
        model = ck.model
    prep_s = time.perf_counter() - t0
    digital = evaluate_model(model, task, job["split"], batch_size=job["batch_size"])["score"]
    layers = analog_layers(model, torch.zeros((1, task.in_channels, *task.image_size)))
    n_params = int(sum(p.numel() for p in model.parameters()))
    static: dict[str, Any] = {"digital_score": float(digital), "params": n_params,
                              "macs": int((layers["rows"] * layers["cols"] * layers["positions"]).sum()),
                              "prep_s": prep_s}
    for mode, chip in CHIPS.items():
        ac = analog_cost(layers, 256, 256, chip)
        tag = "hermes" if mode == "four-phase" else "hermes_1p"
        static.update({f"{tag}_latency_ms": ac.latency_ms, f"{tag}_energy_mj": ac.energy_mj})
        if mode == "four-phase":
            static.update({"hermes_tiles": ac.tiles, "hermes_mvms": ac.mvms})
    prep_kw, inst_kw = _engine_kw(job["engine"])
    analog: dict[str, list[dict]] = {}
    for preset in job["presets"]:
        amodel = prepare_analog(model, task, preset, seed=seed, **prep_kw)
        rows = []
        for r in range(int(job["repetitions"])):
            rows += evaluate_instance(amodel, task, tuple(job["times_s"]), r, seed, job["split"],
                                      job["batch_size"], **inst_kw)
        analog[preset] = rows
        del amodel
    return {"static": static, "analog": analog, "wall_s": time.perf_counter() - t0}


# -- driver ---------------------------------------------------------------------------------------
@dataclass
class BuildResult:
    """What :func:`build_benchmark` did: ``db`` path, ``jobs_run`` now, ``jobs_skipped`` (stored before),
    ``rows`` (analog rows in the store), ``candidates`` (rows of ``nb_candidates``), ``wall_s``, ``engine``."""

    db: Path
    jobs_run: int
    jobs_skipped: int
    rows: int
    candidates: int
    wall_s: float
    engine: str


@dataclass
class TaskSpace:
    """One task of the build: the task, its supernet checkpoint (and cache key) and candidates."""

    task: Any
    supernet: Any
    supernet_key: str
    candidates: list
    standalone: list


def supernet_settings(cfg: BenchConfig, task) -> dict:
    """The supernet's space (widths, blocks) for ``task``, validated (unknown / wrong-dims block letters)."""
    from analogmed.space.blocks import BLOCKS, check_letter

    d = task.spatial_dims
    blocks = cfg.supernet.blocks
    if blocks is not None:
        for b in blocks:
            check_letter(b, d)
            if b not in BLOCKS[d]:
                raise UserError(f"supernet.blocks: {b!r} cannot be a level of a candidate; use some of "
                                f"{', '.join(BLOCKS[d])}")
        if len(set(blocks)) != len(blocks):
            raise UserError("supernet.blocks lists a block twice; remove the duplicate")
    widths = cfg.supernet.widths or ([8, 16, 32, 64] if d == 2 else [8, 16, 32])
    return {"widths": [int(w) for w in widths], "blocks": list(blocks) if blocks else list(BLOCKS[d])}


def prepare_supernet(cfg: BenchConfig, task, progress: bool = True):
    """The supernet of ``task``: the build file's checkpoint (checked) or trained and cached. Returns
    (checkpoint, key)."""
    from analogmed.paths import cache_dir
    from analogmed.train.supernet import SupernetConfig, load_supernet, save_supernet, train_supernet

    space = supernet_settings(cfg, task)
    if cfg.supernet.checkpoint:
        path = Path(cfg.supernet.checkpoint)
        ck = load_supernet(path)
        if ck.task_spec != dict(task.spec):
            raise UserError(f"supernet {path} was trained on task {ck.task_spec} but the build file's task is "
                            f"{dict(task.spec)}; train a supernet for this task or fix [[tasks]]")
        sc = ck.supernet.config
        if cfg.supernet.widths is not None and list(sc["widths"]) != space["widths"]:
            raise UserError(f"supernet {path} has widths {sc['widths']} but supernet.widths is "
                            f"{space['widths']}; remove supernet.widths or use a matching supernet")
        if cfg.supernet.blocks is not None and list(sc["blocks"]) != space["blocks"]:
            raise UserError(f"supernet {path} holds blocks {sc['blocks']} but supernet.blocks is "
                            f"{space['blocks']}; remove supernet.blocks or use a matching supernet")
        key = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return ck, key
    scfg = SupernetConfig(epochs=cfg.supernet.epochs, lr=cfg.supernet.lr, weight_decay=cfg.supernet.weight_decay,
                          batch_size=cfg.supernet.batch_size, seed=cfg.seed, augment=cfg.supernet.augment,
                          device="cpu", progress=progress)
    key = _hash({"task": dict(task.spec), "space": space, "recipe": scfg.recipe()})
    path = cache_dir() / "nasbench" / "supernets" / f"{key}.pt"
    if path.is_file():
        return load_supernet(path), key
    ck = train_supernet(task, scfg, widths=space["widths"], blocks=space["blocks"])
    save_supernet(path, ck)
    return ck, key


def enumerate_space(supernet) -> list:
    """Every architecture of ``supernet``'s space (depth 1, then 2, ...; blocks in the supernet's order)."""
    from analogmed.space.architecture import Architecture

    out = []
    for depth in range(1, supernet.max_depth + 1):
        for blocks in itertools.product(supernet.letters, repeat=depth):
            out.append(Architecture(supernet.spatial_dims, supernet.in_channels, supernet.out_channels,
                                    tuple(blocks), supernet.widths[:depth], supernet.head_kind))
    return out


def select_candidates(cfg: BenchConfig, supernet, task) -> list:
    """The build's candidates for ``task`` (see :class:`BenchConfig` ``candidates``), validated."""
    from analogmed.space.architecture import Architecture
    from analogmed.train.supernet import sample_distinct

    size = supernet.space_size()
    if cfg.candidates == "all":
        if size > 20_000:
            raise UserError(f"candidates = \"all\" would score {size} architectures; give a number instead")
        archs = enumerate_space(supernet)
    elif isinstance(cfg.candidates, int):
        if cfg.candidates > size:
            raise UserError(f"candidates = {cfg.candidates} is larger than the space ({size} architectures of "
                            f"{task.name}); use at most {size} or \"all\"")
        archs = sample_distinct(supernet, cfg.candidates, cfg.seed)
    else:
        archs, seen = [], set()
        for label in cfg.candidates:
            head = "classification" if task.kind == "classification" else "segmentation"
            a = Architecture.from_label(label, spatial_dims=task.spatial_dims, in_channels=task.in_channels,
                                        out_channels=task.num_classes, head=head)
            supernet.check(a)
            if a.id in seen:
                raise UserError(f"candidate {label!r} is listed twice (same network); remove the duplicate")
            seen.add(a.id)
            archs.append(a)
    for a in archs:
        a.check_input_size(task.image_size)
    return archs


def select_standalone(cfg: BenchConfig, archs: list) -> list:
    """The ``standalone.k`` candidates trained from scratch: a seeded uniform subset, in candidate order."""
    k = cfg.standalone.k
    if k == 0:
        return []
    if k > len(archs):
        raise UserError(f"standalone.k = {k} exceeds the {len(archs)} candidates; use at most {len(archs)}")
    idx = sorted(random.Random(derive_seed(cfg.seed, "standalone")).sample(range(len(archs)), k))
    return [archs[i] for i in idx]


def digital_costs(arch, input_size, platforms: list[str], tables: dict) -> dict[str, float]:
    """``latency_ms@<platform>`` and ``energy_mj@<platform>`` (batch 1 at ``input_size``) per platform."""
    from analogmed.latency.candidate import arch_ops, digital_cost

    ops = arch_ops(arch, tuple(input_size))
    out = {}
    for p in platforms:
        dc = digital_cost(ops, p, tables[p])
        out[f"latency_ms@{p}"] = dc.latency_ms
        out[f"energy_mj@{p}"] = dc.energy_mj
    return out


def model_key(arch, variant: str) -> str:
    return arch.id if variant == "supernet" else f"{arch.id}/{variant}"


def open_store(db: Path, create: bool = True):
    """The study :class:`~analogmed.study.store.Store` at ``db`` with the ``nb_candidates`` table."""
    from analogmed.study.store import Store

    store = Store.open(db, create=create)
    store.conn.executescript(CAND_SCHEMA)
    return store


def done_jobs(store, n_presets: int) -> set[tuple[str, str]]:
    """(model_key, task) of every job whose candidate rows exist for all presets."""
    rows = store.conn.execute("SELECT model_key, task, COUNT(*) FROM nb_candidates GROUP BY model_key, task")
    return {(k, t) for k, t, n in rows if int(n) >= n_presets}


def add_candidate_rows(store, rows: list[tuple]) -> None:
    """Insert one job's candidate rows in one transaction."""
    import sqlite3

    try:
        with store._tx():
            store.conn.executemany("INSERT OR REPLACE INTO nb_candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    except sqlite3.OperationalError as exc:
        raise UserError(f"cannot write results to {store.path} ({exc}); free disk space and resume") from None


def build_benchmark(bench: BenchConfig | str | Path, out: str | Path | None = None, workers: int = 0,
                    scheduler: str | None = None, new: bool = False, progress: bool = True,
                    on_job: Callable[[int, int], None] | None = None) -> BuildResult:
    """Build (or resume) the benchmark of ``bench`` into ``<out>/results.sqlite`` (default
    ``runs/nasbench/<name>``). ``workers`` > 0: local Dask cluster of single-threaded processes;
    ``scheduler``: an existing Dask scheduler; ``new``: discard stored results first.
    ``on_job(done, total)`` is called after every stored job."""
    from analogmed.analog import load_preset
    from analogmed.latency.candidate import load_table
    from analogmed.latency.platform import list_platforms, load_platform
    from analogmed.study.executors import make_executor

    t0 = time.perf_counter()
    cfg = bench if isinstance(bench, BenchConfig) else load_bench_config(bench)
    times = cfg.grid()
    presets = [load_preset(p) for p in cfg.presets]
    for p in presets:
        p.check_times(times)
    pnames = [p.name for p in presets]
    if len(set(pnames)) != len(pnames):
        raise UserError("the build file lists a preset twice; remove the duplicate from presets")
    if cfg.hwa and not load_preset(cfg.hwa_preset).has_noise_model:
        raise UserError(f"hwa_preset {cfg.hwa_preset!r} has no device noise model; use e.g. pcm")
    platforms = list(cfg.platforms) if cfg.platforms is not None else list_platforms()
    for p in platforms:
        load_platform(p)
    tables = {p: load_table(p) for p in platforms}
    engine = resolve_engine(cfg.engine)
    if scheduler:
        from analogmed.study.executors import DaskExecutor

        with DaskExecutor(scheduler=scheduler):
            pass
    # the tasks, supernets and candidates (validated before anything is written)
    from analogmed.data import get_task

    spaces: list[TaskSpace] = []
    for tkw in cfg.tasks:
        task = get_task(**tkw)
        space = supernet_settings(cfg, task)
        n_space = sum(len(space["blocks"]) ** L for L in range(1, len(space["widths"]) + 1))
        if isinstance(cfg.candidates, int) and not cfg.supernet.checkpoint and cfg.candidates > n_space:
            raise UserError(f"candidates = {cfg.candidates} is larger than the space ({n_space} architectures of "
                            f"{task.name}); use at most {n_space} or \"all\"")
        if cfg.standalone.k > (n_space if not isinstance(cfg.candidates, list) else len(cfg.candidates)):
            raise UserError(f"standalone.k = {cfg.standalone.k} exceeds the number of candidates; lower it")
        spaces.append(TaskSpace(task, None, "", [], []))
    if len({s.task.name for s in spaces}) != len(spaces):
        raise UserError("the build file lists the same task twice; remove the duplicate [[tasks]] table")
    sdir = bench_dir_for(cfg, out)
    from analogmed.io import check_output_dir

    check_output_dir(sdir, "build folder")
    db = sdir / DB_NAME
    config_blob = {**cfg.model_dump(), "engine_resolved": engine, "times_resolved": list(times),
                   "platforms_resolved": platforms, "presets_resolved": pnames}
    if db.exists() and not new:  # a changed build file over existing results: refuse before any training
        with open_store(db) as store:
            meta = store.meta()
            if meta.get("fingerprint") and meta["fingerprint"] != cfg.fingerprint(engine) and store.count() > 0:
                raise UserError(f"benchmark file {cfg.name!r} changed after results exist in {db}; restore it, "
                                f"give it a new name, or build with --new to start over")
    costs: dict[tuple[str, str], dict] = {}
    for sp in spaces:
        sp.supernet, sp.supernet_key = prepare_supernet(cfg, sp.task, progress)
        sp.candidates = select_candidates(cfg, sp.supernet.supernet, sp.task)
        sp.standalone = select_standalone(cfg, sp.candidates)
        size = tuple(cfg.latency_input_size or sp.task.image_size)
        for a in sp.candidates:
            costs[(sp.task.name, a.id)] = digital_costs(a, size, platforms, tables)
    if new and db.exists():  # only now that the build file is known to be valid
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    with open_store(db) as store:
        store.bind(cfg.name, cfg.fingerprint(engine), config_blob)
        with store._tx():
            store.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("supernets", json.dumps(
                {sp.task.name: {"key": sp.supernet_key, "config": sp.supernet.supernet.config,
                                "space_size": sp.supernet.supernet.space_size(), "recipe": sp.supernet.recipe,
                                "train_time_s": sp.supernet.metrics.get("train_time_s"),
                                "task_spec": dict(sp.task.spec)} for sp in spaces}, sort_keys=True, default=str)))
        # the jobs
        base = {"presets": [p for p in cfg.presets], "times_s": list(times), "repetitions": cfg.repetitions,
                "seed": cfg.seed, "split": cfg.split, "batch_size": cfg.batch_size,
                "recalibrate_bn": cfg.recalibrate_bn, "finetune_epochs": cfg.finetune_epochs,
                "finetune_lr": cfg.finetune_lr, "hwa": cfg.hwa, "hwa_epochs": cfg.hwa_epochs, "hwa_lr": cfg.hwa_lr,
                "hwa_preset": cfg.hwa_preset, "standalone_epochs": cfg.standalone.epochs,
                "standalone_lr": cfg.standalone.lr, "standalone_batch_size": cfg.standalone.batch_size,
                "engine": engine}
        all_jobs = []
        for ti, sp in enumerate(spaces):
            variants = [(a, "supernet", cfg.seed) for a in sp.candidates]
            variants += [(a, f"standalone-s{i}", cfg.seed + i) for a in sp.standalone
                         for i in range(cfg.standalone.seeds)]
            for a, variant, tseed in variants:
                key = model_key(a, variant)
                store.add_model(key, a.id, sp.task.name, a.label, variant, {"family": "space", "arch": a.to_dict()},
                                sp.task.image_size)
                all_jobs.append((ti, a, variant, {**base, "task_spec": dict(sp.task.spec), "arch": a.to_dict(),
                                                  "variant": variant, "train_seed": tseed}))
        # the stand-alone candidates first (their supernet job, then each seed), so a build stopped early
        # still has complete ranking-check triples; then the other candidates in sampling order
        sa_ids = {(ti, a.id) for ti, sp in enumerate(spaces) for a in sp.standalone}
        order = {(ti, a.id): i for ti, sp in enumerate(spaces) for i, a in enumerate(sp.standalone)}
        all_jobs.sort(key=lambda j: (0, order[(j[0], j[1].id)]) if (j[0], j[1].id) in sa_ids else (1, 0))
        done = done_jobs(store, len(presets))
        jobs = [j for j in all_jobs if (model_key(j[1], j[2]), spaces[j[0]].task.name) not in done]
        n_skip = len(all_jobs) - len(jobs)
        bar = tqdm(total=len(all_jobs), initial=n_skip, unit="cand", desc=f"nasbench {cfg.name}",
                   disable=not progress, mininterval=2.0, file=sys.stderr, dynamic_ncols=True)
        if jobs:
            by_id = {id(j[3]): j for j in jobs}
            with make_executor(workers=workers, scheduler=scheduler) as ex:
                for jd, res in _map(ex, [(spaces[j[0]].supernet if j[2] == "supernet" else None, j[3]) for j in jobs]):
                    ti, a, variant, _ = by_id[id(jd)]
                    sp = spaces[ti]
                    key = model_key(a, variant)
                    analog_rows = []
                    for preset_arg, pname in zip(cfg.presets, pnames):
                        for r in res["analog"][preset_arg]:
                            for k in [k for k, v in r.items() if isinstance(v, str)]:
                                r.pop(k)  # engine / variation strings live in nb_candidates
                            r.update(model_key=key, model_id=a.id, task=sp.task.name, preset=pname,
                                     digital_score=res["static"]["digital_score"])
                            analog_rows.append(r)
                    store.add_rows(cfg.name, analog_rows)
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    static = {**res["static"], **costs[(sp.task.name, a.id)]}
                    add_candidate_rows(store, [(key, sp.task.name, pname, a.id, variant, engine,
                                                json.dumps(static, sort_keys=True), float(res["wall_s"]), now)
                                               for pname in pnames])
                    bar.update(1)
                    if on_job:
                        on_job(bar.n, len(all_jobs))
        bar.close()
        rows = store.count()
        ncand = int(store.conn.execute("SELECT COUNT(*) FROM nb_candidates").fetchone()[0])
    return BuildResult(db, len(jobs), n_skip, rows, ncand, time.perf_counter() - t0, engine)


def _map(ex, items):
    """Yield ``(job dict, result)`` as jobs finish, on a :mod:`analogmed.study.executors` executor."""
    from analogmed.study.executors import DaskExecutor

    if not isinstance(ex, DaskExecutor):
        for sn, jd in items:
            yield jd, run_candidate(sn, jd)
        return
    from distributed import as_completed

    scattered: dict[int, Any] = {}
    futures = {}
    for sn, jd in items:
        ref = None
        if sn is not None:
            if id(sn) not in scattered:
                scattered[id(sn)] = ex.client.scatter(sn, broadcast=True)
            ref = scattered[id(sn)]
        futures[ex.client.submit(run_candidate, ref, jd, retries=2, pure=False)] = jd
    for fut in as_completed(futures):
        yield futures[fut], fut.result()


__all__ = ["BuildResult", "DB_NAME", "bench_dir_for", "build_benchmark", "enumerate_space", "open_store",
           "resolve_engine", "run_candidate", "select_candidates", "select_standalone"]
