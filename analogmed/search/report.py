"""Plain-text tables (no extra dependency): a DataFrame as a Markdown table."""
from __future__ import annotations

import pandas as pd


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as a GitHub Markdown table, floats with ``digits`` decimals."""
    def fmt(v):
        if isinstance(v, float):
            return "" if v != v else f"{v:.{digits}f}"
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


__all__ = ["markdown_table"]
