"""``run_search``: a search file -> supernets, searches (Optuna, resumable), selections, "(T)" rows, tables, figures.

Folder ``runs/search/<name>/`` (or ``out``):

- ``search.sqlite``: the :class:`~analogmed.search.evaluate.SearchStore` (evaluations, stand-alone rows);
- ``optuna.sqlite``: Optuna's storage, one study per (objective, method, seed) run;
- ``supernets/<task>-<fingerprint>.pt``: one trained supernet per task;
- ``trials.csv`` (every evaluation of every run), ``hypervolume.csv`` (per run and n),
  ``selected.csv`` (the architecture each run selects), ``standalone.csv`` ("(T)" rows),
  ``importance.csv``, ``table-<objective>.csv`` / ``.md`` (the talk's comparison table),
  ``runs.csv`` (wall time per run), figures ``hv-<objective>.png/pdf`` and ``front-<objective>.png/pdf``.

Resuming: a run with fewer completed trials than ``budget`` continues where it stopped (a trial that
was running when the process died is marked failed and redrawn with the same seed); evaluations,
supernets and stand-alone rows already stored are reused.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from analogmed.errors import UserError
from analogmed.io import atomic_path, write_text_atomic
from analogmed.search.config import HARDWARE_AWARE, MULTI_TASK_METHODS, SearchConfig, load_search
from analogmed.search.evaluate import Evaluator, SearchStore, analog_scores
from analogmed.search.report import markdown_table
from analogmed.search.pareto import hypervolume_curve, pareto_mask
from analogmed.search.samplers import encoding_of, make_sampler
from analogmed.search.space import ALL_PLATFORMS, HardwareCost, SearchSpace
from analogmed.seeding import derive_seed

DIRECTIONS = ["maximize", "minimize"]


def _csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


@dataclass
class SearchResult:
    """What :func:`run_search` produced: folder, tables and figure paths."""

    out: Path
    trials: pd.DataFrame
    hypervolume: pd.DataFrame
    selected: pd.DataFrame
    standalone: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    runs: pd.DataFrame
    figures: list[Path] = field(default_factory=list)
    evaluations_computed: int = 0
    wall_s: float = 0.0
    deploy: pd.DataFrame = field(default_factory=pd.DataFrame)


def load_tasks(cfg: SearchConfig, methods: list[str]) -> list:
    """The file's tasks; UserError if they cannot share architectures."""
    from analogmed.data import get_task

    tasks = [get_task(**t) for t in cfg.tasks]
    dims = {t.spatial_dims for t in tasks}
    if len(dims) > 1:
        raise UserError(f"tasks {', '.join(t.name for t in tasks)} have different spatial dims "
                        f"({', '.join(str(t.spatial_dims) for t in tasks)}): their ops cannot be shared; "
                        "give tasks of one spatial dims per search file")
    if len({t.in_channels for t in tasks}) > 1:
        raise UserError("tasks have different input channels: their first-level ops cannot be shared; "
                        "give tasks with the same in_channels per search file")
    if len({tuple(t.image_size) for t in tasks}) > 1:
        raise UserError("tasks have different image sizes; give every [[tasks]] the same size")
    for t in tasks:
        if t.kind != "segmentation":
            raise UserError(f"task {t.name} is {t.kind}; the search covers segmentation tasks (U-Net space)")
    mt = [m for m in methods if m in MULTI_TASK_METHODS]
    if mt and len(tasks) < 2:
        raise UserError(f"method {mt[0]} needs at least two [[tasks]] (one supernet each); add a task "
                        "(e.g. mni152-brainmask beside mni152-tissue) or use method mias")
    return tasks


def train_supernets(cfg: SearchConfig, tasks, out: Path, progress: bool = True) -> list:
    """One supernet per task, trained once and stored under ``out/supernets`` (reused when present)."""
    from analogmed.train.supernet import SupernetConfig, load_supernet, save_supernet, train_supernet

    from analogmed.search.space import task_keys

    nets = []
    fp = cfg.fingerprint("supernet", "seed")
    for t, key in zip(tasks, task_keys(tasks)):
        path = out / "supernets" / f"{key}-{fp}.pt"
        if path.is_file():
            nets.append(load_supernet(path).supernet)
            continue
        sc = cfg.supernet
        ckpt = train_supernet(t, SupernetConfig(epochs=sc.epochs, lr=sc.lr, batch_size=sc.batch_size,
                                                seed=cfg.seed, progress=progress),
                              widths=sc.widths, blocks=sc.blocks)
        save_supernet(path, ckpt)
        nets.append(ckpt.supernet)
    return nets


