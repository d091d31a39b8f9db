"""Pareto fronts and the 2-D hypervolume (maximise ``alpha``, minimise latency).

The hypervolume of a set of points ``(alpha, latency_ms)`` is the area they dominate inside the box
``alpha >= alpha_ref`` and ``latency <= lat_ref`` (reference point ``(alpha_ref, lat_ref)``), with the
latency axis divided by ``lat_ref`` so the box has area ``(1 - alpha_ref) x 1`` when alpha <= 1.
Points outside the box add nothing.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def pareto_mask(alpha: Sequence[float], latency: Sequence[float]) -> np.ndarray:
    """True where no other point has ``alpha >=`` and ``latency <=`` with one strict (duplicates both kept)."""
    a, t = np.asarray(alpha, float), np.asarray(latency, float)
    keep = np.ones(len(a), bool)
    for i in range(len(a)):
        dom = (a >= a[i]) & (t <= t[i]) & ((a > a[i]) | (t < t[i]))
        keep[i] = not dom.any()
    return keep


def hypervolume(points: Iterable[tuple[float, float]], alpha_ref: float = 0.0, lat_ref: float = 1.0) -> float:
    """Area dominated by ``points`` ``(alpha, latency_ms)`` above ``alpha_ref`` and below ``lat_ref``,
    latency normalised by ``lat_ref`` (module docstring)."""
    pts = sorted((float(t) / lat_ref, float(a)) for a, t in points if a > alpha_ref and t < lat_ref)
    hv, best = 0.0, alpha_ref
    # sweep latency from low to high: each point adds the strip from its latency to the box edge
    # above the best alpha so far
    for t, a in pts:
        if a > best:
            hv += (1.0 - t) * (a - best)
            best = a
    return hv


def hypervolume_curve(alpha: Sequence[float], latency: Sequence[float], alpha_ref: float = 0.0,
                      lat_ref: float = 1.0) -> list[float]:
    """Hypervolume of the first ``n`` points for ``n = 1..len``."""
    out, pts = [], []
    for a, t in zip(alpha, latency):
        pts.append((a, t))
        out.append(hypervolume(pts, alpha_ref, lat_ref))
    return out


__all__ = ["hypervolume", "hypervolume_curve", "pareto_mask"]
