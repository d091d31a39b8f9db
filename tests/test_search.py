"""analogmed.search: block importance, hypervolume, every method end to end, resuming, bad input."""
from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch

from analogmed.errors import UserError
from analogmed.search import block_importance, hypervolume, pareto_mask, parse_search, task_similarity
from analogmed.search.run import run_search
from analogmed.space.supernet import Supernet

LETTERS = ["Identity", "A", "B"]


def _hand_supernet(a: float = 0.1, b: float = -0.2) -> Supernet:
    """widths (8, 16), blocks Identity/A/B; every A weight = a, every B conv weight = b."""
    sn = Supernet(2, 1, 2, widths=(8, 16), blocks=LETTERS)
    with torch.no_grad():
        for name, m in sn.blocks.items():
            for p in m.parameters():
                p.fill_(a if name.endswith("_A") else b)
    return sn.eval()


def test_block_importance_matches_hand_computation():
    imp = block_importance(_hand_supernet(0.1, -0.2))
    # bottom level 1 (16 channels, u = 1); its ops read the 8 channels of level 0:
    #   A: |W| [16, 8] = 0.1 -> v_i = 16 * 0.1 = 1.6, s = 8 * 1.6 = 12.8
    #   B: |W| summed over 3x3 = 9 * 0.2 = 1.8 -> v_i = 16 * 1.8 = 28.8, s = 8 * 28.8 = 230.4
    #   Identity passes the first 8 channels of u: s = 8
    assert imp.score[(1, "A")] == pytest.approx(12.8, rel=1e-5)
    assert imp.score[(1, "B")] == pytest.approx(230.4, rel=1e-5)
    assert imp.score[(1, "Identity")] == pytest.approx(8.0)
    # u_0 = mean of the three v (equal per channel) normalised to mean 1 -> ones(8); level 0 reads 1 channel:
    #   A: 8 * 0.1 = 0.8; B: 8 * 9 * 0.2 = 14.4; Identity: u_0[0] = 1
    assert torch.allclose(imp.channels[0], torch.ones(8))
    assert imp.score[(0, "A")] == pytest.approx(0.8, rel=1e-5)
    assert imp.score[(0, "B")] == pytest.approx(14.4, rel=1e-5)
    assert imp.score[(0, "Identity")] == pytest.approx(1.0)


def test_block_importance_batchnorm_and_channel_weights():
    sn = Supernet(2, 1, 2, widths=(8, 16), blocks=["A", "C"])
    with torch.no_grad():
        for p in sn.parameters():
            p.fill_(0.5)
        bn = sn.blocks["1_C"][1]
        bn.weight.fill_(2.0)
        bn.running_var.fill_(3.0)
        lin = sn.blocks["1_A"].linear.weight
        lin.zero_()
        lin[:, 0] = 1.0            # level-1 A reads only channel 0 of level 0
    imp = block_importance(sn.eval())
    scale = 2.0 / (3.0 + bn.eps) ** 0.5
    # C at level 1: |W| [16, 8] = 9 * 0.5 = 4.5, BN rows x scale -> v_i = 16 * 4.5 * scale
    assert imp.score[(1, "C")] == pytest.approx(8 * 16 * 4.5 * scale, rel=1e-5)
    # u_0 = mean(v_A, v_C) normalised: channel 0 gets the A mass (16) on top of C's
    vc, va0 = 16 * 4.5 * scale, 16.0
    u = torch.full((8,), vc / 2)
    u[0] += va0 / 2
    u = u / u.mean()
    assert torch.allclose(imp.channels[0], u, rtol=1e-5)


def test_task_similarity_identical_and_opposite():
    a, b = _hand_supernet(0.1, -0.2), _hand_supernet(-0.1, -0.2)
    imps = [block_importance(a), block_importance(b)]
    sig = task_similarity([a, b], imps)
    assert sig[(1, "B")] == pytest.approx(1.0, abs=1e-6)    # same weights
    assert sig[(1, "A")] == pytest.approx(-1.0, abs=1e-6)   # sign-flipped weights
    assert sig[(1, "Identity")] == pytest.approx(0.0, abs=1e-6)  # neutral: mean of the level's ops


def test_hypervolume_and_front():
    pts = [(0.5, 0.2), (0.8, 0.6), (0.4, 0.5)]   # (alpha, latency); the last one is dominated
    # (1 - 0.2) * 0.5 + (1 - 0.6) * (0.8 - 0.5) = 0.4 + 0.12
    assert hypervolume(pts, 0.0, 1.0) == pytest.approx(0.52)
    assert hypervolume(pts + [(0.9, 1.5)], 0.0, 1.0) == pytest.approx(0.52)   # outside the box
    assert list(pareto_mask([p[0] for p in pts], [p[1] for p in pts])) == [True, True, False]


