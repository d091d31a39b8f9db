"""The model zoo: MONAI networks by name, 2D and 3D, with "small" (CPU) and "base" presets.

Pyramidal (encoder-decoder CNNs): ``unet`` (monai UNet), ``attention-unet`` (AttentionUnet),
``basic-unet`` (BasicUNet). Isotropic (ViT/Swin encoders): ``unetr`` (UNETR), ``swin-unetr``
(SwinUNETR).

| name | small preset | base preset |
|---|---|---|
| unet | channels 16-32-64-128, strides 2, 1 residual unit | 32-64-128-256-512, 2 residual units |
| attention-unet | channels 16-32-64-128 | 32-64-128-256-512 |
| basic-unet | features 16,16,32,64,128,16 | 32,32,64,128,256,32 (MONAI default) |
| unetr | feature 8, hidden 96, mlp 192, 4 heads | feature 16, hidden 768, mlp 3072, 12 heads (paper) |
| swin-unetr | feature 12, depths 1,1,1,1, heads 3,6,12,24, window 4 | feature 24, depths 2,2,2,2, window 7 |

Constraints: the spatial size must be divisible by 8 (unet/attention-unet small), 16
(basic-unet, unetr: patch 16) and 32 (swin-unetr, which also needs >= 64 per axis: at 32 its
bottleneck is one voxel and InstanceNorm fails in training). ``img_size`` is needed by UNETR only but
recorded for all. Spec: ``{"family": "zoo", "name", "size", "spatial_dims", "in_channels",
"out_channels", "img_size"[, "head": "segmentation"|"classification"]}``. With
``head="classification"`` the logit map is averaged over space -> [B, out_channels].
Output: logits [B, out_channels, *S] for segmentation.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from analogmed.errors import UserError

ZOO_NAMES = ("unet", "attention-unet", "basic-unet", "unetr", "swin-unetr")
PYRAMIDAL = ("unet", "attention-unet", "basic-unet")
ISOTROPIC = ("unetr", "swin-unetr")
SIZES = ("small", "base")
_DIVISOR = {"unet": 8, "attention-unet": 8, "basic-unet": 16, "unetr": 16, "swin-unetr": 32}


class GlobalPoolHead(nn.Module):
    """Wrap a segmentation net for classification: mean of the logit map over space -> [B, K]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.flatten(2).mean(-1)


def _build(name: str, size: str, sd: int, cin: int, cout: int, img_size: tuple[int, ...],
           dropout: float = 0.0) -> nn.Module:
    from monai.networks import nets

    small = size == "small"
    if name == "unet":
        ch = (16, 32, 64, 128) if small else (32, 64, 128, 256, 512)
        return nets.UNet(spatial_dims=sd, in_channels=cin, out_channels=cout, channels=ch,
                         strides=(2,) * (len(ch) - 1), num_res_units=1 if small else 2, dropout=dropout)
    if name == "attention-unet":
        ch = (16, 32, 64, 128) if small else (32, 64, 128, 256, 512)
        return nets.AttentionUnet(spatial_dims=sd, in_channels=cin, out_channels=cout, channels=ch,
                                  strides=(2,) * (len(ch) - 1), dropout=dropout)
    if name == "basic-unet":
        f = (16, 16, 32, 64, 128, 16) if small else (32, 32, 64, 128, 256, 32)
        return nets.BasicUNet(spatial_dims=sd, in_channels=cin, out_channels=cout, features=f, dropout=dropout)
    if name == "unetr":
        kw = dict(feature_size=8, hidden_size=96, mlp_dim=192, num_heads=4) if small else \
            dict(feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12)
        return nets.UNETR(in_channels=cin, out_channels=cout, img_size=img_size, spatial_dims=sd,
                          dropout_rate=dropout, **kw)
    if name == "swin-unetr":
        kw = dict(feature_size=12, depths=(1, 1, 1, 1), window_size=4) if small else \
            dict(feature_size=24, depths=(2, 2, 2, 2), window_size=7)
        return nets.SwinUNETR(in_channels=cin, out_channels=cout, spatial_dims=sd, num_heads=(3, 6, 12, 24),
                              drop_rate=dropout, **kw)
    raise AssertionError(name)


def zoo_spec(name: str, spatial_dims: int, in_channels: int, out_channels: int, img_size,
             size: str = "small", head: str = "segmentation", dropout: float = 0.0) -> dict[str, Any]:
    """The canonical spec dict of a zoo network (``dropout`` > 0: MONAI's dropout, e.g. for MC-dropout)."""
    spec = {"family": "zoo", "name": name, "size": size, "spatial_dims": int(spatial_dims),
            "in_channels": int(in_channels), "out_channels": int(out_channels),
            "img_size": [int(s) for s in img_size]}
    if head != "segmentation":
        spec["head"] = head
    if dropout:
        spec["dropout"] = float(dropout)
    return spec


def build_zoo(spec: dict[str, Any]) -> nn.Module:
    """Build a zoo network from its spec (see module docstring); UserError on bad values."""
    name = spec.get("name")
    if name not in ZOO_NAMES:
        raise UserError(f"unknown zoo model {name!r}; valid models: {', '.join(ZOO_NAMES)}")
    size = spec.get("size", "small")
    if size not in SIZES:
        raise UserError(f"model {name}: unknown size preset {size!r}; use small or base")
    sd = spec.get("spatial_dims")
    if sd not in (2, 3):
        raise UserError(f"model {name}: spatial_dims must be 2 or 3, not {sd!r}")
    cin, cout = int(spec.get("in_channels", 1)), int(spec.get("out_channels", 2))
    img_size = tuple(int(s) for s in spec.get("img_size") or (64,) * sd)
    if len(img_size) != sd:
        raise UserError(f"model {name}: img_size {list(img_size)} must have {sd} entries")
    div = _DIVISOR[name]
    if name == "swin-unetr" and min(img_size) < 64:  # its 1-voxel bottleneck breaks InstanceNorm
        raise UserError(f"model swin-unetr: image size {list(img_size)} must be >= 64 per axis; "
                        "resample the task (size=64 or more)")
    if any(s % div for s in img_size):
        raise UserError(f"model {name}: image size {list(img_size)} must be divisible by {div}; "
                        f"resample the task (size=...) to a multiple of {div}")
    dropout = float(spec.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"model {name}: dropout {dropout} must be in [0, 1)")
    net = _build(name, size, sd, cin, cout, img_size, dropout)
    head = spec.get("head", "segmentation")
    if head == "classification":
        return GlobalPoolHead(net)
    if head != "segmentation":
        raise UserError(f"model {name}: head must be segmentation or classification, not {head!r}")
    return net
