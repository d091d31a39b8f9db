"""Search space: blocks, Architecture (canonical form, id, validation, sampler, ops), builder, CLI."""
import json
import math
import sys

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from analogmed.cli import app, main
from analogmed.errors import UserError
from analogmed.space import latency_op_module
from analogmed.space.architecture import (MAX_DEPTH, WIDTHS, Architecture, sample_architecture, space_size)
from analogmed.space.blocks import BLOCKS, LETTERS, make_block, make_up
from analogmed.space.builder import build_candidate

runner = CliRunner()


@pytest.mark.parametrize("d,letter", [(d, b) for d in (2, 3) for b in BLOCKS[d]])
def test_every_block_and_its_up_counterpart_run_forward_and_backward(d, letter):
    torch.manual_seed(0)
    cin = 3
    cout = cin if letter == "Identity" else 4
    size = (8,) * d
    block = make_block(letter, d, cin, cout)
    up = make_up(letter, d, cout, cin)
    x = torch.randn(2, cin, *size, requires_grad=True)
    y = block(x)
    assert y.shape == (2, cout, *size)
    z = up(y[(...,) + (slice(0, None, 2),) * d])  # half resolution -> back to full
    assert z.shape == (2, cin, *size)
    z.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in list(block.parameters()) + list(up.parameters()):
        assert p.grad is not None


def test_block_layers_follow_the_table():
    conv = [m for m in make_block("G", 2, 1, 8).modules()]
    kinds = [type(m).__name__ for m in conv if not isinstance(m, nn.Sequential)]
    assert kinds == ["Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU"]  # G = D then E
    m = make_block("K", 3, 2, 8)
    assert [type(x).__name__ for x in m] == ["Conv3d", "BatchNorm3d", "LeakyReLU"]
    assert isinstance(make_up("M", 3, 8, 2), nn.ConvTranspose3d)
    up = make_up("C", 2, 8, 2)
    assert isinstance(up, nn.ConvTranspose2d) and up.kernel_size == (2, 2) and up.stride == (2, 2)
    a = make_block("A", 2, 3, 5)
    assert isinstance(a.linear, nn.Linear) and a.linear.weight.shape == (5, 3)
    x = torch.randn(1, 3, 4, 4)
    ref = torch.einsum("oc,bchw->bohw", a.linear.weight, x) + a.linear.bias[:, None, None]
    assert torch.allclose(a(x), ref, atol=1e-6)  # 1x1 conv semantics


def test_wrong_dims_and_bad_letters_are_user_errors():
    with pytest.raises(UserError, match="3-D block"):
        make_block("H", 2, 1, 8)
    with pytest.raises(UserError, match="not in the 2-D space"):
        Architecture(2, 1, 2, ("C", "Q"), (8, 16))
    with pytest.raises(UserError, match="Identity keeps"):
        make_block("Identity", 2, 1, 8)
    with pytest.raises(UserError, match="width 12"):
        Architecture(2, 1, 2, ("C",), (12,))
    with pytest.raises(UserError, match="depth 5"):
        Architecture(2, 1, 2, ("C",) * 5, (8,) * 5)
    with pytest.raises(UserError, match="level 0"):
        Architecture.from_dict({"spatial_dims": 2, "blocks": ["Zero", "C"], "widths": [8, 8]})
    with pytest.raises(UserError, match="unknown key"):
        Architecture.from_dict({"spatial_dims": 2, "blocks": ["C"], "widths": [8], "depth": 1})
    with pytest.raises(UserError, match="missing"):
        Architecture.from_dict({"spatial_dims": 2, "blocks": ["C"]})
    with pytest.raises(UserError, match="does not fit depth 4"):
        Architecture(2, 1, 2, ("C",) * 4, (8,) * 4).ops((20, 20))
    with pytest.raises(UserError, match="expects input"):
        build_candidate(Architecture(2, 1, 2, ("C",), (8,)))(torch.randn(1, 2, 8, 8))