def test_hermes_cost_of_ops():
    from analogmed.search.space import HardwareCost
    from analogmed.space.architecture import Architecture

    cost = HardwareCost("hermes")
    arch = Architecture.from_label("B8-Id", 2, 1, 2)
    ops = {op.kind: cost.op_cost(op) for op in arch.ops((64, 64))}
    # a 3x3 conv 1 -> 8 at 64x64: 4096 output positions, one MVM each, 521 ns per four-phase MVM
    assert ops["block:B"][0] == pytest.approx(4096 * 131072 * 64 / 16.1e12 * 1e3, rel=1e-3)
    assert ops["block:Identity"] == (0.0, 0.0) and ops["pool"] == (0.0, 0.0)
    assert cost.arch_cost(arch, (64, 64))[0] == pytest.approx(sum(v[0] for v in ops.values()))


def _cfg(**over):
    base = {
        "name": "t", "platform": "raspberry-pi3", "objectives": ["digital"], "budget": 4, "seeds": [0],
        "methods": ["mias", "mt-mias", "mt-mias-c", "random", "evolution", "nsga2"],
        "tasks": [{"name": "synthetic-2d", "size": 64, "n_train": 8, "n_val": 2, "n_test": 2, "seed": 0},
                  {"name": "synthetic-2d", "size": 64, "n_train": 8, "n_val": 2, "n_test": 2, "seed": 1,
                   "num_classes": 2}],
        "supernet": {"widths": [8, 16], "blocks": LETTERS, "epochs": 1},
        "analog": {"repeats": 1}, "evolution": {"population": 2, "sample": 2}, "nsga2": {"population": 2},
        "standalone": {"enabled": False},
    }
    base.update(over)
    return parse_search(base)


def _sequence(res) -> list[tuple]:
    return list(res.trials.sort_values(["objective", "method", "seed", "n"])[["method", "n", "encoding"]]
                .itertuples(index=False))


def test_every_method_end_to_end(tmp_path):
    res = run_search(_cfg(), out=tmp_path / "s", progress=False, plots=True)
    assert set(res.trials["method"]) == {"mias", "mt-mias", "mt-mias-c", "random", "evolution", "nsga2"}
    assert (res.trials.groupby("method").size() == 4).all()
    assert res.trials["alpha"].between(0, 1).all() and (res.trials["latency_ms"] > 0).all()
    # the MIAS family proposes its own architectures after the 2 warm-up draws (the random ones)
    rnd = res.trials[res.trials["method"] == "random"].sort_values("n")["encoding"].tolist()
    for m in ("mias", "mt-mias", "mt-mias-c"):
        enc = res.trials[res.trials["method"] == m].sort_values("n")["encoding"].tolist()
        assert enc[:2] == rnd[:2]
    full = res.trials[res.trials["method"] == "mias"].sort_values("n")["label"].tolist()[2:]
    assert all(len(lbl.split("-")) == 2 for lbl in full)          # mias keeps the full number of blocks
    hv = res.hypervolume
    assert (hv.groupby(["method", "seed"])["hypervolume"].apply(lambda s: s.is_monotonic_increasing)).all()
    tab = res.tables["digital"]
    assert list(tab["method"]) == ["mias", "mt-mias", "mt-mias-c", "random", "evolution", "nsga2"]
    assert {"latency_ms_raspberry-pi3", "latency_ms_hermes", "score_1d_analog", "avm"} <= set(tab.columns)
    assert (tmp_path / "s" / "hv-digital.png").is_file() and (tmp_path / "s" / "front-digital.png").is_file()
    # a second call finds everything stored: nothing is evaluated again
    again = run_search(_cfg(), out=tmp_path / "s", progress=False, plots=False)
    assert again.evaluations_computed == 0 and _sequence(again) == _sequence(res)


def test_analog_objective_and_standalone_rows(tmp_path):
    cfg = _cfg(objectives=["analog"], methods=["random"], budget=2, tasks=_cfg().tasks[:1],
               standalone={"epochs": 1, "repeats": 1})
    res = run_search(cfg, out=tmp_path / "a", progress=False, plots=False)
    t = res.trials
    assert {"score_1d", "avm"} <= set(t.columns)
    # alpha = 1-day score - 1.0 * max(AVM, 0)
    assert ((t["alpha"] - (t["score_1d"] - t["avm"].clip(lower=0))).abs() < 1e-9).all()
    tab = res.tables["analog"]
    assert list(tab["method"]) == ["random", "random (T)"]
    assert res.standalone["digital_score"].between(0, 1).all()


def test_killed_search_resumes_to_the_same_trials(tmp_path):
    import optuna

    cfg = _cfg(methods=["random", "evolution", "mias"], budget=5)
    whole = run_search(cfg, out=tmp_path / "whole", progress=False, plots=False)
    part = run_search(cfg, out=tmp_path / "part", progress=False, plots=False, stop_after=2)
    assert (part.trials.groupby("method").size() == 2).all()
    # a process killed inside a trial leaves it RUNNING in the storage: it is failed and redrawn
    storage = f"sqlite:///{(tmp_path / 'part' / 'optuna.sqlite').resolve()}"
    name = next(n for n in optuna.get_all_study_names(storage=storage) if n.startswith("digital:evolution"))
    optuna.load_study(study_name=name, storage=storage).ask()
    done = run_search(cfg, out=tmp_path / "part", progress=False, plots=False)
    assert (done.trials.groupby("method").size() == 5).all()
    assert _sequence(done) == _sequence(whole)
    pd.testing.assert_series_equal(done.trials.sort_values(["method", "n"])["alpha"].reset_index(drop=True),
                                   whole.trials.sort_values(["method", "n"])["alpha"].reset_index(drop=True))


