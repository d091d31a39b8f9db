"""3D HWA (docs/hwa.md "3D"): the ADC saturation counter of the fast engine, the training instances' drift
compensation after the ADC, and the per-step drift time of the training instances."""
from __future__ import annotations

import pytest
import torch

from analogmed.errors import UserError


def _preset(**training):
    from analogmed.analog.presets import Preset, PresetFile, load_preset

    base = load_preset("pcm")
    d = base.spec.model_dump(mode="json")
    d["training"].update(training)
    return Preset(name="pcm", path=base.path, spec=PresetFile.model_validate(d))


def test_clip_counter_counts_saturated_outputs_and_changes_nothing():
    """A Linear whose raw outputs are ~ (#inputs) x (normalised weight) exceeds out_bound = 10 on the columns
    with large weights only: the counter reports exactly those, and the outputs equal the engine's without it."""
    from analogmed.analog import program, to_analog
    from analogmed.analog.fast import clip_counter, fast_engine

    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 4, bias=False)
    with torch.no_grad():  # column-wise scaling: every column's max |w| maps to 1; rows of equal weights
        lin.weight.copy_(torch.tensor([[1.0] * 64, [1.0] * 64, [1.0] + [0.05] * 63, [1.0] + [0.05] * 63]))
    amodel = to_analog(torch.nn.Sequential(lin), "pcm").eval()
    for tile in amodel.analog_tiles():
        tile.input_range.data.fill_(1.0)
    program(amodel, 0)
    x = torch.full((8, 64), 0.9)  # raw outputs: ~57.6 on columns 0-1, ~3.7 on columns 2-3
    with fast_engine(amodel, quiet=True):
        torch.manual_seed(1)
        y0 = amodel(x)
        with clip_counter() as cnt:
            torch.manual_seed(1)
            y1 = amodel(x)
    assert torch.equal(y0, y1)
    (name,) = [k for k in cnt if not k.endswith(":dac")]
    assert cnt[name] == [16, 32]              # 2 of 4 columns x 8 rows saturate
    assert cnt[name + ":dac"] == [0, 8 * 64]  # 0.9 < input range 1.0: nothing clipped at the DAC


def _noise_tile(compensation: str, w: float):
    from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile  # noqa: F401 (aihwkit must be present)

    from analogmed.analog.hwa_noise import PresetNoiseSimulatorTile

    rpu = _preset(weight_noise_type="preset", noise_time_s=2_592_000.0, noise_compensation=compensation) \
        .rpu_config(hwa=True)
    tile = PresetNoiseSimulatorTile(64, 32, rpu)
    tile.set_weights(torch.full((32, 64), w))
    return tile


@pytest.mark.parametrize("w, saturated", [(0.5, True), (0.05, False)])
def test_preset_noise_compensation_after_the_adc(w, saturated):
    """Training forward of a preset-noise tile at 30 d (drift shrinks the weights ~1.8x, compensation restores
    them). 'weights' compensates before the MVM, so the ADC clips at out_bound = 10; 'output' compensates after
    it, as inference does, so saturated outputs come out at 10 x alpha (~18). Unsaturated outputs (raw ~3.2)
    agree in the mean."""
    torch.manual_seed(0)
    x = torch.ones(16, 64)
    y_w = _noise_tile("weights", w).forward(x)
    torch.manual_seed(0)
    y_o = _noise_tile("output", w).forward(x)
    if saturated:
        assert y_w.abs().max() <= 10.0 + 1e-4
        assert 14.0 < float(y_o.mean()) < 24.0
    else:
        assert float(y_w.mean()) == pytest.approx(64 * w, rel=0.1)
        assert float(y_o.mean()) == pytest.approx(float(y_w.mean()), rel=0.1)
    # straight-through gradient: the noise-free tile's gradient (x summed over the batch) in both cases
    for comp in ("weights", "output"):
        tile = _noise_tile(comp, 0.05)
        tile.forward(x).sum().backward()
        assert torch.allclose(tile.weight.grad, torch.full((32, 64), 16.0), rtol=1e-4)


