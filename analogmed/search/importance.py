"""Block importance over a trained supernet and the cross-task similarity of an op (MT-MIAS).

**Block importance** (the talk, after Redman et al., ICLR 2022): ``s_{l,o} = |w^{(l+1)}|^T s_{l+1}``,
computed bottom to top. Our reading (every choice is in ``docs/search.md``):

* ``u_l`` (length ``widths[l]``) is the importance of the output channels of level ``l``. The
  bottom (deepest) level starts with ``u_{D-1} = 1``.
* Every op ``o`` of level ``l`` is reduced to a non-negative matrix ``M_{l,o}`` ``[out, in]``:
  ``|W|`` summed over the kernel positions for a conv, ``|W|`` for the per-voxel Linear (A); a
  BatchNorm that follows a layer scales its rows by ``|gamma| / sqrt(running_var + eps)``; a double
  block (F, G, L, M) is the product ``M_2 M_1``. Identity passes ``u_l`` through (its first channels).
* The op's input-channel importance is ``v_{l,o} = M_{l,o}^T u_l`` and its **score**
  ``s_{l,o} = sum(v_{l,o})``.
* Going up one level: ``u_{l-1}`` is the mean of ``v_{l,o}`` over the level's ops (every op equally
  likely, as in single-path training), cut to ``widths[l-1]`` channels and normalised to mean 1
  (the scale of a level does not change which op wins inside it).

**Task similarity** ``sigma_{l,o}`` (MT-MIAS): the cosine similarity between the weights of the same
op trained in two task supernets, each op's last layer with its output rows scaled by that task's
channel importance ``u_{t,l}`` (the talk's ``s_{t,l,o} * w_o``); averaged over task pairs. A
weightless op (Identity) gets the mean ``sigma`` of the weighted ops of its level (neutral).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn

from analogmed.space.blocks import IDENTITY

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, _LAYERS + (nn.modules.batchnorm._BatchNorm,))]


@torch.no_grad()
def op_matrix(module: nn.Module) -> torch.Tensor:
    """The non-negative matrix ``[out, in]`` of a block (see the module docstring)."""
    total = None
    for m in _layers(module):
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            scale = (m.weight.abs() if m.weight is not None else torch.ones_like(m.running_var))
            scale = scale / torch.sqrt(m.running_var + m.eps)
            total = scale[:, None] * total
            continue
        w = m.weight.detach().abs().float()
        mat = w.flatten(2).sum(2) if w.dim() > 2 else w
        total = mat if total is None else mat @ total
    if total is None:
        raise ValueError("op_matrix: the module has no Conv/Linear layer")
    return total


def _last_weight(module: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach().float() for m in module.modules() if isinstance(m, _LAYERS)]


@dataclass
class Importance:
    """Block importance of one supernet.

    ``score[(l, letter)]``: ``s_{l,o}`` (float); ``channels[l]``: ``u_l`` (tensor ``[widths[l]]``).
    """

    score: dict[tuple[int, str], float] = field(default_factory=dict)
    channels: dict[int, torch.Tensor] = field(default_factory=dict)

    def to_rows(self) -> list[dict]:
        return [{"level": lv, "op": o, "importance": s} for (lv, o), s in sorted(self.score.items())]


@torch.no_grad()
def block_importance(supernet) -> Importance:
    """``s_{l,o}`` for every (level, op) of a trained supernet, bottom to top (module docstring)."""
    widths, letters = list(supernet.widths), list(supernet.letters)
    out = Importance()
    u = torch.ones(widths[-1])
    for lv in range(len(widths) - 1, -1, -1):
        out.channels[lv] = u.clone()
        mats = {o: op_matrix(supernet.blocks[f"{lv}_{o}"]) for o in letters if o != IDENTITY}
        cin = next(iter(mats.values())).shape[1] if mats else len(u)
        vs = []
        for o in letters:
            if o == IDENTITY:
                v = torch.zeros(cin)
                k = min(cin, len(u))
                v[:k] = u[:k]
            else:
                v = mats[o].T @ u
            out.score[(lv, o)] = float(v.sum())
            vs.append(v)
        if lv > 0:
            nxt = torch.stack(vs).mean(0)[:widths[lv - 1]]
            u = nxt / nxt.mean().clamp_min(1e-12)
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@torch.no_grad()
def task_similarity(supernets, importances: list[Importance]) -> dict[tuple[int, str], float]:
    """``sigma_{l,o}``: mean pairwise cosine similarity of the importance-weighted weights of the same op
    across task supernets (module docstring); 1.0 for every op with a single task."""
    s0 = supernets[0]
    out: dict[tuple[int, str], float] = {}
    for lv in range(len(s0.widths)):
        weighted = [o for o in s0.letters if o != IDENTITY]
        for o in weighted:
            vecs = []
            for sn, imp in zip(supernets, importances):
                ws = _last_weight(sn.blocks[f"{lv}_{o}"])
                u = imp.channels[lv]
                last = ws[-1] * u.view(-1, *([1] * (ws[-1].dim() - 1)))
                vecs.append(torch.cat([w.flatten() for w in ws[:-1]] + [last.flatten()]))
            pairs = list(itertools.combinations(range(len(vecs)), 2))
            out[(lv, o)] = (sum(_cos(vecs[i], vecs[j]) for i, j in pairs) / len(pairs)) if pairs else 1.0
        if IDENTITY in s0.letters:
            vals = [out[(lv, o)] for o in weighted]
            out[(lv, IDENTITY)] = sum(vals) / len(vals) if vals else 1.0
    return out


__all__ = ["Importance", "block_importance", "op_matrix", "task_similarity"]
