"""MED-NAS-Bench ``sampleN.json`` configs as buildable 2-D models.

The public MED-NAS-Bench prototype publishes one JSON per sampled architecture:
``{id, name, metrics{dcs, jcs, sensitivity, specificity}, params, model_size,
arch_config{blocks: [inner, outer]}}``. **Their ``metrics`` are not measurements** (the prototype
draws them at random): :func:`build_mednasbench` imports the architecture only and ignores the
numbers; ``params`` is only compared with the built model by :func:`describe` as a sanity check.

Each block is ``{name: "UnetSkipConnectionBlock", type: "inner"|"outer", pool, conv1, conv2,
conv3, conv4, upconv}``. Our reading of it (a two-level U-Net, 2-D):

* ``conv1``, ``conv2`` (``"Contract"``) and ``conv3``, ``conv4`` (``"Expand"``): a
  ``nn.Conv2d(in_channels, out_channels, kernel_size, stride, dilation, padding=dilation*(k-1)//2)``
  with an activation (``relu`` -> ReLU, ``relu6`` -> ReLU6, ``LeakyRelu`` -> LeakyReLU(0.01)) and,
  for Contract with ``use_bn`` true, an ``nn.InstanceNorm2d`` (affine) -- the prototype's
  normalisation is instance norm; Expand has no ``use_bn`` field and no norm. ``order``: 1 =
  conv-norm-act, 2 = act-conv-norm, 3 = norm-act-conv (the norm then acts on the input channels).
* outer block: ``x -> conv1 -> conv2 = s``; ``pool`` (if given, max or average k2 s2) then the
  inner block; ``cat(s, inner) -> conv3 -> conv4 -> upconv`` where ``upconv`` is the final 1x1
  conv to the classes.
* inner block: ``pool`` (if given) on its input, ``conv1 -> conv2``, then ``upconv`` =
  ``nn.ConvTranspose2d(k2, s2)`` back to the outer resolution; its ``conv3``/``conv4`` are ``{}``.

Exactly one down-sampling step (an outer or inner ``pool``, or strides) must be undone by the
inner ``upconv``; channel and shape mismatches raise :class:`UserError` at build time.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analogmed.errors import UserError

ACTIVATIONS = {"relu": lambda: nn.ReLU(), "relu6": lambda: nn.ReLU6(), "leakyrelu": lambda: nn.LeakyReLU(0.01)}
ORDERS = {1: ("conv", "norm", "act"), 2: ("act", "conv", "norm"), 3: ("norm", "act", "conv")}
#: Keys of a sampleN.json that :func:`load_mednasbench` keeps (``params`` only for the sanity check).
IMPORTED_KEYS = ("id", "name", "params", "arch_config")


def _err(where: str, msg: str) -> UserError:
    return UserError(f"MED-NAS-Bench config: {where}: {msg}")


def _int_field(d: dict, key: str, where: str, default: Any = None) -> int:
    v = d.get(key, default)
    if isinstance(v, (list, tuple)):  # [d, d] or [k, k]
        if len(v) != 2 or v[0] != v[1]:
            raise _err(where, f"{key} {v!r} must be one integer or [n, n]")
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _err(where, f"{key} must be a positive integer, not {v!r}")
    return v


class ConvUnit(nn.Module):
    """One Contract/Expand unit: conv, optional instance norm and activation in ``order``.

    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H/stride, W/stride]``.
    """

    def __init__(self, cfg: dict, where: str, with_norm: bool):
        super().__init__()
        missing = [k for k in ("in_channels", "out_channels") if k not in cfg]
        if missing:
            raise _err(where, f"missing {', '.join(missing)}")
        cin, cout = _int_field(cfg, "in_channels", where), _int_field(cfg, "out_channels", where)
        k = _int_field(cfg, "kernel_size", where, 3)
        if k not in (1, 3, 5):
            raise _err(where, f"kernel_size must be 3 or 5, not {k}")
        stride = _int_field(cfg, "stride", where, 1)
        dil = _int_field(cfg, "dilation", where, 1)
        act = str(cfg.get("act_func", "relu")).lower().replace("_", "")
        if act not in ACTIVATIONS:
            raise _err(where, f"act_func {cfg.get('act_func')!r} is not relu, relu6 or LeakyRelu")
        order = cfg.get("order", 1)
        if order not in ORDERS:
            raise _err(where, f"order {order!r} must be 1 (conv-norm-act), 2 (act-conv-norm) or 3 (norm-act-conv)")
        use_norm = with_norm and bool(cfg.get("use_bn", False))
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        layers: list[nn.Module] = []
        for step in ORDERS[order]:
            if step == "conv":
                layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=dil * (k - 1) // 2, dilation=dil))
            elif step == "norm" and use_norm:
                layers.append(nn.InstanceNorm2d(cin if order == 3 else cout, affine=True))
            elif step == "act":
                layers.append(ACTIVATIONS[act]())
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _pool(cfg: Any, where: str) -> nn.Module | None:
    if not cfg:
        return None
    if not isinstance(cfg, dict):
        raise _err(where, f"pool must be {{}} or a PoolingLayer object, not {cfg!r}")
    kind = str(cfg.get("pool_type", "max")).lower()
    k = _int_field(cfg, "kernel_size", where, 2)
    s = _int_field(cfg, "stride", where, 2)
    if kind.startswith("max"):
        return nn.MaxPool2d(k, s)
    if kind.startswith("av"):
        return nn.AvgPool2d(k, s)
    raise _err(where, f"pool_type {cfg.get('pool_type')!r} must be max or avg")


class MedNasBenchUNet(nn.Module):
    """The two-level U-Net of a MED-NAS-Bench config (module docstring).

    Input ``[B, in_channels, H, W]`` (H, W multiples of the down-sampling factor); output logits
    ``[B, out_channels, H, W]``. ``config_id`` / ``config_name``: the file's ``id`` / ``name``.
    """

    def __init__(self, config: dict):
        super().__init__()
        inner, outer = _blocks(config)
        self.config_id, self.config_name = config.get("id"), config.get("name")
        self.outer_conv1 = ConvUnit(outer["conv1"], "outer conv1", True)
        self.outer_conv2 = ConvUnit(outer["conv2"], "outer conv2", True)
        self.outer_pool = _pool(outer.get("pool"), "outer pool")
        self.inner_pool = _pool(inner.get("pool"), "inner pool")
        self.inner_conv1 = ConvUnit(inner["conv1"], "inner conv1", True)
        self.inner_conv2 = ConvUnit(inner["conv2"], "inner conv2", True)
        for key in ("conv3", "conv4"):
            if inner.get(key):
                raise _err(f"inner {key}", "the inner block has no Expand convs; leave it {}")
        up = inner.get("upconv") or {}
        self.inner_up = nn.ConvTranspose2d(_int_field(up, "in_channels", "inner upconv"),
                                           _int_field(up, "out_channels", "inner upconv"),
                                           _int_field(up, "kernel_size", "inner upconv", 2),
                                           stride=_int_field(up, "stride", "inner upconv", 2))
        self.outer_conv3 = ConvUnit(outer["conv3"], "outer conv3", False)
        self.outer_conv4 = ConvUnit(outer["conv4"], "outer conv4", False)
        head = outer.get("upconv") or {}
        self.head = nn.Conv2d(_int_field(head, "in_channels", "outer upconv"),
                              _int_field(head, "out_channels", "outer upconv"), kernel_size=1)
        self.in_channels = self.outer_conv1.in_channels
        self.out_channels = self.head.out_channels
        chain = [("outer conv2", self.outer_conv2.in_channels, "outer conv1", self.outer_conv1.out_channels),
                 ("inner conv1", self.inner_conv1.in_channels, "outer conv2", self.outer_conv2.out_channels),
                 ("inner conv2", self.inner_conv2.in_channels, "inner conv1", self.inner_conv1.out_channels),
                 ("inner upconv", self.inner_up.in_channels, "inner conv2", self.inner_conv2.out_channels),
                 ("outer conv3", self.outer_conv3.in_channels, "outer conv2 + inner upconv",
                  self.outer_conv2.out_channels + self.inner_up.out_channels),
                 ("outer conv4", self.outer_conv4.in_channels, "outer conv3", self.outer_conv3.out_channels),
                 ("outer upconv", self.head.in_channels, "outer conv4", self.outer_conv4.out_channels)]
        for a, ca, b, cb in chain:
            if ca != cb:
                raise _err(a, f"in_channels {ca} does not match {b} out_channels {cb}; fix the channels")
        self.factor = ((2 if self.outer_pool else 1) * (2 if self.inner_pool else 1)
                       * self.inner_conv1.stride * self.inner_conv2.stride)
        if self.outer_conv1.stride * self.outer_conv2.stride != 1 or self.factor != 2:
            raise _err("pool/stride", f"the inner block runs at 1/{self.factor} of the outer resolution but its "
                       f"upconv restores x2 (outer convs must have stride 1); use exactly one pool")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % 2 or x.shape[3] % 2:
            raise UserError(f"MED-NAS-Bench model expects [B, {self.in_channels}, H, W] with even H, W; "
                            f"got {list(x.shape)}")
        s = self.outer_conv2(self.outer_conv1(x))
        h = self.outer_pool(s) if self.outer_pool is not None else s
        h = self.inner_pool(h) if self.inner_pool is not None else h
        u = self.inner_up(self.inner_conv2(self.inner_conv1(h)))
        y = self.outer_conv4(self.outer_conv3(torch.cat([s, u], dim=1)))
        return self.head(y)


def _blocks(config: Any) -> tuple[dict, dict]:
    if not isinstance(config, dict):
        raise UserError(f"MED-NAS-Bench config must be a JSON object, not {type(config).__name__}")
    arch = config.get("arch_config")
    blocks = arch.get("blocks") if isinstance(arch, dict) else None
    if not isinstance(blocks, list) or len(blocks) != 2 or not all(isinstance(b, dict) for b in blocks):
        raise UserError("MED-NAS-Bench config: arch_config.blocks must be a list [inner, outer] of two blocks")
    by_type = {b.get("type"): b for b in blocks}
    if set(by_type) != {"inner", "outer"}:
        raise UserError(f"MED-NAS-Bench config: block types {[b.get('type') for b in blocks]} must be inner and outer")
    inner, outer = by_type["inner"], by_type["outer"]
    for where, blk, keys in (("inner", inner, ("conv1", "conv2", "upconv")),
                             ("outer", outer, ("conv1", "conv2", "conv3", "conv4", "upconv"))):
        for k in keys:
            if not isinstance(blk.get(k), dict) or not blk.get(k):
                raise _err(f"{where} block", f"missing {k}")
    return inner, outer


def build_mednasbench(spec: dict) -> MedNasBenchUNet:
    """Build ``{"family": "mednasbench", "config": <sampleN.json dict>}`` (``config`` may also be the
    dict itself). Its ``metrics`` are ignored (not measurements)."""
    if not isinstance(spec, dict):
        raise UserError("a mednasbench model spec must be a dict with a 'config' entry")
    config = spec.get("config", spec if "arch_config" in spec else None)
    if config is None:
        raise UserError("a 'mednasbench' model spec needs a 'config' entry (the sampleN.json content)")
    return MedNasBenchUNet(config)


def load_mednasbench(path: str | os.PathLike) -> dict:
    """Read a ``sampleN.json`` and return the model spec ``{"family": "mednasbench", "config": ...}``.

    Only :data:`IMPORTED_KEYS` are kept (``metrics`` and ``model_size`` are dropped, so two files that
    differ only in their numbers give one model id). The spec is validated by building it once; malformed or truncated files raise :class:`UserError`.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"MED-NAS-Bench file {p} does not exist; pass a sampleN.json")
    try:
        config = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"MED-NAS-Bench file {p} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                        f"is it truncated?") from None
    if isinstance(config, dict):  # architecture only: the published metrics are not measurements
        config = {k: v for k, v in config.items() if k in IMPORTED_KEYS}
    spec = {"family": "mednasbench", "config": config}
    try:
        build_mednasbench(spec)
    except UserError as exc:
        raise UserError(f"{p}: {exc}") from None
    return spec


def describe(spec: dict) -> dict[str, Any]:
    """Id, name, channels and parameter count of a config, with the file's own ``params`` (unchecked)."""
    m = build_mednasbench(spec)
    cfg = spec["config"]
    return {"id": cfg.get("id"), "name": cfg.get("name"), "in_channels": m.in_channels,
            "out_channels": m.out_channels, "downsampling": m.factor,
            "params_built": sum(p.numel() for p in m.parameters()), "params_in_file": cfg.get("params")}


__all__ = ["ConvUnit", "MedNasBenchUNet", "build_mednasbench", "describe", "load_mednasbench"]
