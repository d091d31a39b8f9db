"""Analog layers aihwkit lacks on its pure-PyTorch tile, built on aihwkit's own machinery.

aihwkit 1.1 runs ``AnalogLinear`` and ``AnalogConv2d`` on the PyTorch tile, but its ``AnalogConv1d``
and ``AnalogConv3d`` need the C++ tile's indexed mode, transposed convolutions have no analog class,
and ``nn.MultiheadAttention`` keeps its projections as raw parameters. This module adds:

- :class:`AnalogConv1dTorch`, :class:`AnalogConv3dTorch`: aihwkit's conv layers with an explicit
  im2col (unfold) forward, so they run on any tile (PyTorch or C++). Weight matrix = the conv
  weight ``[out, in * prod(kernel)]``, exactly as aihwkit lays out ``AnalogConv2d``.
- :class:`AnalogConvTranspose2d`, :class:`AnalogConvTranspose3d`: a transposed convolution is
  one MVM per *input* voxel, ``cols = W^T x`` with ``W^T`` of shape ``[out * prod(kernel), in]``,
  followed by col2im (overlap-add of the kernel footprints). The MVM runs on an analog tile; the
  overlap-add and the bias are digital periphery (the bias is added once per output voxel, as
  aihwkit's ``digital_bias`` does for every other layer).
- :class:`SplitMultiheadAttention`: a digital drop-in for ``nn.MultiheadAttention`` whose q/k/v/out
  projections are ordinary ``nn.Linear`` modules, so aihwkit's conversion turns them analog.

All classes derive from :class:`aihwkit.nn.modules.base.AnalogLayerBase` with an ``analog_module``
tile, so ``program_analog_weights``, ``drift_analog_weights``, ``analog_tiles()``, tile splitting
(``TileModuleArray`` under ``mapping.max_input_size/max_output_size``), input-range calibration and
aihwkit's summaries treat them like aihwkit's own layers.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Type

import torch
import torch.nn.functional as F
from aihwkit.nn import AnalogConv1d, AnalogConv3d
from aihwkit.nn.modules.base import AnalogLayerBase
from aihwkit.nn.modules.conv import _AnalogConvNd
from torch.nn.modules.utils import _single, _triple
from torch import Tensor, nn


def im2col(x: Tensor, kernel_size: Tuple[int, ...], stride: Tuple[int, ...], padding: Tuple[int, ...],
           dilation: Tuple[int, ...]) -> Tuple[Tensor, Tuple[int, ...]]:
    """Unfold an N-d input into convolution columns.

    x: [B, C, *S] (N = len(S) spatial dims). Returns (columns [B, L, C * prod(kernel)], output
    spatial shape) where L is the number of output positions (row-major over the output grid) and the
    column order is (C, k_1, ..., k_N), matching ``conv.weight.reshape(out, -1)``.
    """
    n = len(kernel_size)
    if any(p > 0 for p in padding):
        pads = []
        for p in reversed(padding):
            pads += [p, p]
        x = F.pad(x, pads)
    for i in range(n):
        span = dilation[i] * (kernel_size[i] - 1) + 1
        x = x.unfold(2 + i, span, stride[i])  # [B, C, o_1.., S_rest.., span_1..]
    # x: [B, C, o_1..o_N, span_1..span_N]; keep every dilation-th tap.
    if any(d > 1 for d in dilation):
        idx = [slice(None)] * (2 + n) + [slice(None, None, d) for d in dilation]
        x = x[tuple(idx)]
    b, c = x.shape[:2]
    out_shape = x.shape[2:2 + n]
    perm = [0] + list(range(2, 2 + n)) + [1] + list(range(2 + n, 2 + 2 * n))
    cols = x.permute(*perm).reshape(b, math.prod(out_shape), c * math.prod(kernel_size))
    return cols, tuple(out_shape)


class _UnfoldForwardMixin:
    """Forward of an aihwkit conv layer through :func:`im2col` instead of indexed convolution."""

    NEEDS_INDEXED = False

    def forward(self, x_input: Tensor) -> Tensor:  # [B, C_in, *S] -> [B, C_out, *S_out]
        batched = x_input.dim() == len(self.kernel_size) + 2
        x = x_input if batched else x_input.unsqueeze(0)
        cols, out_shape = im2col(x, self.kernel_size, self.stride, self.padding, self.dilation)
        out = self.analog_module(cols)  # [B, L, C_out]
        out = out.transpose(1, 2).reshape(x.shape[0], self.out_channels, *out_shape)
        return out if batched else out.squeeze(0)


class AnalogConv1dTorch(_UnfoldForwardMixin, AnalogConv1d):
    """aihwkit ``AnalogConv1d`` that runs on the PyTorch tile (im2col forward); dilation allowed."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", rpu_config=None,
                 tile_module_class: Optional[Type] = None):
        _AnalogConvNd.__init__(self, in_channels, out_channels, _single(kernel_size), _single(stride),
                               _single(padding), _single(dilation), False, _single(0), groups, bias,
                               padding_mode, rpu_config, tile_module_class, False)
        self.tensor_view = (-1, 1)


