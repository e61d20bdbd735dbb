"""What a figure is (:class:`Figure`, :class:`FigureSet`) and how one becomes PNG bytes (matplotlib, Agg).

Shared by :mod:`analysis.cell_figures`, :mod:`analysis.umap_grid` and :mod:`analysis.paper_figures`;
:mod:`analysis.figures` re-exports :class:`Figure` and :class:`FigureSet`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """A PNG written under ``<out>/figures``: its file name, title and one line on how it was made."""

    name: str
    title: str
    how: str
    png: bytes = field(repr=False)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.name
        path.write_bytes(self.png)
        return path


@dataclass
class FigureSet:
    """The figures made plus what could not be drawn and why (reported, never faked)."""

    figures: list[Figure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig, *, rect: tuple[float, float, float, float] | None = None) -> bytes:
    plt = _plt()
    try:
        fig.tight_layout(rect=rect)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        return buffer.getvalue()
    finally:
        plt.close(fig)


__all__ = ["Figure", "FigureSet"]
