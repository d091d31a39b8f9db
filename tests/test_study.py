"""Studies: config validation, resumable SQLite store (SIGKILL + resume), Dask cluster, figures, CLI."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from analogmed.errors import UserError
from analogmed.study import load_study, parse_study, run_study
from analogmed.study.store import VOLATILE_COLUMNS

TINY = """
name = "tiny"
seed = 3
repetitions = {reps}
presets = ["pcm", "hermes"]
times_s = [1, 3600, 86400, 2592000]
[train]
epochs = 2
lr = 0.01
[[tasks]]
name = "synthetic-2d"
size = 16
n_train = 8
n_val = 2
n_test = 2
[[models]]
arch = "C8-E16"
group = "pyramidal"
[[models]]
arch = "C8-C8"
group = "isotropic"
"""


def _write(tmp_path: Path, reps: int = 2, name: str = "tiny.toml") -> Path:
    p = tmp_path / name
    p.write_text(TINY.format(reps=reps))
    return p


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["model_key", "task", "preset", "t_inference_s", "repetition"]
    return df.drop(columns=list(VOLATILE_COLUMNS)).sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted in-process run of the tiny study (4 repetitions): (study file, dir, table)."""
    tmp = tmp_path_factory.mktemp("ref")
    study = _write(tmp, reps=4)
    res = run_study(study, out=tmp / "ref", progress=False)
    return study, tmp / "ref", res


