"""Evaluating a sub-network (weight sharing) and the search results store.

:class:`SearchStore`: one SQLite file (WAL) per search folder, tables

- ``meta(key, value)``;
- ``evals(setup, objective, task, arch, row)``: one evaluation of a sub-network on a task (``row`` JSON),
  shared by every method and seed (an architecture's evaluation does not depend on who asks);
- ``standalone(setup, task, arch, row)``: a selected architecture trained from scratch ("(T)" rows).

Every row is written in its own transaction: a kill leaves finished rows and no half row.

:class:`Evaluator`: ``alpha`` of an encoding per task.

* ``digital``: the sub-network (supernet weights, :meth:`Supernet.subnet`), BatchNorm statistics
  re-estimated on the train split, scored on the validation split (Dice): the talk's weight-sharing alpha.
* ``analog``: the same sub-network converted to analog (``analog.preset``), ``analog.repeats``
  freshly programmed hardware instances drifted to 1 s, 1 day and 30 days:
  ``alpha = score_1d_mean - avm_penalty * max(AVM, 0)`` with ``AVM = score(1 s) - score(30 d)``.
  Seeds: ``derive_seed(seed, "eval", arch label, task name)``.
"""
from __future__ import annotations

import json
import sqlite3
import statistics
import time
from pathlib import Path

from analogmed.seeding import derive_seed

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evals (setup TEXT NOT NULL, objective TEXT NOT NULL, task TEXT NOT NULL,
    arch TEXT NOT NULL, row TEXT NOT NULL, PRIMARY KEY (setup, objective, task, arch));
CREATE TABLE IF NOT EXISTS standalone (setup TEXT NOT NULL, task TEXT NOT NULL, arch TEXT NOT NULL,
    row TEXT NOT NULL, PRIMARY KEY (setup, task, arch));
"""


class SearchStore:
    """The search results store (module docstring); use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, timeout=60)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(SCHEMA)

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def meta(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **kw: str) -> None:
        with self.con:
            self.con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in kw.items()])

    def get(self, table: str, **key: str) -> dict | None:
        where = " AND ".join(f"{k} = ?" for k in key)
        r = self.con.execute(f"SELECT row FROM {table} WHERE {where}", tuple(key.values())).fetchone()
        return json.loads(r[0]) if r else None

    def put(self, table: str, row: dict, **key: str) -> None:
        cols = ", ".join(list(key) + ["row"])
        qs = ", ".join("?" * (len(key) + 1))
        with self.con:
            self.con.execute(f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({qs})",
                             (*key.values(), json.dumps(row)))

    def rows(self, table: str) -> list[dict]:
        cur = self.con.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        out = []
        for r in cur.fetchall():
            d = dict(zip(names, r))
            d.update(json.loads(d.pop("row")))
            out.append(d)
        return out


_TASKS: dict[str, object] = {}


def _task(spec: dict):
    """``get_task(**spec)``, built once per process (a Dask worker rebuilds the tasks from their specs)."""
    from analogmed.data import get_task

    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _TASKS:
        _TASKS[key] = get_task(**spec)
    return _TASKS[key]


class EvalContext:
    """What computing an evaluation needs, and nothing of the store: the supernets, the tasks (rebuilt from
    their specs after pickling, so a Dask worker receives weights and specs only), the ``[analog]`` section,
    the base seed, the scored split and the batch size."""

    def __init__(self, supernets, tasks, analog, seed: int = 0, split: str = "val", batch_size: int = 8):
        self.supernets = list(supernets)
        self.task_specs = [dict(t.spec) for t in tasks]
        self._tasks = list(tasks)
        self.analog, self.seed, self.split, self.batch_size = analog, int(seed), split, int(batch_size)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tasks"] = None
        return state

    @property
    def tasks(self) -> list:
        if self._tasks is None:
            self._tasks = [_task(s) for s in self.task_specs]
        return self._tasks

    def space(self):
        from analogmed.search.space import SearchSpace

        return SearchSpace(self.supernets, self.tasks)