def _mark_stale(study) -> None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


@dataclass
class _Run:
    objective: str
    method: str
    seed: int
    study: Any
    todo: int


def open_run(cfg: SearchConfig, objective: str, method: str, seed: int, space, storage, importances, sigma,
             level_latency, stop_after: int | None = None) -> _Run:
    """The Optuna study of one (objective, method, seed) run (created or resumed): trials left to do."""
    import optuna
    from optuna.trial import TrialState

    name = f"{objective}:{method}:s{seed}:{cfg.platform}:{cfg.fingerprint('mias', 'evolution', 'nsga2', 'budget')}"
    study = optuna.create_study(study_name=name, storage=storage, directions=DIRECTIONS, load_if_exists=True,
                                sampler=make_sampler(method, space, seed, cfg, importances, sigma, level_latency))
    _mark_stale(study)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    todo = max(cfg.budget - done, 0)
    if stop_after is not None:
        todo = min(todo, stop_after)
    return _Run(objective, method, seed, study, todo)


def drive(runs: list[_Run], space, evaluator, executor=None, batch: int = 1, progress: bool = True) -> None:
    """Run every run to its budget in rounds (Optuna ask/tell).

    A round asks up to ``batch`` trials of every unfinished run (a run's trials are asked in order, each
    sampler seeing the trials completed before the round), computes the evaluations none of the stored
    rows holds (each (objective, architecture, task) once) on ``executor`` -- in parallel on a Dask
    cluster -- stores them, then tells every trial its values in trial order. With ``batch = 1`` every
    run's trials are exactly those of a one-at-a-time search, whatever the number of workers.
    """
    total = sum(r.todo for r in runs)
    bar = tqdm(total=total, desc="search trials", disable=not progress or None, leave=False)
    while any(r.todo > 0 for r in runs):
        asked = []
        for r in runs:
            for _ in range(min(batch, r.todo)):
                trial = r.study.ask()
                enc = tuple(trial.suggest_categorical(f"l{i}", space.choices(i)) for i in range(space.depth))
                asked.append((r, trial, enc))
        jobs = evaluator.missing([(enc, r.objective) for r, _, enc in asked])
        evaluator.run_jobs(jobs, executor)
        for r, trial, enc in asked:
            res = evaluator.evaluate(enc, r.objective)
            trial.set_user_attr("res", res)   # one attribute: one storage commit
            r.study.tell(trial, [res["alpha"], res["latency_ms"]])
            r.todo -= 1
            bar.update(1)
    bar.close()


def run_one(cfg: SearchConfig, objective: str, method: str, seed: int, space, evaluator, storage,
            importances, sigma, level_latency, progress: bool = True, stop_after: int | None = None):
    """Run (or resume) one (objective, method, seed) search to ``cfg.budget`` completed trials, here."""
    r = open_run(cfg, objective, method, seed, space, storage, importances, sigma, level_latency, stop_after)
    drive([r], space, evaluator, None, 1, progress)
    return r.study


def _trials_frame(study, objective, method, seed, depth) -> pd.DataFrame:
    from optuna.trial import TrialState

    rows = []
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    for n, t in enumerate(done, 1):
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else float("nan")
        rows.append({"objective": objective, "method": method, "seed": seed, "n": n, "trial": t.number,
                     "encoding": "-".join(encoding_of(t.params, depth)), **t.user_attrs.get("res", {}),
                     "trial_s": dur})
    return pd.DataFrame(rows)


def select(df: pd.DataFrame, max_latency_ms: float | None) -> pd.Series:
    """The run's selected architecture: best ``alpha`` at or under ``max_latency_ms`` (best overall if none fits)."""
    ok = df if max_latency_ms is None else df[df["latency_ms"] <= max_latency_ms]
    ok = ok if len(ok) else df
    return ok.sort_values(["alpha", "latency_ms", "n"], ascending=[False, True, True]).iloc[0]


