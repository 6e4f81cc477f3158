"""Shared figure plumbing: style, arm colours, axes helpers, and writing PNG + PDF.

Figures are built as `matplotlib.figure.Figure` objects without pyplot, so nothing here
touches the global backend or keeps figures alive after they are saved; rendering goes
through Agg.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

MAX_CURVES = 8  # more lines than this in one axes cannot be told apart
PNG_DPI = 130

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.framealpha": 0.85,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "svg.hashsalt": "decaylab",
}


@contextmanager
def figure_style() -> Iterator[None]:
    """The house style for every figure made inside the block."""
    with mpl.rc_context(STYLE):
        yield


def new_figure(nrows: int, ncols: int, width: float = 4.2, height: float = 3.2, **kwargs) -> tuple:
    """A Figure with an (nrows, ncols) array of axes, `width` × `height` inches per panel."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def save_figure(fig: Figure, figures_dir: Path, name: str) -> list[Path]:
    """Write `<name>.png` and `<name>.pdf`; PDF without a creation date so reruns are identical."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = figures_dir / f"{name}.png", figures_dir / f"{name}.pdf"
    fig.savefig(png, dpi=PNG_DPI, metadata={"Software": None})
    # The PNG pass has laid the figure out; freezing it spares the PDF pass a second layout.
    fig.set_layout_engine("none")
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    return [png, pdf]


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """A stable colour per arm (tab10 in arm order)."""
    palette = mpl.colormaps["tab10"].colors
    return {arm: mpl.colors.to_hex(palette[i % len(palette)]) for i, arm in enumerate(arms)}


def ramp_colors(n: int) -> list[str]:
    """`n` colours along viridis (dark to light), for the settings of one arm."""
    cmap = mpl.colormaps["viridis"]
    return [mpl.colors.to_hex(cmap(x)) for x in np.linspace(0.05, 0.85, max(n, 1))]


def lr_axis(ax: Axes, lrs: Sequence[float]) -> None:
    """Log-scaled x axis with a tick at every lr of the grid."""
    ax.set_xscale("log")
    ax.set_xticks(list(lrs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("peak learning rate (log scale)")
    if len(lrs) == 1:
        ax.set_xlim(lrs[0] / 2, lrs[0] * 2)


def plain_log_labels(ax: Axes) -> None:
    """Label a log y axis with plain numbers (0.3, 2) instead of 3×10⁻¹."""
    formatter = FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(formatter)


def percent_axis(ax: Axes, label: str) -> None:
    ax.set_ylabel(f"{label} (%)")


def pick_settings(hps: Sequence[float], best_hp: float, cap: int = MAX_CURVES) -> list[float]:
    """At most `cap` hyperparameters, evenly spaced over the sorted grid, always with `best_hp`."""
    hps = sorted(hps)
    if len(hps) <= cap:
        return hps
    picked = {hps[round(i)] for i in np.linspace(0, len(hps) - 1, cap - 1)}
    picked.add(best_hp)
    return sorted(picked)


def draw_points(ax: Axes, x: np.ndarray, y: np.ndarray, diverged: np.ndarray, **line) -> None:
    """A line through the finite points; diverged points get an 'x', the others a dot."""
    keep = np.isfinite(y)
    x, y, diverged = x[keep], y[keep], diverged[keep]
    ax.plot(x, y, marker="o", markersize=3.5, markevery=list(np.flatnonzero(~diverged)), **line)
    if diverged.any():
        ax.plot(x[diverged], y[diverged], linestyle="none", marker="x", markersize=8, mew=2, color=line["color"])


def mark_no_data(ax: Axes, message: str = "no finished trial") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
