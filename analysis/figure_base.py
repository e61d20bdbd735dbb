"""What a figure is (:class:`Figure`, :class:`FigureSet`), how one becomes PNG bytes (matplotlib, Agg),
and the one visual language every figure speaks.

Shared by :mod:`analysis.cell_figures`, :mod:`analysis.umap_grid` and :mod:`analysis.paper_figures`;
:mod:`analysis.figures` re-exports :class:`Figure` and :class:`FigureSet`.

**The visual language** (every figure, so that one reads like the next):

* one colour per method (:data:`METHOD_COLORS`, :func:`method_color`): Sup blue, SCL orange, and
  the self-supervised methods their own; no method is red;
* PIEs are red in the scatters (the other samples in their method's colour);
* shared vs unique PIEs as the paper's Figure 4: the PIEs a method shares with the other method(s)
  at the same schedule and sparsity in **strong** colour at the bottom of the bar, the ones only it
  has in a **light** shade of the same colour on top (:func:`shared_unique_bars`);
* classes by their names wherever the dataset's datamodule declares them
  (:func:`analysis.images.class_labels`), else by index, and the figure's note says which.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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


#: one colour per method, in every figure (no method is red: red marks PIEs)
METHOD_COLORS = {
    "sup": "tab:blue",
    "supcon": "tab:orange",
    "simclr": "tab:green",
    "byol": "tab:purple",
    "sdclr": "tab:brown",
}
_SPARE_COLORS = ("tab:olive", "tab:cyan", "tab:pink", "tab:gray")
PIE_COLOR = "tab:red"
#: alpha of the light shade (PIEs of one method only) against the strong colour (shared PIEs)
LIGHT = 0.35


def method_color(method: str) -> str:
    """The method's colour; an unknown method gets a spare colour fixed by its name."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _SPARE_COLORS[sum(map(ord, method)) % len(_SPARE_COLORS)]


def shared_unique_bars(ax, bars, class_names) -> None:  # type: ignore[no-untyped-def]
    """Grouped per-class bars, one per method: ``bars`` = ``[(method, label, shared [C], total [C]), ...]``.

    The shared part (PIEs also of another method at the same schedule and sparsity) in the method's
    strong colour at the bottom, the rest (PIEs of this method only) in its light shade on top — the
    paper's Figure 4 convention. ``shared`` may be None (no other method there): the whole bar is
    then this method's only, light.
    """
    classes = np.arange(len(class_names))
    width = 0.8 / max(1, len(bars))
    for i, (method, label, shared, total) in enumerate(bars):
        x = classes - 0.4 + width * (i + 0.5)
        color = method_color(method)
        base = np.zeros(len(classes)) if shared is None else np.asarray(shared)
        if shared is not None:
            ax.bar(x, base, width, color=color, edgecolor=color, label=f"{label}: shared")
        only = f"{label}: only" if shared is not None else f"{label}: all its own (no other method here)"
        ax.bar(x, np.asarray(total) - base, width, bottom=base, color=color, alpha=LIGHT, edgecolor=color, label=only)
    ax.set_xticks(classes, labels=list(class_names), rotation=45, ha="right", fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


__all__ = ["Figure", "FigureSet", "LIGHT", "METHOD_COLORS", "PIE_COLOR", "method_color", "shared_unique_bars"]
