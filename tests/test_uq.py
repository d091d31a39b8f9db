"""Uncertainty: metric definitions on constructed inputs, analog MC / MC dropout sampling, uq CLI."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from analogmed.errors import UserError
from analogmed.uq.metrics import (auroc, brier_score, expected_calibration_error, mutual_information,
                                  predictive_entropy, uq_metrics)


def test_entropy_and_mutual_information_known_values():
    uniform = torch.full((4, 2, 3, 5, 5), 1 / 3)
    assert torch.allclose(predictive_entropy(uniform), torch.full((2, 5, 5), math.log(3)), atol=1e-5)
    assert torch.allclose(mutual_information(uniform), torch.zeros(2, 5, 5), atol=1e-5)
    # two confident samples that disagree: mean is 50/50, each sample has zero entropy -> MI = log 2
    a = torch.tensor([1.0, 0.0]).view(1, 1, 2, 1, 1)
    b = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1, 1)
    probs = torch.cat([a, b])
    assert mutual_information(probs).item() == pytest.approx(math.log(2), abs=1e-5)


def test_ece_brier_and_auroc_known_values():
    labels = torch.zeros(1, 10, dtype=torch.long)
    labels[0, :2] = 1  # 8 of 10 voxels are class 0
    calibrated = torch.tensor([0.8, 0.2]).view(1, 2, 1).expand(1, 2, 10)  # confidence 0.8, accuracy 0.8
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0, abs=1e-6)
    sure = torch.tensor([1.0, 0.0]).view(1, 2, 1).expand(1, 2, 10)  # confidence 1, accuracy 0.8
    assert expected_calibration_error(sure, labels) == pytest.approx(0.2, abs=1e-6)
    onehot = torch.nn.functional.one_hot(labels, 2).movedim(-1, 1).float()
    assert brier_score(onehot, labels) == pytest.approx(0.0)
    assert brier_score(torch.full((1, 2, 10), 0.5), labels) == pytest.approx(0.5)
    err = torch.tensor([0, 0, 1, 1], dtype=torch.bool)
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), err) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), err) == 0.0
    assert math.isnan(auroc(torch.ones(4), torch.zeros(4, dtype=torch.bool)))


def test_uq_metrics_of_a_perfect_digital_prediction():
    labels = torch.randint(0, 3, (2, 8, 8))
    probs = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).float().unsqueeze(0)
    m = uq_metrics(probs, labels, 3)
    assert m["dice"] == pytest.approx(1.0) and m["ece"] == pytest.approx(0.0, abs=1e-6)
    assert m["brier"] == pytest.approx(0.0, abs=1e-6) and math.isnan(m["auroc_mi"])


@pytest.fixture(scope="module")
def tiny():
    from analogmed.data import get_task
    from analogmed.models.zoo import zoo_spec
    from analogmed.train import TrainConfig, train_model

    task = get_task("synthetic-2d", size=32, seed=0, n_train=16, n_val=4, n_test=4)
    spec = zoo_spec("unet", 2, 1, task.num_classes, (32, 32), dropout=0.2)
    ckpt = train_model(spec, task, TrainConfig(epochs=8, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    return ckpt, task


def test_analog_mc_is_seeded_and_ideal_hardware_has_no_spread(tiny):
    from analogmed.uq import analog_mc

    ckpt, task = tiny
    a = analog_mc(ckpt.model, task, "pcm", 86_400, samples=3, seed=1)
    b = analog_mc(ckpt.model, task, "pcm", 86_400, samples=3, seed=1)
    assert a.shape[:3] == (3, 4, task.num_classes) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # different hardware instances
    ideal = analog_mc(ckpt.model, task, "ideal", 86_400, samples=2, seed=1)
    assert mutual_information(ideal).max().item() < 1e-5
    with pytest.raises(UserError, match="at least 2 samples"):
        analog_mc(ckpt.model, task, "pcm", 1.0, samples=1)


def test_uq_evaluate_reports_digital_dropout_and_analog(tiny):
    from analogmed.uq import uq_evaluate

    ckpt, task = tiny
    rows = uq_evaluate(ckpt.model, task, "pcm", [1.0, 86_400.0], samples=3, seed=0)
    assert [r["method"] for r in rows] == ["digital", "mc-dropout", "analog-mc", "analog-mc"]
    for r in rows:
        assert 0 <= r["ece"] <= 1 and 0 <= r["brier"] <= 2 and r["mean_entropy"] >= 0
    assert rows[2]["mean_mi"] > 0 and rows[0]["mean_mi"] == 0


@pytest.mark.parametrize("args,msg", [(["--samples", "1"], "at least 2 samples"), (["--times", "-1"], ">= 0"),
                                      (["-p", "nope"], "unknown preset")])
def test_uq_cli_bad_input(tiny, tmp_path, args, msg):
    from analogmed.train import save_checkpoint

    ckpt, _ = tiny
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", "from analogmed.cli import main; main()", "uq", "-c", str(path),
                           "--out", str(out), *args], capture_output=True, text=True)
    assert proc.returncode == 2 and msg in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


def test_uq_cli_writes_table_and_figures(tiny, tmp_path):
    from typer.testing import CliRunner

    from analogmed.cli import app
    from analogmed.train import save_checkpoint

    ckpt, _ = tiny
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    res = CliRunner().invoke(app, ["uq", "-c", str(path), "--samples", "2", "--times", "86400", "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "analog-mc" in res.output and "mc-dropout" in res.output
    for name in ("uq.csv", "reliability.png", "reliability.pdf", "uncertainty_maps.png"):
        assert (tmp_path / "o" / name).stat().st_size > 100
