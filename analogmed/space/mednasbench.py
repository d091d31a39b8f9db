"""MED-NAS-Bench ``sampleN.json`` configs as the 2-D networks the prototype built.

The public MED-NAS-Bench prototype (GitHub ``IHIaadj/med_nas_bench``) publishes 1000 configs,
``models/configs/sample0.json`` ... ``sample999.json``: ``{id, name, metrics, params, model_size,
arch_config{blocks: [inner, outer]}}``. They were written by ``models/RecursiveUNet.py`` (class
``RUNet`` with ``num_downs=1``), which built each model, ran it on 64x64 hippocampus slices and
counted ``params`` = its trainable parameters. **Their ``metrics`` are not measurements** (the
prototype draws them at random): only the architecture is imported. ``params`` is ground truth
for the structure, and :func:`describe` compares it with the built model.

The network (``docs/space.md`` has the full account), for outer width ``C`` and inner width ``D``
(``D = 2C`` in every published file):

* outer ``conv1`` (in -> C), ``conv2`` (C -> C) at full resolution -> skip tensor ``s``;
* inner block on ``s``: optional ``pool`` (max or avg, k2 s2), ``conv1`` (C -> D), ``conv2``
  (D -> D), ``upconv`` = ``ConvTranspose2d(D, C, 2, stride 2)``, then a **centre crop** back to
  ``s``'s size (without a pool the inner block runs at full resolution, up-samples x2 and keeps
  the central half), then ``cat([s, crop])``;
* outer ``conv3`` (2C -> C), ``conv4`` (C -> C), ``upconv`` = the 1x1 ``Conv2d(C, classes)``.

A Contract/Expand unit is a ``Conv2d`` (bias, stride 1, dilation ``d``), an activation
(``relu``, ``relu6``, anything else the prototype built as ``LeakyReLU(0.01)``; we accept
``LeakyRelu``) and, for Contract with ``use_bn``, a non-affine ``InstanceNorm2d`` (no
parameters). ``order`` 1 = conv-norm-act, 2 = act-conv-norm, 3 = norm(in channels)-act-conv;
without a norm 2 and 3 are both act-conv (Expand never has a norm).

Two prototype facts the JSON does not show, both reproduced:

* the inner block also builds Expand ``conv3`` (2D -> D) and ``conv4`` (D -> D) that its forward
  never runs (its JSON writes ``{}`` for them); their weights count in ``params``. We keep them
  as plain parameters in :attr:`MedNasBenchUNet.unused` (counted, never run, not mapped to analog
  tiles by :func:`analogmed.analog.to_analog`). Their kernel sizes are the outer block's
  ``conv3``/``conv4`` ones (the prototype shares one setting list between both blocks).
* its activations are in-place: when the inner block has no pool and its ``conv1`` starts with
  the activation (order 2, or order 3 without norm), that activation also rewrites the skip
  tensor, so the concatenation sees ``act(s)``, not ``s``.

Padding: the prototype hard-codes ``padding=1`` for every conv, so 5x5 and dilated convs shrink
the map and its outputs are smaller than its inputs for most configs (sample0: 64x64 -> 52x52).
The default ``padding="same"`` pads ``d*(k-1)/2`` instead (the "same" padding scaled by dilation
of the layer classes the JSON names, ``layers.Contract``/``Expand``), so the output has the
input's size; parameters are identical. ``padding="prototype"`` reproduces the literal one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analogmed.errors import UserError
from analogmed.space.blocks import MaxPool2dK2

#: Activation names as the prototype writes them -> module factories.
ACTIVATIONS = {"relu": lambda: nn.ReLU(), "relu6": lambda: nn.ReLU6(), "LeakyRelu": lambda: nn.LeakyReLU(0.01)}
#: ``order`` -> op sequence (the norm is left out when ``use_bn`` is false or for Expand).
ORDERS = {1: ("conv", "norm", "act"), 2: ("act", "conv", "norm"), 3: ("norm", "act", "conv")}
PADDINGS = ("same", "prototype")
#: Keys of a sampleN.json that :func:`load_mednasbench` keeps (``params`` only for the check).
IMPORTED_KEYS = ("id", "name", "params", "arch_config")
#: The published schema: allowed fields of each part (anything else is refused).
TOP_FIELDS = ("id", "name", "metrics", "params", "model_size", "arch_config")
BLOCK_FIELDS = ("name", "type", "pool", "conv1", "conv2", "conv3", "conv4", "upconv")
CONTRACT_FIELDS = ("name", "in_channels", "out_channels", "kernel_size", "stride", "dilation", "use_bn",
                   "act_func", "order")
EXPAND_FIELDS = tuple(f for f in CONTRACT_FIELDS if f != "use_bn")
UPCONV_FIELDS = ("name", "in_channels", "out_channels", "kernel_size", "stride")
POOL_FIELDS = ("name", "in_channels", "out_channels", "pool_type", "kernel_size", "stride")
#: The prototype's layer class name of each part (``name`` field).
NAMES = {"block": "UnetSkipConnectionBlock", "contract": "Contract", "expand": "Expand",
         "inner upconv": "TransposeConv2D", "outer upconv": "Contract", "pool": "PoolingLayer"}


def _err(where: str, msg: str) -> UserError:
    return UserError(f"MED-NAS-Bench config: {where}: {msg}")


def _check_fields(d: Any, allowed: tuple[str, ...], where: str, name: str | None = None) -> dict:
    if not isinstance(d, dict):
        raise _err(where, f"must be a JSON object, not {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise _err(where, f"unknown field(s) {', '.join(map(repr, unknown))}; the published schema has "
                   f"{', '.join(allowed)}")
    if name is not None and "name" in d and d["name"] != name:
        raise _err(where, f"name {d['name']!r} must be {name!r}")
    return d


def _int_field(d: dict, key: str, where: str, default: Any = None) -> int:
    if key not in d and default is None:
        raise _err(where, f"missing {key}")
    v = d.get(key, default)
    if isinstance(v, (list, tuple)):  # [d, d] as the prototype writes a dilation
        if len(v) != 2 or v[0] != v[1]:
            raise _err(where, f"{key} {v!r} must be one integer or [n, n]")
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise _err(where, f"{key} must be a positive integer, not {v!r}")
    return v


class ConvUnit(nn.Module):
    """One Contract/Expand unit of the prototype: conv, optional norm and activation in ``order``.

    ``padding`` ``"same"``: ``dilation*(k-1)/2`` (size kept); ``"prototype"``: 1 (the prototype's).
    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H', W']`` with ``H' = H`` (same) or
    ``H' = H + 2 - dilation*(k-1)`` (prototype).
    """

    def __init__(self, cfg: Any, where: str, expand: bool, padding: str = "same"):
        super().__init__()
        cfg = _check_fields(cfg, EXPAND_FIELDS if expand else CONTRACT_FIELDS, where,
                            NAMES["expand" if expand else "contract"])
        cin, cout = _int_field(cfg, "in_channels", where), _int_field(cfg, "out_channels", where)
        k = _int_field(cfg, "kernel_size", where)
        if k % 2 == 0:
            raise _err(where, f"kernel_size must be odd (the prototype samples 3 or 5), not {k}")
        if _int_field(cfg, "stride", where, 1) != 1:
            raise _err(where, f"stride must be 1 (the prototype never strides), not {cfg['stride']!r}")
        dil = _int_field(cfg, "dilation", where, 1)
        act = cfg.get("act_func", "relu")
        if act not in ACTIVATIONS:
            raise _err(where, f"act_func {act!r} is not relu, relu6 or LeakyRelu")
        order = cfg.get("order", 1)
        if isinstance(order, bool) or order not in ORDERS:
            raise _err(where, f"order {order!r} must be 1 (conv-norm-act), 2 (act-conv-norm) or 3 (norm-act-conv)")
        use_bn = False if expand else cfg.get("use_bn", False)
        if not isinstance(use_bn, bool):
            raise _err(where, f"use_bn must be true or false, not {use_bn!r}")
        self.in_channels, self.out_channels, self.kernel_size, self.dilation = cin, cout, k, dil
        self.pad = dil * (k - 1) // 2 if padding == "same" else 1
        layers: list[nn.Module] = []
        for step in ORDERS[order]:
            if step == "conv":
                layers.append(nn.Conv2d(cin, cout, k, padding=self.pad, dilation=dil))
            elif step == "norm" and use_bn:
                layers.append(nn.InstanceNorm2d(cin if order == 3 else cout))
            elif step == "act":
                layers.append(ACTIVATIONS[act]())
        self.body = nn.Sequential(*layers)

    @property
    def leading_activation(self) -> nn.Module | None:
        """The activation when it is the unit's first op (the prototype then rewrites its input in place)."""
        first = self.body[0]
        return None if isinstance(first, (nn.Conv2d, nn.InstanceNorm2d)) else first

    def out_size(self, n: int) -> int:
        """Spatial size after the unit for input size ``n`` (pixels)."""
        return n + 2 * self.pad - self.dilation * (self.kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _pool(cfg: Any, cin: int, cout: int) -> nn.Module | None:
    where = "inner pool"
    if cfg == {}:
        return None
    cfg = _check_fields(cfg, POOL_FIELDS, where, NAMES["pool"])
    if _int_field(cfg, "kernel_size", where, 2) != 2 or _int_field(cfg, "stride", where, 2) != 2:
        raise _err(where, "kernel_size and stride must be 2 (the prototype's PoolingLayer)")
    for key, want in (("in_channels", cin), ("out_channels", cout)):
        if key in cfg and cfg[key] != want:
            raise _err(where, f"{key} {cfg[key]!r} must be the inner block's {key}, {want}")
    kind = cfg.get("pool_type")
    if kind == "max":
        return MaxPool2dK2()
    if kind == "avg":
        return nn.AvgPool2d(2, 2, count_include_pad=False)
    raise _err(where, f"pool_type {kind!r} must be 'max' or 'avg'")


def _upconv(cfg: Any, where: str, kernel: int, stride: int) -> tuple[int, int]:
    cfg = _check_fields(cfg, UPCONV_FIELDS, where, NAMES[where])
    cin, cout = _int_field(cfg, "in_channels", where), _int_field(cfg, "out_channels", where)
    if _int_field(cfg, "kernel_size", where, kernel) != kernel or _int_field(cfg, "stride", where, stride) != stride:
        raise _err(where, f"kernel_size and stride must be {kernel} and {stride} (the prototype's)")
    return cin, cout


def centre_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The prototype's centre crop: ``[B, C, H, W] -> [B, C, height, width]``, offset ``(H - height) // 2``."""
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    return x[:, :, top:top + height, left:left + width]


class MedNasBenchUNet(nn.Module):
    """The two-level U-Net of a MED-NAS-Bench config, as the prototype built it (module docstring).

    Input ``[B, in_channels, H, W]``; output logits ``[B, out_channels, H', W']`` with
    ``H' = H`` for ``padding="same"`` (:meth:`out_size` gives it; :meth:`check_size` says which
    sizes are accepted). ``config_id`` / ``config_name``: the file's ``id`` / ``name``.
    """

    def __init__(self, config: dict, padding: str = "same"):
        super().__init__()
        if padding not in PADDINGS:
            raise UserError(f"MED-NAS-Bench padding {padding!r} must be 'same' or 'prototype'")
        inner, outer = _blocks(config)
        self.padding = padding
        self.config_id, self.config_name = config.get("id"), config.get("name")
        self.outer_conv1 = ConvUnit(outer["conv1"], "outer conv1", False, padding)
        self.outer_conv2 = ConvUnit(outer["conv2"], "outer conv2", False, padding)
        self.inner_pool = _pool(inner["pool"], self.outer_conv2.out_channels,
                                _int_field(inner["conv1"], "out_channels", "inner conv1"))
        self.inner_conv1 = ConvUnit(inner["conv1"], "inner conv1", False, padding)
        self.inner_conv2 = ConvUnit(inner["conv2"], "inner conv2", False, padding)
        for key in ("conv3", "conv4"):
            if inner[key] != {}:
                raise _err(f"inner {key}", "must be {} (the prototype writes {} for the inner block's Expand convs)")
        self.inner_up = nn.ConvTranspose2d(*_upconv(inner["upconv"], "inner upconv", 2, 2), kernel_size=2, stride=2)
        self.outer_conv3 = ConvUnit(outer["conv3"], "outer conv3", True, padding)
        self.outer_conv4 = ConvUnit(outer["conv4"], "outer conv4", True, padding)
        self.head = nn.Conv2d(*_upconv(outer["upconv"], "outer upconv", 1, 1), kernel_size=1)
        self.in_channels = self.outer_conv1.in_channels
        self.out_channels = self.head.out_channels
        c, d = self.outer_conv2.out_channels, self.inner_conv1.out_channels
        chain = [("outer conv2", self.outer_conv2.in_channels, "outer conv1", self.outer_conv1.out_channels),
                 ("inner conv1", self.inner_conv1.in_channels, "outer conv2", c),
                 ("inner conv2", self.inner_conv2.in_channels, "inner conv1", d),
                 ("inner upconv", self.inner_up.in_channels, "inner conv2", self.inner_conv2.out_channels),
                 ("outer conv3", self.outer_conv3.in_channels, "outer conv2 + inner upconv",
                  c + self.inner_up.out_channels),
                 ("outer conv4", self.outer_conv4.in_channels, "outer conv3", self.outer_conv3.out_channels),
                 ("outer upconv", self.head.in_channels, "outer conv4", self.outer_conv4.out_channels)]
        for a, ca, b, cb in chain:
            if ca != cb:
                raise _err(a, f"in_channels {ca} does not match {b} out_channels {cb}; fix the channels")
        if self.inner_conv2.out_channels != d:
            raise _err("inner conv2", f"out_channels {self.inner_conv2.out_channels} must equal inner conv1's, {d}")
        # the inner block's Expand convs: built by the prototype, never run (counted in its params)
        conv3 = nn.Conv2d(2 * d, d, self.outer_conv3.kernel_size)  # default init, as the prototype's
        conv4 = nn.Conv2d(d, d, self.outer_conv4.kernel_size)
        self.unused = nn.ParameterDict({"inner_conv3_weight": conv3.weight, "inner_conv3_bias": conv3.bias,
                                        "inner_conv4_weight": conv4.weight, "inner_conv4_bias": conv4.bias})
        # in-place activation of the prototype: without a pool it also rewrites the skip tensor
        self.skip_act = self.inner_conv1.leading_activation if self.inner_pool is None else None

    # ------------------------------------------------------------------ sizes
    def _sizes(self, n: int) -> tuple[int, int] | None:
        """(skip size, output size) along one spatial dim of size ``n``, or None if the prototype fails."""
        s = self.outer_conv2.out_size(self.outer_conv1.out_size(n))
        if s < 1:
            return None
        h = s // 2 if self.inner_pool is not None else s
        h = self.inner_conv2.out_size(self.inner_conv1.out_size(h)) if h >= 1 else 0
        if h < 1 or 2 * h < s:  # the up-sampled map must cover the skip for the centre crop
            return None
        out = self.outer_conv4.out_size(self.outer_conv3.out_size(s))
        return (s, out) if out >= 1 else None

    def accepted_sizes(self) -> str:
        """Which spatial sizes (pixels, per dim) this network accepts, in words."""
        ok = [n for n in range(1, 257) if self._sizes(n) is not None]
        if not ok:
            return "no size up to 256"
        even = all(n % 2 == 0 for n in ok) and len(ok) > 1
        return f"{'even ' if even else ''}sizes >= {ok[0]}"

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        """Output spatial size for an input of ``height x width`` pixels; UserError if not accepted."""
        self.check_size(height, width)
        return self._sizes(height)[1], self._sizes(width)[1]

    def check_size(self, height: int, width: int) -> None:
        """UserError naming the accepted sizes when ``height x width`` does not fit the network."""
        if self._sizes(height) is None or self._sizes(width) is None:
            raise UserError(f"MED-NAS-Bench model {self.config_name or ''} does not accept input size "
                            f"{height}x{width}: it takes {self.accepted_sizes()} (padding {self.padding})")

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, H, W] -> [B, out_channels, H', W']`` logits (``H' = H`` with same padding)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise UserError(f"MED-NAS-Bench model expects [B, {self.in_channels}, H, W]; got {list(x.shape)}")
        self.check_size(x.shape[2], x.shape[3])
        s = self.outer_conv2(self.outer_conv1(x))
        h = self.inner_pool(s) if self.inner_pool is not None else s
        u = centre_crop(self.inner_up(self.inner_conv2(self.inner_conv1(h))), s.shape[2], s.shape[3])
        skip = self.skip_act(s) if self.skip_act is not None else s
        return self.head(self.outer_conv4(self.outer_conv3(torch.cat([skip, u], dim=1))))


def _blocks(config: Any) -> tuple[dict, dict]:
    if not isinstance(config, dict):
        raise UserError(f"MED-NAS-Bench config must be a JSON object, not {type(config).__name__}")
    _check_fields(config, TOP_FIELDS, "top level")
    arch = config.get("arch_config")
    if not isinstance(arch, dict) or set(arch) != {"blocks"}:
        raise UserError("MED-NAS-Bench config: arch_config must be an object with just 'blocks'")
    blocks = arch["blocks"]
    if not isinstance(blocks, list) or len(blocks) != 2 or not all(isinstance(b, dict) for b in blocks):
        raise UserError("MED-NAS-Bench config: arch_config.blocks must be a list [inner, outer] of two blocks "
                        "(the prototype's published configs are all two-level)")
    types = [b.get("type") for b in blocks]
    if types != ["inner", "outer"]:
        raise UserError(f"MED-NAS-Bench config: block types {types} must be ['inner', 'outer']")
    for where, blk in zip(("inner block", "outer block"), blocks):
        _check_fields(blk, BLOCK_FIELDS, where, NAMES["block"])
        missing = [k for k in BLOCK_FIELDS[2:] if k not in blk]
        if missing:
            raise _err(where, f"missing {', '.join(missing)}")
    if blocks[1]["pool"] != {}:
        raise _err("outer pool", "must be {} (the prototype's outermost block never pools)")
    return blocks[0], blocks[1]


def _config_of(spec: Any) -> tuple[dict, str]:
    if not isinstance(spec, dict):
        raise UserError("a mednasbench model spec must be a dict with a 'config' entry")
    config = spec.get("config", spec if "arch_config" in spec else None)
    if config is None:
        raise UserError("a 'mednasbench' model spec needs a 'config' entry (the sampleN.json content)")
    return config, spec.get("padding", "same") if "config" in spec else "same"


def build_mednasbench(spec: dict) -> MedNasBenchUNet:
    """Build ``{"family": "mednasbench", "config": <sampleN.json dict>[, "padding": "same"|"prototype"]}``
    (``config`` may also be the dict itself). Its ``metrics`` are ignored (not measurements)."""
    config, padding = _config_of(spec)
    return MedNasBenchUNet(config, padding)


def read_config(path: str | os.PathLike) -> dict:
    """Parse a ``sampleN.json`` (any JSON value; :func:`build_mednasbench` checks it). UserError if unreadable."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"MED-NAS-Bench file {p} does not exist or is not a file; pass a sampleN.json")
    try:
        return json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"MED-NAS-Bench file {p} is not UTF-8 text (binary?); pass a sampleN.json") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"MED-NAS-Bench file {p} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                        f"is it truncated?") from None
    except OSError as exc:
        raise UserError(f"cannot read MED-NAS-Bench file {p} ({exc.strerror}); check its permissions") from None


def load_mednasbench(path: str | os.PathLike, padding: str = "same") -> dict:
    """Read a ``sampleN.json`` and return the model spec ``{"family": "mednasbench", "config": ...}``.

    Only :data:`IMPORTED_KEYS` are kept (``metrics`` and ``model_size`` are dropped, so two files that
    differ only in their numbers give one model id); ``"padding": "prototype"`` is added only when
    asked. The spec is validated by building it once; bad files raise :class:`UserError`.
    """
    config = read_config(path)
    if padding not in PADDINGS:
        raise UserError(f"MED-NAS-Bench padding {padding!r} must be 'same' or 'prototype'")
    try:
        with torch.device("meta"):  # validates the full published schema (no weights allocated)
            MedNasBenchUNet(config, padding)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    config = {k: v for k, v in config.items() if k in IMPORTED_KEYS}
    spec: dict[str, Any] = {"family": "mednasbench", "config": config}
    if padding != "same":
        spec["padding"] = padding
    return spec


def count_params(model: nn.Module) -> int:
    """Trainable parameters, counted as the prototype counted ``params``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(spec: dict, model: MedNasBenchUNet | None = None) -> dict[str, Any]:
    """Id, name, channels, accepted sizes, output size for 64x64 and parameter counts beside the file's ``params``.

    ``params_built`` counts every trainable parameter (as the prototype did, so it should equal
    ``params_in_file``); ``params_unused`` is the part in the never-run inner Expand convs.
    """
    if model is None:
        with torch.device("meta"):  # counts and sizes only: no weights allocated
            model = build_mednasbench(spec)
    m = model
    cfg = spec.get("config", spec)
    return {"id": cfg.get("id"), "name": cfg.get("name"), "in_channels": m.in_channels,
            "out_channels": m.out_channels, "pool": type(m.inner_pool).__name__ if m.inner_pool else "none",
            "padding": m.padding, "sizes": m.accepted_sizes(),
            "out_at_64": m.out_size(64, 64) if m._sizes(64) is not None else None, "params_built": count_params(m),
            "params_unused": sum(p.numel() for p in m.unused.values()), "params_in_file": cfg.get("params")}


def check_config(path: str | os.PathLike, padding: str = "same", size: tuple[int, int] = (64, 64)) -> dict[str, Any]:
    """Import one ``sampleN.json``, build it with weights, compare parameters and run one forward.

    ``size``: input height x width (pixels); the input is ``randn(1, in_channels, *size)`` from the
    global torch generator (seed it). Returns ``{path, imported, params_built, params_in_file,
    params_match, out_shape, forward_ok, problem}`` where ``forward_ok`` means the output is
    ``[1, out_channels, *size]`` and ``problem`` is "" or one line saying what failed.
    """
    row: dict[str, Any] = {"path": str(path), "imported": False, "params_built": None, "params_in_file": None,
                           "params_match": False, "out_shape": None, "forward_ok": False, "problem": ""}
    try:
        spec = load_mednasbench(path, padding)
    except UserError as exc:
        row["problem"] = f"import: {exc}"
        return row
    row["imported"] = True
    model = build_mednasbench(spec).eval()
    row["params_built"], row["params_in_file"] = count_params(model), spec["config"].get("params")
    row["params_match"] = row["params_built"] == row["params_in_file"]
    problems = [] if row["params_match"] else [
        f"params {row['params_built']} but the file says {row['params_in_file']}"]
    try:
        with torch.no_grad():
            row["out_shape"] = tuple(model(torch.randn(1, model.in_channels, *size)).shape)
        row["forward_ok"] = row["out_shape"] == (1, model.out_channels, *size)
        if not row["forward_ok"]:
            problems.append(f"forward gives {list(row['out_shape'])}, not {[1, model.out_channels, *size]}")
    except (UserError, RuntimeError) as exc:
        problems.append(f"forward: {type(exc).__name__}: {exc}".splitlines()[0])
    row["problem"] = "; ".join(problems)
    return row


__all__ = ["ConvUnit", "MedNasBenchUNet", "build_mednasbench", "centre_crop", "check_config", "count_params",
           "describe", "load_mednasbench", "read_config"]
