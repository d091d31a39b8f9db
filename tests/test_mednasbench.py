"""MED-NAS-Bench import: the published sampleN.json schema built as the prototype built it.

Fixtures are generated here in the published schema (what the prototype's ``RecursiveUNet.to_json``
writes for ``num_downs=1``). The expected parameter counts are the ``params`` of published files
that :func:`published` reproduces field for field (checked against IHIaadj/med_nas_bench
``models/configs``): sample5 (C 8, k 3, no pool) 13387, sample298 (C 8, k 3, avg pool) 13387,
sample16 (C 8, k 5) 36043, sample23 (C 16, k 3) 53139, sample12 (C 16, k 5) 143507.
"""
import json
import re
import sys

import pytest
import torch
from torch import nn

from analogmed.cli import main
from analogmed.errors import UserError
from analogmed.space.mednasbench import (MedNasBenchUNet, build_mednasbench, centre_crop, check_config, count_params,
                                         describe, load_mednasbench)

torch.set_num_threads(1)


def published(c=8, k=3, pool=None, norm=True, dil=(1, 1, 1), acts=("relu",) * 4, orders=(1,) * 4, classes=3,
              ident=0, params=0, metrics=None):
    """A sampleN.json as the prototype writes it (one setting list shared by the inner and outer block).

    ``dil``: dilations of conv1, conv2, conv3 (the prototype gives conv4 conv3's dilation).
    ``pool``: None, "max" or "avg" (the inner block's; the outer block's pool is always {}).
    """
    d4 = (*dil, dil[2])

    def conv(name, cin, cout, j):
        u = {"name": name, "in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": 1,
             "dilation": [d4[j], d4[j]]}
        if name == "Contract":
            u["use_bn"] = norm
        u.update(act_func=acts[j], order=orders[j])
        return u

    inner = {"name": "UnetSkipConnectionBlock", "type": "inner",
             "pool": {} if pool is None else {"name": "PoolingLayer", "in_channels": c, "out_channels": 2 * c,
                                              "pool_type": pool, "kernel_size": 2, "stride": 2},
             "conv1": conv("Contract", c, 2 * c, 0), "conv2": conv("Contract", 2 * c, 2 * c, 1),
             "conv3": {}, "conv4": {},
             "upconv": {"name": "TransposeConv2D", "in_channels": 2 * c, "out_channels": c, "kernel_size": 2,
                        "stride": 2}}
    outer = {"name": "UnetSkipConnectionBlock", "type": "outer", "pool": {},
             "conv1": conv("Contract", 1, c, 0), "conv2": conv("Contract", c, c, 1),
             "conv3": conv("Expand", 2 * c, c, 2), "conv4": conv("Expand", c, c, 3),
             "upconv": {"name": "Contract", "in_channels": c, "out_channels": classes, "kernel_size": 1, "stride": 1}}
    return {"id": ident, "name": f"unet_like_model_{ident}",
            "metrics": metrics or {"dcs": 0.9, "jcs": 0.8, "sensitivity": 0.7, "specificity": 0.6},
            "params": params, "model_size": params, "arch_config": {"blocks": [inner, outer]}}


#: Published files reproduced by :func:`published`, with their ``params``.
PUBLISHED = {
    "sample5": (dict(c=8, k=3, norm=True, dil=(2, 1, 1), acts=("relu6", "relu", "relu6", "relu"),
                     orders=(3, 1, 3, 1), ident=5), 13387),
    "sample298": (dict(c=8, k=3, pool="avg", norm=False, dil=(1, 1, 1), acts=("relu6", "LeakyRelu", "relu", "relu6"),
                       orders=(3, 3, 3, 1), ident=298), 13387),
    "sample16": (dict(c=8, k=5, norm=False, dil=(1, 2, 1), acts=("LeakyRelu", "LeakyRelu", "relu", "relu6"),
                      orders=(1, 2, 2, 3), ident=16), 36043),
    "sample23": (dict(c=16, k=3, norm=True, dil=(2, 1, 2), acts=("LeakyRelu",) * 4, orders=(3, 1, 3, 1),
                      ident=23), 53139),
    "sample12": (dict(c=16, k=5, norm=False, dil=(2, 1, 2), acts=("LeakyRelu", "relu", "LeakyRelu", "relu"),
                      orders=(2, 2, 2, 1), ident=12), 143507),
}


