"""The analog MED-NAS-Bench: every candidate of the search space, scored on analog hardware and priced
on digital platforms, in one queryable table.

* :mod:`~.config` -- build files (TOML) -> :class:`~.config.BenchConfig`;
* :mod:`~.build` -- ``analogmed nasbench build``: supernet, candidates, analog/digital scoring into the
  SQLite store (resumable, Dask);
* :mod:`~.store` -- the store -> versioned Parquet + JSON (``analogmed nasbench export``);
* :mod:`~.api` -- :func:`load`, :class:`Benchmark` (``query``, ``table``, ``pareto``);
* :mod:`~.report` -- the science of the table (rank correlations, block effects, Pareto fronts,
  supernet vs stand-alone); figures in :mod:`analogmed.plots.nasbench`.
"""
from analogmed.nasbench.api import Benchmark, list_benchmarks, load
from analogmed.nasbench.build import build_benchmark
from analogmed.nasbench.config import BenchConfig, load_bench_config, parse_bench
from analogmed.nasbench.store import FORMAT_VERSION, export_benchmark

__all__ = ["BenchConfig", "Benchmark", "FORMAT_VERSION", "build_benchmark", "export_benchmark", "list_benchmarks",
           "load", "load_bench_config", "parse_bench"]
