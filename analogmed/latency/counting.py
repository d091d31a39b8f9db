"""FLOPs and memory traffic of a torch module, counted from its leaf modules during one forward.

Counts are per inference of the given input (batch included). FLOPs: a multiply-add is 2 FLOPs.
Bytes: fp32 (4 B) reads of every leaf's inputs and weights plus writes of its outputs, i.e. the
DRAM traffic if no activation stayed in cache (an upper bound; the analytical model scales it).
Leaves without a rule (e.g. ``nn.Identity``) count zero FLOPs and only their traffic if they copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

BYTES_PER_ELEMENT = 4  # fp32


@dataclass(frozen=True)
class Counts:
    """Work of one forward: ``flops`` (FLOP), ``bytes`` (B), ``weights`` (parameters) and
    ``kernels`` (leaf modules run, each costs a framework dispatch; identities are free)."""

    flops: float
    bytes: float
    weights: int
    kernels: int = 1

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.flops + other.flops, self.bytes + other.bytes,
                      self.weights + other.weights, self.kernels + other.kernels)


def _numel(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (tuple, list)):
        return sum(_numel(y) for y in x)
    return 0


def _leaf_flops(m: nn.Module, inp, out) -> float:
    n_out = _numel(out)
    n_in = _numel(inp)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        k = math.prod(m.kernel_size) * (m.in_channels // m.groups)
        return 2.0 * k * n_out + (n_out if m.bias is not None else 0)
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        # every input element scatters into k^d x out_channels/groups outputs
        k = math.prod(m.kernel_size) * (m.out_channels // m.groups)
        return 2.0 * k * n_in + (n_out if m.bias is not None else 0)
    if isinstance(m, nn.Linear):
        return 2.0 * m.in_features * n_out + (n_out if m.bias is not None else 0)
    if isinstance(m, nn.modules.batchnorm._BatchNorm) or isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return 2.0 * n_out
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,)
        return float(n_out * math.prod(ks)) if len(ks) > 1 else float(n_in)
    if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.Softmax, nn.Dropout)):
        return float(n_out)
    return 0.0


def _is_leaf(m: nn.Module) -> bool:
    return next(iter(m.children()), None) is None


def count_module(module: nn.Module, *inputs: torch.Tensor) -> Counts:
    """FLOPs, bytes and parameter count of ``module(*inputs)`` (one forward, under no_grad).

    Args:
        module: any torch module (run in eval mode; its training flag is restored).
        inputs: its input tensors, e.g. ``torch.zeros(1, C, H, W)``.
    """
    flops = 0.0
    nbytes = 0.0
    kernels = 0

    def hook(m, inp, out):
        nonlocal flops, nbytes, kernels
        kernels += 0 if isinstance(m, nn.Identity) else 1
        f = _leaf_flops(m, inp, out)
        flops += f
        if f or not isinstance(m, nn.Identity):
            w = sum(p.numel() for p in m.parameters(recurse=False))
            nbytes += BYTES_PER_ELEMENT * (_numel(inp) + _numel(out) + w)

    leaves = [m for m in module.modules() if _is_leaf(m)]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(*inputs)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    if not leaves:
        # a module whose work is done by functional ops (cat, pooling calls): count its I/O
        nbytes = BYTES_PER_ELEMENT * (sum(_numel(x) for x in inputs) + _numel(out))
    weights = sum(p.numel() for p in module.parameters())
    # a module with no leaves does its work in functional calls (torch.cat ...): one kernel;
    # a module made only of nn.Identity runs none
    return Counts(flops=flops, bytes=nbytes, weights=weights, kernels=kernels if leaves else 1)
