"""analogmed bench: runs end to end on tiny inputs and reports consistent numbers (no speed asserts)."""
import json
import subprocess
import sys

import pytest

import torch

from analogmed.latency.bench import MODELS, _paired, format_bench, run_bench


def test_paired_times_forwards_without_autograd():
    """Timed forwards run under no_grad (with autograd on, the digital forward builds a graph and the
    fast engine loses its DAC scratch: the ratios would be wrong), interleaved, one time per call."""
    seen: list[tuple[str, bool]] = []
    faults: list[list[int]] = [[], []]
    with torch.enable_grad():
        times = _paired([lambda: seen.append(("a", torch.is_grad_enabled())),
                         lambda: seen.append(("b", torch.is_grad_enabled()))], repeats=3, warmup=1, faults=faults)
    assert [k for k, _ in seen] == ["a", "b"] * 4 and not any(g for _, g in seen)
    assert [len(t) for t in times] == [3, 3] and all(x >= 0 for t in times for x in t)
    assert [len(f) for f in faults] == [3, 3] and all(x >= 0 for f in faults for x in f)


def test_run_bench_tiny():
    res = run_bench(threads=1, batch=1, size=32, size3=16, repeats=1, rounds=2, progress=False,
                    models=("monai-unet-2d", "candidate-3d"))
    assert [r["model"] for r in res["rows"]] == ["monai-unet-2d", "candidate-3d"]
    assert res["rows"][1]["input"] == [1, 1, 16, 16, 16]
    for r in res["rows"]:
        assert len(r["digital_rounds_ms"]) == 2 and len(r["fast_rounds_ms"]) == 2
        assert r["digital_ms"] > 0 and r["aihwkit_ms"] > 0 and r["fast_ms"] > 0
        ratios = sorted(r["pair_ratios"])  # fast / digital of adjacent calls: 2 rounds x 1 pair
        assert len(ratios) == 2 and all(x > 0 for x in ratios)
        assert r["ratio"] == pytest.approx(sum(ratios) / 2)  # their median
        assert r["ratio_best"] > 0
        assert r["digital_page_faults"] >= 0 and r["fast_page_faults"] >= 0
        assert r["evals_per_s_fast"] > 0 and r["evals_per_s_aihwkit"] > 0
        assert r["layers"] and all(k["fast_ms"] > 0 and k["digital_ms"] > 0 for k in r["layers"])
    assert any(k["kind"].startswith("Conv3d") for k in res["rows"][1]["layers"])
    text = format_bench(res)
    assert "fast/dig" in text and "monai-unet-2d" in text and "faults dig/fast" in text
    json.dumps(res)  # JSON-able
    assert set(MODELS) == {"monai-unet-2d", "candidate-2d", "candidate-3d", "unetr-3d"}


@pytest.mark.parametrize("args, word", [(["--size", "30"], "--size"), (["--models", "resnet"], "--models")])
def test_bench_cli_bad_input_exits_2(args, word):
    r = subprocess.run([sys.executable, "-c", "from analogmed.cli import main; main()", "bench", *args],
                       capture_output=True, text=True)
    assert r.returncode == 2 and word in r.stderr and "Traceback" not in r.stderr
