"""One paper style for every figure: Okabe-Ito colour-blind-safe palette, PNG + vector PDF.

```python
from analogmed.plots.style import paper_style, color, save_figure
with paper_style():
    fig, ax = plt.subplots(figsize=FIG_SINGLE)
    ...
    paths = save_figure(fig, out_dir / "drift")   # drift.png (300 dpi) and drift.pdf
```
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from analogmed.io import atomic_path  # noqa: E402

#: Okabe & Ito (2008) colour-blind-safe palette (black last).
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
FIG_SINGLE = (3.5, 2.6)   # inches: one journal column
FIG_DOUBLE = (7.0, 3.0)   # inches: full width

_RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.4,
    "lines.markersize": 4, "legend.frameon": False, "savefig.bbox": "tight", "pdf.fonttype": 42,
    "ps.fonttype": 42, "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
}


@contextlib.contextmanager
def paper_style():
    """Context manager applying the house style to figures created inside it."""
    with plt.rc_context(_RC):
        yield


def color(i: int) -> str:
    """The i-th palette colour (cycles)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def marker(i: int) -> str:
    """The i-th marker; shifted once per colour cycle so (colour, marker) pairs stay distinct."""
    return MARKERS[(i + i // len(OKABE_ITO)) % len(MARKERS)]


def save_figure(fig, stem: str | Path, formats=("png", "pdf"), dpi: int = 300) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.pdf`` (atomically) and close it; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
        paths.append(path)
    plt.close(fig)
    return paths