class AnalogConv3dTorch(_UnfoldForwardMixin, AnalogConv3d):
    """aihwkit ``AnalogConv3d`` that runs on the PyTorch tile (im2col forward).

    Memory: the column tensor holds ``B * L * C_in * prod(kernel)`` floats (for a 3x3x3 conv on a
    32^3 patch with 16 input channels: 14 M floats, 57 MB per item). Unlike aihwkit's class it also
    accepts dilation != 1 (the unfold handles it).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", rpu_config=None,
                 tile_module_class: Optional[Type] = None):
        _AnalogConvNd.__init__(self, in_channels, out_channels, _triple(kernel_size), _triple(stride),
                               _triple(padding), _triple(dilation), False, _triple(0), groups, bias,
                               padding_mode, rpu_config, tile_module_class, False)
        self.tensor_view = (-1, 1, 1, 1)


class _AnalogConvTransposeNd(AnalogLayerBase, nn.Module):
    """Transposed convolution on an analog tile (see module docstring).

    The tile holds ``W^T`` with ``out_size = out_channels * prod(kernel)`` rows and
    ``in_size = in_channels`` columns; the bias (``[out_channels]``) is digital.
    """

    SPATIAL_DIMS = 0
    DIGITAL_CLASS: Type[nn.Module] = nn.Module

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, output_padding,
                 dilation, bias: bool, rpu_config=None, tile_module_class: Optional[Type] = None):
        nn.Module.__init__(self)
        n = self.SPATIAL_DIMS
        tup = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * n  # noqa: E731
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = tup(kernel_size), tup(stride), tup(padding)
        self.output_padding, self.dilation = tup(output_padding), tup(dilation)
        AnalogLayerBase.__init__(self)
        if rpu_config is None:
            from aihwkit.simulator.configs import TorchInferenceRPUConfig
            rpu_config = TorchInferenceRPUConfig()
        self.in_features = in_channels
        self.out_features = out_channels * math.prod(self.kernel_size)
        if tile_module_class is None:
            tile_module_class = rpu_config.get_default_tile_module_class(
                out_size=self.out_features, in_size=self.in_features)
        self.analog_module = tile_module_class(self.out_features, self.in_features, rpu_config, False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    # weight layout: torch [in, out, *k]  <->  tile [out * prod(k), in]
    def set_weights(self, weight: Tensor, bias: Optional[Tensor] = None, **kwargs) -> None:
        """Write a torch-layout weight ``[in, out, *kernel]`` (and bias ``[out]``) to the tile."""
        matrix = weight.detach().reshape(self.in_channels, self.out_features).t().contiguous()
        self.analog_module.set_weights(matrix, None, **kwargs)
        if bias is not None and self.bias is not None:
            self.bias.data.copy_(bias.detach())

    def get_weights(self, **kwargs) -> Tuple[Tensor, Optional[Tensor]]:
        """Read the weight back in torch layout ``[in, out, *kernel]`` (and the bias)."""
        matrix, _ = self.analog_module.get_weights(**kwargs)
        weight = matrix.t().reshape(self.in_channels, self.out_channels, *self.kernel_size)
        return weight, None if self.bias is None else self.bias.detach().clone()

    def output_shape(self, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
        """Spatial output shape for a spatial input shape (torch's ConvTranspose formula)."""
        return tuple((s - 1) * st - 2 * p + d * (k - 1) + op + 1 for s, st, p, d, k, op in zip(
            in_shape, self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding))

    def forward(self, x_input: Tensor) -> Tensor:  # [B, C_in, *S] -> [B, C_out, *S_out]
        n = self.SPATIAL_DIMS
        batched = x_input.dim() == n + 2
        x = x_input if batched else x_input.unsqueeze(0)
        b, s_in = x.shape[0], tuple(x.shape[2:])
        flat = x.flatten(2).transpose(1, 2)  # [B, L_in, C_in]
        cols = self.analog_module(flat)  # [B, L_in, C_out * prod(k)]
        cols = cols.reshape(b, *s_in, self.out_channels, *self.kernel_size)
        cols = cols.permute(0, n + 1, *range(1, n + 1), *range(n + 2, 2 * n + 2))  # [B, C, *S_in, *k]
        full = tuple((s - 1) * st + d * (k - 1) + 1 + op for s, st, d, k, op in zip(
            s_in, self.stride, self.dilation, self.kernel_size, self.output_padding))
        out = cols.new_zeros(b, self.out_channels, *full)
        # col2im: every kernel tap k lands at offset k * dilation with step = stride.
        for tap in torch.cartesian_prod(*[torch.arange(k) for k in self.kernel_size]).reshape(
                -1, n).tolist():
            dst = tuple(slice(t * d, t * d + (s - 1) * st + 1, st) for t, d, s, st in zip(
                tap, self.dilation, s_in, self.stride))
            out[(slice(None), slice(None)) + dst] += cols[(Ellipsis,) + tuple(tap)]
        crop = tuple(slice(p, p + o) for p, o in zip(self.padding, self.output_shape(s_in)))
        out = out[(slice(None), slice(None)) + crop]
        if self.bias is not None:
            out = out + self.bias.view(1, -1, *([1] * n))
        return out if batched else out.squeeze(0)

    @classmethod
    def from_digital(cls, module: nn.Module, rpu_config, tile_module_class: Optional[Type] = None):
        """Analog copy of a ``nn.ConvTranspose{2,3}d`` (groups 1, zero padding mode)."""
        if module.groups != 1 or module.padding_mode != "zeros":
            raise ValueError("only groups=1 and padding_mode='zeros' transposed convs can be analog")
        layer = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                    module.padding, module.output_padding, module.dilation, module.bias is not None,
                    rpu_config, tile_module_class)
        layer.set_weights(module.weight, module.bias)
        return layer.to(module.weight.device)

    @classmethod
    def to_digital(cls, module: "_AnalogConvTransposeNd", realistic: bool = False) -> nn.Module:
        """The digital ``nn.ConvTranspose{2,3}d`` with the (optionally noisy) read-back weights."""
        weight, bias = module.get_weights(realistic=realistic)
        layer = cls.DIGITAL_CLASS(module.in_channels, module.out_channels, module.kernel_size,
                                  module.stride, module.padding, module.output_padding, 1,
                                  module.bias is not None, module.dilation)
        layer.weight.data.copy_(weight)
        if bias is not None:
            layer.bias.data.copy_(bias)
        return layer

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}, "
                f"bias={self.bias is not None}")