def standalone_job(ctx, label: str, task_index: int, task_key: str, epochs: int, lr: float, batch_size: int,
                   repeats: int) -> dict:
    """Train ``label`` from scratch on task ``task_index`` of ``ctx`` (an
    :class:`~analogmed.search.evaluate.EvalContext`) and score it digitally and on ``repeats`` analog
    instances (1 s / 1 d / 30 d). Runs here or on a Dask worker; returns the "(T)" row."""
    import torch

    from analogmed.evaluate.metrics import evaluate_model
    from analogmed.evaluate.robustness import prepare_analog
    from analogmed.space.architecture import Architecture
    from analogmed.train.digital import TrainConfig, train_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    task = ctx.tasks[task_index]
    sn = ctx.supernets[task_index]
    arch = Architecture.from_label(label, sn.spatial_dims, sn.in_channels, sn.out_channels)
    seed = derive_seed(ctx.seed, "standalone", label, task_key)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device="cpu",
                                   augment=False, progress=False))
    digital = float(evaluate_model(ckpt.model, task, ctx.split)["score"])
    amodel = prepare_analog(ckpt.model, task, ctx.analog.preset, seed=seed)
    return {"digital_score": digital, **analog_scores(amodel, task, repeats, seed, ctx.split),
            "train_seed": seed, "wall_s": time.perf_counter() - t0}


def standalone_setup(cfg: SearchConfig) -> str:
    return cfg.fingerprint("standalone", "analog", "seed", "split", "tasks")


def standalone_rows(cfg: SearchConfig, space, store: SearchStore, ctx, wanted: list[tuple[str, int]],
                    executor=None, progress: bool = True) -> dict[tuple[str, int], dict]:
    """The "(T)" rows of ``wanted`` ``(label, task_index)``: stored ones reused, the others trained (on
    ``executor`` when given, in parallel) and stored."""
    setup = standalone_setup(cfg)
    st = cfg.standalone
    out, todo = {}, []
    for label, i in dict.fromkeys(wanted):
        row = store.get("standalone", setup=setup, task=space.keys[i], arch=label)
        if row is None:
            todo.append((label, i))
        else:
            out[(label, i)] = row
    kw = {"epochs": st.epochs, "lr": st.lr, "batch_size": st.batch_size, "repeats": st.repeats}
    items = [((label, i), ctx, dict(kw, label=label, task_index=i, task_key=space.keys[i])) for label, i in todo]
    results = (executor.map(standalone_job, items) if executor is not None else
               (((label, i), standalone_job(ctx, **k)) for (label, i), _, k in items))
    for (label, i), row in tqdm(results, total=len(items), desc="stand-alone (T)", disable=not progress or None,
                                leave=False):
        store.put("standalone", row, setup=setup, task=space.keys[i], arch=label)
        out[(label, i)] = row
    return out


def standalone_eval(cfg: SearchConfig, space, store: SearchStore, label: str, task_index: int) -> dict:
    """One "(T)" row (cached in the store): :func:`standalone_job` here."""
    from analogmed.search.evaluate import EvalContext

    ctx = EvalContext(space.supernets, space.tasks, cfg.analog, cfg.seed, cfg.split)
    return standalone_rows(cfg, space, store, ctx, [(label, task_index)], None, False)[(label, task_index)]


def platform_latencies(space, enc: tuple[str, ...], costs: dict[str, HardwareCost]) -> dict[str, float]:
    """Latency (ms) of an encoding on every platform: ``latency_ms_<platform>``."""
    return {f"latency_ms_{p}": c.encoding_cost(space, enc)[0] for p, c in costs.items()}


def comparison_table(cfg: SearchConfig, space, selected: pd.DataFrame, standalone: pd.DataFrame,
                     objective: str) -> pd.DataFrame:
    """The talk's table for one objective: per method a supernet row and a "(T)" row; medians over seeds."""
    rows = []
    names = space.keys
    sel = selected[selected["objective"] == objective]
    for method in cfg.methods:
        s = sel[sel["method"] == method]
        if s.empty:
            continue
        lat_cols = [c for c in s.columns if c.startswith("latency_ms_")]
        base = {"method": method, "hardware_aware": "yes" if HARDWARE_AWARE[method] else "no", "seeds": len(s)}
        row = dict(base, alpha=float(s["alpha"].median()))
        for n in names:
            row[f"score_{n}"] = float(s[f"sn_digital_{n}"].median())
        for c in lat_cols:
            row[c] = float(s[c].median())
        row["score_1d_analog"] = float(s["sn_score_1d"].median())
        row["avm"] = float(s["sn_avm"].median())
        rows.append(row)
        if standalone.empty:
            continue
        st = standalone[(standalone["objective"] == objective) & (standalone["method"] == method)]
        if st.empty:
            continue
        trow = dict(base, method=f"{method} (T)", alpha=float("nan"))
        for n in names:
            trow[f"score_{n}"] = float(st[st["task"] == n]["digital_score"].median())
        for c in lat_cols:
            trow[c] = row[c]
        per_seed = st.groupby("seed")[["score_1d", "avm"]].mean()
        trow["score_1d_analog"] = float(per_seed["score_1d"].median())
        trow["avm"] = float(per_seed["avm"].median())
        rows.append(trow)
    return pd.DataFrame(rows)


