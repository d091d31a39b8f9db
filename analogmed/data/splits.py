"""Deterministic, seeded train/val/test splits.

* :func:`block_split` -- for items along an axis (slices of one volume): consecutive items form
  blocks of ``block`` items; ``gap`` items between neighbouring blocks are dropped, so no item of
  one split touches an item of another. Blocks are dealt in groups of ``group`` consecutive blocks:
  in each group one seeded block goes to val, another to test and the rest to train, so every
  split spans the whole axis.
* :func:`case_split` -- for independent cases (patients): a seeded permutation cut by fractions.
"""
from __future__ import annotations

import numpy as np

from analogmed.seeding import derive_seed


def block_split(n: int, block: int, gap: int, seed: int, group: int = 5) -> dict[str, list[int]]:
    """Split item indices ``0..n-1`` into blocks with gaps (see module docstring).

    Returns ``{"train": [...], "val": [...], "test": [...]}`` of sorted indices.
    """
    blocks = []
    start = 0
    while start + block <= n:
        blocks.append(list(range(start, start + block)))
        start += block + gap
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    rng = np.random.default_rng(derive_seed(seed, "block_split"))
    for g0 in range(0, len(blocks), group):
        members = list(range(g0, min(g0 + group, len(blocks))))
        order = list(rng.permutation(members))
        roles = {}
        if len(members) >= 3:
            roles[order[0]], roles[order[1]] = "val", "test"
        for b in members:
            out[roles.get(b, "train")].extend(blocks[b])
    return {k: sorted(v) for k, v in out.items()}


def case_split(n: int, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
               ) -> dict[str, list[int]]:
    """Seeded split of ``n`` independent cases by ``fractions`` (train, val, test).

    With ``n >= 3`` every split gets at least one case.
    """
    perm = np.random.default_rng(derive_seed(seed, "case_split")).permutation(n).tolist()
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_train = max(n - n_val - n_test, 0)
    return {"train": sorted(perm[:n_train]), "val": sorted(perm[n_train:n_train + n_val]),
            "test": sorted(perm[n_train + n_val:n_train + n_val + n_test])}