def expected_params(c, k, classes=3):
    """The prototype's count: 5 outer + 5 inner layers (2 of them never run), every conv with bias."""
    conv = lambda cin, cout, kk: cin * cout * kk * kk + cout  # noqa: E731
    outer = conv(1, c, k) + conv(c, c, k) + conv(2 * c, c, k) + conv(c, c, k) + conv(c, classes, 1)
    inner = conv(c, 2 * c, k) + conv(2 * c, 2 * c, k) + conv(2 * c, c, 2)
    unused = conv(4 * c, 2 * c, k) + conv(2 * c, 2 * c, k)
    return outer + inner + unused, unused


def _write(tmp_path, cfg, name="sample.json"):
    f = tmp_path / name
    f.write_text(json.dumps(cfg, indent=4))
    return f


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configs_build_with_their_published_parameter_count(tmp_path, name):
    kwargs, params = PUBLISHED[name]
    cfg = published(params=params, **kwargs)
    spec = load_mednasbench(_write(tmp_path, cfg, f"{name}.json"))
    d = describe(spec)
    assert d["params_built"] == params == d["params_in_file"] == expected_params(kwargs["c"], kwargs["k"])[0]
    assert d["params_unused"] == expected_params(kwargs["c"], kwargs["k"])[1]
    assert "metrics" not in spec["config"] and "model_size" not in spec["config"] and "padding" not in spec


def test_forward_64_gives_3_classes_at_64_and_trains(tmp_path):
    torch.manual_seed(0)
    m = build_mednasbench(load_mednasbench(_write(tmp_path, published(c=4, k=5, dil=(2, 2, 2)))))
    x = torch.randn(1, 1, 64, 64)
    y = m(x)
    assert y.shape == (1, 3, 64, 64)
    y.square().mean().backward()
    used = [n for n, p in m.named_parameters() if not n.startswith("unused.")]
    assert all(m.get_parameter(n).grad is not None for n in used)
    assert all(p.grad is None for p in m.unused.values())  # never run, as in the prototype


@pytest.mark.parametrize("pool, kind", [(None, None), ("max", nn.MaxPool2d), ("avg", nn.AvgPool2d)])
def test_pool_none_max_avg(pool, kind):
    torch.manual_seed(0)
    m = build_mednasbench(published(c=4, pool=pool))
    assert (m.inner_pool is None) if pool is None else isinstance(m.inner_pool, kind)
    seen = {}
    m.inner_conv1.register_forward_hook(lambda mod, i, o: seen.update(inner_in=i[0].shape[-1]))
    m.inner_up.register_forward_hook(lambda mod, i, o: seen.update(up=o.shape[-1]))
    assert m(torch.randn(2, 1, 16, 16)).shape == (2, 3, 16, 16)
    # without a pool the inner block runs at full resolution and up-samples x2 (then centre-cropped)
    assert seen == ({"inner_in": 16, "up": 32} if pool is None else {"inner_in": 8, "up": 16})
    assert describe({"config": published(c=4, pool=pool)})["sizes"] == ("sizes >= 1" if pool is None
                                                                         else "even sizes >= 2")
    if pool is not None:
        with pytest.raises(UserError, match=r"does not accept input size 17x16: it takes even sizes >= 2"):
            m(torch.randn(1, 1, 17, 16))
    else:
        assert m(torch.randn(1, 1, 17, 15)).shape == (1, 3, 17, 15)


def test_max_and_avg_pool_compute_different_networks():
    torch.manual_seed(0)
    a = build_mednasbench(published(c=4, pool="max"))
    b = build_mednasbench(published(c=4, pool="avg"))
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 1, 16, 16)
    s = torch.randn(1, 4, 16, 16)
    assert torch.equal(a.inner_pool(s), s.unflatten(2, (8, 2)).unflatten(4, (8, 2)).amax((3, 5)))
    assert torch.allclose(b.inner_pool(s), s.unflatten(2, (8, 2)).unflatten(4, (8, 2)).mean((3, 5)))
    assert not torch.allclose(a(x), b(x))


def test_centre_crop_takes_the_middle():
    x = torch.arange(8 * 8.).reshape(1, 1, 8, 8)
    assert torch.equal(centre_crop(x, 4, 4), x[:, :, 2:6, 2:6])
    assert torch.equal(centre_crop(torch.arange(7.).reshape(1, 1, 1, 7), 1, 4), torch.tensor([[[[1., 2, 3, 4]]]]))


def test_no_pool_forward_is_crop_of_the_upsampled_inner_map_concatenated_with_the_skip():
    torch.manual_seed(0)
    m = build_mednasbench(published(c=4, acts=("relu",) * 4, orders=(1, 1, 1, 1))).eval()
    x = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        s = m.outer_conv2(m.outer_conv1(x))
        up = m.inner_up(m.inner_conv2(m.inner_conv1(s)))
        assert up.shape[-1] == 24
        want = m.head(m.outer_conv4(m.outer_conv3(torch.cat([s, up[:, :, 6:18, 6:18]], 1))))
        assert torch.allclose(m(x), want, atol=1e-6)