@pytest.mark.parametrize("over,needle", [
    ({"platform": "pi5"}, "unknown platform 'pi5'"),
    ({"methods": ["darts"]}, "unknown method 'darts'"),
    ({"budget": 0}, "budget 0 is invalid"),
])
def test_bad_search_file(over, needle):
    with pytest.raises(UserError, match=needle):
        _cfg(**over)


def test_bad_tasks_and_lut(tmp_path):
    with pytest.raises(UserError, match="different spatial dims"):
        run_search(_cfg(methods=["mt-mias"], tasks=[{"name": "synthetic-2d", "size": 64},
                                                    {"name": "synthetic-3d", "size": 32}]), out=tmp_path / "d")
    with pytest.raises(UserError, match="needs at least two"):
        run_search(_cfg(methods=["mt-mias"], tasks=_cfg().tasks[:1]), out=tmp_path / "m")
    # 32 x 32 inputs are not in the Raspberry Pi 3 LUT (64 x 64 and 128 x 128 only)
    with pytest.raises(UserError, match="has no row for op"):
        run_search(_cfg(methods=["random"], tasks=[{"name": "synthetic-2d", "size": 32, "n_train": 8}]),
                   out=tmp_path / "l", progress=False)
    assert not (tmp_path / "l" / "trials.csv").exists()


def test_cli_bad_method_exits_2(tmp_path, monkeypatch, capsys):
    from analogmed.cli import main

    f = tmp_path / "bad.toml"
    f.write_text('name = "x"\nmethod = "darts"\n[[tasks]]\nname = "synthetic-2d"\n')
    monkeypatch.setattr(sys, "argv", ["analogmed", "search", "run", str(f), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: search file") and "unknown method 'darts'" in err[0]


def test_mni152_brainmask_task():
    from analogmed.data import get_task

    brain, tissue = get_task("mni152-brainmask", spatial_dims=2), get_task("mni152-tissue", spatial_dims=2)
    assert brain.num_classes == 2 and brain.spec["name"] == "mni152-brainmask"
    for split in ("train", "val", "test"):
        (xb, yb), (xt, yt) = brain.arrays[split], tissue.arrays[split]
        assert (xb == xt).all()                                   # the same images and splits
        assert set(yb.ravel().tolist()) <= {0, 1}
        assert ((yt > 0) <= (yb > 0)).all()                       # every tissue voxel is brain
    filled = sum(int(((brain.arrays[s][1] > 0) & (tissue.arrays[s][1] == 0)).sum()) for s in ("train", "val"))
    assert filled > 0                                             # enclosed CSF became brain


def test_compare_objectives_pairs_per_method_and_seed():
    from analogmed.search.report import compare_objectives

    sel = pd.DataFrame({"objective": ["digital", "analog"] * 3, "method": ["random"] * 4 + ["nsga2"] * 2,
                        "seed": [0, 0, 1, 1, 0, 0], "label": ["A8", "B8", "C8", "C8", "A8", "D8"],
                        "sn_score_1d": [0.5, 0.6, 0.7, 0.7, 0.5, 0.4], "sn_avm": [0.1, 0.0, 0.0, 0.0, 0.1, 0.2],
                        "latency_ms": [1.0, 2.0, 1.0, 1.0, 1.0, 1.0]})
    st = pd.DataFrame({"objective": ["digital", "digital", "analog", "analog"], "method": ["random"] * 4,
                       "seed": [0] * 4, "task": ["a", "b", "a", "b"], "score_1d": [0.4, 0.6, 0.7, 0.7],
                       "avm": [0.0, 0.0, 0.1, 0.1], "digital_score": [0.8, 0.8, 0.9, 0.9]})
    c = compare_objectives(sel, st).set_index("measure")
    # 3 pairs, 1 the same architecture; 1-day: analog better in (random, 0), worse in (nsga2, 0)
    assert c.loc["sn_score_1d", "pairs"] == 3 and c.loc["sn_score_1d", "same_architecture"] == 1
    assert c.loc["sn_score_1d", ["analog_better", "analog_worse"]].tolist() == [1, 1]
    assert c.loc["sn_score_1d", "analog_objective"] == pytest.approx((0.6 + 0.7 + 0.4) / 3)
    assert c.loc["sn_avm", ["analog_better", "analog_worse"]].tolist() == [1, 1]      # lower AVM is better
    assert c.loc["latency_ms", ["analog_better", "analog_worse"]].tolist() == [0, 1]
    # stand-alone rows: mean over tasks, one pair (random, 0): 0.5 vs 0.7
    assert c.loc["T_score_1d", "pairs"] == 1 and c.loc["T_score_1d", "digital_objective"] == pytest.approx(0.5)
    assert c.loc["T_avm", ["analog_better", "analog_worse"]].tolist() == [0, 1]
