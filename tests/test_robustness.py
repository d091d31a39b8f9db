"""Drift studies: seeded tables, metric definitions (1-day score, std, AVM), drift CLI and bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analogmed.cli import app
from analogmed.errors import UserError
from analogmed.evaluate.robustness import (DAY, DEFAULT_TIMES_S, MONTH, check_times, drift_study, month_grid,
                                           summarize, time_label)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-level candidate trained on synthetic-2d (32 x 32; val Dice ~0.87 in ~1 s), saved as a checkpoint."""
    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, save_checkpoint, train_model

    task = get_task("synthetic-2d", size=32, seed=0, n_train=16, n_val=4, n_test=4)
    arch = Architecture.from_label("C8-E16", spatial_dims=2, in_channels=1, out_channels=task.num_classes)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=20, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, ckpt)
    return ckpt, task, path


def test_time_grid_helpers():
    assert DEFAULT_TIMES_S == (1.0, 3600.0, DAY, 7 * DAY, MONTH, 90 * DAY, 180 * DAY, 365 * DAY)
    assert [time_label(t) for t in DEFAULT_TIMES_S] == ["1s", "1h", "1d", "1w", "30d", "90d", "180d", "365d"]
    assert month_grid(3)[-3:] == (MONTH, 2 * MONTH, 3 * MONTH)
    assert check_times([7200]) == (1.0, 7200.0, DAY, MONTH)  # the summary's times are always there
    with pytest.raises(UserError, match="times must be >= 0"):
        check_times([-5])
    with pytest.raises(UserError, match="months"):
        month_grid(0)


def test_summarize_definitions_and_avm_sign():
    rows = []
    for rep, (s1, s1d, s30) in enumerate([(0.9, 0.8, 0.7), (0.8, 0.6, 0.5)]):
        for t, s in ((1.0, s1), (DAY, s1d), (MONTH, s30)):
            rows.append({"model_id": "m", "task": "x", "preset": "pcm", "t_inference_s": t, "repetition": rep,
                         "score": s, "digital_score": 0.95})
    s = summarize(pd.DataFrame(rows)).iloc[0]
    assert s["score_1s"] == pytest.approx(0.85)
    assert s["score_1d_mean"] == pytest.approx(0.7)
    assert s["score_1d_std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert s["avm"] == pytest.approx(0.85 - 0.6)  # positive = accuracy lost over the month
    assert s["mean_30d"] == pytest.approx(0.6) and s["repeats"] == 2


def test_drift_study_is_bit_reproducible_and_seed_sensitive(tiny):
    ckpt, task, _ = tiny
    times = [1.0, DAY, MONTH]
    a = drift_study(ckpt.model, task, "pcm", times, repeats=2, seed=3, progress=False)
    b = drift_study(ckpt.model, task, "pcm", times, repeats=2, seed=3, progress=False)
    c = drift_study(ckpt.model, task, "pcm", times, repeats=2, seed=4, progress=False)
    cols = [c for c in a.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not np.array_equal(a["score"].to_numpy(), c["score"].to_numpy())
    assert len(a) == 2 * 3 and set(a["repetition"]) == {0, 1}
    assert a["program_seed"].nunique() == 2  # a fresh programming per repetition
    assert {"model_id", "task", "preset", "t_inference_s", "repetition", "seed", "score"} <= set(a.columns)
    assert a["score"].between(0, 1).all()


def test_ideal_preset_reproduces_the_digital_score(tiny):
    ckpt, task, _ = tiny
    df = drift_study(ckpt.model, task, "ideal", [1.0, 365 * DAY], repeats=1, progress=False)
    assert np.allclose(df["score"], df["digital_score"], atol=1e-6)


def test_drift_cli_writes_table_summary_and_figure(tiny, tmp_path):
    _, _, path = tiny
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["drift", "-c", str(path), "-p", "pcm", "--times", "1,86400,2592000",
                                   "--repeats", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "AVM (1 s - 30 d)" in res.output and "1-day score" in res.output
    df = pd.read_csv(out / "drift.csv")
    assert len(df) == 2 * 3
    assert (out / "drift.png").stat().st_size > 1000 and (out / "drift.pdf").stat().st_size > 1000
    assert len(pd.read_csv(out / "summary.csv")) == 1


@pytest.mark.parametrize("args,msg", [
    (["-p", "nope"], "unknown preset 'nope'"),
    (["--times", "1,-3"], ">= 0 seconds"),
    (["--repeats", "0"], "at least 1 hardware instance"),
    (["--months", "0"], "months"),
    (["--engine", "warp"], "engine 'warp' is unknown"),
    (["--variation", "some"], "variation 'some' is unknown"),
])
def test_drift_cli_bad_input_exits_2_and_writes_nothing(tiny, tmp_path, args, msg):
    import subprocess
    import sys

    _, _, path = tiny
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", "from analogmed.cli import main; main()", "drift", "-c", str(path),
                           "--out", str(out), *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("Warning")]
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0]
    assert not out.exists()


def test_drift_cli_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_text("hello")
    res = CliRunner().invoke(app, ["drift", "-c", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "not an analogmed checkpoint" in str(res.exception or res.output)
