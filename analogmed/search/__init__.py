"""analogmed.search: MT-MIAS (block importance; MIAS, MT-MIAS, MT-MIAS-C), an analog-aware objective,
and the baselines random search, regularised evolution and NSGA-II (Optuna samplers, SQLite storage).

* :mod:`~.config` -- the search file (TOML) and its validation;
* :mod:`~.space` -- encodings over a supernet's levels, hardware cost (LUTs, HERMES);
* :mod:`~.importance` -- block importance ``s_{l,o}`` and the cross-task similarity ``sigma``;
* :mod:`~.evaluate` -- sub-network evaluation (digital / analog alpha) and the results store;
* :mod:`~.samplers` -- the methods as Optuna samplers; :mod:`~.pareto` -- fronts and hypervolume;
* :mod:`~.run` -- :func:`run_search` (``analogmed search run FILE.toml``).
"""
from analogmed.search.config import METHODS, PLATFORMS, SearchConfig, load_search, parse_search
from analogmed.search.importance import block_importance, task_similarity
from analogmed.search.pareto import hypervolume, pareto_mask
from analogmed.search.run import run_search

__all__ = ["METHODS", "PLATFORMS", "SearchConfig", "block_importance", "hypervolume", "load_search",
           "pareto_mask", "parse_search", "run_search", "task_similarity"]
