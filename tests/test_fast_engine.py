"""The fast analog engine (analogmed.analog.fast) against aihwkit's torch tile, and its fused kernel."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from analogmed.analog import drift, load_preset, program, to_analog
from analogmed.analog import fast_kernel as fk
from analogmed.analog.fast import FastEngine, _fold, fast_engine
from analogmed.evaluate.robustness import DAY, MONTH, YEAR, drift_study, summarize
from analogmed.paths import data_dir


def _preset(tmp_path, name: str, **subs) -> str:
    """A copy of hardware/pcm.toml with some `key = value` lines replaced."""
    text = (data_dir("hardware") / "pcm.toml").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {subs[key]}" if key in subs and "=" in line else line)
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _analog(module: nn.Module, preset, input_range: float = 2.0) -> nn.Module:
    a = to_analog(nn.Sequential(module).eval(), preset)
    for tile in a.analog_tiles():
        if tile.input_range is not None:
            tile.input_range.data[:] = input_range
    return a


#: (digital layer, input) for every layer type we convert; sizes force split tiles (100 rows, 24 cols).
LAYERS = [
    (lambda: nn.Linear(150, 40), (6, 30, 150)),
    (lambda: nn.Conv1d(20, 30, 3, padding=1), (4, 20, 40)),
    (lambda: nn.Conv2d(20, 30, 3, padding=1), (4, 20, 12, 12)),
    (lambda: nn.Conv2d(13, 30, 3, stride=2, dilation=2, padding=2), (4, 13, 16, 16)),
    (lambda: nn.Conv3d(13, 30, 3, padding=1), (2, 13, 8, 8, 8)),
    (lambda: nn.ConvTranspose2d(150, 7, 2, 2), (4, 150, 8, 8)),
    (lambda: nn.ConvTranspose2d(30, 7, 3, 2, padding=1, output_padding=1), (4, 30, 8, 8)),
    (lambda: nn.ConvTranspose3d(150, 7, 2, 2), (2, 150, 4, 4, 4)),
]


@pytest.mark.parametrize("make, shape", LAYERS, ids=[
    "linear", "conv1d", "conv2d", "conv2d-dilated", "conv3d", "convT2d-k2s2", "convT2d-k3s2", "convT3d"])
def test_noise_off_equals_aihwkit_within_one_adc_step(make, shape, tmp_path):
    torch.manual_seed(0)
    preset = _preset(tmp_path, "quiet", out_noise="0.0", tile_rows="100", tile_cols="24")
    a = _analog(make(), preset)
    assert sum(1 for _ in a.analog_tiles()) > 1  # split tiles
    program(a, 1)
    drift(a, DAY, 2)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = a(x)
        with fast_engine(a) as eng:
            out = a(x)
    assert not eng.notes
    fo = _fold(a[0])
    lsb = fo.out_step * max(float(t.scale.abs().max()) for t in fo.tiles) * len(fo.tiles)
    diff = (out - ref).abs()
    assert float(diff.max()) <= lsb + 1e-5
    assert int((diff > 1e-4 * lsb).sum()) <= max(1, math.ceil(1e-4 * diff.numel()))


def _error_stats(a: nn.Module, digital: nn.Module, x: torch.Tensor, fast: bool) -> np.ndarray:
    with torch.no_grad():
        ref = digital(x)
        if fast:
            with fast_engine(a):
                err = a(x) - ref
        else:
            err = a(x) - ref
    return err.flatten().numpy()


@pytest.mark.parametrize("t_s", [1.0, DAY, YEAR], ids=["1s", "1d", "1y"])
def test_noise_on_error_statistics_match_aihwkit(t_s):
    """PCM noise: output-error std and mean |error| within 3 % of aihwkit's, for one programmed instance
    read many times and for 150 independently programmed instances (different seeds per engine)."""
    torch.manual_seed(0)
    digital = nn.Sequential(nn.Linear(64, 32)).eval()
    a = _analog(digital[0], "pcm", input_range=3.0)
    x = torch.randn(64, 64)
    # the same instance: only output noise differs between the reads
    program(a, 7)
    drift(a, t_s, 8)
    ea = np.concatenate([_error_stats(a, digital, x, fast=False) for _ in range(20)])
    ef = np.concatenate([_error_stats(a, digital, x, fast=True) for _ in range(20)])
    assert ef.std() == pytest.approx(ea.std(), rel=0.03)
    assert np.abs(ef).mean() == pytest.approx(np.abs(ea).mean(), rel=0.03)
    # independent instances: aihwkit on seeds 1000+i, fast on seeds 5000+i
    ea, ef = [], []
    for i in range(150):
        for base, out, fast in ((1000, ea, False), (5000, ef, True)):
            program(a, base + i)
            drift(a, t_s, base + i)
            out.append(_error_stats(a, digital, x, fast))
    ea, ef = np.concatenate(ea), np.concatenate(ef)
    assert ef.std() == pytest.approx(ea.std(), rel=0.03)
    assert np.abs(ef).mean() == pytest.approx(np.abs(ea).mean(), rel=0.03)


def test_drift_compensation_alpha_and_scales_are_aihwkit_s():
    torch.manual_seed(0)
    a = _analog(nn.Conv2d(4, 8, 3), "pcm")
    program(a, 3)
    drift(a, MONTH, 4)
    tile = next(a.analog_tiles())
    assert float(tile.alpha) != 1.0  # global drift compensation is active at 30 d
    want = tile.input_range.detach() * tile.get_mapping_scales() * tile.alpha
    torch.testing.assert_close(_fold(a[0]).tiles[0].scale, want, rtol=1e-6, atol=0)


def test_same_seed_same_output_and_kernel_equals_torch_fallback(monkeypatch):
    torch.manual_seed(0)
    a = _analog(nn.Conv2d(6, 12, 3, padding=1), "pcm")
    program(a, 1)
    drift(a, DAY, 1)
    x = torch.randn(2, 6, 16, 16)
    outs = []
    for no_kernel in ("0", "1", "0"):
        monkeypatch.setenv("ANALOGMED_NO_KERNEL", no_kernel)
        with torch.no_grad(), fast_engine(a):
            torch.manual_seed(42)
            outs.append(a(x))
    assert fk.kernel_status().startswith("kernel" if fk.load_kernel() is not None else "torch")
    torch.testing.assert_close(outs[0], outs[2], rtol=0, atol=0)  # seeded
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)  # kernel == plain-torch fallback
    with torch.no_grad(), fast_engine(a):
        torch.manual_seed(43)
        assert not torch.equal(a(x), outs[0])


def test_fused_pass_definition_and_generator():
    y = torch.randn(3, 5, 7, 11) * 4
    scale, bias = torch.rand(5) + 0.5, torch.randn(5)
    acc = torch.randn_like(y)
    step, bound = 2 * 10 / 254, 10.0
    for sigma in (0.0, 0.04):
        for inner in (77, 1):  # channel-first (convs) and channel-last (Linear) layouts
            for ac in (None, acc):
                a = fk.fused_out(y, None if ac is None else ac.clone(), scale, bias, inner, sigma, step, bound, 9)
                b = fk.fused_out_torch(y, None if ac is None else ac.clone(), scale, bias, inner, sigma, step, bound, 9)
                assert torch.equal(a, b)
    wide = torch.randn(5, 300) * 4  # channel-last with C > 256: per-row segments instead of a repeated scale
    ws, wb = torch.rand(300) + 0.5, torch.randn(300)
    for sigma in (0.0, 0.04):
        assert torch.equal(fk.fused_out(wide, None, ws, wb, 1, sigma, step, bound, 9),
                           fk.fused_out_torch(wide, None, ws, wb, 1, sigma, step, bound, 9))
    x = torch.randn(4, 300) * 3
    ir = torch.tensor([2.5])
    for perfect in (False, True):
        assert torch.equal(fk.dac(x, ir, perfect, 2 / 254, 1.0), fk.dac_torch(x, ir, perfect, 2 / 254, 1.0))
    noise = 0.04 * fk.gaussian(y.numel(), 9).view_as(y)
    v = (torch.round((y + noise) / step) * step).clamp(-bound, bound)
    want = acc + v * scale.view(1, 5, 1, 1) + bias.view(1, 5, 1, 1)
    torch.testing.assert_close(fk.fused_out_torch(y, acc.clone(), scale, bias, 77, 0.04, step, bound, 9), want)
    g = fk.gaussian(400_000, 3).double()
    assert abs(g.mean()) < 0.005 and g.std() == pytest.approx(1.0, abs=0.005)
    assert g.abs().mean() == pytest.approx(math.sqrt(2 / math.pi), abs=0.005)
    assert stats.kstest(g[:20000].numpy(), "norm").pvalue > 0.01


def test_unsupported_settings_fall_back_to_aihwkit_with_a_note(tmp_path, capsys):
    preset = _preset(tmp_path, "nm", noise_management='"abs_max"')
    a = _analog(nn.Linear(10, 4), preset)
    program(a, 1)
    drift(a, DAY, 1)
    x = torch.randn(3, 10)
    with torch.no_grad():
        torch.manual_seed(1)
        ref = a(x)
        eng = FastEngine(a)
        torch.manual_seed(1)
        out = a(x)
        eng.remove()
    assert list(eng.notes.values()) == ["noise management"]
    assert "runs on aihwkit (noise management)" in capsys.readouterr().err
    assert torch.equal(out, ref)


def test_ideal_preset_is_digital():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 2, 2), nn.Flatten(),
                      nn.Linear(4 * 16 * 16, 5)).eval()
    a = to_analog(m, load_preset("ideal"))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad(), fast_engine(a):
        torch.testing.assert_close(a(x), m(x), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, train_model

    task = get_task("synthetic-2d", size=32, seed=0, n_train=16, n_val=4, n_test=4)
    arch = Architecture.from_label("C8-E16", spatial_dims=2, in_channels=1, out_channels=task.num_classes)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=20, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    return ckpt, task


def test_drift_study_engines_agree_and_ideal_is_digital(tiny):
    """Both engines on the same seeds: the 1-day scores agree (Welch t-test p > 0.05, std within a factor
    1.5), rows record the engine and variation; the ideal preset reproduces the digital score."""
    ckpt, task = tiny
    kw = dict(times_s=[1.0, DAY, MONTH], repeats=10, seed=1, progress=False)
    fast = drift_study(ckpt.model, task, "pcm", engine="fast", **kw)
    ref = drift_study(ckpt.model, task, "pcm", engine="aihwkit", **kw)
    assert set(fast["engine"]) == {"fast"} and set(ref["engine"]) == {"aihwkit"}
    assert set(fast["variation"]) == {"instances"}
    f1d = fast.loc[fast["t_inference_s"] == DAY, "score"].to_numpy()
    r1d = ref.loc[ref["t_inference_s"] == DAY, "score"].to_numpy()
    assert stats.ttest_ind(f1d, r1d, equal_var=False).pvalue > 0.05
    assert 1 / 1.5 < f1d.std(ddof=1) / r1d.std(ddof=1) < 1.5
    assert abs(f1d.mean() - r1d.mean()) < 0.02
    s = summarize(fast).iloc[0]
    assert s["avm_pct"] == pytest.approx(100 * s["avm"]) and s["engine"] == "fast"
    ideal = drift_study(ckpt.model, task, "ideal", [1.0, YEAR], repeats=1, progress=False, engine="fast")
    assert np.allclose(ideal["score"], ideal["digital_score"], atol=1e-6)


def test_reads_variation_programs_one_instance(tiny):
    ckpt, task = tiny
    df = drift_study(ckpt.model, task, "pcm", [1.0, DAY, MONTH], repeats=3, seed=2, progress=False,
                     variation="reads")
    assert df["program_seed"].nunique() == 1 and set(df["variation"]) == {"reads"}
    assert df.loc[df["t_inference_s"] == DAY, "score"].nunique() > 1  # reads still vary
    assert summarize(df).iloc[0]["variation"] == "reads"


def test_cached_scorer_equals_evaluate_model(tiny):
    """The drift studies' scorer (batches loaded once, Dice/Jaccard from confusion counts) gives exactly
    evaluate_model's numbers: on random label maps (empty classes included) and on an analog model."""
    from analogmed.evaluate.metrics import evaluate_model, seg_scores_from_counts, segmentation_scores
    from analogmed.evaluate.robustness import prepare_analog, scorer

    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        k = 2 + trial % 3
        shape = (3, 1, 7, 9) if trial % 2 else (2, 1, 5, 4, 6)
        lab, pred = torch.randint(0, k, shape, generator=g), torch.randint(0, k, shape, generator=g)
        lab[lab == 1] = 0 if trial % 3 == 0 else 1
        pred[pred == 1] = 0 if trial % 4 == 0 else 1
        for a, b in zip(segmentation_scores(pred, lab, k), seg_scores_from_counts(pred, lab, k)):
            assert torch.equal(a, b)
    ckpt, task = tiny
    am = prepare_analog(ckpt.model, task, "pcm", seed=0)
    program(am, 1)
    drift(am, DAY, 1)
    score = scorer(task, "val", 8)  # created before: scoring must not depend on when it was built
    with fast_engine(am):
        torch.manual_seed(3)
        want = evaluate_model(am, task, "val")
        torch.manual_seed(3)
        got = score(am)
    assert got == want


