"""``alpha_source = "nasbench"``: a search's alpha looked up in analog MED-NAS-Bench tables.

Instead of converting every sub-network to analog and drifting ``R`` hardware instances, the search
reads the candidate's row (variant ``supernet``, the search's ``[analog] preset``) from one or more
tables written by ``analogmed nasbench export`` (:func:`analogmed.nasbench.load`: a shipped name, a
``.json`` / ``.parquet`` path or a build folder):

* analog objective: ``alpha = score_1d_mean - avm_penalty * max(avm, 0)`` (the table's AVM has the
  project's sign: ``score(1 s) - score(30 d)``, positive = lost accuracy), with ``score_1s``,
  ``score_1d``, ``score_1d_std`` and ``repeats`` (the table's hardware instances, not ``[analog] repeats``);
* digital objective: ``alpha = digital_score`` of the same table (the same supernet weights, BatchNorm
  re-estimated), so both objectives compare on one set of weights.

:meth:`BenchLookup.check` runs before any work: every task of the search must be in a table with the
same task spec, spatial dims, channels, classes, widths and blocks; the table must hold the preset,
the times 1 s, 1 d and 30 d, and every architecture of the search space. Each problem is one
:class:`~analogmed.errors.UserError` line naming the table and the fix.
"""
from __future__ import annotations

import json
from typing import Sequence

from analogmed.errors import UserError

DAY_S, MONTH_S = 86_400.0, 2_592_000.0
_NEEDED = ("digital_score", "score_1s", "score_1d_mean", "score_1d_std", "avm")


def _names(source: str | Sequence[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


class BenchLookup:
    """Rows of analog MED-NAS-Bench tables for the tasks of a search.

    Args:
        sources: table names / paths (``[analog] nasbench``; a string or a list).
        tasks: the search's tasks; ``keys``: their keys (:func:`analogmed.search.space.task_keys`).
        preset: the ``[analog] preset``; ``avm_penalty``: the AVM weight of the analog alpha.
    """

    def __init__(self, sources, tasks, keys: Sequence[str], preset: str, avm_penalty: float):
        from analogmed.nasbench import load

        self.sources = _names(sources)
        self.benches = [load(s) for s in self.sources]
        self.tasks, self.keys = list(tasks), list(keys)
        self.preset, self.avm_penalty = preset, float(avm_penalty)
        self.frames: list = []      # per search task: the table rows indexed by label
        self.where: list[str] = []  # per search task: the source that holds it
        for t in self.tasks:
            src, bench = self._find(t)
            self.where.append(src)
            self._check_task(src, bench, t)
            df = bench.table(variant="supernet", preset=self.preset, task=t.name)
            missing = [c for c in _NEEDED if c not in df.columns]
            if missing:
                raise UserError(f"benchmark {src} has no column {missing[0]!r}; re-export it with analogmed "
                                "nasbench export")
            self.frames.append(df.drop_duplicates("label").set_index("label"))

    def _find(self, task):
        for src, bench in zip(self.sources, self.benches):
            if task.name in bench.tasks:
                return src, bench
        have = sorted({t for b in self.benches for t in b.tasks})
        raise UserError(f"benchmark {', '.join(self.sources)} has no task {task.name!r} (it holds "
                        f"{', '.join(have)}); build one for this task (analogmed nasbench build) or "
                        f"use alpha_source = \"evaluate\"")

    def _check_task(self, src: str, bench, task) -> None:
        meta = bench.meta
        sn = (meta.get("supernets") or {}).get(task.name) or {}
        spec = sn.get("task_spec")
        if spec is not None and json.dumps(spec, sort_keys=True, default=str) != \
                json.dumps(dict(task.spec), sort_keys=True, default=str):
            diff = sorted(k for k in set(spec) | set(task.spec) if spec.get(k) != task.spec.get(k))
            raise UserError(f"benchmark {src} scored task {task.name} with other options ({', '.join(diff)}: "
                            f"{', '.join(f'{k}={spec.get(k)!r}' for k in diff)}); give the table's options in "
                            f"[[tasks]] or build a table for this task")
        if self.preset not in bench.presets:
            raise UserError(f"benchmark {src} has no preset {self.preset!r} (it holds {', '.join(bench.presets)}); "
                            f"set [analog] preset to one of them or build the table with it")
        times = [float(t) for t in meta.get("times_s", [])]
        for t, name in ((1.0, "1 s"), (DAY_S, "1 day"), (MONTH_S, "30 days")):
            if times and t not in times:
                raise UserError(f"benchmark {src} has no drift time {name} ({t:g} s; it holds "
                                f"{', '.join(f'{x:g}' for x in times)}); build it with times_s including 1, 86400 "
                                "and 2592000")

    def check_space(self, space) -> None:
        """UserError unless every architecture of ``space`` is in the tables with the space's dims and widths."""
        for i, t in enumerate(self.tasks):
            src = self.where[i]
            info = (self.benches[self.sources.index(src)].meta.get("space") or {}).get(t.name) or {}
            sn = space.supernets[i]
            ours = {"spatial_dims": sn.spatial_dims, "in_channels": sn.in_channels, "out_channels": sn.out_channels,
                    "widths": list(space.widths), "blocks": list(space.letters)}
            for k, v in ours.items():
                if k in info and (list(info[k]) if isinstance(v, list) else info[k]) != v:
                    raise UserError(f"benchmark {src} has {k} {info[k]} for task {t.name} but the search has {v}; "
                                    f"build the table over the search's space or set [supernet] {k} to match")
            labels = [space.label(key) for key in space.enumerate()]
            absent = [lb for lb in labels if lb not in self.frames[i].index]
            if absent:
                raise UserError(f"benchmark {src} lacks {len(absent)} of the search's {len(labels)} architectures "
                                f"of task {t.name} (e.g. {absent[0]}); build it with candidates = \"all\" over the "
                                f"search's space, or use alpha_source = \"evaluate\"")

    def row(self, label: str, task_index: int, objective: str) -> dict:
        """The evaluation row of ``label`` on task ``task_index`` (the module docstring's alpha)."""
        df = self.frames[task_index]
        if label not in df.index:
            raise UserError(f"benchmark {self.where[task_index]} lacks architecture {label} of task "
                            f"{self.tasks[task_index].name}; build it with candidates = \"all\" or use "
                            f"alpha_source = \"evaluate\"")
        r = df.loc[label]
        if objective == "digital":
            return {"alpha": float(r["digital_score"]), "source": self.where[task_index]}
        s1, s1d, avm = float(r["score_1s"]), float(r["score_1d_mean"]), float(r["avm"])
        out = {"alpha": s1d - self.avm_penalty * max(avm, 0.0), "score_1s": s1, "score_1d": s1d,
               "score_1d_std": float(r["score_1d_std"]), "avm": avm, "source": self.where[task_index]}
        if "repeats" in r.index:
            out["repeats"] = int(r["repeats"])
        return out


__all__ = ["BenchLookup"]
