"""Query a built benchmark, in the style of NAS-Bench-201 / HW-NAS-Bench.

```python
import analogmed.nasbench as nb
bench = nb.load("mni152-2d")                     # shipped name, a .json / .parquet path or a build folder
bench.query("D8-A16-F32-Id", metric="score_1d_mean", preset="pcm")
bench.query("arch-0123456789ab", metric="latency_ms", platform="raspberry-pi3")
bench.table()                                    # pandas: one row per (task, candidate, preset)
bench.pareto(["score_1d_mean", "latency_ms@raspberry-pi3"], preset="pcm")
```
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analogmed.errors import UserError
from analogmed.nasbench.store import FORMAT, FORMAT_VERSION

#: Metrics that are better when larger (every other numeric metric is minimised by :meth:`Benchmark.pareto`).
MAXIMISE_PREFIXES = ("score", "digital_score", "mean_", "dice", "f1")


def _resolve(path: str | Path) -> Path:
    """The JSON metadata file of a benchmark given its JSON, its Parquet, a folder or a shipped name."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.json"))
        if len(found) != 1:
            raise UserError(f"benchmark folder {p} holds {len(found)} .json files; give the benchmark's .json")
        return found[0]
    if p.suffix == ".parquet":
        p = p.with_name(p.name.removesuffix("-rows.parquet").removesuffix(".parquet") + ".json")
    if p.suffix == ".json" and p.is_file():
        return p
    if p.suffix == "" and not p.exists():
        from analogmed.paths import data_dir

        try:
            shipped = data_dir("benchmarks")
        except FileNotFoundError:
            shipped = None
        if shipped is not None and (shipped / f"{p.name}.json").is_file():
            return shipped / f"{p.name}.json"
    raise UserError(f"benchmark {path} not found; give a benchmark .json/.parquet (analogmed nasbench export) "
                    f"or a shipped name ({', '.join(list_benchmarks()) or 'none shipped'})")


def list_benchmarks() -> list[str]:
    """Names of the shipped benchmarks."""
    from analogmed.paths import data_dir

    try:
        return sorted(p.stem for p in data_dir("benchmarks").glob("*.json"))
    except FileNotFoundError:
        return []


