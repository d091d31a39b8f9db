"""Analog MED-NAS-Bench: a tiny benchmark built end to end, queried, rebuilt identically, resumed; bad inputs."""
from __future__ import annotations

import json
import shutil
import sqlite3
import sys

import numpy as np
import pandas as pd
import pytest

from analogmed.errors import UserError
from analogmed.nasbench import build_benchmark, export_benchmark, load, parse_bench
from analogmed.nasbench.build import resolve_engine
from analogmed.nasbench.store import VOLATILE_COLUMNS, benchmark_tables, open_build

TIMES = [1, 3600, 86400, 2592000]


def tiny(**over) -> dict:
    """A tiny build: 20-architecture space (4 blocks, depth <= 2), 3 candidates, 2 instances,
    2 stand-alone x 2 seeds."""
    cfg = {"name": "tiny", "seed": 0, "candidates": 3, "presets": ["pcm"], "repetitions": 2, "times_s": TIMES,
           "latency_input_size": [64, 64],
           "tasks": [{"name": "synthetic-2d", "size": 32, "n_train": 8, "n_val": 4, "n_test": 2}],
           "supernet": {"widths": [8, 8], "blocks": ["Identity", "A", "C", "E"], "epochs": 2},
           "standalone": {"k": 2, "seeds": 2, "epochs": 1}}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")
    res = build_benchmark(parse_bench(tiny()), out=root / "b", progress=False)
    meta = export_benchmark(root / "b")
    return root, res, meta


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in VOLATILE_COLUMNS if c in df.columns]).reset_index(drop=True)


def test_tiny_benchmark_end_to_end(built):
    root, res, meta_path = built
    assert res.jobs_run == 3 + 2 * 2 and res.jobs_skipped == 0
    assert res.rows == 7 * 2 * 4                      # jobs x instances x times
    bench = load(meta_path)
    assert len(bench) == 3 and bench.presets == ["pcm"]
    assert set(bench.platforms) >= {"raspberry-pi3", "laptop-ryzen7-6800h", "this-machine"}
    t = bench.table()
    assert len(t) == 3 and (t["variant"] == "supernet").all()
    assert len(bench.table(variant=None)) == 7
    assert (t["engine"] == resolve_engine("auto")).all() and (bench.rows()["engine"] == resolve_engine("auto")).all()
    assert t["score_1d_mean"].between(0, 1).all() and (t["score_1d_std"] >= 0).all()
    assert np.allclose(t["avm"], t["score_1s"] - t["score_30d"])
    # rows -> summary: the 1-day mean is the mean over the 2 instances at t = 1 d
    rows = bench.rows()
    a = t.iloc[0]
    r1d = rows[(rows["model_key"] == a["arch_id"]) & (rows["t_inference_s"] == 86400.0)]
    assert len(r1d) == 2 and r1d["score"].mean() == pytest.approx(a["score_1d_mean"])
    assert bench.query(a["arch_id"], metric="score_1d_mean", preset="pcm") == pytest.approx(a["score_1d_mean"])
    assert bench.query(a["label"], metric="avm") == pytest.approx(a["avm"])
    # latency = LUT sum of the candidate's ops at 64x64; params = the sub-network's
    from analogmed.latency.candidate import arch_ops, digital_cost
    from analogmed.space.architecture import Architecture
    from analogmed.space.builder import build_candidate

    arch = Architecture.from_label(a["label"], spatial_dims=2, in_channels=1, out_channels=3)
    want = digital_cost(arch_ops(arch, (64, 64)), "raspberry-pi3").latency_ms
    assert bench.query(a["label"], metric="latency_ms", platform="raspberry-pi3") == pytest.approx(want)
    assert a["params"] == sum(p.numel() for p in build_candidate(arch).parameters())
    assert a["hermes_tiles"] >= 1 and a["hermes_energy_mj"] > 0 and a["macs"] > 0
    front = bench.pareto(["score_1d_mean", "latency_ms@raspberry-pi3"], preset="pcm")
    assert 1 <= len(front) <= 3
    for _, f in front.iterrows():   # nothing dominates a front member
        s, lat = t["score_1d_mean"], t["latency_ms@raspberry-pi3"]
        fs, fl = f["score_1d_mean"], f["latency_ms@raspberry-pi3"]
        assert not ((s >= fs) & (lat <= fl) & ((s > fs) | (lat < fl))).any()
    meta = json.loads(meta_path.read_text())
    assert meta["format_version"] == 1 and meta["seeds"]["seed"] == 0 and meta["presets"] == ["pcm"]
    assert meta["space"]["synthetic-2d"]["space_size"] == 20 and "torch" in meta["versions"]
    with pytest.raises(UserError, match="not in this benchmark"):
        bench.query("G64", metric="score_1d_mean")
    with pytest.raises(UserError, match="platform"):
        bench.query(a["label"], metric="latency_ms", platform="cray-1")