def test_noise_time_sampling_is_log_uniform_and_validated(tmp_path):
    from analogmed.analog import to_analog
    from analogmed.analog.hwa_noise import log_uniform_time, noise_tiles, set_noise_time

    torch.manual_seed(0)
    ts = torch.tensor([log_uniform_time(1.0, 1e6) for _ in range(4000)])
    assert float(ts.min()) >= 1.0 and float(ts.max()) <= 1e6
    assert float(torch.log10(ts).mean()) == pytest.approx(3.0, abs=0.1)  # uniform in log10 t on [0, 6]
    assert float((ts < 1e3).float().mean()) == pytest.approx(0.5, abs=0.03)
    p = _preset(weight_noise_type="preset", noise_time_min_s=1.0)
    amodel = to_analog(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2)), p, hwa=True)
    tiles = noise_tiles(amodel)
    assert len(tiles) == 2 and all(t.noise_t_s == p.spec.training.noise_time_s for t in tiles)
    set_noise_time(amodel, 5.0)
    assert all(t.noise_t_s == 5.0 for t in tiles)
    with pytest.raises(UserError, match="noise_time_min_s"):
        _preset(weight_noise_type="preset", noise_time_min_s=1e9).rpu_config(hwa=True)


def test_hwa_finetune_draws_one_noise_time_per_training_forward():
    from analogmed.analog import hwa_noise
    from analogmed.analog.hwa import hwa_config, hwa_finetune
    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, train_model

    task = get_task("synthetic-2d", size=16, seed=0, n_train=8, n_val=4, n_test=4)
    arch = Architecture.from_label("C8", spatial_dims=2, out_channels=task.num_classes)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=1, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    p = _preset(weight_noise_type="preset", noise_time_min_s=1.0, noise_compensation="output", select="last")
    seen: list[float] = []
    orig = hwa_noise.set_noise_time

    def spy(amodel, t_s):
        seen.append(t_s)
        orig(amodel, t_s)
    hwa_noise.set_noise_time = spy
    try:
        h = hwa_finetune(ckpt, p, hwa_config(p, epochs=3, seed=0, progress=False, device="cpu"), task)
    finally:
        hwa_noise.set_noise_time = orig
    assert len(seen) == 3 and len(set(seen)) == 3 and all(1.0 <= t <= 2_592_000.0 for t in seen)
    tr = h.recipe["hwa"]["training"]
    assert tr["noise_time_min_s"] == 1.0 and tr["noise_compensation"] == "output"


def test_analog_selection_at_several_times_is_the_mean_over_times():
    from analogmed.analog.hwa import analog_val_score
    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, train_model

    task = get_task("synthetic-2d", size=16, seed=0, n_train=8, n_val=4, n_test=4)
    arch = Architecture.from_label("C8", spatial_dims=2, out_channels=task.num_classes)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=2, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    one, day = (analog_val_score(ckpt.model, task, "pcm", instances=2, t_s=t, seed=3) for t in (1.0, 86_400.0))
    both = analog_val_score(ckpt.model, task, "pcm", instances=2, t_s=[1.0, 86_400.0], seed=3)
    assert both == pytest.approx((one + day) / 2, abs=1e-6)
    p = _preset(select_times_s=[1.0, 86_400.0])
    assert p.spec.training.select_times_s == (1.0, 86_400.0)


