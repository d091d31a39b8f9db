"""Analog core: presets, conversion of every MVM layer, agreement with aihwkit, program/drift seeds."""
from __future__ import annotations

import pytest
import torch
from aihwkit.nn import AnalogConv2d, AnalogLinear
from torch import nn

from analogmed.analog import (conversion_report, digital_mvm_layers, drift, list_presets, load_preset, program,
                              to_analog)
from analogmed.analog.layers import (AnalogConv1dTorch, AnalogConv3dTorch, AnalogConvTranspose2d,
                                     SplitMultiheadAttention, im2col)
from analogmed.errors import UserError


def _ideal_close(model: nn.Module, x: torch.Tensor, tol: float = 1e-5) -> float:
    model.eval()
    amodel = to_analog(model, "ideal")
    assert digital_mvm_layers(amodel) == []
    with torch.no_grad():
        diff = (amodel(x) - model(x)).abs().max().item()
    assert diff <= tol, diff
    return diff


# --- presets -------------------------------------------------------------------------------------

def test_shipped_presets_load_and_map_to_rpu_configs():
    assert {"pcm", "pcm-nocomp", "reram", "hermes", "ideal"} <= set(list_presets())
    pcm = load_preset("pcm").rpu_config()
    assert pcm.noise_model.g_max == 25.0
    assert type(pcm.drift_compensation).__name__ == "GlobalDriftCompensation"
    assert pcm.forward.inp_res == pytest.approx(1 / 254) and pcm.forward.out_res == pytest.approx(1 / 254)
    assert pcm.forward.out_noise == 0.04 and pcm.forward.out_bound == 10.0
    assert load_preset("pcm-nocomp").rpu_config().drift_compensation is None
    assert type(load_preset("hermes").rpu_config().noise_model).__name__ == "HermesNoiseModel"
    assert load_preset("hermes").tile_rows == 256
    hwa = load_preset("pcm").rpu_config(hwa=True)
    # pcm's recipe (docs/hwa.md): the preset's own PCM instances at 30 d as training noise
    assert hwa.simulator_tile_class.__name__ == "PresetNoiseSimulatorTile" and hwa.modifier.type.name == "NONE"
    assert hwa.modifier.pcm_t_inference == 2_592_000.0


def test_preset_from_user_path_and_bad_presets(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('[device]\nnoise_model = "pcm"\ng_max_us = 10.0\n[mapping]\ntile_rows = 128\n')
    p = load_preset(good)
    assert p.name == "mine" and p.tile_rows == 128 and p.rpu_config().noise_model.g_max == 10.0
    with pytest.raises(UserError, match="unknown preset 'nope'"):
        load_preset("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[device\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_preset(bad)
    extra = tmp_path / "extra.toml"
    extra.write_text('[device]\nnoise_model = "pcm"\ng_maxx = 3\n')
    with pytest.raises(UserError, match="device.g_maxx"):
        load_preset(extra)
    with pytest.raises(UserError, match="no device noise model"):
        load_preset("ideal").rpu_config(hwa=True)
    wan = tmp_path / "wan.toml"
    wan.write_text('[device]\nnoise_model = "reram-wan2022"\n')
    load_preset(wan).check_times([1.0, 86_400.0])
    with pytest.raises(UserError, match="only drifts to t in"):
        load_preset(wan).check_times([1.0, 2_592_000.0])
    load_preset("reram").check_times([1.0, 3600.0, 2_592_000.0, 31_536_000.0])  # CMO model: any t


# --- the project's layers ------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p,d", [(3, 1, 1, 1), (3, 2, 0, 1), (2, 1, 1, 2),
                                     ((3, 1, 2), (1, 2, 1), (1, 0, 1), (1, 1, 2))])
def test_im2col_matches_conv3d(k, s, p, d):
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 4, k, stride=s, padding=p, dilation=d, bias=False)
    x = torch.randn(2, 3, 7, 6, 5)
    cols, shape = im2col(x, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    y = (cols @ conv.weight.reshape(4, -1).t()).transpose(1, 2).reshape(2, 4, *shape)
    assert torch.allclose(y, conv(x), atol=1e-5)


@pytest.mark.parametrize("module,shape", [
    (nn.Conv1d(3, 5, 3, padding=2, dilation=2), (2, 3, 9)),
    (nn.Conv3d(3, 5, 3, stride=2, padding=1), (2, 3, 6, 7, 5)),
    (nn.ConvTranspose2d(4, 3, 2, stride=2), (2, 4, 5, 6)),
    (nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), (2, 4, 5, 6)),
    (nn.ConvTranspose3d(4, 3, 2, stride=2), (1, 4, 3, 4, 5)),
    (nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1, output_padding=1, dilation=1), (1, 4, 3, 4, 2)),
])
def test_new_analog_layers_equal_torch_under_ideal_preset(module, shape):
    torch.manual_seed(1)
    _ideal_close(nn.Sequential(module), torch.randn(*shape))