def test_report_and_cli(built, tmp_path, capsys, monkeypatch):
    from analogmed.nasbench.report import nasbench_report

    root, _, meta_path = built
    bench = load(meta_path)
    rep = nasbench_report(bench)
    assert rep["n_candidates"] == 3 and rep["top"]["k"] == 3 and rep["top"]["overlap"] == 3
    assert set(rep["block_effects"]["block"]) == {"Identity", "A", "C", "E"}
    assert rep["standalone"]["k"] == 2 and rep["standalone"]["seeds"] == 2
    label = bench.table()["label"].iloc[0]
    assert _cli(monkeypatch, "nasbench", "query", meta_path, label, "--metric", "latency_ms", "--platform",
                "laptop-ryzen7-6800h") == 0
    out = capsys.readouterr().out.strip()
    assert float(out) == pytest.approx(bench.query(label, metric="latency_ms", platform="laptop-ryzen7-6800h"),
                                       rel=1e-5)
    assert _cli(monkeypatch, "nasbench", "report", meta_path, "-o", tmp_path / "r") == 0
    assert {"report.md", "digital_vs_analog.png", "block_effects.pdf", "pareto.png",
            "supernet_vs_standalone.png"} <= {p.name for p in (tmp_path / "r").iterdir()}


def test_same_seed_identical_table_and_resume(built, tmp_path, monkeypatch):
    root, _, _ = built
    with open_build(root / "b") as store:
        ref, ref_rows = benchmark_tables(store)
    # a second build, supernet retrained too (fresh cache): identical table except volatile columns
    monkeypatch.setenv("ANALOGMED_CACHE", str(tmp_path / "cache2"))
    res = build_benchmark(parse_bench(tiny()), out=tmp_path / "b2", progress=False)
    assert res.jobs_run == 7
    with open_build(tmp_path / "b2") as store:
        t2, r2 = benchmark_tables(store)
    pd.testing.assert_frame_equal(_strip(ref), _strip(t2))
    pd.testing.assert_frame_equal(_strip(ref_rows), _strip(r2))
    # resume: drop one finished candidate (as if killed before its rows were committed) + an orphan row set
    shutil.copytree(tmp_path / "b2", tmp_path / "b3")
    db = tmp_path / "b3" / "results.sqlite"
    key = ref["arch_id"].iloc[1]
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM nb_candidates WHERE model_key = ?", (key,))       # its analog rows stay (orphans)
        other = ref["arch_id"].iloc[2]
        c.execute("DELETE FROM nb_candidates WHERE model_key = ?", (other,))
        c.execute("DELETE FROM results WHERE model_key = ?", (other,))
    res = build_benchmark(parse_bench(tiny()), out=tmp_path / "b3", progress=False)
    assert (res.jobs_run, res.jobs_skipped) == (2, 5)
    with open_build(tmp_path / "b3") as store:
        t3, _ = benchmark_tables(store)
    pd.testing.assert_frame_equal(_strip(ref), _strip(t3))


def _cli(monkeypatch, *args) -> int:
    from analogmed.cli import main

    monkeypatch.setattr(sys, "argv", ["analogmed", *map(str, args)])
    with pytest.raises(SystemExit) as ei:
        main()
    return ei.value.code


def _err(fn, *args, **kw) -> str:
    with pytest.raises(UserError) as ei:
        fn(*args, **kw)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_bad_space_inputs(tmp_path):
    b = lambda **o: build_benchmark(parse_bench(tiny(**o)), out=tmp_path / "x", progress=False)  # noqa: E731
    assert "'Q'" in _err(b, supernet={"blocks": ["A", "Q"], "widths": [8, 8]})
    assert "3-D block" in _err(b, supernet={"blocks": ["A", "H"], "widths": [8, 8]})
    assert "larger than the space (20" in _err(b, candidates=21)
    assert "'H'" in _err(b, candidates=["A8", "H8"])
    assert _err(parse_bench, {"name": "x", "tasks": [{"name": "synthetic-2d"}], "candidatez": 3}).count("candidatez")
    assert not (tmp_path / "x" / "results.sqlite").exists()   # nothing written


