"""Supernet: sub-network equality, weight sharing, single-path training, checkpoints, ranking, CLI."""
import json
import random
import sys

import pytest
import torch
from typer.testing import CliRunner

from analogmed.cli import app, main
from analogmed.data import get_task
from analogmed.errors import UserError
from analogmed.space.architecture import Architecture
from analogmed.space.supernet import Supernet
from analogmed.train.supernet import (SupernetConfig, load_supernet, rank_check, recalibrate_bn, save_supernet,
                                      train_supernet)

runner = CliRunner()


def _train_some_paths(net, d, steps=4):
    """Move every weight away from its init (and BN statistics away from 0/1)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    rng = random.Random(0)
    net.train()
    for _ in range(steps):
        a = net.sample(rng)
        x = torch.randn(2, net.in_channels, *(8,) * d)
        opt.zero_grad()
        net(x, a).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("d,widths,head", [(2, (8, 16, 16), "segmentation"), (3, (4, 8), "segmentation"),
                                           (2, (8, 16), "classification")])
def test_subnet_output_equals_supernet_path(d, widths, head):
    torch.manual_seed(0)
    if d == 3:  # the 3-D widths are a subset of the allowed ones
        widths = (8, 16)
    net = Supernet(d, 2, 3, widths, head=head)
    _train_some_paths(net, d, steps=12)
    net.eval()
    rng = random.Random(1)
    archs = [net.sample(rng) for _ in range(10)]
    archs.append(Architecture(d, 2, 3, ("Identity",) * len(widths), (0,) * len(widths), head))
    for a in archs:
        x = torch.randn(2, 2, *(8,) * d)
        sub = net.subnet(a).eval()
        assert sub.arch_id == a.id
        diff = (net(x, a) - sub(x)).abs().max().item()
        assert diff <= 1e-6, (a.label, diff)
        # the subnet is a plain candidate that owns copies, not views
        assert all(not p.requires_grad or p.grad is None for p in sub.parameters())


def test_weights_are_shared_across_paths_and_off_path_weights_do_not_move():
    torch.manual_seed(0)
    net = Supernet(2, 1, 2, (8, 16))
    a = Architecture(2, 1, 2, ("C", "E"), (8, 16))
    b = Architecture(2, 1, 2, ("Identity", "E"), (0, 16))   # level 1 block E sees 1 input channel
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    opt.zero_grad(set_to_none=True)
    net.train()
    net(torch.randn(2, 1, 8, 8), b).sum().backward()
    opt.step()
    after = net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert "blocks.1_E.0.weight" in moved and "blocks.0_C.0.weight" not in moved
    # only the first input channel of the shared E weight took part in path b
    w0, w1 = before["blocks.1_E.0.weight"], after["blocks.1_E.0.weight"]
    assert not torch.equal(w0[:, :1], w1[:, :1]) and torch.equal(w0[:, 1:], w1[:, 1:])
    # path a uses the same tensor at full width: its subnet carries the update
    assert torch.equal(net.subnet(a).levels[1].block[0].weight, w1)


def test_supernet_rejects_foreign_architectures():
    net = Supernet(2, 1, 3, (8, 16))
    with pytest.raises(UserError, match="width 32 at level 1"):
        net.subnet(Architecture(2, 1, 3, ("C", "C"), (8, 32)))
    with pytest.raises(UserError, match="depth 3"):
        net.subnet(Architecture(2, 1, 3, ("C", "C", "C"), (8, 16, 16)))
    with pytest.raises(UserError, match="out_channels=2"):
        net.subnet(Architecture(2, 1, 2, ("C",), (8,)))
    assert net.space_size() == 8 + 64


@pytest.fixture(scope="module")
def tiny_task():
    return get_task("synthetic-2d", size=16, n_train=8, n_val=4, n_test=2, seed=0)


@pytest.fixture(scope="module")
def trained(tiny_task):
    cfg = SupernetConfig(epochs=2, batch_size=4, seed=3, progress=False)
    return train_supernet(tiny_task, cfg, widths=(8, 16))


def test_training_is_seeded_and_checkpoints_round_trip(trained, tiny_task, tmp_path):
    again = train_supernet(tiny_task, SupernetConfig(epochs=2, batch_size=4, seed=3, progress=False), widths=(8, 16))
    for (k, v), w in zip(trained.supernet.state_dict().items(), again.supernet.state_dict().values()):
        assert torch.equal(v, w), k
    assert trained.metrics["steps"] == 4 and len(trained.metrics["history"]) == 2
    path = save_supernet(tmp_path / "sn.pt", trained)
    back = load_supernet(path)
    assert back.seed == 3 and back.task_spec == tiny_task.spec and back.recipe["kind"] == "supernet-single-path"
    a = back.supernet.sample(5)
    x = torch.randn(1, 1, 16, 16)
    assert torch.equal(back.supernet(x, a), trained.supernet.eval()(x, a))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a supernet checkpoint"):
        load_supernet(tmp_path / "bad.pt")


def test_bn_recalibration_sets_statistics_from_the_train_split(trained, tiny_task):
    a = Architecture(2, 1, 3, ("C", "E"), (8, 16))
    sub = trained.supernet.subnet(a)
    recalibrate_bn(sub, tiny_task, batch_size=8)
    bn = sub.levels[0].block[1]
    x = torch.stack([tiny_task.dataset("train")[i]["image"] for i in range(8)])
    with torch.no_grad():
        pre = sub.levels[0].block[0](x)
    assert torch.allclose(bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, pre.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    assert not sub.training


def test_rank_check_reports_tau_b(trained, tiny_task):
    df, s = rank_check(trained, tiny_task, k=4, epochs=1, seed=0, batch_size=4, progress=False)
    assert len(df) == 4 and df["arch_id"].is_unique
    assert -1.0 <= s["tau_b"] <= 1.0 and s["k"] == 4 and s["epochs"] == 1 and s["wall_s"] > 0
    assert df["supernet_score"].between(0, 1).all() and df["standalone_score"].between(0, 1).all()
    from scipy.stats import kendalltau
    assert s["tau_b"] == pytest.approx(kendalltau(df["supernet_score"], df["standalone_score"]).statistic, nan_ok=True)


def test_cli_train_rank_subnet_and_bad_input(tmp_path, monkeypatch, capsys, tiny_task):
    sn = tmp_path / "sn.pt"
    res = runner.invoke(app, ["supernet", "train", "--task", "synthetic-2d", "-o", "size=16", "-o", "n_train=4",
                              "-o", "n_val=2", "--widths", "8,16", "--epochs", "1", "--batch-size", "4",
                              "--out", str(sn)])
    assert res.exit_code == 0, res.output
    assert "supernet over 72 architectures" in res.output and sn.is_file()
    arch = tmp_path / "a.json"
    arch.write_text(Architecture(2, 1, 3, ("C", "Identity"), (8, 0)).to_json())
    res = runner.invoke(app, ["supernet", "subnet", "--supernet", str(sn), "--arch", str(arch),
                              "--out", str(tmp_path / "m.pt")])
    assert res.exit_code == 0, res.output
    from analogmed.train import load_checkpoint
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck.model_id == Architecture.from_dict(json.loads(arch.read_text())).id
    res = runner.invoke(app, ["supernet", "rank", "--supernet", str(sn), "--k", "2", "--epochs", "1",
                              "--batch-size", "4", "--out", str(tmp_path / "rank.csv")])
    assert res.exit_code == 0, res.output
    assert "Kendall tau-b" in res.output and json.loads((tmp_path / "rank.json").read_text())["k"] == 2
    # bad input: one line, exit 2, nothing written
    for args, needle in [
        (["supernet", "rank", "--supernet", str(arch)], "not a supernet checkpoint"),
        (["supernet", "train", "--task", "synthetic-2d", "--widths", "8,x"], "--widths"),
        (["supernet", "train", "--task", "synthetic-2d", "--widths", "8,12", "--out", str(tmp_path / "no.pt")],
         "width 12"),
        (["supernet", "train", "--task", "synthetic-2d", "--blocks", "C,H", "--out", str(tmp_path / "no.pt")],
         "3-D block"),
    ]:
        code, cap = _run_main(monkeypatch, capsys, *args)
        assert code == 2 and needle in cap.err and cap.err.count("\n") == 1, (args, cap.err)
    assert not (tmp_path / "no.pt").exists()


def _run_main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["analogmed", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()