class Benchmark:
    """A loaded benchmark: :attr:`meta` (the JSON metadata), :meth:`table`, :meth:`rows`, :meth:`query`,
    :meth:`pareto`."""

    def __init__(self, table: pd.DataFrame, meta: dict[str, Any], rows: pd.DataFrame | None = None,
                 path: Path | None = None):
        self._table = table
        self.meta = meta
        self._rows = rows
        self.path = path

    # ---------------------------------------------------------------- tables
    def table(self, variant: str | None = "supernet", preset: str | None = None,
              task: str | None = None) -> pd.DataFrame:
        """The benchmark table (a copy): one row per (task, candidate, variant, preset). ``variant``:
        ``"supernet"`` (inherited weights, default), ``"standalone-s<i>"`` or ``None`` for all."""
        df = self._table
        if variant is not None:
            df = df[df["variant"] == variant]
        if preset is not None:
            self._check("preset", preset, self.presets)
            df = df[df["preset"] == preset]
        if task is not None:
            self._check("task", task, self.tasks)
            df = df[df["task"] == task]
        return df.reset_index(drop=True).copy()

    def rows(self) -> pd.DataFrame:
        """Every evaluation (one row per t and hardware instance), read on first use."""
        if self._rows is None:
            if self.path is None:
                raise UserError("this benchmark was built in memory; it has no rows file")
            p = self.path.with_name(self.meta.get("rows", f"{self.path.stem}-rows.parquet"))
            self._rows = pd.read_parquet(p)
        return self._rows.copy()

    @property
    def presets(self) -> list[str]:
        return sorted(self._table["preset"].unique())

    @property
    def tasks(self) -> list[str]:
        return sorted(self._table["task"].unique())

    @property
    def platforms(self) -> list[str]:
        return sorted({c.split("@", 1)[1] for c in self._table.columns if c.startswith("latency_ms@")})

    @property
    def metrics(self) -> list[str]:
        """Numeric columns :meth:`query` can return."""
        return [c for c in self._table.columns if pd.api.types.is_numeric_dtype(self._table[c])]

    def archs(self, task: str | None = None) -> list[str]:
        """Architecture ids of the candidates (variant supernet)."""
        return sorted(self.table(task=task)["arch_id"].unique())

    def __len__(self) -> int:
        return int(self.table()[["task", "arch_id"]].drop_duplicates().shape[0])

    def __repr__(self) -> str:
        return (f"Benchmark({self.meta.get('name')!r}: {len(self)} candidates, tasks {self.tasks}, presets "
                f"{self.presets}, platforms {self.platforms}, engine {self.meta.get('engine')})")

    @staticmethod
    def _check(what: str, value, allowed) -> None:
        if value not in allowed:
            raise UserError(f"{what} {value!r} is not in this benchmark; use one of {', '.join(map(str, allowed))}")

    # ---------------------------------------------------------------- queries
    def _arch_rows(self, arch: Any, task: str | None, variant: str) -> pd.DataFrame:
        df = self.table(variant=variant, task=task)
        if hasattr(arch, "id") and hasattr(arch, "label"):
            arch = arch.id
        elif isinstance(arch, dict):
            from analogmed.space.architecture import Architecture

            arch = Architecture.from_dict(arch.get("arch", arch)).id
        arch = str(arch)
        hit = df[df["arch_id"] == arch] if arch.startswith("arch-") else df[df["label"] == arch]
        if hit.empty:
            raise UserError(f"architecture {arch!r} is not in this benchmark (variant {variant}); "
                            f"give an id or label of bench.table(), e.g. {df['label'].iloc[0]!r}")
        if hit["task"].nunique() > 1:
            raise UserError(f"architecture {arch!r} is in several tasks ({', '.join(sorted(hit['task'].unique()))}); "
                            "pass task=...")
        return hit

    def query(self, arch: Any, metric: str = "score_1d_mean", preset: str | None = None,
              platform: str | None = None, task: str | None = None, variant: str = "supernet") -> float:
        """One number of one candidate.

        ``arch``: an architecture id (``arch-...``), a label (``C8-E16``), an ``Architecture`` or its dict.
        ``metric``: a column of :meth:`table` (``score_1d_mean``, ``score_1d_std``, ``avm``, ``mean_1h``,
        ``digital_score``, ``params``, ``macs``, ``hermes_energy_mj``...) or, with ``platform``,
        ``latency_ms`` / ``energy_mj`` on that platform. Analog metrics need ``preset`` when the
        benchmark has several.
        """
        hit = self._arch_rows(arch, task, variant)
        col = metric
        if platform is not None:
            self._check("platform", platform, self.platforms)
            col = f"{metric}@{platform}"
        if col not in hit.columns:
            plat = [c for c in self.metrics if "@" not in c]
            raise UserError(f"metric {col!r} is not in this benchmark; use one of {', '.join(plat)}, or "
                            f"latency_ms / energy_mj with platform= ({', '.join(self.platforms)})")
        if preset is not None:
            self._check("preset", preset, self.presets)
            hit = hit[hit["preset"] == preset]
        vals = hit[col].unique()
        if len(vals) > 1:
            raise UserError(f"metric {col!r} differs between presets ({', '.join(hit['preset'])}); pass preset=...")
        v = vals[0]
        return float(v) if isinstance(v, (int, float, np.number)) else v

    def pareto(self, objectives: Sequence[str | tuple[str, str]] = ("score_1d_mean", "latency_ms@raspberry-pi3"),
               preset: str | None = None, task: str | None = None, variant: str = "supernet") -> pd.DataFrame:
        """The non-dominated candidates for ``objectives`` (columns of :meth:`table`), sorted by the first.

        An objective is a column name (scores, ``mean_*`` and ``digital_score`` are maximised, everything
        else minimised) or ``(column, "max"|"min")`` / ``"column:max"``.
        """
        df = self.table(variant=variant, preset=preset, task=task)
        if preset is None and df["preset"].nunique() > 1:
            raise UserError(f"the benchmark has several presets ({', '.join(self.presets)}); pass preset=...")
        cols, signs = [], []
        for o in objectives:
            if isinstance(o, str) and ":" in o:
                o = tuple(o.rsplit(":", 1))
            col, sense = (o if isinstance(o, tuple) else (o, "max" if o.startswith(MAXIMISE_PREFIXES) else "min"))
            if col not in df.columns:
                raise UserError(f"objective {col!r} is not a column of the benchmark; use e.g. score_1d_mean, avm, "
                                f"latency_ms@raspberry-pi3, hermes_energy_mj")
            if sense not in ("max", "min"):
                raise UserError(f"objective {col!r}: direction {sense!r} must be max or min")
            cols.append(col)
            signs.append(-1.0 if sense == "max" else 1.0)
        if len(cols) < 2:
            raise UserError("pareto needs at least two objectives")
        df = df.dropna(subset=cols)
        return df[pareto_mask(df[cols].to_numpy(float) * np.array(signs))].sort_values(
            cols[0], ascending=signs[0] > 0).reset_index(drop=True)


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``costs`` [N, M] (all objectives minimised)."""
    n = len(costs)
    keep = np.ones(n, bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(costs <= costs[i], axis=1) & np.any(costs < costs[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def load(path: str | Path) -> Benchmark:
    """Load a benchmark written by ``analogmed nasbench export`` (its ``.json`` or ``.parquet``, a folder
    holding one, or the name of a shipped benchmark). UserError for a newer format version."""
    meta_path = _resolve(path)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"benchmark metadata {meta_path} is not valid JSON ({exc.msg}); re-export it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path} is not an analogmed benchmark (format {FORMAT!r}); give the .json written "
                        "by analogmed nasbench export")
    ver = meta.get("format_version")
    if not isinstance(ver, int) or ver > FORMAT_VERSION:
        raise UserError(f"benchmark {meta_path} has format version {ver}, newer than the {FORMAT_VERSION} this "
                        "analogmed reads; upgrade analogmed")
    tpath = meta_path.with_name(meta.get("table", f"{meta_path.stem}.parquet"))
    if not tpath.is_file():
        raise UserError(f"benchmark table {tpath} is missing; re-export the benchmark")
    return Benchmark(pd.read_parquet(tpath), meta, None, meta_path)


__all__ = ["Benchmark", "list_benchmarks", "load", "pareto_mask"]