def test_study_files_take_engine_and_variation():
    from analogmed.errors import UserError
    from analogmed.study.config import parse_study

    base = {"name": "s", "presets": ["pcm"], "models": [{"zoo": "unet"}], "tasks": [{"name": "synthetic-2d"}]}
    plain = parse_study(base)
    assert (plain.engine, plain.variation) == ("fast", "instances")
    same = parse_study({**base, "engine": "fast", "variation": "instances"})
    assert same.fingerprint() == plain.fingerprint()  # studies written before the keys existed resume
    reads = parse_study({**base, "variation": "reads", "engine": "aihwkit"})
    assert reads.fingerprint() != plain.fingerprint()
    with pytest.raises(UserError, match="variation"):
        parse_study({**base, "variation": "sometimes"})


def test_vectorised_program_drift_alpha_match_aihwkit(tmp_path):
    """FlatNoise (all tiles at once) against aihwkit's per-tile program_weights / drift_weights over many
    independently programmed instances: programmed and drifted weight errors (mean of the error along
    the reference's sign, error std) and drift-compensation alpha (mean; per-tile std) agree."""
    from analogmed.analog.fast_drift import FlatNoise

    torch.manual_seed(0)
    preset = _preset(tmp_path, "split", tile_rows="100", tile_cols="24")
    a = to_analog(nn.Sequential(nn.Conv2d(20, 30, 3), nn.Flatten(), nn.Linear(150, 40)).eval(), preset).eval()
    tiles = list(a.analog_tiles())
    assert len(tiles) == 8
    fn = FlatNoise(a)
    assert fn.reason is None
    ref = fn.ref
    sign = torch.sign(ref)
    n = 80
    for t_s in (1.0, DAY, YEAR):
        got = {}
        for eng in ("aihwkit", "flat"):
            prog, dr, al = [], [], []
            for i in range(n):
                if eng == "aihwkit":
                    program(a, 100 + i)
                    drift(a, t_s, 900 + i)
                else:
                    fn.program(100 + i)
                    fn.drift(t_s, 900 + i)
                prog.append(torch.cat([t.programmed_weights.reshape(-1) for t in tiles]) - ref)
                dr.append(torch.cat([t.tile.weight.reshape(-1) for t in tiles]) - ref)
                al.append(torch.stack([t.alpha.reshape(()) for t in tiles]))
            prog, dr, al = torch.stack(prog), torch.stack(dr), torch.stack(al)
            got[eng] = {"prog_std": prog.std(), "prog_mean": (prog * sign).mean(), "drift_std": dr.std(),
                        "drift_mean": (dr * sign).mean(), "alpha_mean": al.mean(),
                        "alpha_std": al.var(0).mean().sqrt()}
        g, w = got["flat"], got["aihwkit"]
        for k in ("prog_std", "drift_std", "alpha_mean"):
            assert float(g[k]) == pytest.approx(float(w[k]), rel=0.03), (t_s, k)
        for k in ("prog_mean", "drift_mean"):  # small at 1 s: compare on the scale of the error std
            assert abs(float(g[k]) - float(w[k])) < 0.03 * float(w[k.replace("mean", "std")]), (t_s, k)
        # alpha's spread over instances: n * 8 samples, sampling error of a std ~ 1/sqrt(2 * 632) = 2.8 %
        assert float(g["alpha_std"]) == pytest.approx(float(w["alpha_std"]), rel=0.12), t_s
    # the tiles hold what aihwkit's drift would start from: re-drifting through aihwkit keeps the instance
    fn.program(7)
    fn.drift(DAY, 8)
    before = [t.programmed_weights.clone() for t in tiles]
    drift(a, DAY, 9)
    assert all(torch.equal(b, t.programmed_weights) for b, t in zip(before, tiles))


