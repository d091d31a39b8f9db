"""alpha_source = "nasbench": a search's alpha looked up in a tiny built analog MED-NAS-Bench table."""
from __future__ import annotations

import json
import shutil

import pytest

from analogmed.errors import UserError
from analogmed.nasbench import build_benchmark, export_benchmark, load, parse_bench
from analogmed.search import parse_search
from analogmed.search.run import run_search

LETTERS = ["Identity", "A", "B"]
TASK = {"name": "synthetic-2d", "size": 64, "n_train": 8, "n_val": 2, "n_test": 2, "seed": 0}


def _bench(name: str, candidates) -> dict:
    return {"name": name, "seed": 0, "candidates": candidates, "presets": ["pcm"], "repetitions": 2,
            "times_s": [1, 86400, 2592000], "platforms": ["raspberry-pi3"], "tasks": [TASK],
            "supernet": {"widths": [8, 16], "blocks": LETTERS, "epochs": 1}}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("lookup")
    full = build_benchmark(parse_bench(_bench("full", "all")), out=root / "full", progress=False)
    part = build_benchmark(parse_bench(_bench("part", ["B8", "A8-B16"])), out=root / "part", progress=False)
    return {"root": root, "full": export_benchmark(full.db.parent), "part": export_benchmark(part.db.parent)}


def _cfg(table, **over):
    base = {"name": "lk", "platform": "raspberry-pi3", "objectives": ["digital", "analog"], "budget": 5,
            "seeds": [0], "methods": ["random", "mias"], "tasks": [TASK],
            "supernet": {"widths": [8, 16], "blocks": LETTERS, "epochs": 1},
            "analog": {"alpha_source": "nasbench", "nasbench": str(table)},
            "standalone": {"enabled": False}}
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and k in base else v
    return parse_search(base)


def test_alpha_is_read_from_the_table(tables, tmp_path, monkeypatch):
    import analogmed.search.evaluate as ev

    def no_eval(*a, **k):
        raise AssertionError("a sub-network was evaluated although alpha comes from the table")

    monkeypatch.setattr(ev, "compute_eval", no_eval)
    res = run_search(_cfg(tables["full"]), out=tmp_path / "s", progress=False, plots=False)
    t = load(tables["full"]).table(preset="pcm").set_index("label")
    tr = res.trials
    assert len(tr) == 2 * 2 * 5 and res.evaluations_computed > 0
    for _, r in tr.iterrows():
        row = t.loc[r["label"]]
        if r["objective"] == "digital":
            assert r["alpha"] == pytest.approx(row["digital_score"], abs=1e-12)
        else:   # 1-day score - 1.0 * max(AVM, 0), the table's AVM = score(1 s) - score(30 d)
            assert r["alpha"] == pytest.approx(row["score_1d_mean"] - max(row["avm"], 0.0), abs=1e-12)
            assert r["score_1d"] == pytest.approx(row["score_1d_mean"]) and r["avm"] == pytest.approx(row["avm"])
    # the selected architecture's analog columns come from the table too
    sel = res.selected.iloc[0]
    assert sel["sn_score_1d"] == pytest.approx(t.loc[sel["label"], "score_1d_mean"])


def _err(cfg, out) -> str:
    with pytest.raises(UserError) as exc:
        run_search(cfg, out=out, progress=False, plots=False)
    assert not out.exists()           # refused before anything was written
    return str(exc.value)


def test_bad_tables_are_one_line_errors(tables, tmp_path):
    root = tables["root"]
    assert "lacks 10 of the search's 12 architectures" in _err(_cfg(tables["part"]), tmp_path / "a")
    assert "no preset 'hermes'" in _err(_cfg(tables["full"], analog={"preset": "hermes"}), tmp_path / "b")
    msg = _err(_cfg(tables["full"], tasks=[dict(TASK, seed=3)]), tmp_path / "c")
    assert "other options (seed: seed=0)" in msg
    assert "has widths [8, 16]" in _err(_cfg(tables["full"], supernet={"widths": [8, 32]}), tmp_path / "d")
    assert "not found" in _err(_cfg(root / "nope.json"), tmp_path / "e")
    # a table without the 30-day drift time (metadata edited) and a table of another task
    meta = json.loads(tables["full"].read_text())
    for f in tables["full"].parent.glob("full*"):
        shutil.copy(f, root / f.name.replace("full", "notime"))
    (root / "notime.json").write_text(json.dumps(dict(meta, times_s=[1.0, 86400.0], table="notime.parquet")))
    assert "no drift time 30 days" in _err(_cfg(root / "notime.json"), tmp_path / "f")
    other = _cfg(tables["full"], tasks=[{"name": "mni152-tissue", "spatial_dims": 2}])
    assert "has no task 'mni152-tissue'" in _err(other, tmp_path / "g")
    with pytest.raises(UserError, match="needs nasbench"):
        parse_search({"name": "x", "tasks": [TASK], "analog": {"alpha_source": "nasbench"}})
