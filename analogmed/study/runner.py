"""Run a study: train (or load) its models, then evaluate every missing hardware instance into the store.

Units of work:

- an *evaluation* = (model, task, preset, t, repetition, seed): one row of the results table;
- a *job* = (model, preset, repetition): one programmed hardware instance drifted to every t of the
  grid (aihwkit semantics: program once, drift to each t). :func:`run_job` computes it with
  :func:`analogmed.evaluate.robustness.evaluate_instance`, after converting and calibrating the model
  once per (model, preset) per process (cached), so a worker receives each trained model once.

Seeds: the study ``seed`` trains every model (``TrainConfig.seed``) and is the base seed of
programming, drift and read noise, exactly as ``analogmed drift --seed``: a study row equals the row
of :func:`~analogmed.evaluate.robustness.drift_study` with the same seed.

Trained checkpoints are cached by content hash in ``<study dir>/checkpoints/<key>.pt`` (key = hash of
model spec, task spec, recipe and seed), so a resumed study never retrains.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.study.config import StudyConfig, load_study
from analogmed.study.store import (DB_NAME, Store, StudyLock, check_store_writable, export_table, open_results,
                                   study_dir_for)

__all__ = ["DB_NAME", "Job", "StudyModel", "StudyResult", "export_table", "job_args", "open_results",
           "prepare_models", "remove_study", "run_job", "run_study", "study_dir_for", "validate_study"]


@dataclass
class StudyModel:
    """One network of the study on one task: ``key`` (content hash, names the checkpoint), display
    ``label``, ``group`` tag, ``model_id`` (analogmed.models.model_id), ``task`` name, checkpoint
    ``path`` and its validation ``digital_score``."""

    key: str
    label: str
    group: str | None
    model_id: str
    task: str
    path: Path
    spec: dict
    digital_score: float = float("nan")
    image_size: tuple = ()


@dataclass(frozen=True)
class Job:
    """One hardware instance: (model key, preset, repetition)."""

    model_key: str
    preset: str
    repetition: int


@dataclass
class StudyResult:
    """What :func:`run_study` did: the ``db`` path, rows ``added`` now, ``total`` rows, ``jobs_run``,
    ``jobs_skipped`` (already stored), ``wall_s`` and the ``table``. Figures are drawn above the runner
    (``analogmed study run`` calls :func:`analogmed.plots.study.plot_study` on ``db``)."""

    db: Path
    added: int
    total: int
    jobs_run: int
    jobs_skipped: int
    wall_s: float
    table: pd.DataFrame


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _spec_for(entry, task) -> dict:
    if entry.arch:
        from analogmed.space.architecture import Architecture

        head = "classification" if task.kind == "classification" else "segmentation"
        arch = Architecture.from_label(entry.arch, spatial_dims=task.spatial_dims, in_channels=task.in_channels,
                                       out_channels=task.num_classes, head=head)
        arch.check_task(task)
        return {"family": "space", "arch": arch.to_dict()}
    return {"family": "zoo", "name": entry.zoo, "size": entry.size, "spatial_dims": task.spatial_dims,
            "in_channels": task.in_channels, "out_channels": task.num_classes,
            "img_size": list(task.image_size)}


def validate_study(cfg: StudyConfig, workers: int = 0, scheduler: str | None = None,
                   out: str | Path | None = None) -> None:
    """Check everything a study needs before any training or writing (UserError on the first problem):
    ``workers``/``scheduler`` (the scheduler is contacted, with a timeout), the output folder, every
    preset and drift time, every task, every arch label against its task, every checkpoint entry
    (exists and loads)."""
    from analogmed.analog import load_preset
    from analogmed.data import get_task
    from analogmed.io import check_output_dir
    from analogmed.study.executors import check_executor_args
    from analogmed.train import load_checkpoint

    check_executor_args(workers, scheduler)
    sdir = check_output_dir(study_dir_for(cfg, out), "study folder")
    if (sdir / DB_NAME).exists():  # a damaged, foreign or read-only store: found now, not after the training
        with Store.open(sdir / DB_NAME, create=False):
            pass
        check_store_writable(sdir / DB_NAME)
    times = cfg.grid()
    presets = [load_preset(p).name for p in cfg.presets]
    if len(set(presets)) != len(presets):
        raise UserError("the study lists a preset twice; remove the duplicate from presets")
    for p in cfg.presets:
        load_preset(p).check_times(times)
    if cfg.uq is not None:
        for p in cfg.uq.presets or cfg.presets:
            load_preset(p).check_times(tuple(float(t) for t in cfg.uq.times_s))
    if any(m.hwa for m in cfg.models) and not load_preset(cfg.train.hwa_preset).has_noise_model:
        raise UserError(f"train.hwa_preset {cfg.train.hwa_preset!r} has no device noise model, so hardware-aware "
                        "training has nothing to train against; use e.g. pcm")
    tasks = []
    for t in cfg.tasks:
        try:
            tasks.append(get_task(**t))
        except TypeError as exc:
            raise UserError(f"study task {t.get('name')!r}: bad option ({exc}); see analogmed data show "
                            f"{t.get('name')}") from None
    for entry in cfg.models:
        if entry.checkpoint:
            src = Path(entry.checkpoint)
            if not src.is_file():
                raise UserError(f"model checkpoint {src} not found; fix the path in the study file")
            load_checkpoint(src)  # a bad file is a UserError naming it
        else:
            for task in tasks:
                _spec_for(entry, task)


def prepare_models(cfg: StudyConfig, study_dir: Path, progress: bool = True) -> list[StudyModel]:
    """Train (or load from the checkpoint cache) every (model, task) of the study."""
    from analogmed.data import get_task
    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.models import model_id
    from analogmed.train import TrainConfig, load_checkpoint, save_checkpoint, train_model

    ckdir = study_dir / "checkpoints"
    out: list[StudyModel] = []
    tasks = [(dict(t), get_task(**t)) for t in cfg.tasks]
    for entry in cfg.models:
        if entry.checkpoint:
            src = Path(entry.checkpoint)
            if not src.is_file():
                raise UserError(f"model checkpoint {src} not found; fix the path in the study file")
            ck = load_checkpoint(src)
            key = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
            task = ck.task()
            out.append(StudyModel(key, entry.name, entry.group, model_id(ck.spec), task.name, src, ck.spec,
                                  evaluate_model(ck.model, task, cfg.split, cfg.batch_size)["score"],
                                  tuple(task.image_size)))
            continue
        for task_kw, task in tasks:
            spec = _spec_for(entry, task)
            tcfg = TrainConfig(seed=cfg.seed, device="cpu", progress=progress, val_every=0,
                               **cfg.train.digital())
            key = _hash({"spec": spec, "task": task.spec, "recipe": tcfg.recipe(), "seed": cfg.seed})
            path = ckdir / f"{key}.pt"
            if path.is_file():
                ck = load_checkpoint(path)
            else:
                ck = train_model(spec, task, tcfg)
                save_checkpoint(path, ck)
            mid = model_id(spec)
            if entry.hwa:  # hardware-aware fine-tuning of the digital checkpoint, cached likewise
                from analogmed.analog import load_preset
                from analogmed.analog.hwa import hwa_finetune

                t = cfg.train
                hcfg = TrainConfig(seed=cfg.seed, device="cpu", progress=progress, epochs=t.hwa_epochs,
                                   lr=t.hwa_lr, weight_decay=t.weight_decay, batch_size=t.batch_size,
                                   augment=t.augment, val_every=max(1, t.hwa_epochs // 4))
                # the whole preset (its [training] recipe included): a changed recipe retrains
                key = _hash({"digital": key, "hwa_recipe": hcfg.recipe(), "preset": t.hwa_preset,
                             "preset_spec": load_preset(t.hwa_preset).to_dict()})
                path = ckdir / f"{key}.pt"
                if path.is_file():
                    ck = load_checkpoint(path)
                else:
                    ck = hwa_finetune(ck, t.hwa_preset, hcfg, task)
                    save_checkpoint(path, ck)
                mid = f"{mid}+hwa"
            out.append(StudyModel(key, entry.name, entry.group, mid, task.name, path, spec,
                                  evaluate_model(ck.model, task, cfg.split, cfg.batch_size)["score"],
                                  tuple(task.image_size)))
    keys = [m.key for m in out]
    if len(set(keys)) != len(keys):
        raise UserError("the study lists the same model twice on one task; remove the duplicate [[models]] entry")
    return out


# -- the unit of work (runs on workers) ------------------------------------------------------------
_CACHE: dict[tuple, Any] = {}


def run_job(ckpt, model_key: str, preset: str, repetition: int, times_s: tuple[float, ...], seed: int,
            split: str = "val", batch_size: int = 8, engine: str = "fast", variation: str = "instances") -> list[dict]:
    """Evaluate one hardware instance of ``ckpt`` (a :class:`~analogmed.train.Checkpoint`) on ``preset``.

    Converts + calibrates the model once per (model_key, preset, seed) per process (cached), programs
    instance ``repetition``, drifts it to every t in ``times_s`` (s) and scores it on ``split``.
    Returns one row dict per t (``t_inference_s, repetition, seed, program_seed, score, <metrics>, wall_s``).
    """
    from analogmed.evaluate.robustness import evaluate_instance, prepare_analog

    ck = (model_key, preset, seed)
    if ck not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        task = ckpt.task()
        _CACHE[ck] = (prepare_analog(ckpt.model, task, preset, seed=seed), task)
    amodel, task = _CACHE[ck]
    return evaluate_instance(amodel, task, times_s, repetition, seed, split, batch_size, engine, variation)


# -- driver ---------------------------------------------------------------------------------------
def run_study(study: StudyConfig | str | Path, out: str | Path | None = None, workers: int = 0,
              scheduler: str | None = None, new: bool = False, progress: bool = True,
              on_rows: Callable[[int], None] | None = None) -> StudyResult:
    """Run (or resume) ``study``; results go to ``<out>/results.sqlite`` (default ``runs/studies/<name>``).

    ``workers`` > 0: a local Dask cluster of that many single-threaded worker processes;
    ``scheduler``: address of an existing Dask scheduler; neither: in this process.
    ``new``: discard stored results of this study first. The whole study is validated first
    (:func:`validate_study`), then the study folder is locked (:class:`~analogmed.study.store.StudyLock`:
    a second run of the same study at the same time refuses). Figures: :func:`analogmed.plots.study.plot_study`.
    """
    from analogmed.analog import load_preset
    from analogmed.study.executors import make_executor
    from analogmed.train import load_checkpoint

    t0 = time.perf_counter()
    cfg = study if isinstance(study, StudyConfig) else load_study(study)
    validate_study(cfg, workers=workers, scheduler=scheduler, out=out)  # before any training or writing
    times = cfg.grid()
    presets = [load_preset(p).name for p in cfg.presets]
    sdir = study_dir_for(cfg, out)
    db = sdir / DB_NAME
    with StudyLock(sdir, cfg.name):
        if new and db.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
        with Store.open(db) as store:
            store.bind(cfg.name, cfg.fingerprint(), cfg.model_dump())
            models = prepare_models(cfg, sdir, progress=progress)
            for m in models:
                store.add_model(m.key, m.model_id, m.task, m.label, m.group, m.spec, m.image_size)
            done = store.done_instances()
            jobs = [Job(m.key, p, r) for m in models for p, pname in zip(cfg.presets, presets)
                    for r in range(cfg.repetitions) if (m.key, m.task, pname, r) not in done]
            n_all = len(models) * len(presets) * cfg.repetitions
            by_key = {m.key: m for m in models}
            preset_name = dict(zip(cfg.presets, presets))
            added = 0
            bar = tqdm(total=n_all * len(times), initial=(n_all - len(jobs)) * len(times), unit="eval",
                       desc=f"study {cfg.name}", disable=None if progress else True)
            if jobs:
                ckpts = {m.key: load_checkpoint(m.path) for m in models}
                with make_executor(workers=workers, scheduler=scheduler) as ex:
                    for job, rows in ex.map(run_job, job_args(jobs, ckpts, times, cfg)):
                        m = by_key[job.model_key]
                        for r in rows:
                            r.update(model_key=m.key, model_id=m.model_id, task=m.task,
                                     preset=preset_name[job.preset], digital_score=m.digital_score)
                        added += store.add_rows(cfg.name, rows)
                        bar.update(len(rows))
                        if on_rows:
                            on_rows(added)
            bar.close()
            if cfg.uq is not None:  # [uq]: Monte Carlo uncertainty per (model, preset), resumable
                from analogmed.uq import uq_evaluate

                ukey = _hash({"uq": cfg.uq.model_dump(), "seed": cfg.seed, "split": cfg.split,
                              **({"variation": cfg.variation} if cfg.variation != "instances" else {})})
                done_uq = store.uq_done(ukey)
                for m in models:
                    for p in cfg.uq.presets or cfg.presets:
                        pname = load_preset(p).name
                        if (m.key, pname) in done_uq:
                            continue
                        ck = load_checkpoint(m.path)
                        rows = uq_evaluate(ck.model, ck.task(), p, cfg.uq.times_s, cfg.uq.samples, cfg.seed,
                                           cfg.split, batch_size=cfg.batch_size, engine=cfg.engine,
                                           variation=cfg.variation)
                        store.add_uq(cfg.name, m.key, pname, ukey, rows)
            table = store.table()
            total = store.count()
    return StudyResult(db, added, total, len(jobs), n_all - len(jobs), time.perf_counter() - t0, table)


def job_args(jobs: list[Job], ckpts: dict, times, cfg: StudyConfig):
    """(job, ckpt, kwargs) triples for an executor."""
    for j in jobs:
        yield j, ckpts[j.model_key], dict(model_key=j.model_key, preset=j.preset, repetition=j.repetition,
                                          times_s=tuple(times), seed=cfg.seed, split=cfg.split,
                                          batch_size=cfg.batch_size, engine=cfg.engine, variation=cfg.variation)


def remove_study(sdir: Path) -> None:
    """Delete a study directory (results and checkpoint cache)."""
    shutil.rmtree(sdir, ignore_errors=True)
