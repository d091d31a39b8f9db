"""Hardware-aware training: the aihwkit recipe is applied, the checkpoint records it, learned ranges are reused."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from analogmed.errors import UserError


@pytest.fixture(scope="module")
def tiny():
    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, train_model

    task = get_task("synthetic-2d", size=32, seed=0, n_train=16, n_val=4, n_test=4)
    arch = Architecture.from_label("C8-E16", spatial_dims=2, out_channels=task.num_classes)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=20, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    return ckpt, task


def test_hwa_config_injects_weight_noise_in_training_only():
    from analogmed.analog import to_analog

    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Linear(16, 8))
    amodel = to_analog(lin, "pcm", hwa=True)
    tile = next(amodel.analog_tiles())
    assert tile.rpu_config.modifier.std_dev == 0.06 and tile.rpu_config.pre_post.input_range.learn_input_range
    x = torch.rand(4, 16)
    amodel.train()
    y1, y2 = amodel(x), amodel(x)
    assert not torch.allclose(y1, y2)  # fresh weight noise every training forward


def test_hwa_finetune_records_recipe_and_ranges_and_reuses_them(tiny, tmp_path):
    from analogmed.analog.hwa import hwa_finetune, tile_input_ranges
    from analogmed.evaluate.robustness import prepare_analog
    from analogmed.train import TrainConfig, load_checkpoint, save_checkpoint

    ckpt, task = tiny
    h = hwa_finetune(ckpt, "pcm", TrainConfig(epochs=2, lr=1e-3, seed=0, progress=False, device="cpu", val_every=1),
                     task)
    hw = h.recipe["hwa"]
    assert hw["preset"] == "pcm" and hw["training"]["weight_noise"] == 0.06
    assert h.recipe["init_model_id"] == ckpt.model_id and h.recipe["epochs"] == 2
    ranges = hw["input_ranges"]
    assert len(ranges) == 5 and all(v > 0 for v in ranges.values())  # 2 blocks, up, fuse, head
    # weights changed, architecture unchanged
    w0 = dict(ckpt.model.named_parameters())["levels.0.block.0.weight"]
    w1 = dict(h.model.named_parameters())["levels.0.block.0.weight"]
    assert w0.shape == w1.shape and not torch.allclose(w0, w1)
    path = save_checkpoint(tmp_path / "h.pt", h)
    back = load_checkpoint(path)
    assert back.model.analogmed_input_ranges == pytest.approx(ranges)
    amodel = prepare_analog(back.model, task, "pcm")
    assert tile_input_ranges(amodel) == pytest.approx(ranges, rel=1e-5)


def test_hwa_needs_a_noise_model(tiny, tmp_path):
    from analogmed.analog.hwa import hwa_finetune

    ckpt, task = tiny
    with pytest.raises(UserError, match="no device noise model"):
        hwa_finetune(ckpt, "ideal", task=task)
    out = tmp_path / "x.pt"
    proc = subprocess.run([sys.executable, "-c", "from analogmed.cli import main; main()", "train", "--task",
                           "synthetic-2d", "-o", "size=32", "--arch", "C8", "--hwa", "-p", "ideal", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no device noise model" in proc.stderr and not out.exists()


def test_analognas_preset_matches_the_analognasbench_script():
    """hardware/analognas.toml = gen_rpu_config() of IBM/analog-nas analognasbench/training_script.py."""
    from aihwkit.simulator.parameters.enums import (BoundManagementType, NoiseManagementType, WeightClipType,
                                                    WeightModifierType, WeightRemapType)

    from analogmed.analog import load_preset

    p = load_preset("analognas")
    for rpu in (p.rpu_config(), p.rpu_config(hwa=True)):
        assert type(rpu.noise_model).__name__ == "PCMLikeNoiseModel" and rpu.noise_model.g_max == 25.0
        assert type(rpu.drift_compensation).__name__ == "GlobalDriftCompensation"
        f = rpu.forward
        assert f.inp_res == pytest.approx(1 / 254) and f.out_res == pytest.approx(1 / 254)
        assert (f.out_noise, f.inp_bound, f.out_bound, f.is_perfect) == (0.04, 1.0, 10.0, False)
        assert f.bound_management == BoundManagementType.NONE and f.noise_management == NoiseManagementType.NONE
        m = rpu.mapping
        assert m.digital_bias and m.weight_scaling_omega == 1.0
        assert not m.weight_scaling_columnwise and not m.out_scaling_columnwise
        assert rpu.pre_post.input_range.enable and rpu.pre_post.input_range.init_value == 3.0
    inf = p.rpu_config()
    assert not inf.pre_post.input_range.learn_input_range and p.spec.input_range.calibrate == "none"
    h = p.rpu_config(hwa=True)
    assert h.modifier.type == WeightModifierType.ADD_NORMAL and h.modifier.std_dev == 0.06
    assert h.clip.type == WeightClipType.LAYER_GAUSSIAN and h.clip.sigma == 2.0 and h.clip.fixed_value < 0
    assert h.remap.type == WeightRemapType.LAYERWISE_SYMMETRIC
    ir = h.pre_post.input_range
    assert ir.learn_input_range and (ir.init_from_data, ir.init_std_alpha, ir.decay) == (50, 3.0, 0.01)
    assert ir.input_min_percentage == 0.995 and not ir.manage_output_clipping
    t = p.spec.training
    assert (t.optimizer, t.lr, t.momentum, t.nesterov, t.weight_decay) == ("sgd", 0.01, 0.9, True, 0.0005)
    assert (t.epochs, t.schedule, t.select, t.start) == (200, "constant", "last", "finetune")
    # pcm keeps its own (different) choices
    assert load_preset("pcm").rpu_config().mapping.weight_scaling_columnwise


def test_hwa_beats_plain_training_of_the_same_budget_on_analog_hardware_at_one_day():
    """Tiny task (mni152-tissue 2D 32x32, C8-E16), fixed seeds: a digital checkpoint (40 epochs) is continued
    for 20 more epochs either with the default pcm HWA recipe or noise-free at the same lr (the budget
    control). On 20 programmed pcm instances at 1 day (same seeds for every network) the HWA network scores
    higher than both the checkpoint it started from and the equally long plain training, so the gain is not
    just the extra epochs. Measured (instance seed 7): plain 0.645, plain + 20 noise-free epochs 0.615, HWA
    0.713; instance seeds 8 / 9 give 0.717 / 0.710 / 0.764 and 0.713 / 0.710 / 0.738. ~22 s CPU."""
    from analogmed.analog.hwa import analog_val_score, hwa_config, hwa_finetune
    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, train_model

    task = get_task("mni152-tissue", spatial_dims=2, size=32, seed=0)
    arch = Architecture.from_label("C8-E16", spatial_dims=2, out_channels=task.num_classes)
    spec = {"family": "space", "arch": arch.to_dict()}
    ckpt = train_model(spec, task, TrainConfig(epochs=40, lr=1e-2, seed=0, progress=False, device="cpu",
                                               val_every=0))
    h = hwa_finetune(ckpt, "pcm", hwa_config("pcm", epochs=20, lr=1e-2, seed=0, progress=False, device="cpu"),
                     task)
    assert h.recipe["hwa"]["training"]["weight_noise_type"] == "preset"
    more = train_model(spec, task, TrainConfig(epochs=20, lr=1e-2, seed=0, progress=False, device="cpu",
                                               val_every=0), init=ckpt)
    plain, budget, hwa = (analog_val_score(m, task, "pcm", instances=20, seed=7)
                          for m in (ckpt.model, more.model, h.model))
    assert hwa > plain + 0.02 and hwa > budget + 0.02, (plain, budget, hwa)
