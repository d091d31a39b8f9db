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


class Evaluator:
    """``alpha`` of encodings on every task of a :class:`~analogmed.search.space.SearchSpace`, cached in a store.

    Args:
        space: the search space (supernets and tasks).
        cost: a :class:`~analogmed.search.space.HardwareCost` (the search's platform).
        store: the :class:`SearchStore`; ``setup``: fingerprint of what changes evaluations.
        analog: the config's ``[analog]`` section; ``seed``: base seed; ``split``: scored split.
    """

    def __init__(self, space, cost, store: SearchStore, setup: str, analog, seed: int = 0, split: str = "val",
                 batch_size: int = 8):
        self.space, self.cost, self.store, self.setup = space, cost, store, setup
        self.analog, self.seed, self.split, self.batch_size = analog, int(seed), split, batch_size
        self.n_computed = 0

    def _digital(self, sub, task) -> dict:
        from analogmed.evaluate.metrics import evaluate_model

        return {"alpha": float(evaluate_model(sub, task, self.split, self.batch_size)["score"])}

    def _analog(self, sub, task, label: str, tkey: str) -> dict:
        from analogmed.evaluate.robustness import DAY, MONTH, prepare_analog, evaluate_instance

        seed = derive_seed(self.seed, "eval", label, tkey)
        amodel = prepare_analog(sub, task, self.analog.preset, seed=seed)
        by_t: dict[float, list[float]] = {1.0: [], DAY: [], MONTH: []}
        for r in range(self.analog.repeats):
            for row in evaluate_instance(amodel, task, tuple(by_t), r, seed, self.split, self.batch_size):
                by_t[row["t_inference_s"]].append(float(row["score"]))
        s1, s1d, s30 = (statistics.fmean(by_t[t]) for t in (1.0, DAY, MONTH))
        avm = s1 - s30
        return {"alpha": s1d - self.analog.avm_penalty * max(avm, 0.0), "score_1s": s1, "score_1d": s1d,
                "score_1d_std": statistics.stdev(by_t[DAY]) if len(by_t[DAY]) > 1 else float("nan"),
                "avm": avm, "eval_seed": seed}

    def task_eval(self, encoding, objective: str, task_index: int) -> dict:
        """One task's evaluation row (cached): ``alpha`` and, for ``analog``, ``score_1s``, ``score_1d``,
        ``score_1d_std``, ``avm``; ``wall_s``."""
        from analogmed.train.supernet import recalibrate_bn

        task = self.space.tasks[task_index]
        label = self.space.label(encoding)
        tkey = self.space.keys[task_index]
        key = dict(setup=self.setup, objective=objective, task=tkey, arch=label)
        row = self.store.get("evals", **key)
        if row is not None:
            return row
        t0 = time.perf_counter()
        arch = self.space.arch(encoding, task_index)
        sub = self.space.supernets[task_index].subnet(arch)
        recalibrate_bn(sub, task, self.batch_size)
        row = self._digital(sub, task) if objective == "digital" else self._analog(sub, task, label, tkey)
        row["wall_s"] = time.perf_counter() - t0
        self.store.put("evals", row, **key)
        self.n_computed += 1
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


__all__ = ["Evaluator", "SearchStore"]
