"""Digital training and checkpoints: learns, seeded, round-trips, rejects foreign files."""
import pytest
import torch

from analogmed.data import get_task
from analogmed.errors import UserError
from analogmed.models.zoo import zoo_spec
from analogmed.train import Checkpoint, TrainConfig, load_checkpoint, save_checkpoint, train_model


@pytest.fixture(scope="module")
def trained():
    task = get_task("synthetic-2d", size=32, seed=0, n_train=16, n_val=4, n_test=2, noise_max=0.1)
    spec = zoo_spec("unet", 2, 1, 3, (32, 32))
    cfg = TrainConfig(epochs=12, lr=1e-2, batch_size=4, seed=0, device="cpu", augment=False, progress=False)
    return task, spec, cfg, train_model(spec, task, cfg)


def test_training_learns(trained):
    task, spec, cfg, ckpt = trained
    hist = ckpt.metrics["history"]
    assert hist[-1]["loss"] < 0.6 * hist[0]["loss"]
    assert ckpt.metrics["val"]["score"] > 0.6  # synthetic circles are easy
    assert ckpt.metrics["best_val_score"] == max(h["val_score"] for h in hist)
    assert ckpt.recipe["kind"] == "digital" and ckpt.recipe["epochs"] == 12 and ckpt.seed == 0
    assert ckpt.task_spec == task.spec


def test_checkpoint_roundtrip_rebuilds_model_alone(trained, tmp_path):
    task, spec, cfg, ckpt = trained
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    back = load_checkpoint(path)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(back.model(x), ckpt.model.eval()(x))
    assert back.spec == spec and back.recipe == ckpt.recipe and back.metrics["val"] == ckpt.metrics["val"]
    assert back.task().split_sizes() == task.split_sizes()


def test_training_is_seeded():
    task = get_task("synthetic-2d", size=32, seed=0, n_train=4, n_val=2, n_test=1)
    spec = zoo_spec("unet", 2, 1, 3, (32, 32))
    cfg = dict(epochs=1, lr=1e-3, batch_size=2, device="cpu", progress=False)
    a = train_model(spec, task, TrainConfig(seed=5, **cfg)).model.state_dict()
    b = train_model(spec, task, TrainConfig(seed=5, **cfg)).model.state_dict()
    c = train_model(spec, task, TrainConfig(seed=6, **cfg)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_bad_files(trained, tmp_path):
    task, spec, cfg, ckpt = trained
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not an analogmed checkpoint"):
        load_checkpoint(junk)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an analogmed checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    # a checkpoint whose weights belong to another model
    other = dict(ckpt.__dict__)
    other["spec"] = zoo_spec("unet", 2, 1, 4, (32, 32))  # 4 output channels: last layer differs
    save_checkpoint(tmp_path / "mismatch.pt", Checkpoint(**other))
    with pytest.raises(UserError, match="does not match the model"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_bad_config():
    task = get_task("synthetic-2d", size=32, n_train=2)
    with pytest.raises(UserError, match="epochs"):
        train_model(zoo_spec("unet", 2, 1, 3, (32, 32)), task, TrainConfig(epochs=0))
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            train_model(zoo_spec("unet", 2, 1, 3, (32, 32)), task, TrainConfig(device="cuda"))


def test_classification_training_f1(tmp_path):
    from test_data import make_cxr

    make_cxr(tmp_path, [(p, f) for p in range(1, 9) for f in ("No Finding", "Effusion|Mass")])
    task = get_task("chestxray14", root=str(tmp_path), size=32)
    spec = zoo_spec("unet", 2, 1, 14, (32, 32), head="classification")
    ckpt = train_model(spec, task, TrainConfig(epochs=1, batch_size=4, device="cpu", progress=False))
    val = ckpt.metrics["val"]
    assert len([k for k in val if k.startswith("f1_")]) == 15 and val["score"] == val["f1_macro"]
    assert 0.0 <= val["score"] <= 1.0


def test_run_demo_caches_checkpoint():
    from analogmed.demo import run_demo

    first = run_demo(epochs=2, size=32, progress=False)
    assert not first.cached and first.path.is_file() and set(first.scores) >= {"dice_grey_matter", "dice_white_matter"}
    second = run_demo(epochs=2, size=32, progress=False)
    assert second.cached and second.path == first.path and second.scores == first.scores
    assert run_demo(epochs=3, size=32, progress=False, use_cache=True).path != first.path
