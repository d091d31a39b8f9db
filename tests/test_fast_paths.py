"""Shortcuts of the fast engine's layer forwards give the same numbers as the plain paths."""
from __future__ import annotations

import torch
from torch import nn

from analogmed.analog import drift, load_preset, program, to_analog
from analogmed.analog import fast_kernel as fk
from analogmed.analog.fast import _fold, fast_engine


def test_dac_on_a_permuted_view_equals_dac_on_its_copy(monkeypatch):
    """ChannelLinear feeds Linear a ``movedim`` view: the DAC runs on its memory order (no copy) and
    gives the same values as on a contiguous copy and as the torch fallback; views with gaps are copied."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 5, 6, generator=g) * 2
    ir = torch.tensor(1.7)
    view = x.movedim(1, -1)
    assert fk.is_dense(view) and not view.is_contiguous()
    assert not fk.is_dense(x[..., :3]) and not fk.is_dense(x[:, :, :1])
    got = fk.dac(view, ir, False, 2 / 254, 1.0)
    assert got.stride() == view.stride()
    want = fk.dac(view.contiguous(), ir, False, 2 / 254, 1.0)
    assert torch.equal(got, want) and torch.equal(got, fk.dac_torch(view, ir, False, 2 / 254, 1.0))
    gap = x[..., 1:4]
    assert torch.equal(fk.dac(gap, ir, False, 2 / 254, 1.0), fk.dac_torch(gap, ir, False, 2 / 254, 1.0))


def test_inplace_output_pass_equals_the_new_tensor_pass():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(3, 6, 50, generator=g)
    scale, bias = torch.rand(6, generator=g) + 0.5, torch.randn(6, generator=g)
    want = fk.fused_out(y.clone(), None, scale, bias, 50, 0.04, 20 / 254, 10.0, 123)
    buf = y.clone()
    got = fk.fused_out(buf, None, scale, bias, 50, 0.04, 20 / 254, 10.0, 123, inplace=True)
    assert torch.equal(got, want)
    assert torch.equal(want, fk.fused_out_torch(y, None, scale, bias, 50, 0.04, 20 / 254, 10.0, 123))


def test_transposed_conv_bias_in_the_output_pass_is_bit_identical():
    """k2s2 transposed convs add the digital bias per (channel, tap) row inside the fused pass; the
    result equals the col2im-then-add path bit for bit, noise on (same seed) and 2D/3D."""
    for layer, shape in ((nn.ConvTranspose2d(12, 5, 2, 2), (2, 12, 6, 6)),
                         (nn.ConvTranspose3d(12, 5, 2, 2), (1, 12, 4, 4, 4))):
        torch.manual_seed(0)
        am = to_analog(nn.Sequential(layer).eval(), load_preset("pcm")).eval()
        program(am, 1)
        drift(am, 86400.0, 2)
        x = torch.randn(*shape)
        assert _fold(am[0]).bias_rows is not None
        outs = []
        for fold_bias in (True, False):
            with fast_engine(am, quiet=True) as eng:
                if not fold_bias:  # the plain path: bias added after col2im
                    import analogmed.analog.fast as fast

                    fo = _fold(am[0])
                    fo.bias_rows = None
                    am[0].forward = fast._make_forward(am[0], fo)
                torch.manual_seed(5)
                with torch.no_grad():
                    outs.append(am(x))
                eng.refresh()
        assert torch.equal(outs[0], outs[1])


def test_untap_kernel_equals_the_torch_permute(monkeypatch):
    """col2im of non-overlapping taps: the C copy equals the torch permute, 2D and 3D, k = 2 and k = 3."""
    g = torch.Generator().manual_seed(2)
    for kernel, s_in in (((2, 2), (5, 7)), ((3, 2), (4, 3)), ((2, 2, 2), (3, 4, 5)), ((2, 3, 2), (2, 3, 4))):
        cols = torch.randn(2, 3, *kernel, *s_in, generator=g)
        got = fk.untap(cols, kernel, s_in)
        n = len(kernel)
        perm = [0, 1] + [x for i in range(n) for x in (2 + n + i, 2 + i)]
        want = cols.permute(*perm).reshape(2, 3, *[s * k for s, k in zip(s_in, kernel)])
        assert torch.equal(got, want)
        monkeypatch.setenv("ANALOGMED_NO_KERNEL", "1")
        assert torch.equal(fk.untap(cols, kernel, s_in), want)
        monkeypatch.delenv("ANALOGMED_NO_KERNEL")


def test_dac_multiply_differs_from_aihwkit_divides_only_at_rare_ties():
    """The DAC multiplies by fl(1 / (ir * step)) where aihwkit divides by ir and then by step: one
    DAC step apart on at most 1e-4 of the inputs, equal elsewhere (kernel and torch fallback alike)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1_000_000, generator=g) * 2
    ir, step, bound = torch.tensor(2.3), 2 / 254, 1.0
    r = float(ir)
    want = (torch.round(torch.clamp(x, -r, r) / ir / step) * step).clamp(-bound, bound)
    for got in (fk.dac(x, ir, False, step, bound), fk.dac_torch(x, ir, False, step, bound)):
        diff = (got - want).abs()
        assert float(diff.max()) <= step * 1.0001
        assert 0 < int((diff > 0).sum()) <= 100  # ties exist, and they are rare