def test_adc_headroom_widens_only_saturating_layers_and_the_preset_knob_applies_it():
    """Layer 0 (64 inputs of 0.9, weights 1) saturates the ADC (raw ~57.6 > out_bound 10): its input range is
    widened ~5.8x so the raw output quantile sits at the bound; layer 1 (4 inputs) is left alone. With the
    preset's adc_headroom the same happens inside prepare_analog."""
    from analogmed.analog import to_analog
    from analogmed.analog.convert import adc_headroom, tile_input_ranges

    def model():
        net = torch.nn.Sequential(torch.nn.Linear(64, 4, bias=False), torch.nn.Linear(4, 2, bias=False))
        with torch.no_grad():
            net[0].weight.fill_(1.0)
            net[1].weight.fill_(0.5)
        return net
    amodel = to_analog(model(), "pcm").eval()
    for tile in amodel.analog_tiles():
        tile.set_input_range(1.0)
    x = [torch.full((8, 64), 0.9)]
    widened = adc_headroom(amodel, x, quantile=0.999, fill=1.0)
    assert set(widened) == {"0"} and widened["0"] == pytest.approx(5.76, rel=0.02)
    r = tile_input_ranges(amodel)
    assert list(r.values())[0] == pytest.approx(5.76, rel=0.02) and list(r.values())[1] == pytest.approx(1.0)
    again = adc_headroom(amodel, x, quantile=0.999, fill=1.0)  # inside the range now (up to a DAC step)
    assert all(v < 1.03 for v in again.values())
    p = _preset()
    assert p.spec.input_range.adc_headroom == 0.0  # off by default
    with pytest.raises(Exception):
        _preset_input_range(adc_headroom=1.5)


def _preset_input_range(**kw):
    from analogmed.analog.presets import PresetFile, load_preset

    d = load_preset("pcm").spec.model_dump(mode="json")
    d["input_range"].update(kw)
    return PresetFile.model_validate(d)


def test_pcm_headroom_preset_is_pcm_plus_adc_headroom():
    from analogmed.analog import list_presets, load_preset

    assert "pcm-headroom" in list_presets()
    a, b = load_preset("pcm").to_dict(), load_preset("pcm-headroom").to_dict()
    assert b["input_range"]["adc_headroom"] == 1.0 and a["input_range"]["adc_headroom"] == 0.0
    for d in (a, b):
        d.pop("name"), d.pop("description"), d["input_range"].pop("adc_headroom")
    assert a == b


def test_hwa_range_init_inference_starts_from_the_inference_ranges():
    """range_init = 'inference': the HWA tiles start from the ranges prepare_analog gives the digital
    checkpoint on the preset (here pcm-headroom: calibrated, then widened), not from aihwkit's data init; one
    epoch at a tiny lr leaves them there."""
    from analogmed.analog.convert import tile_input_ranges
    from analogmed.analog.hwa import hwa_config, hwa_finetune
    from analogmed.analog.presets import Preset, PresetFile, load_preset
    from analogmed.data import get_task
    from analogmed.evaluate.robustness import prepare_analog
    from analogmed.space.architecture import Architecture
    from analogmed.train import TrainConfig, train_model

    task = get_task("synthetic-2d", size=16, seed=0, n_train=8, n_val=4, n_test=4)
    arch = Architecture.from_label("C8", spatial_dims=2, out_channels=task.num_classes)
    ckpt = train_model({"family": "space", "arch": arch.to_dict()}, task,
                       TrainConfig(epochs=2, lr=1e-2, seed=0, progress=False, device="cpu", val_every=0))
    base = load_preset("pcm-headroom")
    d = base.spec.model_dump(mode="json")
    d["training"].update(range_init="inference", select="last", input_range_decay=0.0)
    p = Preset(name="pcm-headroom", path=base.path, spec=PresetFile.model_validate(d))
    want = tile_input_ranges(prepare_analog(ckpt.model, task, p, seed=0))
    h = hwa_finetune(ckpt, p, hwa_config(p, epochs=1, lr=1e-6, seed=0, progress=False, device="cpu"), task)
    got = h.recipe["hwa"]["input_ranges"]
    assert set(got) == set(want) and all(got[k] == pytest.approx(want[k], rel=0.01) for k in want)
    # on pcm (no inference headroom), range_headroom = 1 widens the start ranges the same way
    d = load_preset("pcm").spec.model_dump(mode="json")
    d["training"].update(range_init="inference", range_headroom=1.0, select="last", input_range_decay=0.0)
    p2 = Preset(name="pcm", path=base.path, spec=PresetFile.model_validate(d))
    h2 = hwa_finetune(ckpt, p2, hwa_config(p2, epochs=1, lr=1e-6, seed=0, progress=False, device="cpu"), task)
    got2 = h2.recipe["hwa"]["input_ranges"]
    assert all(got2[k] == pytest.approx(want[k], rel=0.01) for k in want)
