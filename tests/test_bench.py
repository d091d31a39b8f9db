"""analogmed bench: runs end to end on a tiny input and reports consistent numbers (no speed asserts)."""
import json
import subprocess
import sys

import pytest

from analogmed.latency.bench import format_bench, run_bench


def test_run_bench_tiny():
    res = run_bench(threads=1, batch=1, size=32, repeats=1, rounds=2, drift_rep=True, progress=False)
    assert res["input"] == [1, 1, 32, 32] and res["rounds"] == 2
    names = [r["model"] for r in res["rows"]]
    assert names[0].startswith("monai-unet") and names[1] == "candidate"
    for r in res["rows"]:
        assert len(r["digital_rounds_ms"]) == 2 and len(r["analog_rounds_ms"]) == 2
        assert r["digital_ms"] > 0 and r["analog_ms"] > 0 and r["drift_rep_s"] > 0
        ratios = sorted(a / d for a, d in zip(r["analog_rounds_ms"], r["digital_rounds_ms"]))
        assert r["ratio"] == pytest.approx(sum(ratios) / 2)  # median of two rounds
    text = format_bench(res)
    assert "analog/digital" in text and "monai-unet" in text
    json.dumps(res)  # JSON-able


def test_bench_cli_bad_input_exits_2():
    r = subprocess.run([sys.executable, "-c", "from analogmed.cli import main; main()", "bench", "--size", "30"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--size" in r.stderr and "Traceback" not in r.stderr