def test_bad_supernet_and_preset(tmp_path):
    from analogmed.data import get_task
    from analogmed.train.supernet import SupernetConfig, save_supernet, train_supernet

    task = get_task("synthetic-2d", size=32, n_train=4, n_val=2, n_test=2, seed=1)   # another task (seed)
    ck = train_supernet(task, SupernetConfig(epochs=1, progress=False), widths=[8, 8], blocks=["A", "C"])
    save_supernet(tmp_path / "sn.pt", ck)
    b = lambda **o: build_benchmark(parse_bench(tiny(**o)), out=tmp_path / "x", progress=False)  # noqa: E731
    assert "was trained on task" in _err(b, supernet={"checkpoint": str(tmp_path / "sn.pt")})
    same_task = [{"name": "synthetic-2d", "size": 32, "n_train": 4, "n_val": 2, "n_test": 2, "seed": 1}]
    assert "holds blocks" in _err(b, tasks=same_task, supernet={"checkpoint": str(tmp_path / "sn.pt"),
                                                                "blocks": ["A", "E"]})
    assert "widths" in _err(b, tasks=same_task, supernet={"checkpoint": str(tmp_path / "sn.pt"), "widths": [8, 16]})
    from analogmed.paths import data_dir

    toml = (data_dir("hardware") / "reram.toml").read_text().replace('noise_model = "reram"',
                                                                      'noise_model = "reram-wan2022"')
    (tmp_path / "wan.toml").write_text(toml)
    assert "only drifts to t" in _err(b, presets=[str(tmp_path / "wan.toml")])
    assert not (tmp_path / "x" / "results.sqlite").exists()


def test_changed_file_and_newer_format(built, tmp_path, capsys, monkeypatch):
    root, _, meta_path = built
    with open_build(root / "b") as store:
        n = store.count()
    assert "changed after results exist" in _err(build_benchmark, parse_bench(tiny(repetitions=3)), out=root / "b",
                                                 progress=False)
    with open_build(root / "b") as store:
        assert store.count() == n
    d = tmp_path / "newer"
    d.mkdir()
    for p in meta_path.parent.glob("tiny*"):
        shutil.copy(p, d / p.name)
    meta = json.loads((d / "tiny.json").read_text())
    meta["format_version"] = 99
    (d / "tiny.json").write_text(json.dumps(meta))
    assert "format version 99" in _err(load, d / "tiny.json")
    assert _cli(monkeypatch, "nasbench", "show", d / "tiny.json") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "format version 99" in err[0]


def test_finetune_and_hwa_options(tmp_path):
    """finetune_epochs and hwa change the candidate's weights (digital score differs from the plain build)."""
    base = dict(candidates=["C8-E8"], repetitions=1, standalone={"k": 0}, platforms=["raspberry-pi3"])
    plain = build_benchmark(parse_bench(tiny(name="p", **base)), out=tmp_path / "p", progress=False)
    tuned = build_benchmark(parse_bench(tiny(name="t", finetune_epochs=1, hwa=True, hwa_epochs=1, **base)),
                            out=tmp_path / "t", progress=False)
    assert plain.jobs_run == tuned.jobs_run == 1
    with open_build(tmp_path / "p") as s1, open_build(tmp_path / "t") as s2:
        a, _ = benchmark_tables(s1)
        b, _ = benchmark_tables(s2)
    assert list(a.filter(like="@").columns) == ["energy_mj@raspberry-pi3", "latency_ms@raspberry-pi3"]
    assert a["params"].iloc[0] == b["params"].iloc[0]
    assert a["digital_score"].iloc[0] != b["digital_score"].iloc[0]


def test_all_enumerates_the_space_once():
    from analogmed.nasbench.build import enumerate_space
    from analogmed.space.supernet import Supernet

    sn = Supernet(2, 1, 3, (8, 16), ("Identity", "A", "C", "E"))
    archs = enumerate_space(sn)
    assert len(archs) == sn.space_size() == 20 and len({a.id for a in archs}) == 20
    for a in archs:
        sn.check(a)


def test_bad_output_locations(built, tmp_path):
    root, _, _ = built
    (tmp_path / "file").write_text("x")
    assert "file" in _err(build_benchmark, parse_bench(tiny()), out=tmp_path / "file", progress=False)
    (tmp_path / "d.parquet").mkdir()
    assert "folder" in _err(export_benchmark, root / "b", tmp_path / "d.parquet")
    assert "parquet" in _err(export_benchmark, root / "b", tmp_path / "x.csv")
    assert not (tmp_path / "x.json").exists()


def test_shipped_benchmark_loads_by_name():
    from analogmed.nasbench import list_benchmarks

    assert "nasbench-mni152-2d" in list_benchmarks()
    bench = load("nasbench-mni152-2d")
    t = bench.table(preset="pcm")
    assert bench.meta["format_version"] == 1 and bench.meta["repetitions"] == 5 and len(bench) >= 100
    assert t["score_1d_mean"].between(0, 1).all() and np.allclose(t["avm"], t["score_1s"] - t["score_30d"])
    a = t.iloc[0]
    assert bench.query(a["label"], metric="latency_ms", platform="raspberry-pi3") == a["latency_ms@raspberry-pi3"]
    rows = bench.rows()
    r1d = rows[(rows["model_key"] == a["arch_id"]) & (rows["t_inference_s"] == 86400.0)]
    assert len(r1d) == 5 and r1d["score"].mean() == pytest.approx(a["score_1d_mean"])
    assert len(bench.table(variant="standalone-s0")) == len(bench.table(variant="standalone-s1")) == 30