def _check_new(out: Path) -> None:
    """``--new`` removes ``out``: refuse unless it is a search folder (or empty), so a typo cannot wipe a folder."""
    if not out.is_dir():
        return
    if any(out.iterdir()) and not ((out / "search.sqlite").exists() or (out / "optuna.sqlite").exists()):
        raise UserError(f"--new would delete {out}, which is not a search folder (no search.sqlite); "
                        "give a search folder or a new path with --out")


def run_search(path_or_cfg: str | Path | SearchConfig, out: str | Path | None = None, new: bool = False,
               progress: bool = True, plots: bool = True, stop_after: int | None = None, workers: int = 0,
               scheduler: str | None = None, batch: int = 1, executor=None) -> SearchResult:
    """Run (or resume) every (objective, method, seed) of a search file; write tables and figures.

    Everything the search needs (the file, the output folder, the tasks, the platform LUT, the
    benchmark table of ``alpha_source = "nasbench"``, the Dask arguments) is checked before any work.
    ``workers`` > 0: a local Dask cluster of that many single-threaded processes; ``scheduler``: an
    existing Dask scheduler; the runs advance in rounds and each round's evaluations (and the "(T)"
    trainings) run in parallel (see :func:`drive`). ``batch``: trials in flight per run and round
    (1: every run's trials are those of a one-at-a-time search). ``stop_after``: at most this many new
    trials per run in this call (for tests of resuming). ``executor``: an open
    :mod:`analogmed.study.executors` executor to use instead of ``workers`` / ``scheduler`` (the caller
    closes it).
    """
    from analogmed.io import check_output_dir
    from analogmed.study.executors import check_executor_args, make_executor

    t_start = time.perf_counter()
    cfg = path_or_cfg if isinstance(path_or_cfg, SearchConfig) else load_search(path_or_cfg)
    out = Path(out) if out is not None else Path("runs") / "search" / cfg.name
    check_output_dir(out, "search folder")
    if new:
        _check_new(out)
    if batch < 1:
        raise UserError(f"--batch {batch} is invalid; give at least 1 trial per run and round")
    check_executor_args(workers, scheduler)
    tasks = load_tasks(cfg, cfg.methods)
    cost = HardwareCost(cfg.platform)
    lookup = None
    if cfg.analog.alpha_source == "nasbench":
        from analogmed.search.lookup import BenchLookup
        from analogmed.search.space import task_keys

        lookup = BenchLookup(cfg.analog.nasbench, tasks, task_keys(tasks), cfg.analog.preset,
                             cfg.analog.avm_penalty)
    probe = SearchSpace(untrained_supernets(cfg, tasks), tasks)   # the LUT and the table before any training
    cost.check_space(probe)
    if lookup is not None:
        lookup.check_space(probe)
    if new and out.exists():
        import shutil
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    nets = train_supernets(cfg, tasks, out, progress)
    space = SearchSpace(nets, tasks)
    from analogmed.search.importance import block_importance, task_similarity

    importances = [block_importance(n) for n in nets]
    sigma = task_similarity(nets, importances)
    imp_rows = [dict(r, task=k, sigma=sigma[(r["level"], r["op"])],
                     level_latency_ms=cost.level_cost(space, r["level"], r["op"]))
                for k, imp in zip(space.keys, importances) for r in imp.to_rows()]
    _csv(pd.DataFrame(imp_rows), out / "importance.csv")

    store = SearchStore(out / "search.sqlite")
    setup = cfg.fingerprint("tasks", "supernet", "analog", "seed", "split")  # not the platform: alpha only
    store.set_meta(name=cfg.name, setup=setup, config=cfg.model_dump_json())
    evaluator = Evaluator(space, cost, store, setup, cfg.analog, cfg.seed, cfg.split, lookup=lookup)
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{(out / 'optuna.sqlite').resolve()}",
                                         engine_kwargs={"connect_args": {"timeout": 60}})

    def lat_fn(lv: int, o: str) -> float:
        return cost.level_cost(space, lv, o)

    try:
        runs = [open_run(cfg, objective, method, seed, space, storage, importances, sigma, lat_fn, stop_after)
                for objective in cfg.objectives for method in cfg.methods for seed in cfg.seeds]
        if executor is not None:
            ctx = contextlib.nullcontext(executor)
        else:
            ctx = make_executor(workers, scheduler) if (workers or scheduler) else contextlib.nullcontext()
        with ctx as executor:
            drive(runs, space, evaluator, executor, batch, progress)
            frames, run_rows = [], []
            for r in runs:
                df = _trials_frame(r.study, r.objective, r.method, r.seed, space.depth)
                frames.append(df)
                run_rows.append({"objective": r.objective, "method": r.method, "seed": r.seed, "trials": len(df),
                                 "wall_s": float(df["trial_s"].sum()) if len(df) else 0.0})
            trials = pd.concat(frames, ignore_index=True)
            _csv(trials, out / "trials.csv")
            runs_df = pd.DataFrame(run_rows)
            _csv(runs_df, out / "runs.csv")
            complete = all(r["trials"] >= cfg.budget for r in run_rows)
            hv, selected, standalone, tables, deploy = _summaries(cfg, space, evaluator, store, trials, complete,
                                                                  progress, executor)
        _csv(hv, out / "hypervolume.csv")
        _csv(selected, out / "selected.csv")
        _csv(standalone, out / "standalone.csv")
        _csv(deploy, out / "deploy.csv")
        for obj, tab in tables.items():
            _csv(tab, out / f"table-{obj}.csv")
            write_text_atomic(out / f"table-{obj}.md", markdown_table(tab) + "\n")
        figures = []
        if plots and complete:
            from analogmed.plots.search import plot_fronts, plot_hypervolume

            for obj in cfg.objectives:
                figures += plot_hypervolume(hv[hv["objective"] == obj], out / f"hv-{obj}", obj)
                figures += plot_fronts(trials[trials["objective"] == obj], out / f"front-{obj}", obj,
                                       cfg.platform)
    finally:
        store.close()
    return SearchResult(out, trials, hv, selected, standalone, tables, runs_df, figures, evaluator.n_computed,
                        time.perf_counter() - t_start, deploy)