def test_attention_projections_become_analog():
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    x = torch.randn(2, 5, 16)
    split = SplitMultiheadAttention.from_mha(mha)
    assert torch.allclose(split(x, x, x)[0], mha(x, x, x)[0], atol=1e-6)
    assert torch.allclose(split(x, x, x)[1], mha(x, x, x)[1], atol=1e-6)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = mha

        def forward(self, x):
            return self.attn(x, x, x)[0]

    _ideal_close(Wrap(), x)


def _det_rpu():
    """Deterministic but non-trivial settings: 8-bit DAC/ADC, input range, no noise, no programming."""
    rpu = load_preset("pcm").rpu_config()
    rpu.forward.out_noise = 0.0
    rpu.pre_post.input_range.enable = False
    return rpu


def test_project_layers_agree_with_aihwkit_exactly_when_deterministic():
    torch.manual_seed(3)
    conv2 = nn.Conv2d(3, 6, 3, padding=1)
    conv3 = nn.Conv3d(3, 6, (1, 3, 3), padding=(0, 1, 1))
    conv3.weight.data = conv2.weight.data.unsqueeze(2).clone()
    conv3.bias.data = conv2.bias.data.clone()
    x = torch.rand(2, 3, 8, 8)
    ref = AnalogConv2d.from_digital(conv2, _det_rpu()).eval()
    ours = AnalogConv3dTorch.from_digital(conv3, _det_rpu()).eval()
    y_ref, y_ours = ref(x), ours(x.unsqueeze(2)).squeeze(2)
    assert not torch.allclose(y_ref, conv2(x), atol=1e-4)  # quantisation is really on
    assert torch.equal(y_ref, y_ours)
    # a 1x1 transposed conv with stride 1 is a per-pixel Linear(in, out)
    lin = nn.Linear(4, 5)
    tconv = nn.ConvTranspose2d(4, 5, 1, bias=True)
    tconv.weight.data = lin.weight.data.t().reshape(4, 5, 1, 1).clone()
    tconv.bias.data = lin.bias.data.clone()
    x = torch.rand(2, 4, 3, 3)
    y_lin = AnalogLinear.from_digital(lin, _det_rpu()).eval()(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    y_t = AnalogConvTranspose2d.from_digital(tconv, _det_rpu()).eval()(x)
    assert torch.allclose(y_lin, y_t, atol=1e-6)


def test_project_layers_agree_with_aihwkit_statistically_under_noise():
    torch.manual_seed(4)
    conv1 = nn.Conv1d(3, 6, 3, padding=1, bias=False)
    x2 = torch.rand(1, 3, 1, 32)  # a row image: Conv2d (1x3 valid rows) vs Conv1d on the same signal
    conv2 = nn.Conv2d(3, 6, (1, 3), padding=(0, 1), bias=False)
    conv1.weight.data = conv2.weight.data.squeeze(2).clone()

    def rpu():
        cfg = load_preset("pcm").rpu_config()
        cfg.pre_post.input_range.enable = False
        return cfg

    ref = AnalogConv2d.from_digital(conv2, rpu()).eval()
    ours = AnalogConv1dTorch.from_digital(conv1, rpu()).eval()
    digital = conv2(x2).squeeze(2)
    err_ref, err_ours = [], []
    for s in range(30):
        program(ref, s), program(ours, 1000 + s)
        drift(ref, 86_400, s), drift(ours, 86_400, 1000 + s)
        with torch.no_grad():
            err_ref.append(ref(x2).squeeze(2) - digital)
            err_ours.append(ours(x2.squeeze(2)) - digital)
    e_ref, e_ours = torch.stack(err_ref), torch.stack(err_ours)
    assert e_ref.std() > 1e-3  # noise is really on
    assert abs(e_ref.std() / e_ours.std() - 1) < 0.15
    assert abs(e_ref.mean() - e_ours.mean()) < 0.1 * e_ref.std()


# --- whole networks --------------------------------------------------------------------------------

@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_every_block_letter_analog_equals_digital_under_ideal(spatial_dims):
    from analogmed.space.architecture import Architecture
    from analogmed.space.blocks import BLOCKS
    from analogmed.space.builder import build_candidate

    torch.manual_seed(5)
    letters = [b for b in BLOCKS[spatial_dims] if b != "Identity"]
    size = (16,) * spatial_dims
    for letter in letters:
        label = f"{letter}8-Id-{letter}8" if spatial_dims == 2 else f"{letter}8-{letter}16"
        arch = Architecture.from_label(label, spatial_dims=spatial_dims, out_channels=3)
        _ideal_close(build_candidate(arch), torch.randn(1, 1, *size))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_every_zoo_model_analog_equals_digital_under_ideal(spatial_dims):
    from analogmed.models import build_model
    from analogmed.models.zoo import ZOO_NAMES, zoo_spec

    torch.manual_seed(6)
    for name in ZOO_NAMES:
        size = (64,) * spatial_dims if name == "swin-unetr" else (32,) * spatial_dims
        if spatial_dims == 3 and name != "swin-unetr":
            size = (16,) * 3 if name in ("unet", "attention-unet", "unetr") else (32,) * 3
        model = build_model(zoo_spec(name, spatial_dims, 1, 3, size))
        _ideal_close(model, torch.randn(1, 1, *size))


def test_conversion_report_of_unetr_counts_every_mac_analog():
    from analogmed.models import build_model
    from analogmed.models.zoo import zoo_spec

    model = build_model(zoo_spec("unetr", 3, 1, 3, (16, 16, 16)))
    amodel = to_analog(model, "pcm")
    rep = conversion_report(amodel, torch.rand(1, 1, 16, 16, 16))
    assert rep["analog"].all() and len(rep) > 20
    assert rep.loc[rep["analog"], "mac_share"].sum() == pytest.approx(1.0)
    assert (rep["tiles"] >= 1).all()
    assert {"AnalogLinear", "AnalogConv3dTorch", "AnalogConvTranspose3d"} <= set(rep["type"])


def test_grouped_conv_stays_digital_and_is_reported():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1))
    amodel = to_analog(model, "pcm")
    rep = conversion_report(amodel, torch.rand(1, 4, 8, 8))
    row = rep.set_index("layer").loc["0"]
    assert not row["analog"] and "groups=2" in row["reason"]
    assert digital_mvm_layers(amodel) == ["0"]