def analog_scores(amodel, task, repeats: int, seed: int, split: str = "val", batch_size: int = 8) -> dict:
    """Mean score of ``repeats`` programmed instances of ``amodel`` (prepared analog model) at 1 s, 1 d and
    30 d: ``score_1s``, ``score_1d``, ``score_1d_std`` (ddof 1; NaN for one instance) and ``avm`` = 1 s - 30 d."""
    from analogmed.evaluate.robustness import DAY, MONTH, evaluate_instance

    by_t: dict[float, list[float]] = {1.0: [], DAY: [], MONTH: []}
    for r in range(repeats):
        for row in evaluate_instance(amodel, task, tuple(by_t), r, seed, split, batch_size):
            by_t[row["t_inference_s"]].append(float(row["score"]))
    s1, s1d, s30 = (statistics.fmean(by_t[t]) for t in (1.0, DAY, MONTH))
    return {"score_1s": s1, "score_1d": s1d,
            "score_1d_std": statistics.stdev(by_t[DAY]) if len(by_t[DAY]) > 1 else float("nan"), "avm": s1 - s30}


def _analog_row(ctx: EvalContext, sub, task, label: str, tkey: str) -> dict:
    from analogmed.evaluate.robustness import prepare_analog

    seed = derive_seed(ctx.seed, "eval", label, tkey)
    amodel = prepare_analog(sub, task, ctx.analog.preset, seed=seed)
    sc = analog_scores(amodel, task, ctx.analog.repeats, seed, ctx.split, ctx.batch_size)
    return {"alpha": sc["score_1d"] - ctx.analog.avm_penalty * max(sc["avm"], 0.0), **sc, "eval_seed": seed,
            "repeats": ctx.analog.repeats}


def compute_eval(ctx: EvalContext, objective: str, encoding: tuple, task_index: int) -> dict:
    """One evaluation of ``encoding`` on task ``task_index`` (runs in this process or on a Dask worker): the
    sub-network with supernet weights, BatchNorm re-estimated on the train split, scored digitally
    (``alpha`` = Dice) or on ``analog.repeats`` analog instances (module docstring); ``wall_s`` (s)."""
    from analogmed.train.supernet import recalibrate_bn

    t0 = time.perf_counter()
    space = ctx.space()
    task, tkey = space.tasks[task_index], space.keys[task_index]
    sub = space.supernets[task_index].subnet(space.arch(encoding, task_index))
    recalibrate_bn(sub, task, ctx.batch_size)
    if objective == "digital":
        from analogmed.evaluate.metrics import evaluate_model

        row = {"alpha": float(evaluate_model(sub, task, ctx.split, ctx.batch_size)["score"])}
    else:
        row = _analog_row(ctx, sub, task, space.label(encoding), tkey)
    row["wall_s"] = time.perf_counter() - t0
    return row


def eval_job(ctx: EvalContext, objective: str, encoding: tuple, task_index: int) -> dict:
    """:func:`compute_eval` as an executor job (``analogmed.study.executors``: ``fn(ctx, **kwargs)``)."""
    import torch

    torch.set_num_threads(1)
    return compute_eval(ctx, objective, tuple(encoding), int(task_index))


