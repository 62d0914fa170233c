"""Saving one chart of a scenario as a picture file.

Owns: `save_chart`, the figure size and resolution of a scenario's single
charts. Must not: import a scenario module or pyplot (it draws on a
`matplotlib.figure.Figure`, so it needs no display), or decide what a
chart shows (the `draw` function it is given does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Dots per inch of every saved chart: sharp on a projector, small on disk.
DPI = 110


def save_chart(
    path: Path, draw: Callable[..., Axes], *args: Any, size: tuple[float, float] = (10, 4.5)
) -> Path:
    """Draw `draw(ax, *args)` on a figure of `size` inches and save it as
    `path` (its suffix picks the format); return `path`."""
    fig = Figure(figsize=size)
    draw(fig.add_subplot(), *args)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path