@pytest.mark.parametrize("order, norm, ops", [
    (1, True, ["Conv2d", "InstanceNorm2d", "ReLU6"]),
    (2, True, ["ReLU6", "Conv2d", "InstanceNorm2d"]),
    (3, True, ["InstanceNorm2d", "ReLU6", "Conv2d"]),
    (1, False, ["Conv2d", "ReLU6"]),
    (2, False, ["ReLU6", "Conv2d"]),
    (3, False, ["ReLU6", "Conv2d"]),
])
def test_order_and_norm(order, norm, ops):
    cfg = published(c=4, norm=norm, acts=("relu6",) * 4, orders=(order,) * 4)
    m = build_mednasbench(cfg)
    assert [type(op).__name__ for op in m.inner_conv1.body] == ops
    assert [type(op).__name__ for op in m.outer_conv3.body] == (["Conv2d", "ReLU6"] if order == 1
                                                                else ["ReLU6", "Conv2d"])  # Expand: no norm
    norms = [op for op in m.modules() if isinstance(op, nn.InstanceNorm2d)]
    assert len(norms) == (4 if norm else 0)
    if norm:  # order 3 normalises the conv's input channels; the prototype's instance norm has no weights
        assert m.inner_conv1.body[ops.index("InstanceNorm2d")].num_features == (4 if order == 3 else 8)
        assert not any(n.affine or n.track_running_stats for n in norms)
    assert count_params(m) == expected_params(4, 3)[0]
    assert m(torch.randn(1, 1, 8, 8)).shape == (1, 3, 8, 8)


def test_activations_and_leaky_slope():
    m = build_mednasbench(published(c=4, acts=("relu", "relu6", "LeakyRelu", "LeakyRelu")))
    kinds = [type(u.body[-1]) for u in (m.outer_conv1, m.outer_conv2, m.outer_conv3, m.outer_conv4)]
    assert kinds == [nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.LeakyReLU]
    assert m.outer_conv3.body[-1].negative_slope == 0.01


