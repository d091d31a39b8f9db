"""Where the shipped data folders (``hardware/``, ``digital/``, ``studies/``) live.

In a checkout (editable install) they are the top-level folders of the repository; in an
installed wheel they are packaged as ``analogmed/_shipped/<name>``. Both give the same files.
"""
from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder of shipped files ``name`` (``hardware``, ``digital`` or ``studies``)."""
    for cand in (_PKG / "_shipped" / name, _PKG.parent / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"analogmed data folder {name!r} not found (broken install?)")


def cache_dir() -> Path:
    """Per-user cache for derived artefacts (demo checkpoints, resampled volumes).

    ``ANALOGMED_CACHE`` overrides the default ``~/.cache/analogmed``.
    """
    root = Path(os.environ.get("ANALOGMED_CACHE", Path.home() / ".cache" / "analogmed"))
    root.mkdir(parents=True, exist_ok=True)
    return root
