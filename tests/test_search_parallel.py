"""Searches on a local 2-worker Dask cluster: the same trials as in-process, and a killed parallel search
resumes to them."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analogmed.search import parse_search
from analogmed.search.run import run_search

LETTERS = ["Identity", "A", "B"]
TASKS = [{"name": "synthetic-2d", "size": 64, "n_train": 8, "n_val": 2, "n_test": 2, "seed": 0},
         {"name": "synthetic-2d", "size": 64, "n_train": 8, "n_val": 2, "n_test": 2, "seed": 1, "num_classes": 2}]


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of 2 single-threaded worker processes for the module (its start takes seconds)."""
    from analogmed.study.executors import DaskExecutor

    with DaskExecutor(workers=2) as ex:
        yield ex


def _cfg(**over):
    base = {"name": "par", "platform": "raspberry-pi3", "objectives": ["digital"], "budget": 4, "seeds": [0, 1],
            "methods": ["random", "evolution", "mt-mias-c"], "tasks": TASKS,
            "supernet": {"widths": [8, 16], "blocks": LETTERS, "epochs": 1}, "analog": {"repeats": 1},
            "evolution": {"population": 2, "sample": 2}, "nsga2": {"population": 2},
            "standalone": {"epochs": 1, "repeats": 1, "methods": ["mt-mias-c"]}}
    base.update(over)
    return parse_search(base)


def _key(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["objective", "method", "seed", "n", "encoding", "alpha", "latency_ms"]
    return df.sort_values(["objective", "method", "seed", "n"])[cols].reset_index(drop=True)


def test_dask_search_matches_in_process(tmp_path, cluster):
    serial = run_search(_cfg(), out=tmp_path / "serial", progress=False, plots=False)
    par = run_search(_cfg(), out=tmp_path / "par", progress=False, plots=False, executor=cluster)
    assert len(par.trials) == len(serial.trials) == 3 * 2 * 4
    assert par.trials["alpha"].between(0, 1).all() and (par.trials["latency_ms"] > 0).all()
    pd.testing.assert_frame_equal(_key(par.trials), _key(serial.trials))
    # the "(T)" rows were trained on the workers: the same numbers (seeded from the label and task)
    cols = ["seed", "label", "task", "digital_score", "score_1d", "avm"]
    pd.testing.assert_frame_equal(par.standalone[cols], serial.standalone[cols])
    # mt-mias-c's deployable supernet: each task's sub-network is contained in it
    assert len(par.deploy) == 2 and par.deploy["feasible"].all()
    for _, r in par.deploy.iterrows():
        levels = [set(part.split(": ")[1].split(",")) for part in r["levels"].split("; ")]
        for k in ("synthetic-2d-0", "synthetic-2d-1"):
            blocks = ["Identity" if b == "Id" else b.rstrip("0123456789") for b in r[f"label_{k}"].split("-")]
            assert all(b in levels[lv] for lv, b in enumerate(blocks))
        assert r["n_blocks"] == sum(len(lv) for lv in levels)
    # batch 2 (two trials of a run in flight): valid and reproducible, a different (documented) trial order
    b2cfg = _cfg(methods=["random", "evolution"], seeds=[0], standalone={"enabled": False})
    b2 = run_search(b2cfg, out=tmp_path / "b2", progress=False, plots=False, executor=cluster, batch=2)
    again = run_search(b2cfg, out=tmp_path / "b2-again", progress=False, plots=False, batch=2)
    assert len(b2.trials) == 2 * 4
    pd.testing.assert_frame_equal(_key(b2.trials), _key(again.trials))


def _complete(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        n = con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        con.close()
        return int(n)
    except sqlite3.Error:
        return 0


def test_killed_parallel_search_resumes(tmp_path, cluster):
    cfg = _cfg(objectives=["analog"], methods=["random", "evolution"], seeds=[0], budget=8,
               standalone={"enabled": False})
    f = tmp_path / "s.toml"
    import tomli_w

    f.write_text(tomli_w.dumps(cfg.model_dump(exclude_none=True)))
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "from analogmed.cli import main; main()", "search", "run", str(f), "--out", str(out),
           "--workers", "2", "--no-plots"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while _complete(out / "optuna.sqlite") < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    killed_at = _complete(out / "optuna.sqlite")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= killed_at < 16, killed_at           # killed in the middle of the search
    resumed = run_search(cfg, out=out, progress=False, plots=False, executor=cluster)
    whole = run_search(cfg, out=tmp_path / "whole", progress=False, plots=False)
    assert len(resumed.trials) == 16
    pd.testing.assert_frame_equal(_key(resumed.trials), _key(whole.trials))