def test_dac_scratch_is_reused_without_autograd_and_results_stay_right():
    """No-grad forwards write every DAC output into one scratch buffer per thread: a second input gives the
    same numbers as a fresh engine; with autograd on there is no scratch (saved tensors stay valid)."""
    from analogmed.analog import fast

    torch.manual_seed(0)
    a = to_analog(nn.Sequential(nn.Conv2d(30, 8, 3, padding=1), nn.Conv2d(8, 8, 1)).eval(), load_preset("pcm"))
    program(a, 1)
    drift(a, 86_400.0, 1)
    x1, x2 = torch.randn(2, 30, 12, 12), torch.randn(2, 30, 12, 12)
    with fast_engine(a), torch.no_grad():
        torch.manual_seed(5)
        a(x1)
        ptr = fast._SCRATCH.buf.data_ptr()
        torch.manual_seed(6)
        second = a(x2)
        assert fast._SCRATCH.buf.data_ptr() == ptr
        assert fast._scratch(torch.ones(3)).data_ptr() == ptr
    assert getattr(fast._SCRATCH, "buf", None) is None  # freed with the engine
    with fast_engine(a), torch.no_grad():
        torch.manual_seed(6)
        fresh = a(x2)
    assert torch.equal(second, fresh)
    with fast_engine(a):
        assert fast._scratch(x1) is None
        torch.manual_seed(6)
        torch.testing.assert_close(a(x2), fresh, rtol=0, atol=0)


def test_generator_pairs_seeds_and_tails_are_gaussian():
    """One keyed hash per pair gives both numbers of a Box-Muller pair: the two are uncorrelated, two seeds
    give uncorrelated streams, and the tails are a normal's (P(|z| > 3) = 0.0027, P(|z| > 4) = 6.3e-5)."""
    n = 1_000_000
    g = fk.gaussian(n, 11).double()
    pairs = g.view(-1, 2)
    assert abs(float(torch.corrcoef(pairs.T)[0, 1])) < 0.005
    assert abs(float(torch.corrcoef(torch.stack((g, fk.gaussian(n, 12).double())))[0, 1])) < 0.005
    assert abs(float(torch.corrcoef(torch.stack((g[:-1], g[1:])))[0, 1])) < 0.005  # neighbours
    p3 = float((g.abs() > 3).double().mean())
    assert abs(p3 - 0.0027) < 0.0003  # ~5 sigma of the count
    assert 25 < int((g.abs() > 4).sum()) < 110  # expected 63
    assert float(g.abs().max()) < 5.0  # 16-bit radius: at most sqrt(-2 ln(0.5 / 65536)) = 4.86
