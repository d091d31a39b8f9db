"""Model zoo: every network builds and runs a forward in 2D and 3D; specs, ids, bad input."""
import pytest
import torch

from analogmed.errors import UserError
from analogmed.models import build_model, model_id
from analogmed.models.zoo import ZOO_NAMES, zoo_spec


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_model_forward_2d_3d(name, spatial_dims):
    size = 64 if (spatial_dims == 2 or name == "swin-unetr") else 32
    shape = (size,) * spatial_dims
    torch.manual_seed(0)
    model = build_model(zoo_spec(name, spatial_dims, 2, 3, shape)).eval()
    with torch.no_grad():
        y = model(torch.randn((1, 2) + shape))
    assert y.shape == (1, 3) + shape
    assert torch.isfinite(y).all()


def test_classification_head_and_train_mode_forward():
    model = build_model(zoo_spec("unet", 2, 1, 14, (32, 32), head="classification"))
    y = model(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 14)
    y.sum().backward()  # trainable end to end


def test_model_id_stable_and_distinct():
    a = zoo_spec("unet", 2, 1, 3, (64, 64))
    assert model_id(a) == model_id(dict(reversed(list(a.items()))))
    assert model_id(a) != model_id(zoo_spec("unet", 2, 1, 3, (64, 64), size="base"))
    assert model_id(a).startswith("zoo-unet-")


def test_base_preset_is_larger():
    small = build_model(zoo_spec("basic-unet", 2, 1, 3, (64, 64)))
    base = build_model(zoo_spec("basic-unet", 2, 1, 3, (64, 64), size="base"))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(base) > 3 * n(small)


def test_bad_specs():
    with pytest.raises(UserError, match="unknown zoo model 'resnet'"):
        build_model(zoo_spec("resnet", 2, 1, 3, (64, 64)))
    with pytest.raises(UserError, match="unknown model family"):
        build_model({"family": "magic"})
    with pytest.raises(UserError, match="divisible by 16"):
        build_model(zoo_spec("unetr", 2, 1, 3, (40, 40)))
    with pytest.raises(UserError, match=">= 64"):
        build_model(zoo_spec("swin-unetr", 3, 1, 3, (32, 32, 32)))
    with pytest.raises(UserError, match="size preset"):
        build_model(zoo_spec("unet", 2, 1, 3, (64, 64), size="huge"))