def untrained_supernets(cfg: SearchConfig, tasks) -> list:
    """Fresh (untrained) supernets of the file's space, one per task: enough to list and price the space."""
    from analogmed.train.supernet import supernet_for_task

    return [supernet_for_task(t, cfg.supernet.widths, cfg.supernet.blocks) for t in tasks]


def latency_reference(space, cost: HardwareCost) -> float:
    """The hypervolume's latency reference: 1.1 x the slowest architecture of the space (ms)."""
    return 1.1 * max(cost.encoding_cost(space, key)[0] for key in space.enumerate())


def deploy_rows(cfg: SearchConfig, space, trials: pd.DataFrame, cost: HardwareCost) -> pd.DataFrame:
    """MT-MIAS-C's smallest deployable supernet (:mod:`analogmed.search.deploy`) of every ``mt-mias-c`` run,
    next to the single shared architecture the run selects: one row per (objective, seed)."""
    from analogmed.search.deploy import smallest_deployable, space_block_params, space_fixed_params, union_levels
    from analogmed.search.deploy import supernet_params

    dc = cfg.deploy
    if not dc.enabled or "mt-mias-c" not in cfg.methods:
        return pd.DataFrame()
    cap = dc.max_latency_ms if dc.max_latency_ms is not None else cfg.select.max_latency_ms
    bp, fp = space_block_params(space.supernets[0]), space_fixed_params(space.supernets)
    rows = []
    for (obj, seed), df in trials[trials["method"] == "mt-mias-c"].groupby(["objective", "seed"], sort=False):
        cands = []
        for i, (k, t) in enumerate(zip(space.keys, space.tasks)):
            per = []
            for enc, a in zip(df["encoding"], df[f"alpha_{k}"]):
                key = space.canonical(enc.split("-"))
                per.append((key, float(a), cost.arch_cost(space.arch(key, i), t.image_size)[0]))
            cands.append(per)
        d = smallest_deployable(cands, bp, fp, cap, dc.max_params, dc.tolerance)
        shared = select(df, cap)
        skey = space.canonical(shared["encoding"].split("-"))
        row = {"objective": obj, "seed": seed, "feasible": d.feasible, "reason": d.reason,
               "max_latency_ms": cap, "max_params": dc.max_params, "tolerance": dc.tolerance,
               "n_blocks": d.n_blocks, "params": d.params, "levels": d.level_text(),
               "shared_label": shared["label"], "shared_n_blocks": len(skey),
               "shared_params": supernet_params(union_levels([skey]), bp, fp), "combinations": d.combinations}
        for i, k in enumerate(space.keys):
            row[f"label_{k}"] = space.label(d.choices[i]) if d.feasible else ""
            row[f"alpha_{k}"] = d.alpha[i] if d.feasible else float("nan")
            row[f"latency_ms_{k}"] = d.latency_ms[i] if d.feasible else float("nan")
            row[f"shared_alpha_{k}"] = float(shared[f"alpha_{k}"])
        rows.append(row)
    return pd.DataFrame(rows)