class AnalogConvTranspose2d(_AnalogConvTransposeNd):
    """Analog ``nn.ConvTranspose2d``: input [B, C_in, H, W] -> [B, C_out, H', W']."""

    SPATIAL_DIMS = 2
    DIGITAL_CLASS = nn.ConvTranspose2d


class AnalogConvTranspose3d(_AnalogConvTransposeNd):
    """Analog ``nn.ConvTranspose3d``: input [B, C_in, D, H, W] -> [B, C_out, D', H', W']."""

    SPATIAL_DIMS = 3
    DIGITAL_CLASS = nn.ConvTranspose3d


class SplitMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with its projections as four ``nn.Linear`` (q, k, v, out).

    Numerically the same module (scaled dot-product attention, softmax, dropout on the weights);
    built from an existing ``nn.MultiheadAttention`` by :meth:`from_mha`. Supports ``batch_first``,
    ``key_padding_mask``, ``attn_mask`` (bool or additive), ``need_weights`` and
    ``average_attn_weights``; not ``add_bias_kv`` / ``add_zero_attn``.
    """

    def __init__(self, embed_dim: int, num_heads: int, kdim: int, vdim: int, bias: bool, dropout: float,
                 batch_first: bool):
        super().__init__()
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @classmethod
    def from_mha(cls, mha: nn.MultiheadAttention) -> "SplitMultiheadAttention":
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv / add_zero_attn are not supported")
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, mha.kdim, mha.vdim, bias, mha.dropout, mha.batch_first)
        e = mha.embed_dim
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                w = mha.in_proj_weight
                new.q_proj.weight.copy_(w[:e]), new.k_proj.weight.copy_(w[e:2 * e]), new.v_proj.weight.copy_(w[2 * e:])
            else:
                new.q_proj.weight.copy_(mha.q_proj_weight)
                new.k_proj.weight.copy_(mha.k_proj_weight)
                new.v_proj.weight.copy_(mha.v_proj_weight)
            if bias:
                b = mha.in_proj_bias
                new.q_proj.bias.copy_(b[:e]), new.k_proj.bias.copy_(b[e:2 * e]), new.v_proj.bias.copy_(b[2 * e:])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new.to(mha.out_proj.weight.device)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True, attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True, is_causal: bool = False):
        """query [B, Lq, E] if batch_first else [Lq, B, E] (or unbatched [Lq, E]); returns
        (output like query, attention weights [B, Lq, Lk] / [B, heads, Lq, Lk] or None)."""
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
            batch_first = False
        else:
            batch_first = self.batch_first
        if not batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        b, lq, lk, h, d = query.shape[0], query.shape[1], key.shape[1], self.num_heads, self.head_dim
        q = self.q_proj(query).reshape(b, lq, h, d).transpose(1, 2)
        k = self.k_proj(key).reshape(b, lk, h, d).transpose(1, 2)
        v = self.v_proj(value).reshape(b, lk, h, d).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # [B, h, Lq, Lk]
        if is_causal and attn_mask is None:
            attn_mask = torch.ones(lq, lk, dtype=torch.bool, device=q.device).triu(1)
        if attn_mask is not None:
            mask = attn_mask if attn_mask.dim() == 2 else attn_mask.reshape(b, h, lq, lk)
            scores = scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        if key_padding_mask is not None:
            kpm = key_padding_mask.reshape(b, 1, 1, lk)
            scores = scores.masked_fill(kpm, float("-inf")) if kpm.dtype == torch.bool else scores + kpm
        attn = scores.softmax(-1)
        attn_d = F.dropout(attn, self.dropout, self.training) if self.dropout > 0 else attn
        out = self.out_proj((attn_d @ v).transpose(1, 2).reshape(b, lq, h * d))
        if not batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1)
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
            if unbatched:
                weights = weights.squeeze(0)
        return out, weights
