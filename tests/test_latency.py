"""analogmed.latency: platforms, op counting, LUT I/O and lookup, the analytical model, costs."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analogmed.errors import UserError
from analogmed.latency.analog_cost import (HERMES_FOUR_PHASE, HERMES_ONE_PHASE, analog_cost,
                                           analog_layers)
from analogmed.latency.candidate import digital_cost
from analogmed.latency.counting import count_module
from analogmed.latency.lut import LatencyTable, measure_ops, read_lut, write_lut
from analogmed.latency.model import DEFAULT_PARAMS, ModelParams, fit_params, model_lut, predict_table
from analogmed.latency.ops import Op, op_module
from analogmed.latency.platform import Platform, list_platforms, load_platform
from analogmed.latency.grid import op_grid, random_candidates
from reference_unet import ReferenceUNet
from analogmed.latency.validate import calibrated_check, candidate_check, mape, summary, tau

TINY = Platform(name="tiny", cpu_model="test", cores=1, threads=1, clock_ghz=2.0, simd_width_bits=256,
                fp32_flops_per_cycle=32, memory_gb=1, bandwidth_gbs=20.0, typical_power_w=10.0)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from analogmed.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd)


# ------------------------------------------------------------------ platforms


def test_shipped_platforms_load_with_sources():
    names = list_platforms()
    assert {"raspberry-pi3", "laptop-ryzen7-6800h"} <= set(names)
    pi = load_platform("raspberry-pi3")
    assert (pi.cores, pi.clock_ghz, pi.simd_width_bits, pi.memory_gb) == (4, 1.2, 128, 1.0)
    assert pi.peak_gflops == pytest.approx(4 * 1.2 * 8)
    lap = load_platform("laptop-ryzen7-6800h")
    assert lap.cores == 8 and lap.typical_power_w == 45.0 and lap.bandwidth_gbs == 76.8
    for p in (pi, lap):
        assert {"cpu", "bandwidth", "power"} <= set(p.sources)


def test_platform_errors(tmp_path):
    with pytest.raises(UserError, match="unknown platform 'nope'"):
        load_platform("nope")
    bad = tmp_path / "bad.toml"
    text = (load_platform.__globals__["platform_path"]("raspberry-pi3")).read_text()
    bad.write_text(text.replace('cores = 4', 'cores = 4\ncorez = 4'))
    with pytest.raises(UserError, match="corez"):
        load_platform(bad)
    bad.write_text(text.replace('clock_ghz = 1.2', 'clock_ghz = -1'))
    with pytest.raises(UserError, match="clock_ghz"):
        load_platform(bad)


# ------------------------------------------------------------------ counting and ops


def test_counts_are_exact_for_conv_convT_linear():
    c = count_module(nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.zeros(1, 3, 10, 10))
    assert c.flops == 2 * 3 * 9 * 8 * 100 and c.weights == 3 * 8 * 9
    assert c.bytes == 4 * (3 * 100 + 8 * 100 + 3 * 8 * 9)
    t = count_module(nn.ConvTranspose2d(8, 4, 2, stride=2, bias=False), torch.zeros(1, 8, 5, 5))
    assert t.flops == 2 * 8 * 25 * 4 * 4  # every input element scatters into 2x2x4 outputs
    lin = count_module(nn.Linear(16, 5), torch.zeros(7, 16))
    assert lin.flops == 2 * 16 * 5 * 7 + 5 * 7 and lin.kernels == 1


def test_op_key_roundtrip_and_modules():
    ops = [Op("block:F", 2, 1, 8, (16, 16)), Op("up:C", 2, 16, 8, (8, 8)), Op("pool", 2, 8, 8, (16, 16)),
           Op("concat", 2, 8, 16, (16, 16), extra=8), Op("head", 2, 8, 3, (16, 16)),
           Op("block:A", 2, 8, 4, (16, 16)), Op("up:A", 2, 8, 4, (8, 8)), Op("block:I", 3, 1, 4, (8, 8, 8))]
    expect = [(1, 8, 16, 16), (1, 8, 16, 16), (1, 8, 8, 8), (1, 16, 16, 16), (1, 3, 16, 16), (1, 4, 16, 16),
              (1, 4, 16, 16), (1, 4, 8, 8, 8)]
    for op, shape in zip(ops, expect):
        assert Op.from_key(op.key) == op
        m, xs = op_module(op)
        assert tuple(m(*xs).shape) == shape, op.key
    assert ops[3].key == "concat|2d|8+8>16|16x16"
    with pytest.raises(UserError, match="no module definition"):
        op_module(Op("warp", 2, 1, 1, (4, 4)))


def test_grid_covers_every_op_of_random_candidates():
    grid = set(op_grid(2, (32, 32), (4, 8), 3))
    import random

    from reference_unet import random_reference

    rng = random.Random(0)
    for _ in range(40):
        r = random_reference(rng, 2, widths=(4, 8), levels=3)
        r = ReferenceUNet(r.blocks, r.widths, 2, 1, 4)
        assert set(r.ops((32, 32))) <= grid
        y = r.build((32, 32))(torch.zeros(1, 1, 32, 32))
        assert y.shape == (1, 4, 32, 32)


# ------------------------------------------------------------------ LUT I/O


@pytest.fixture(scope="module")
def tiny_lut():
    ops = op_grid(2, (16, 16), (8, 16), 2)
    return ops, measure_ops(ops, TINY, warmup=1, repeats=3, min_time_s=0.0, progress=False)


def test_measured_lut_roundtrip_and_provenance(tmp_path, tiny_lut):
    ops, df = tiny_lut
    assert len(df) == len(ops) and (df["source"] == "measured").all()
    assert (df["latency_ms"] > 0).all() and (df["repeats"] >= 3).all()
    assert df["torch_version"].iloc[0] == torch.__version__ and (df["threads"] == 1).all()
    p = write_lut(df, tmp_path / "t.csv")
    back = read_lut(p)
    assert list(back["key"]) == list(df["key"])
    np.testing.assert_allclose(back["latency_ms"], df["latency_ms"], rtol=1e-5)
    t = LatencyTable(back)
    assert t[ops[0]] == pytest.approx(float(df["latency_ms"].iloc[0]), rel=1e-5)


def test_malformed_lut_is_a_user_error(tmp_path, tiny_lut):
    _, df = tiny_lut
    p = tmp_path / "x.csv"
    df.drop(columns=["latency_ms"]).to_csv(p, index=False)
    with pytest.raises(UserError, match="missing columns"):
        read_lut(p)
    bad = df.astype({"latency_ms": object})
    bad.loc[2, "latency_ms"] = "fast"
    bad.to_csv(p, index=False)
    with pytest.raises(UserError, match="row 4 has latency_ms"):
        read_lut(p)
    bad = df.copy()
    bad.loc[0, "key"] = "conv-3x3"
    bad.to_csv(p, index=False)
    with pytest.raises(UserError, match="malformed op key 'conv-3x3'"):
        read_lut(p)
    p.write_text('a,b\n1,"2\n')
    with pytest.raises(UserError):
        read_lut(p)
    with pytest.raises(UserError, match="not found"):
        read_lut(tmp_path / "none.csv")
    # nothing half-written: a failed write leaves no file
    with pytest.raises(UserError):
        write_lut(df.drop(columns=["source"]), tmp_path / "w.csv")
    assert not (tmp_path / "w.csv").exists()


def test_candidate_cost_sums_ops_and_names_missing_op(tiny_lut):
    ops, df = tiny_lut
    t = LatencyTable(df)
    r = ReferenceUNet(("C", "B"), (16, 8), 2, 1, 4)
    cops = r.ops((16, 16))
    cost = digital_cost(cops, TINY, t)
    assert cost.latency_ms == pytest.approx(sum(t[o] for o in cops))
    assert cost.energy_mj == pytest.approx(cost.latency_ms * 10.0)  # ms x W = mJ
    big = ReferenceUNet(("C",), (64,), 2, 1, 4).ops((16, 16))
    with pytest.raises(UserError, match=r"no row for op 'block:C\|2d\|1>64\|16x16'.*analogmed lut build"):
        digital_cost(big, TINY, t)


# ------------------------------------------------------------------ analytical model


def test_model_fit_recovers_known_parameters(tiny_lut):
    _, df = tiny_lut
    truth = ModelParams(eff_conv=0.4, eff_convT=0.15, eff_linear=0.25, eff_pool=0.1, eff_memory=0.6,
                        overhead_cycles=30_000.0)
    synth = df.copy()
    synth["latency_ms"] = predict_table(synth, TINY, truth)
    fit = fit_params(synth, TINY)
    pred = predict_table(synth, TINY, fit)
    assert mape(pred, synth["latency_ms"]) < 2.0
    assert fit.overhead_cycles == pytest.approx(30_000, rel=0.1)
    # with two thread counts, the scaling terms are identified too
    truth2 = ModelParams(eff_conv=0.4, eff_convT=0.15, eff_linear=0.25, eff_pool=0.1, eff_memory=0.6,
                         overhead_cycles=30_000.0, par_eff=0.5, sync_cycles=50_000.0)
    two = TINY.model_copy(update={"cores": 2})
    both = pd.concat([synth.assign(threads=1), synth.assign(threads=2)], ignore_index=True)
    both["latency_ms"] = predict_table(both, two, truth2)
    fit2 = fit_params(both, two)
    assert mape(predict_table(both, two, fit2), both["latency_ms"]) < 3.0
    assert fit2.sync_cycles == pytest.approx(50_000, rel=0.2)


def test_model_lut_scales_with_platform(tiny_lut):
    _, df = tiny_lut
    pi, lap = load_platform("raspberry-pi3"), load_platform("laptop-ryzen7-6800h")
    m_pi, m_lap = model_lut(df, pi), model_lut(df, lap)
    assert (m_pi["source"] == "model").all() and (m_pi["platform"] == "raspberry-pi3").all()
    assert (m_pi["latency_ms"].to_numpy() > m_lap["latency_ms"].to_numpy()).all()
    LatencyTable(m_pi)  # validates
    # roofline: latency = overhead + max(flops / (peak x eff), bytes / (bandwidth x eff_mem))
    op = Op("block:C", 2, 8, 16, (8, 8))
    row = m_pi[m_pi["key"] == op.key].iloc[0]
    P = DEFAULT_PARAMS
    peak = 1.2e9 * 8 * (1 + P.par_eff * 3)  # 4 threads
    compute = row["flops"] / (peak * P.eff_conv)
    memory = row["bytes"] / (pi.bandwidth_gbs * 1e9 * P.eff_memory)
    expect = 1e3 * (max(compute, memory)
                    + (2000 + row["kernels"] * (P.overhead_cycles + P.sync_cycles)) / (pi.clock_ghz * 1e9))
    assert row["latency_ms"] == pytest.approx(expect, rel=1e-4)


def test_metrics():
    assert mape([110, 90], [100, 100]) == pytest.approx(10.0)
    assert tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert tau([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert summary([1, 2], [1, 2]) == {"mape_pct": 0.0, "tau": 1.0, "n": 2}


def test_candidate_check_on_tiny_candidates(tiny_lut):
    ops, df = tiny_lut
    t = LatencyTable(df)
    cands = [c for c in random_candidates(40, seed=3, spatial_dims=2, input_size=(16, 16), widths=(8, 16), levels=2)
             if all(o in t for o in c.ops)][:6]
    assert len(cands) >= 2
    res = candidate_check(cands, t, threads=1, warmup=1, repeats=3, rounds=1, progress=False)
    assert len(res) == len(cands) and (res["measured_ms"] > 0).all()
    np.testing.assert_allclose(res["lut_ms"], [sum(t[o] for o in c.ops) for c in cands])
    rng = np.random.default_rng(0)
    synth = pd.DataFrame({"lut_ms": rng.uniform(0.1, 5, 20), "n_ops": rng.integers(2, 18, 20)})
    exact = synth.assign(measured_ms=1.3 * synth["lut_ms"] + 0.01 * synth["n_ops"])
    cal = calibrated_check(exact)
    assert cal["a"] == pytest.approx(1.3, rel=1e-6) and cal["heldout"]["mape_pct"] < 1e-6


# ------------------------------------------------------------------ analog cost


def test_hermes_constants_and_tiles():
    assert HERMES_FOUR_PHASE.t_mvm_ns == pytest.approx(521.0, abs=1)
    assert HERMES_ONE_PHASE.t_mvm_ns == pytest.approx(132.9, abs=1)
    assert HERMES_FOUR_PHASE.e_mvm_nj(256, 256) == pytest.approx(131072 / 2.48e12 * 1e9)
    model = nn.Sequential(nn.Conv2d(40, 300, 3, padding=1), nn.ConvTranspose2d(300, 10, 2, stride=2),
                          nn.Flatten(), nn.Linear(10 * 16 * 16, 3))
    layers = analog_layers(model, torch.zeros(1, 40, 8, 8))
    assert list(layers["rows"]) == [360, 300, 2560] and list(layers["cols"]) == [300, 40, 3]
    assert list(layers["positions"]) == [64, 64, 1]
    c = analog_cost(layers, 256, 256, HERMES_FOUR_PHASE)
    tiles = [2 * 2, 2 * 1, 10 * 1]
    assert c.tiles == sum(tiles) and c.chips == 1
    assert c.mvms == 4 * 64 + 2 * 64 + 10 * 1
    assert c.latency_ms == pytest.approx((64 + 64 + 1) * HERMES_FOUR_PHASE.t_mvm_ns * 1e-6)
    assert c.energy_mj == pytest.approx(c.mvms * HERMES_FOUR_PHASE.e_mvm_nj(256, 256) * 1e-6)
    assert 0 < c.utilization < 1
    assert c.replicas == 64 // 16 and c.latency_replicated_ms == pytest.approx(c.latency_ms / 4)


# ------------------------------------------------------------------ CLI


def test_cli_build_show_cost_and_errors(tmp_path):
    r = _cli("lut", "build", "--platform", "host", "--spatial-dims", "2", "--input-size", "16x16",
             "--widths", "4,8", "--levels", "2", "--repeats", "2", "--warmup", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "this-machine.csv")
    assert len(df) == len(op_grid(2, (16, 16), (4, 8), 2)) and (df["source"] == "measured").all()
    r = _cli("lut", "show", "--platform", str(tmp_path / "this-machine.toml"))
    assert r.returncode == 0 and f"{len(df)} ops" in r.stdout
    r = _cli("lut", "model", "--platform", "raspberry-pi3", "--fit-on", str(tmp_path / "this-machine.toml"),
             "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    pi = read_lut(tmp_path / "raspberry-pi3.csv")
    assert (pi["source"] == "model").all() and list(pi["key"]) == list(df["key"])
    r = _cli("lut", "model", "--platform", str(tmp_path / "this-machine.toml"),
             "--fit-on", str(tmp_path / "this-machine.toml"), "--out", str(tmp_path))
    assert r.returncode == 2 and "holds measured rows" in r.stderr
    r = _cli("lut", "build", "--platform", "raspberry-pi3", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "this machine is not a raspberry-pi3" in r.stderr
    assert not (tmp_path / "x").exists()
    r = _cli("lut", "show", "--platform", "pi5")
    assert r.returncode == 2 and "unknown platform 'pi5'" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "a.json"
    bad.write_text("{not json")
    r = _cli("cost", "--arch", str(bad))
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    arch = tmp_path / "c.json"
    from analogmed.space.architecture import Architecture

    d = Architecture.from_label("C8-C8").to_dict()
    d["blocks"] = ["C", "Q"]
    arch.write_text(json.dumps(d))
    r = _cli("cost", "--arch", str(arch), "--input-size", "16x16")
    assert r.returncode == 2 and "'Q'" in r.stderr and "Traceback" not in r.stderr