def test_vectorised_program_drift_same_seed_same_numbers_and_ideal_exact():
    from analogmed.analog.fast_drift import FlatNoise

    torch.manual_seed(0)
    a = to_analog(nn.Sequential(nn.Linear(30, 20)).eval(), load_preset("pcm")).eval()
    fn = FlatNoise(a)
    outs = []
    for _ in range(2):
        fn.program(3)
        fn.drift(MONTH, 4)
        outs.append((fn.drifted.clone(), fn.alpha.clone()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    state = torch.random.get_rng_state()
    fn.drift(DAY, 5)
    assert torch.equal(state, torch.random.get_rng_state())  # torch's global stream untouched
    ideal = to_analog(nn.Sequential(nn.Linear(30, 20)).eval(), load_preset("ideal")).eval()
    fi = FlatNoise(ideal)
    if fi.reason is None:
        fi.program(1)
        fi.drift(YEAR, 2)
        torch.testing.assert_close(fi.drifted, fi.ref, rtol=0, atol=1e-6)
        assert fi.alpha is None or torch.equal(fi.alpha, torch.ones_like(fi.alpha))


def test_flat_noise_drift_study_agrees_with_aihwkit_program_drift(tiny, monkeypatch):
    """End to end: drift studies whose instances come from FlatNoise (the default of the fast engine) and
    from aihwkit's per-tile program/drift (both with the fast forward) agree at 1 s, 1 d and 30 d: means
    within 3 combined standard errors (Welch) and stds within a factor 1.4 (the sampling error of a std
    ratio over 100 + 100 instances is ~10 %). Deterministic: every draw is seeded."""
    import analogmed.evaluate.robustness as rb

    ckpt, task = tiny
    got = {}
    for flat in (True, False):
        monkeypatch.setattr(rb, "FLAT_NOISE_IN_STUDIES", flat)
        df = drift_study(ckpt.model, task, "pcm", [1.0, DAY, MONTH], repeats=100, seed=11, progress=False)
        got[flat] = {t: g["score"].to_numpy() for t, g in df.groupby("t_inference_s")}
    assert rb.flat_noise(rb.prepare_analog(ckpt.model, task, "pcm", seed=0)) is not None  # FlatNoise applies
    for t in (1.0, DAY, MONTH):
        f, a = got[True][t], got[False][t]
        se = math.sqrt(f.var(ddof=1) / len(f) + a.var(ddof=1) / len(a))
        assert abs(f.mean() - a.mean()) < 3 * se, (t, f.mean(), a.mean(), se)
        assert 1 / 1.4 < f.std(ddof=1) / a.std(ddof=1) < 1.4, t


def test_device_check_script_passes_on_cpu(tmp_path):
    """scripts/engine_device_check.py (the one command for the CUDA item when a GPU is lent) runs the plain-torch
    path's checks on any device; on the CPU every check passes, and a missing CUDA device is one clear line."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "engine_device_check.py"
    out = tmp_path / "check.json"
    res = subprocess.run([sys.executable, str(script), "--device", "cpu", "--no-timing", "--reads", "40",
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(out.read_text())
    assert [r["layer"] for r in got["noise_off"]] == ["linear", "conv1d", "conv2d", "conv2d-dilated", "conv3d",
                                                      "convT2d-k2s2", "convT2d-k3s2", "convT3d"]
    assert all(r["ok"] and r["tiles"] > 1 for r in got["noise_off"])
    assert got["noise_on"]["std_ratio"] == pytest.approx(1.0, abs=0.03)
    if not torch.cuda.is_available():
        res = subprocess.run([sys.executable, str(script), "--device", "cuda"], capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 2 and res.stderr.strip().startswith("error: --device cuda")
