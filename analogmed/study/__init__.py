"""analogmed.study: study files (config), the SQLite results store, the runner and its executors.

>>> from analogmed.study import load_study, run_study
>>> res = run_study("studies/drift-months.toml", workers=2)   # resumable; res.table, res.db
>>> from analogmed.plots.study import plot_study; plot_study(res.db, "figures")   # the figures
"""
from analogmed.study.config import StudyConfig, load_study, parse_study
from analogmed.study.runner import Job, run_job, run_study
from analogmed.study.store import Store, export_table, open_results

__all__ = ["Job", "Store", "StudyConfig", "export_table", "load_study", "open_results", "parse_study",
           "run_job", "run_study"]
