"""MT-MIAS-C's deployable supernet: "the smallest supernet that is completely deployable, each sub-network
trained on a different task" (the talk), as an output of an ``mt-mias-c`` run.

Our reading (every choice is in ``docs/search.md``):

* Every task gets **its own** sub-network, chosen among the run's evaluated architectures (the run
  evaluates every architecture on every task, so ``alpha_t(A)`` is known for each task ``t``).
* A **deployable supernet** ``S`` is a set of blocks per level, ``S_l``; it *contains* a sub-network
  ``A`` when ``A_l`` is in ``S_l`` at each of ``A``'s levels. The supernet that deploys the choices
  ``(A_1, ..., A_T)`` is the per-level union ``S_l = {A_t[l] : depth(A_t) > l}``. A block is stored
  once per (level, op): the tasks share its weights, which is MT-MIAS's assumption (``sigma`` measures
  how alike the weights of an op trained on different tasks are).
* Budgets: each task's sub-network has latency ``<= max_latency_ms`` on the platform (one inference at
  the task's input size, batch 1); the supernet's weight count ``params(S) <= max_params`` (when given).
  ``params(S)`` = the weights of every (level, op) of ``S`` (block + its up-sampling counterpart, the
  supernet's full tensors) + the fuse convolutions of the levels that have a deeper level + one
  segmentation head per task. Identity has no weights.
* Quality: task ``t`` may use any architecture within ``tolerance`` of its best alpha under the latency
  budget (``alpha_t(A) >= best_t - tolerance``).
* **The smallest**: among the combinations of admissible sub-networks that fit the budgets, the one with
  the fewest blocks ``sum_l |S_l|``, then the fewest weights, then the highest mean alpha, then the
  labels in alphabetical order (a deterministic answer).
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from typing import Callable, Sequence

from analogmed.space.blocks import IDENTITY

#: At most this many combinations are enumerated; beyond it each task keeps its best-alpha candidates.
MAX_COMBINATIONS = 200_000


@dataclass
class Deployable:
    """The answer: one sub-network per task and the supernet that holds them.

    ``choices[t]``: the canonical key (tuple of letters) of task ``t``; ``alpha[t]``, ``latency_ms[t]``;
    ``levels[l]``: sorted blocks of level ``l``; ``n_blocks``; ``params``; ``feasible`` False (with
    ``reason``) when no combination fits the budgets.
    """

    choices: list[tuple[str, ...]] = field(default_factory=list)
    alpha: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    levels: list[list[str]] = field(default_factory=list)
    n_blocks: int = 0
    params: int = 0
    feasible: bool = True
    reason: str = ""
    combinations: int = 0

    def level_text(self) -> str:
        """``"L0: B,C; L1: Identity"``."""
        return "; ".join(f"L{lv}: {','.join(bs)}" for lv, bs in enumerate(self.levels))


def union_levels(keys: Sequence[tuple[str, ...]]) -> list[list[str]]:
    """Per level, the sorted set of blocks the keys use (the deployable supernet of these sub-networks)."""
    depth = max(len(k) for k in keys)
    return [sorted({k[lv] for k in keys if len(k) > lv}) for lv in range(depth)]


def supernet_params(levels: Sequence[Sequence[str]], block_params: Callable[[int, str], int],
                    fixed_params: Callable[[int], int] | None = None) -> int:
    """Weights of a deployable supernet: ``block_params(l, o)`` over its blocks (Identity: 0) +
    ``fixed_params(depth)`` (fuses and heads)."""
    n = sum(block_params(lv, o) for lv, ops in enumerate(levels) for o in ops if o != IDENTITY)
    return n + (fixed_params(len(levels)) if fixed_params else 0)


def smallest_deployable(candidates: Sequence[Sequence[tuple[tuple[str, ...], float, float]]],
                        block_params: Callable[[int, str], int], fixed_params: Callable[[int], int] | None = None,
                        max_latency_ms: float | None = None, max_params: int | None = None,
                        tolerance: float = 0.0) -> Deployable:
    """The smallest deployable supernet (module docstring).

    Args:
        candidates: per task, ``(key, alpha, latency_ms)`` of every evaluated architecture.
        block_params: weights of block ``o`` at level ``l`` (with its up-sampling counterpart).
        fixed_params: weights that do not depend on the blocks, given the supernet's depth.
        max_latency_ms: per-task latency budget (ms); ``max_params``: weight budget of the supernet.
        tolerance: a task may use any candidate within this much of its best alpha under the latency budget.
    """
    admissible = []
    for t, cands in enumerate(candidates):
        uniq: dict[tuple[str, ...], tuple[float, float]] = {}
        for key, a, lat in cands:
            uniq[tuple(key)] = (float(a), float(lat))
        fit = [(k, a, lat) for k, (a, lat) in uniq.items() if max_latency_ms is None or lat <= max_latency_ms]
        if not fit:
            return Deployable(feasible=False, reason=f"no candidate of task {t} fits {max_latency_ms} ms")
        best = max(a for _, a, _ in fit)
        ok = sorted([c for c in fit if c[1] >= best - tolerance - 1e-12], key=lambda c: (-c[1], c[2], c[0]))
        admissible.append(ok)
    total = 1
    for ok in admissible:
        total *= len(ok)
    if total > MAX_COMBINATIONS:  # keep each task's best candidates (by alpha) so the product fits
        keep = max(1, int(MAX_COMBINATIONS ** (1.0 / len(admissible))))
        admissible = [ok[:keep] for ok in admissible]
    best_key, best = None, None
    n = 0
    for combo in itertools.product(*admissible):
        n += 1
        keys = [c[0] for c in combo]
        levels = union_levels(keys)
        params = supernet_params(levels, block_params, fixed_params)
        if max_params is not None and params > max_params:
            continue
        rank = (sum(len(ls) for ls in levels), params, -statistics.fmean(c[1] for c in combo),
                tuple("-".join(k) for k in keys))
        if best_key is None or rank < best_key:
            best_key, best = rank, (combo, levels, params)
    if best is None:
        return Deployable(feasible=False, combinations=n,
                          reason=f"no combination of admissible sub-networks fits {max_params} weights")
    combo, levels, params = best
    return Deployable([c[0] for c in combo], [c[1] for c in combo], [c[2] for c in combo], levels,
                      sum(len(ls) for ls in levels), params, True, "", n)


def space_block_params(supernet) -> Callable[[int, str], int]:
    """``block_params`` of a supernet: the weights of ``blocks[l_o]`` and ``ups[l_o]`` (full tensors)."""
    def count(lv: int, o: str) -> int:
        n = 0
        for mods in (supernet.blocks, getattr(supernet, "ups", {})):
            key = f"{lv}_{o}"
            if key in mods:
                n += sum(p.numel() for p in mods[key].parameters())
        return n
    return count


def space_fixed_params(supernets) -> Callable[[int], int]:
    """``fixed_params`` of a multi-task deployment: the fuses of the levels with a deeper level (shared) and
    one head per task (each task's own classes)."""
    s0 = supernets[0]

    def count(depth: int) -> int:
        n = sum(sum(p.numel() for p in s0.fuses[str(lv)].parameters()) for lv in range(depth - 1)
                if str(lv) in s0.fuses)
        for sn in supernets:
            n += sum(p.numel() for p in sn.heads.parameters())
        return n
    return count


__all__ = ["Deployable", "MAX_COMBINATIONS", "smallest_deployable", "space_block_params", "space_fixed_params",
           "supernet_params", "union_levels"]