def test_canonical_form_gives_equal_networks_one_id():
    a = Architecture.from_dict({"spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                                "blocks": ["C", "Identity", "Zero", "G"], "widths": [16, 64, None, 8]})
    b = Architecture.from_dict({"spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                                "blocks": ["C", "Identity"], "widths": [16, None]})
    assert a == b and a.id == b.id and a.widths == (16, 16) and a.depth == 2
    assert a.label == "C16-Id" and Architecture.from_label("C16-Id-Zero-B8", 2, 1, 3).id == a.id
    assert Architecture.from_dict(json.loads(a.to_json())).id == a.id
    assert Architecture(2, 1, 3, ("C", "B"), (16, 16)).id != a.id
    assert Architecture(2, 1, 4, ("C", "Identity"), (16, 16)).id != a.id
    # the same id means the same network: equal weights -> equal outputs
    torch.manual_seed(0)
    m1 = build_candidate(a)
    m2 = build_candidate(b)
    m2.load_state_dict(m1.state_dict())
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(m1.eval()(x), m2.eval()(x))


def test_space_size_and_sampler():
    # 7 non-Identity blocks x 4 widths + Identity = 29 choices per level, depth 1..4
    assert space_size(2) == sum(29 ** L for L in range(1, 5)) == 732540
    assert space_size(3) == sum(22 ** L for L in range(1, 4)) == 11154
    assert space_size(2, max_depth=1, blocks=("C", "Identity"), widths=(8, 16)) == 3
    a = sample_architecture(seed=7, spatial_dims=3, out_channels=4)
    assert a == sample_architecture(seed=7, spatial_dims=3, out_channels=4)
    assert all(b in LETTERS[3] for b in a.blocks) and a.depth <= MAX_DEPTH[3]
    # uniform over the tiny space {C8, C16, Identity} x depth 1..2 (3 + 9 = 12 architectures)
    ids = [sample_architecture(seed=s, blocks=("C", "Identity"), widths=(8, 16), max_depth=2).id
           for s in range(2400)]
    counts = sorted({i: ids.count(i) for i in set(ids)}.values())
    assert len(counts) == 12 and counts[0] > 140 and counts[-1] < 260  # expected 200 each


def test_candidate_shapes_and_ops_match_the_modules():
    for seed in range(6):
        a = sample_architecture(seed=seed, spatial_dims=2, in_channels=2, out_channels=3)
        m = build_candidate(a)
        assert m(torch.randn(2, 2, 32, 32)).shape == (2, 3, 32, 32)
        ops = a.ops((64, 64))
        assert ops[0].kind == f"block:{a.blocks[0]}" and ops[0].in_channels == 2 and ops[-1].kind == "head"
        assert sum(o.kind.startswith("block:") for o in ops) == a.depth
        assert sum(o.kind == "fuse" for o in ops) == a.depth - 1
        # every op's module (latency hook) has the parameters of the candidate's module
        n_params = sum(sum(p.numel() for p in latency_op_module(o).parameters()) for o in ops)
        assert n_params == sum(p.numel() for p in m.parameters())
    a3 = Architecture(3, 1, 2, ("L", "Identity", "A"), (8, 0, 16))
    assert build_candidate(a3)(torch.randn(1, 1, 8, 8, 8)).shape == (1, 2, 8, 8, 8)
    c = sample_architecture(seed=1, head="classification", out_channels=14)
    assert build_candidate(c)(torch.randn(3, 1, 64, 64)).shape == (3, 14)
    assert c.ops()[-1].kind == "classify"


def test_build_model_dispatch_and_model_id():
    from analogmed.models import build_model, model_id

    a = sample_architecture(seed=3, spatial_dims=2, out_channels=3)
    spec = {"family": "space", "arch": a.to_dict()}
    assert model_id(spec) == a.id
    assert build_model(spec)(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_widths_constants_cover_latency_grid():
    from analogmed.latency.grid import DEFAULT_GRID

    for d in (2, 3):
        assert tuple(DEFAULT_GRID[d]["widths"]) == WIDTHS[d]
        assert DEFAULT_GRID[d]["levels"] == MAX_DEPTH[d]


# ---------------------------------------------------------------------------------- CLI


def _main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["analogmed", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


def test_arch_cli_sample_show_validate(tmp_path):
    out = tmp_path / "a.json"
    res = runner.invoke(app, ["arch", "sample", "--seed", "3", "--out-channels", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    a = Architecture.from_dict(json.loads(out.read_text()))
    assert a == sample_architecture(seed=3, out_channels=3)
    res = runner.invoke(app, ["arch", "show", str(out), "--input-size", "128x128"])
    assert res.exit_code == 0 and a.id in res.output and "head" in res.output and "128x128" in res.output
    res = runner.invoke(app, ["arch", "validate", str(out), "--input-size", "64x64"])
    assert res.exit_code == 0 and f"ok  {out}  {a.id}" in res.output
    res = runner.invoke(app, ["arch", "show", "C16-Id-E32"])
    assert res.exit_code == 0 and "channels [1, 16, 16, 32]" in res.output
    res = runner.invoke(app, ["arch", "sample", "--count", "3", "--seed", "1", "--out", str(tmp_path / "many")])
    assert res.exit_code == 0 and len(list((tmp_path / "many").glob("arch-*.json"))) == 3
    res = runner.invoke(app, ["arch", "space"])
    assert res.exit_code == 0 and "732540" in res.output


def test_arch_cli_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    good = sample_architecture(seed=0).to_json()
    (tmp_path / "trunc.json").write_text(good[: len(good) // 2])
    (tmp_path / "h.json").write_text(json.dumps({"spatial_dims": 2, "blocks": ["C", "H"], "widths": [8, 8]}))
    cases = [
        (["arch", "validate", str(tmp_path / "trunc.json")], "is not valid JSON"),
        (["arch", "validate", str(tmp_path / "h.json")], "block 'H' (a 3-D block) is not in the 2-D space"),
        (["arch", "validate", str(tmp_path / "nope.json")], "does not exist"),
        (["arch", "show", "C16-E"], "bad level 'E'"),
        (["arch", "sample", "--spatial-dims", "4"], "spatial_dims must be 2 or 3"),
        (["arch", "sample", "--count", "2", "--out", str(tmp_path / "x.json")], "give a folder"),
    ]
    for args, needle in cases:
        code, cap = _main(monkeypatch, capsys, *args)
        assert code == 2 and needle in cap.err and cap.err.count("\n") == 1, (args, cap.err)
    assert not (tmp_path / "x.json").exists()


def test_check_task_names_the_mismatch():
    from types import SimpleNamespace

    from analogmed.data import get_task

    task = get_task("synthetic-2d", size=16, n_train=2, n_val=1, n_test=1)
    Architecture(2, 1, task.num_classes, ("C", "E"), (8, 16)).check_task(task)
    with pytest.raises(UserError, match=f"out_channels=2 but task synthetic-2d needs {task.num_classes}"):
        Architecture(2, 1, 2, ("C",), (8,)).check_task(task)
    small = SimpleNamespace(name="small", kind="segmentation", spatial_dims=2, in_channels=1, num_classes=3,
                            image_size=(12, 12))
    with pytest.raises(UserError, match="does not fit depth 4"):
        Architecture(2, 1, 3, ("C",) * 4, (8,) * 4).check_task(small)


@pytest.mark.parametrize("shape", [(2, 3, 9), (3, 4, 16, 15), (2, 3, 7, 8, 5), (1, 2, 2, 2, 2)])
def test_fast_max_pool_equals_torch_max_pool(shape):
    """The inference pool (pairwise maxima of strided views) gives torch's max-pool values exactly:
    odd sizes floored, NaN propagated; with a gradient the module runs torch's own op."""
    import torch.nn.functional as F

    from analogmed.space.blocks import make_pool, max_pool_k2s2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    x.view(-1)[::11] = float("nan")
    ref = {3: F.max_pool1d, 4: F.max_pool2d, 5: F.max_pool3d}[x.dim()](x, 2)
    got = max_pool_k2s2(x)
    assert got.shape == ref.shape
    assert torch.equal(got.isnan(), ref.isnan()) and ref.isnan().any()
    assert torch.equal(got.nan_to_num(7.0), ref.nan_to_num(7.0))
    if x.dim() > 3:
        pool = make_pool(x.dim() - 2)
        assert isinstance(pool, (nn.MaxPool2d, nn.MaxPool3d))
        y = torch.randn(*shape, generator=g)
        with torch.no_grad():
            assert torch.equal(pool(y), {4: F.max_pool2d, 5: F.max_pool3d}[y.dim()](y, 2))
        y.requires_grad_(True)
        pool(y).sum().backward()  # torch's max-pool: exactly one 1 per window
        assert y.grad.sum().item() == math.prod(s // 2 for s in shape[2:]) * shape[0] * shape[1]