def _summaries(cfg, space, evaluator, store, trials, complete, progress, executor=None):
    lat_ref = latency_reference(space, evaluator.cost)
    hv_rows = []
    for (obj, method, seed), df in trials.groupby(["objective", "method", "seed"], sort=False):
        df = df.sort_values("n")
        curve = hypervolume_curve(df["alpha"], df["latency_ms"], 0.0, lat_ref)
        hv_rows += [{"objective": obj, "method": method, "seed": seed, "n": n, "hypervolume": h,
                     "lat_ref_ms": lat_ref} for n, h in zip(df["n"], curve)]
    hv = pd.DataFrame(hv_rows)
    costs = {p: (evaluator.cost if p == cfg.platform else HardwareCost(p)) for p in ALL_PLATFORMS}
    picks = [(key, s) for key, df in trials.groupby(["objective", "method", "seed"], sort=False)
             for s in [select(df, cfg.select.max_latency_ms)]]
    # the analog (and digital) rows of the selected architectures, computed in parallel when there is a cluster
    need = [(tuple(s["encoding"].split("-")), o) for _, s in picks for o in ("analog", "digital")]
    evaluator.run_jobs(evaluator.missing(need), executor)
    sel_rows = []
    for (obj, method, seed), s in picks:
        df = trials[(trials["objective"] == obj) & (trials["method"] == method) & (trials["seed"] == seed)]
        enc = tuple(s["encoding"].split("-"))
        analog = evaluator.evaluate(enc, "analog")  # 1-day score / AVM of the sub-network for every objective
        row = {"objective": obj, "method": method, "seed": seed, "label": s["label"], "encoding": s["encoding"],
               "n": int(s["n"]), "alpha": float(s["alpha"]), "latency_ms": float(s["latency_ms"]),
               "sn_score_1d": analog["score_1d"], "sn_avm": analog["avm"], "on_front":
               bool(pareto_mask(df["alpha"], df["latency_ms"])[df.index.get_loc(s.name)])}
        for i, k in enumerate(space.keys):
            row[f"alpha_{k}"] = float(s[f"alpha_{k}"])
            row[f"sn_digital_{k}"] = evaluator.task_eval(enc, "digital", i)["alpha"]
        row.update(platform_latencies(space, enc, costs))
        sel_rows.append(row)
    selected = pd.DataFrame(sel_rows)
    st_rows = []
    if cfg.standalone.enabled and complete:
        methods = cfg.standalone.methods or cfg.methods
        todo = selected[selected["method"].isin(methods)]
        jobs = [(r, i) for _, r in todo.iterrows() for i in range(len(space.tasks))]
        done = standalone_rows(cfg, space, store, evaluator.ctx, [(r["label"], i) for r, i in jobs], executor,
                               progress)
        for r, i in jobs:
            st_rows.append({"objective": r["objective"], "method": r["method"], "seed": r["seed"],
                            "label": r["label"], "task": space.keys[i], **done[(r["label"], i)]})
    standalone = pd.DataFrame(st_rows)
    tables = {obj: comparison_table(cfg, space, selected, standalone, obj) for obj in cfg.objectives}
    deploy = deploy_rows(cfg, space, trials, evaluator.cost)
    return hv, selected, standalone, tables, deploy


def open_search(path: str | Path) -> dict[str, Any]:
    """Stored tables of a search folder (``trials``, ``hypervolume``, ``selected``, ``standalone``)."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"search folder {p} does not exist; run `analogmed search run FILE.toml` first")
    out = {}
    for name in ("trials", "hypervolume", "selected", "standalone", "runs", "deploy"):
        f = p / f"{name}.csv"
        out[name] = pd.read_csv(f) if f.is_file() and f.stat().st_size > 1 else pd.DataFrame()
    return out


__all__ = ["SearchResult", "comparison_table", "deploy_rows", "drive", "latency_reference", "load_tasks", "open_run",
           "open_search", "run_search", "select", "standalone_eval", "standalone_job", "standalone_rows",
           "train_supernets", "untrained_supernets"]