@pytest.mark.parametrize("k, d", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_dilation_padding_same_and_prototype(k, d):
    cfg = published(c=4, k=k, dil=(d, d, d))
    same = build_mednasbench(cfg)
    proto = build_mednasbench({"family": "mednasbench", "config": cfg, "padding": "prototype"})
    conv = same.inner_conv1.body[0]
    assert conv.dilation == (d, d) and conv.padding == (d * (k - 1) // 2,) * 2
    assert proto.inner_conv1.body[0].padding == (1, 1) and proto.head.padding == (0, 0)
    assert count_params(same) == count_params(proto) == expected_params(4, k)[0]
    assert same(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)
    # the prototype's padding=1: each outer conv shrinks by d(k-1)-2 (sample0 64 -> 52 has k 5, d 1,2,1,1)
    shrink = d * (k - 1) - 2
    assert proto.out_size(64, 64) == (64 - 4 * shrink,) * 2
    assert proto(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64 - 4 * shrink, 64 - 4 * shrink)


def test_prototype_padding_sample0_shape_and_accepted_sizes():
    # sample0's structure: C 256 k 5, dilations 1, 2, 1 (no pool): the prototype gives 52x52 from 64x64
    cfg = published(c=2, k=5, norm=False, dil=(1, 2, 1))
    proto = MedNasBenchUNet(cfg, padding="prototype")
    assert proto.out_size(64, 64) == (52, 52)
    assert proto.accepted_sizes() == "sizes >= 24"
    with pytest.raises(UserError, match="does not accept input size 23x64: it takes sizes >= 24"):
        proto(torch.randn(1, 1, 23, 64))


@pytest.mark.parametrize("order, norm, pool, rewritten", [
    (2, False, None, True), (3, False, None, True), (2, True, None, True),
    (1, True, None, False), (1, False, None, False), (3, True, None, False), (2, False, "max", False),
])
def test_in_place_activation_of_the_prototype_rewrites_the_skip(order, norm, pool, rewritten):
    """The prototype's in-place activation, first op of the inner conv1, also changes the skip tensor."""
    torch.manual_seed(0)
    m = build_mednasbench(published(c=4, norm=norm, pool=pool, acts=("LeakyRelu",) * 4,
                                    orders=(order, 1, 1, 1))).eval()
    assert (m.skip_act is not None) == rewritten
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        s = m.outer_conv2(m.outer_conv1(x))
        h = m.inner_pool(s) if pool else s
        u = centre_crop(m.inner_up(m.inner_conv2(m.inner_conv1(h))), 8, 8)
        skip = nn.functional.leaky_relu(s, 0.01) if rewritten else s
        want = m.head(m.outer_conv4(m.outer_conv3(torch.cat([skip, u], 1))))
        assert torch.allclose(m(x), want, atol=1e-6)
        if rewritten:  # and it matters (outer conv2 ends in a conv, so s has negative values)
            plain = m.head(m.outer_conv4(m.outer_conv3(torch.cat([s, u], 1))))
            assert not torch.allclose(plain, want, atol=1e-4)


def test_unused_weights_stay_digital_under_to_analog():
    from analogmed.analog import to_analog

    torch.manual_seed(0)
    m = build_mednasbench(published(c=2)).eval()
    am = to_analog(m, "ideal")
    analog = [n for n, mod in am.named_modules() if type(mod).__name__.startswith("Analog")
              and "Conv" in type(mod).__name__]
    assert len(analog) == 8  # 4 outer + 2 inner convs, the up-conv and the head; not the 2 never-run ones
    assert count_params(am) >= count_params(m) - 1 and am(torch.randn(1, 1, 8, 8)).shape == (1, 3, 8, 8)


def test_metrics_are_ignored_and_padding_changes_the_id(tmp_path):
    from analogmed.models import build_model, model_id

    a = load_mednasbench(_write(tmp_path, published(c=4, metrics={"dcs": 0.1}), "a.json"))
    b = load_mednasbench(_write(tmp_path, published(c=4, metrics={"dcs": 0.2}), "b.json"))
    p = load_mednasbench(tmp_path / "a.json", padding="prototype")
    assert model_id(a) == model_id(b) != model_id(p) and model_id(a).startswith("mednasbench-")
    assert p["padding"] == "prototype" and build_model(p).padding == "prototype"


def test_check_config(tmp_path):
    torch.manual_seed(0)
    good = check_config(_write(tmp_path, published(c=2, params=expected_params(2, 3)[0]), "g.json"))
    assert good["imported"] and good["params_match"] and good["forward_ok"] and good["problem"] == ""
    assert good["out_shape"] == (1, 3, 64, 64)
    bad = check_config(_write(tmp_path, published(c=2, params=5), "b.json"))
    assert bad["imported"] and not bad["params_match"] and "but the file says 5" in bad["problem"]
    proto = check_config(tmp_path / "g.json", padding="prototype", size=(16, 16))
    assert proto["out_shape"] == (1, 3, 16, 16) and proto["forward_ok"]  # k 3, d 1: no shrink
    small = check_config(_write(tmp_path, published(c=2, k=5, dil=(2, 2, 2), params=expected_params(2, 5)[0]),
                                "s.json"), padding="prototype", size=(16, 16))
    assert small["params_match"] and not small["forward_ok"]
    assert small["problem"].startswith("forward: UserError: MED-NAS-Bench model unet_like_model_0 does not accept "
                                       "input size 16x16: it takes sizes >= 36")


# ---------------------------------------------------------------------------------- bad input


def _main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["analogmed", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


def _mutated(fn):
    cfg = published(c=4)
    fn(cfg)
    return cfg


INNER = lambda c: c["arch_config"]["blocks"][0]  # noqa: E731
OUTER = lambda c: c["arch_config"]["blocks"][1]  # noqa: E731
BAD_CONFIGS = [
    (lambda c: c.update(seed=3), "top level: unknown field(s) 'seed'"),
    (lambda c: INNER(c)["conv1"].update(groups=2), "inner conv1: unknown field(s) 'groups'"),
    (lambda c: OUTER(c)["conv3"].update(use_bn=True), "outer conv3: unknown field(s) 'use_bn'"),
    (lambda c: INNER(c).update(extra={}), "inner block: unknown field(s) 'extra'"),
    (lambda c: INNER(c)["pool"].update(padding=1, pool_type="max"), "inner pool: unknown field(s) 'padding'"),
    (lambda c: c["arch_config"].update(cells=[]), "arch_config must be an object with just 'blocks'"),
    (lambda c: OUTER(c)["conv3"].update(in_channels=9), "outer conv3: in_channels 9 does not match"),
    (lambda c: INNER(c)["conv1"].update(act_func="gelu"), "act_func 'gelu'"),
    (lambda c: INNER(c)["conv2"].update(order=4), "order 4"),
    (lambda c: INNER(c)["conv2"].update(stride=2), "stride must be 1"),
    (lambda c: INNER(c)["conv2"].update(dilation=[1, 2]), "dilation [1, 2]"),
    (lambda c: INNER(c)["conv2"].update(kernel_size=4), "kernel_size must be odd"),
    (lambda c: INNER(c)["conv1"].pop("out_channels"), "inner conv1: missing out_channels"),
    (lambda c: INNER(c)["conv1"].update(name="Expand"), "name 'Expand' must be 'Contract'"),
    (lambda c: INNER(c)["pool"].update(name="PoolingLayer", pool_type="min"), "pool_type 'min'"),
    (lambda c: INNER(c).update(conv3=OUTER(c)["conv3"]), "inner conv3: must be {}"),
    (lambda c: OUTER(c).update(pool=INNER(published(pool="max"))["pool"]), "outer pool: must be {}"),
    (lambda c: c["arch_config"]["blocks"].reverse(), "block types ['outer', 'inner']"),
    (lambda c: c["arch_config"].update(blocks=[]), "[inner, outer]"),
    (lambda c: OUTER(c)["conv1"].update(use_bn="yes"), "use_bn must be true or false"),
]


@pytest.mark.parametrize("mutate, needle", BAD_CONFIGS)
def test_bad_configs_are_user_errors(mutate, needle):
    with pytest.raises(UserError, match=re.escape(needle)):
        build_mednasbench({"family": "mednasbench", "config": _mutated(mutate)})


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    good = _write(tmp_path, published(c=2), "good.json")
    text = good.read_text()
    (tmp_path / "bin.json").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "trunc.json").write_text(text[: len(text) // 2])
    (tmp_path / "list.json").write_text("[1, 2]")
    _write(tmp_path, _mutated(lambda c: INNER(c)["conv1"].update(groups=2)), "unknown.json")
    (tmp_path / "empty").mkdir()
    specs = tmp_path / "specs"
    cases = [
        ("bin.json", "is not UTF-8 text (binary?)"),
        ("trunc.json", "is not valid JSON"),
        ("list.json", "must be a JSON object, not list"),
        ("unknown.json", "unknown field(s) 'groups'"),
        ("nope.json", "does not exist"),
        ("empty", "has no .json files"),
    ]
    for name, needle in cases:
        code, cap = _main(monkeypatch, capsys, "arch", "mednasbench", str(good), str(tmp_path / name),
                          "--out", str(specs))
        assert code == 2 and needle in cap.err and cap.err.count("\n") == 1 and "Traceback" not in cap.err, \
            (name, cap.err)
    code, cap = _main(monkeypatch, capsys, "arch", "mednasbench", str(good), "--padding", "valid")
    assert code == 2 and "--padding 'valid'" in cap.err
    for out, needle in ((good, "exists and is not a folder"), (good / "sub", str(good))):
        code, cap = _main(monkeypatch, capsys, "arch", "mednasbench", str(good), "--out", str(out))
        assert code == 2 and needle in cap.err and cap.err.count("\n") == 1, cap.err
    assert good.read_text() == text
    assert not specs.exists()


def test_cli_imports_a_folder_in_natural_order_and_checks_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "configs"
    folder.mkdir()
    for i in (10, 2, 1):
        _write(folder, published(c=2, ident=i, params=expected_params(2, 3)[0]), f"sample{i}.json")
    code, cap = _main(monkeypatch, capsys, "arch", "mednasbench", str(folder), "--out", str(tmp_path / "specs"))
    assert code in (0, None), cap.err
    lines = [ln for ln in cap.out.splitlines() if ln.startswith(str(folder))]
    assert [ln.split()[0].rsplit("/", 1)[1] for ln in lines] == ["sample1.json", "sample2.json", "sample10.json"]
    assert f"params {expected_params(2, 3)[0]} (file says {expected_params(2, 3)[0]}" in lines[0]
    spec = json.loads((tmp_path / "specs" / "sample2.spec.json").read_text())
    assert spec["family"] == "mednasbench" and spec["config"]["id"] == 2
    code, cap = _main(monkeypatch, capsys, "arch", "mednasbench", str(folder), "--check")
    assert code in (0, None) and "imported 3/3, params match 3/3, forward 1x1x64x64 -> 1xKx64x64 3/3" in cap.out
    _write(folder, published(c=2, ident=3, params=7), "sample3.json")
    code, cap = _main(monkeypatch, capsys, "arch", "mednasbench", str(folder), "--check", "--input-size", "16x16")
    assert code == 1 and "sample3.json: params" in cap.out and "params match 3/4" in cap.out