class Evaluator:
    """``alpha`` of encodings on every task of a :class:`~analogmed.search.space.SearchSpace`, cached in a store.

    Args:
        space: the search space (supernets and tasks).
        cost: a :class:`~analogmed.search.space.HardwareCost` (the search's platform).
        store: the :class:`SearchStore`; ``setup``: fingerprint of what changes evaluations.
        analog: the config's ``[analog]`` section; ``seed``: base seed; ``split``: scored split.
        lookup: a :class:`~analogmed.search.lookup.BenchLookup` (``alpha_source = "nasbench"``): alpha is
            read from the analog MED-NAS-Bench table instead of computed.
    """

    def __init__(self, space, cost, store: SearchStore, setup: str, analog, seed: int = 0, split: str = "val",
                 batch_size: int = 8, lookup=None):
        self.space, self.cost, self.store, self.setup = space, cost, store, setup
        self.analog, self.seed, self.split, self.batch_size = analog, int(seed), split, batch_size
        self.ctx = EvalContext(space.supernets, space.tasks, analog, seed, split, batch_size)
        self.lookup = lookup
        self.n_computed = 0

    def _key(self, encoding, objective: str, task_index: int) -> dict:
        return dict(setup=self.setup, objective=objective, task=self.space.keys[task_index],
                    arch=self.space.label(encoding))

    def cached(self, encoding, objective: str, task_index: int) -> dict | None:
        """The stored evaluation row, or None."""
        return self.store.get("evals", **self._key(encoding, objective, task_index))

    def put(self, encoding, objective: str, task_index: int, row: dict) -> None:
        self.store.put("evals", row, **self._key(encoding, objective, task_index))
        self.n_computed += 1

    def compute(self, encoding, objective: str, task_index: int) -> dict:
        """A new evaluation row (not stored): looked up in the benchmark table or computed here."""
        if self.lookup is not None:
            t0 = time.perf_counter()
            row = self.lookup.row(self.space.label(encoding), task_index, objective)
            row["wall_s"] = time.perf_counter() - t0
            return row
        return compute_eval(self.ctx, objective, self.space.canonical(encoding), task_index)

    def run_jobs(self, jobs, executor=None) -> int:
        """Compute and store the evaluations ``jobs`` (``(objective, encoding, task_index)``, not stored yet),
        on ``executor`` (an ``analogmed.study.executors`` executor) or here; lookups always run here.
        Returns the number computed."""
        jobs = list(jobs)
        if self.lookup is not None or executor is None:
            for obj, enc, i in jobs:
                self.put(enc, obj, i, self.compute(enc, obj, i))
            return len(jobs)
        items = [((obj, enc, i), self.ctx, {"objective": obj, "encoding": tuple(enc), "task_index": i})
                 for obj, enc, i in jobs]
        for (obj, enc, i), row in executor.map(eval_job, items):
            self.put(enc, obj, i, row)
        return len(jobs)

    def missing(self, requests) -> list[tuple[str, tuple, int]]:
        """The ``(objective, canonical encoding, task_index)`` of ``requests`` (``(encoding, objective)``)
        that are not stored yet, each once."""
        out, seen = [], set()
        for enc, obj in requests:
            key = self.space.canonical(enc)
            for i in range(len(self.space.tasks)):
                if (obj, key, i) not in seen and self.cached(key, obj, i) is None:
                    seen.add((obj, key, i))
                    out.append((obj, key, i))
        return out

    def task_eval(self, encoding, objective: str, task_index: int) -> dict:
        """One task's evaluation row (cached): ``alpha`` and, for ``analog``, ``score_1s``, ``score_1d``,
        ``score_1d_std``, ``avm``; ``wall_s``."""
        row = self.cached(encoding, objective, task_index)
        if row is None:
            row = self.compute(encoding, objective, task_index)
            self.put(encoding, objective, task_index, row)
        return row

    def evaluate(self, encoding, objective: str) -> dict:
        """All tasks: ``alpha`` (mean over tasks), ``alpha_<task>``, ``latency_ms``, ``energy_mj``, and for
        ``analog`` the mean ``score_1d`` and ``avm``."""
        rows = [self.task_eval(encoding, objective, i) for i in range(len(self.space.tasks))]
        lat, en = self.cost.encoding_cost(self.space, encoding)
        out = {"label": self.space.label(encoding), "alpha": statistics.fmean(r["alpha"] for r in rows),
               "latency_ms": lat, "energy_mj": en}
        for k, r in zip(self.space.keys, rows):
            out[f"alpha_{k}"] = r["alpha"]
        if objective == "analog":
            out["score_1d"] = statistics.fmean(r["score_1d"] for r in rows)
            out["avm"] = statistics.fmean(r["avm"] for r in rows)
        return out


__all__ = ["EvalContext", "Evaluator", "SearchStore", "compute_eval", "eval_job"]