def _with_checkpoints(ref_dir: Path, dest: Path) -> Path:
    """A fresh study folder that already holds the trained-checkpoint cache (so nothing retrains)."""
    shutil.copytree(ref_dir / "checkpoints", dest / "checkpoints")
    return dest


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("foo = 1\n" + TINY.format(reps=2).replace("group = \"isotropic\"", "groop = 1"))
    with pytest.raises(UserError, match=r"bad.toml: (foo|models.1.groop): unknown key"):
        load_study(bad)
    bad.write_text("name = [unclosed")
    with pytest.raises(UserError, match="malformed TOML"):
        load_study(bad)
    with pytest.raises(UserError, match="repetitions: Input should be greater than or equal to 1"):
        parse_study({"name": "x", "presets": ["pcm"], "repetitions": 0, "models": [{"arch": "C8"}],
                     "tasks": [{"name": "synthetic-2d"}]})
    with pytest.raises(UserError, match="exactly one of arch, zoo or checkpoint"):
        parse_study({"name": "x", "presets": ["pcm"], "models": [{"arch": "C8", "zoo": "unet"}],
                     "tasks": [{"name": "synthetic-2d"}]})
    with pytest.raises(UserError, match="either months or times_s"):
        parse_study({"name": "x", "presets": ["pcm"], "months": 2, "times_s": [1],
                     "models": [{"arch": "C8"}], "tasks": [{"name": "synthetic-2d"}]})
    with pytest.raises(UserError, match="not found"):
        load_study(tmp_path / "missing.toml")
    wan = tmp_path / "wan.toml"
    wan.write_text('[device]\nnoise_model = "reram-wan2022"\n')
    with pytest.raises(UserError, match="preset wan only drifts to t in"):
        run_study(parse_study({"name": "x", "presets": [str(wan)], "months": 2, "models": [{"arch": "C8"}],
                               "tasks": [{"name": "synthetic-2d"}]}), out=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing written
    cfg = load_study("drift-months")  # the shipped study validates and has a 12-month grid
    assert cfg.grid()[-1] == 12 * 30 * 86400.0 and len(cfg.models) >= 3


def test_reference_table_matches_drift_study_and_resume_skips(reference):
    from analogmed.evaluate.robustness import drift_study
    from analogmed.train import load_checkpoint

    study, ref_dir, res = reference
    cfg = load_study(study)
    assert res.total == 2 * 2 * 4 * 4 == len(res.table)  # models x presets x repetitions x times
    assert res.table["score"].between(0, 1).all() and (res.table["seed"] == 3).all()
    # a study row is exactly the row drift_study gives with the same seed
    ck_path = sorted((ref_dir / "checkpoints").glob("*.pt"))[0]
    ck = load_checkpoint(ck_path)
    d = drift_study(ck.model, ck.task(), "hermes", cfg.grid(), repeats=4, seed=3, progress=False)
    s = res.table[(res.table["model_key"] == ck_path.stem) & (res.table["preset"] == "hermes")]
    assert s.sort_values(["repetition", "t_inference_s"])["score"].tolist() == \
        d.sort_values(["repetition", "t_inference_s"])["score"].tolist()
    # re-running does nothing and trains nothing
    t0 = time.perf_counter()
    again = run_study(study, out=ref_dir, progress=False)
    assert again.added == 0 and again.jobs_run == 0 and again.jobs_skipped == 16
    assert time.perf_counter() - t0 < 10


def test_sigkill_then_resume_gives_the_uninterrupted_table(reference, tmp_path):
    study, ref_dir, ref = reference
    out = _with_checkpoints(ref_dir, tmp_path / "killed")
    db = out / "results.sqlite"
    code = ("import torch; torch.set_num_threads(1); from analogmed.study import run_study; "
            f"run_study({str(study)!r}, out={str(out)!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    n = 0
    deadline = time.time() + 300  # generous: the machine may be loaded; the loop exits as soon as rows exist
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as c:
                    n = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 8:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the study finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        killed_rows = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        per_instance = c.execute("SELECT COUNT(*) FROM results GROUP BY model_key, preset, repetition").fetchall()
    assert 8 <= killed_rows < ref.total
    assert {k for (k,) in per_instance} == {4}  # never half an instance
    res = run_study(study, out=out, progress=False)
    assert res.jobs_skipped == killed_rows // 4 and res.total == ref.total
    pd.testing.assert_frame_equal(_canon(res.table), _canon(ref.table))


def test_dask_local_cluster_gives_the_in_process_table(reference, tmp_path):
    study, ref_dir, ref = reference
    out = _with_checkpoints(ref_dir, tmp_path / "dask")
    res = run_study(study, out=out, workers=2, progress=False)
    assert res.jobs_run == 16
    pd.testing.assert_frame_equal(_canon(res.table), _canon(ref.table))


def test_changed_study_file_is_refused_and_store_intact(reference, tmp_path):
    study, ref_dir, ref = reference
    out = tmp_path / "changed"
    shutil.copytree(ref_dir, out)
    changed = tmp_path / "tiny.toml"
    changed.write_text(study.read_text().replace("seed = 3", "seed = 4"))
    with pytest.raises(UserError, match="changed after results exist"):
        run_study(changed, out=out, progress=False)
    from analogmed.study import open_results

    with open_results(out) as store:
        assert store.count() == ref.total and store.meta()["fingerprint"] == load_study(study).fingerprint()


def test_unreachable_scheduler_is_a_user_error(reference, tmp_path):
    study, ref_dir, _ = reference
    _with_checkpoints(ref_dir, tmp_path / "sched")
    from analogmed.study.executors import DaskExecutor

    with pytest.raises(UserError, match="unreachable"):
        DaskExecutor(scheduler="tcp://127.0.0.1:9", connect_timeout_s=2)


def test_cli_status_export_plot(reference, tmp_path):
    from analogmed.cli import app

    study, ref_dir, ref = reference
    r = CliRunner().invoke(app, ["study", "status", str(ref_dir)])
    assert r.exit_code == 0 and f"{ref.total} rows" in r.output
    r = CliRunner().invoke(app, ["study", "export", str(ref_dir / "results.sqlite"), "-o", str(tmp_path / "t.csv")])
    assert r.exit_code == 0
    df = pd.read_csv(tmp_path / "t.csv")
    assert len(df) == ref.total and {"dice_mean", "score", "versions", "wall_s"} <= set(df.columns)
    r = CliRunner().invoke(app, ["plot", str(ref_dir), "--out", str(tmp_path / "fig")])
    assert r.exit_code == 0, r.output
    names = {p.name for p in (tmp_path / "fig").iterdir()}
    assert {"drift_synthetic-2d_pcm.png", "drift_synthetic-2d_hermes.pdf", "groups_synthetic-2d.png",
            "summary.csv"} <= names
    summary = pd.read_csv(tmp_path / "fig" / "summary.csv")
    assert len(summary) == 4 and set(summary["model_group"]) == {"isotropic", "pyramidal"}
    assert (summary["avm"] - (summary["score_1s"] - summary["score_30d"])).abs().max() < 1e-12
    r = CliRunner().invoke(app, ["study", "status", str(tmp_path / "nope.sqlite")])
    assert r.exit_code != 0


def test_pareto_mask():
    from analogmed.plots.study import pareto_mask

    assert pareto_mask([1, 2, 3, 2], [0.5, 0.7, 0.6, 0.4]).tolist() == [True, True, False, False]


def test_dead_dask_worker_is_retried_and_the_study_completes(reference, tmp_path):
    """--scheduler path: an existing LocalCluster; one worker process is SIGKILLed after the first
    instance is stored; its jobs are rescheduled and the table equals the in-process one."""
    from distributed import Client, LocalCluster

    study, ref_dir, ref = reference
    out = _with_checkpoints(ref_dir, tmp_path / "dead")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one(n_rows):
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(n_rows)

        res = run_study(study, out=out, scheduler=cluster.scheduler_address, progress=False,
                        on_rows=kill_one)
    assert killed and res.jobs_run == 16
    pd.testing.assert_frame_equal(_canon(res.table), _canon(ref.table))


def test_full_disk_rolls_back_the_instance_and_keeps_the_store(tmp_path):
    """SQLite 'database or disk is full' (forced with max_page_count) -> UserError, earlier rows intact."""
    from analogmed.study.store import Store

    def rows(rep, n=4):
        return [{"model_key": "k", "model_id": "m", "task": "t", "preset": "pcm", "t_inference_s": float(i),
                 "repetition": rep, "seed": 0, "program_seed": 1, "score": 0.5, "dice_mean": 0.5,
                 "digital_score": 0.9, "wall_s": 0.1} for i in range(n)]

    with Store.open(tmp_path / "r.sqlite") as store:
        store.add_rows("s", rows(0))
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(UserError, match="cannot write results"):
            store.add_rows("s", rows(1, n=2000))
        assert store.count() == 4 and store.done_instances() == {("k", "t", "pcm", 0)}


def test_hwa_models_in_a_study(tmp_path):
    """hwa = true trains the network digitally, fine-tunes it hardware-aware, and stores both variants."""
    text = TINY.format(reps=1).replace('presets = ["pcm", "hermes"]', 'presets = ["pcm"]')
    text = text.replace("lr = 0.01\n", "lr = 0.01\nhwa_epochs = 1\n")
    text += '[[models]]\narch = "C8-E16"\ngroup = "pyramidal"\nhwa = true\n'
    study = tmp_path / "hwa.toml"
    study.write_text(text)
    res = run_study(study, out=tmp_path / "run", progress=False)
    ids = set(res.table["model_id"])
    plain = [i for i in ids if not i.endswith("+hwa")]
    assert any(i.endswith("+hwa") for i in ids) and len(ids) == 3
    hwa_id = next(i for i in ids if i.endswith("+hwa"))
    assert hwa_id.removesuffix("+hwa") in plain  # same network, two trainings
    assert len(res.table) == 3 * 4
    from analogmed.train import load_checkpoint
    cks = [load_checkpoint(p) for p in (tmp_path / "run" / "checkpoints").glob("*.pt")]
    assert sum("hwa" in c.recipe for c in cks) == 1 and len(cks) == 3
    bad = text.replace('hwa_epochs = 1\n', 'hwa_epochs = 1\nhwa_preset = "ideal"\n')
    study.write_text(bad)
    with pytest.raises(UserError, match="no device noise model"):
        run_study(study, out=tmp_path / "run2", progress=False)
    with pytest.raises(UserError, match="hwa = true needs arch or zoo"):
        parse_study({"name": "x", "presets": ["pcm"], "months": 1, "tasks": [{"name": "synthetic-2d"}],
                     "models": [{"checkpoint": "m.pt", "hwa": True}]})


def test_uq_section_rows_resume_and_errors(tmp_path):
    """[uq] stores one row per (model, preset, method, t) in its own table; a rerun adds nothing; R < 2 is refused."""
    text = TINY.format(reps=1).replace('presets = ["pcm", "hermes"]', 'presets = ["pcm"]')
    text += '[uq]\ntimes_s = [86400]\nsamples = 2\n'
    study = tmp_path / "uq.toml"
    study.write_text(text)
    run_study(study, out=tmp_path / "run", progress=False)
    from analogmed.study.runner import open_results
    with open_results(tmp_path / "run") as store:
        uq = store.uq_table()
    assert set(uq["method"]) >= {"digital", "analog-mc"}
    assert len(uq[uq["method"] == "analog-mc"]) == uq["model_key"].nunique() == 2
    assert (uq.loc[uq["method"] == "analog-mc", "samples"] == 2).all()
    assert uq["dice"].between(0, 1).all() and uq["ece"].between(0, 1).all()
    res = run_study(study, out=tmp_path / "run", progress=False)
    assert res.added == 0
    with open_results(tmp_path / "run") as store:
        assert len(store.uq_table()) == len(uq)
    with pytest.raises(UserError, match=r"uq\.samples"):
        parse_study({"name": "x", "presets": ["pcm"], "months": 1, "tasks": [{"name": "synthetic-2d"}],
                     "models": [{"arch": "C8-E16"}], "uq": {"samples": 1}})
    with pytest.raises(UserError, match=r"uq\.times_s"):
        parse_study({"name": "x", "presets": ["pcm"], "months": 1, "tasks": [{"name": "synthetic-2d"}],
                     "models": [{"arch": "C8-E16"}], "uq": {"times_s": []}})
