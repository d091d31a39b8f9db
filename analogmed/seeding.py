"""Seeding: every random draw in analogmed goes through a recorded seed."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``seed`` and return it (for recording)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return seed


def derive_seed(base: int, *keys: int | str) -> int:
    """A deterministic child seed from ``base`` and ``keys`` (e.g. repetition index).

    Stable across processes and Python versions (no ``hash()`` randomisation).
    """
    import hashlib

    h = hashlib.sha256(repr((int(base),) + tuple(keys)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
