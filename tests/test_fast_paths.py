"""Shortcuts of the fast engine's layer forwards give the same numbers as the plain paths."""
from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

from analogmed.analog import drift, load_preset, program, to_analog
from analogmed.analog import fast_kernel as fk
from analogmed.analog.fast import _fold, fast_engine
from analogmed.paths import data_dir


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
    """One keyed hash per pair gives both numbers of a pair (its two 16-bit halves index the quantile
    table): the two are uncorrelated, two seeds give uncorrelated streams, and the tails are a normal's
    (P(|z| > 3) = 0.0027, P(|z| > 4) = 6.3e-5)."""
    n = 1_000_000
    g = fk.gaussian(n, 11).double()
    pairs = g.view(-1, 2)
    assert abs(float(torch.corrcoef(pairs.T)[0, 1])) < 0.005
    assert abs(float(torch.corrcoef(torch.stack((g, fk.gaussian(n, 12).double())))[0, 1])) < 0.005
    assert abs(float(torch.corrcoef(torch.stack((g[:-1], g[1:])))[0, 1])) < 0.005  # neighbours
    assert abs(float(torch.corrcoef(torch.stack((g[:-1].square(), g[1:].square())))[0, 1])) < 0.005
    p3 = float((g.abs() > 3).double().mean())
    assert abs(p3 - 0.0027) < 0.0003  # ~5 sigma of the count
    assert 25 < int((g.abs() > 4).sum()) < 110  # expected 63 (table: 4 of 65536 entries)
    assert float(g.abs().max()) < 4.4  # the largest quantile, Phi^-1(1 - 0.5 / 65536) = 4.33
    # every table entry is drawn about equally often (the 16-bit halves of the hash are uniform)
    idx = torch.bucketize(g.float(), fk.normal_table())
    assert torch.equal(fk.normal_table()[idx], g.float())  # every number is a table entry
    counts = torch.bincount(idx, minlength=65536).double()
    chi2 = float(((counts - n / 65536) ** 2 / (n / 65536)).sum())
    assert stats.chi2.sf(chi2, 65535) > 1e-4


def test_normal_table_is_symmetric_unit_variance_quantiles():
    t = fk.normal_table().double()
    assert t.shape == (65536,) and torch.all(t[1:] > t[:-1])
    assert torch.equal(t.flip(0), -t)
    assert float(t.square().mean()) == pytest.approx(1.0, abs=1e-6)
    q = torch.special.ndtri((torch.arange(65536, dtype=torch.float64) + 0.5) / 65536)
    assert float((t / q).max() - 1) < 1e-4  # the quantiles, rescaled by < 1e-4
    assert fk.normal_table() is fk.normal_table()  # built once


class _Mixed(nn.Module):
    """Every lean-path shape at once: a channel-last Linear on a ``movedim`` view (split in rows), a 3D conv,
    a split-tile 2D conv, a transposed conv with its bias in the output pass, and one Linear called twice on
    the same input in one forward (its two outputs differ only by their output noise)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(40, 6)
        self.conv3 = nn.Conv3d(6, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(40, 30, 3, padding=1)
        self.up = nn.ConvTranspose2d(30, 3, 2, 2)
        self.twin = nn.Linear(12, 5)

    def forward(self, x2, x3, v):
        a = self.lin(x3.movedim(1, -1)).movedim(-1, 1)
        b = self.conv3(a)
        c = self.up(self.conv2(x2))
        return b, c, self.twin(v), self.twin(v)


def test_lean_kernel_path_equals_torch_fallback_and_tiles_get_their_own_noise(tmp_path, monkeypatch):
    """The prepared kernel calls (TileKernel) give the torch fallback's numbers bit for bit, for every
    layer shape above; one seed draw per model forward still gives every tile MVM its own noise stream,
    ``torch.manual_seed`` makes a forward reproducible, and leaving the engine removes its hooks."""
    torch.manual_seed(0)
    m = _Mixed().eval()
    # split Linear(40) and Conv2d(40 x 9) in rows, Conv2d(30) in columns
    text = (data_dir("hardware") / "pcm.toml").read_text()
    preset = tmp_path / "split.toml"
    preset.write_text(text.replace("tile_rows = 512", "tile_rows = 32").replace("tile_cols = 512", "tile_cols = 24"))
    a = to_analog(m, str(preset)).eval()
    assert sum(1 for _ in a.lin.analog_tiles()) == 2 and sum(1 for _ in a.conv2.analog_tiles()) > 2
    for tile in a.analog_tiles():
        if tile.input_range is not None:
            tile.input_range.data[:] = 2.0
    program(a, 1)
    drift(a, 86400.0, 1)
    g = torch.Generator().manual_seed(3)
    x2, x3 = torch.randn(2, 40, 6, 6, generator=g), torch.randn(2, 40, 4, 4, 4, generator=g)
    v = torch.randn(3, 12, generator=g)
    runs = []
    for no_kernel in ("0", "1", "0"):
        monkeypatch.setenv("ANALOGMED_NO_KERNEL", no_kernel)
        with torch.no_grad(), fast_engine(a) as eng:
            if no_kernel == "0" and fk.load_kernel() is not None:
                assert all(t.kernel is not None for t in _fold(a.lin).tiles)
            assert not eng.notes
            torch.manual_seed(42)
            runs.append(a(x2, x3, v))
            torch.manual_seed(42)
            again = a(x2, x3, v)
            other = a(x2, x3, v)
        for r, s, o in zip(runs[-1], again, other):
            assert torch.equal(r, s) and not torch.equal(r, o)
        assert not a._forward_pre_hooks and not a._forward_hooks
    for ref, fb, rep in zip(*runs):
        assert torch.equal(ref, fb) and torch.equal(ref, rep)
    twin_1, twin_2 = runs[0][2], runs[0][3]
    assert not torch.equal(twin_1, twin_2)  # same tiles, same input: only the output noise differs
    assert (twin_1 - twin_2).abs().max() < 0.2 * twin_1.abs().max()