def test_large_layers_split_over_tiles():
    amodel = to_analog(nn.Sequential(nn.Linear(600, 300)), "hermes")  # 256 x 256 tiles
    rep = conversion_report(amodel)
    assert rep["tiles"].iloc[0] == 3 * 2  # ceil(600/256) x ceil(300/256)


def test_program_and_drift_are_seeded_and_compensation_restores_scale():
    torch.manual_seed(7)
    lin = nn.Sequential(nn.Linear(64, 32))
    x = torch.rand(16, 64)
    outs = {}
    for preset in ("pcm", "pcm-nocomp"):
        amodel = to_analog(lin, preset)
        ys = []
        for rep in (0, 0, 1):
            program(amodel, 10 + rep)
            drift(amodel, 365 * 86_400, 20 + rep)
            torch.manual_seed(30 + rep)
            with torch.no_grad():
                ys.append(amodel(x))
        assert torch.equal(ys[0], ys[1]) and not torch.equal(ys[0], ys[2])
        outs[preset] = ys[0]
    ref = lin(x)
    # drift shrinks conductances; global compensation rescales the outputs back
    gain_comp = (outs["pcm"] * ref).sum() / (ref * ref).sum()
    gain_nocomp = (outs["pcm-nocomp"] * ref).sum() / (ref * ref).sum()
    assert gain_nocomp < 0.8 and abs(gain_comp - 1) < 0.1


def test_negative_time_is_an_error():
    amodel = to_analog(nn.Sequential(nn.Linear(3, 2)), "pcm")
    program(amodel, 0)
    with pytest.raises(UserError, match=">= 0 seconds"):
        drift(amodel, -1, 0)
