"""Shared figure plumbing: style, arm colours, sizes, axes helpers, and writing PNG + PDF.

Figures are built as `matplotlib.figure.Figure` objects without pyplot, so nothing here
touches the global backend or keeps figures alive after they are saved; rendering goes
through Agg. Every figure is one paper column (3.25 in) or two (6.75 in) wide; each arm has one
colour-blind-safe colour (Okabe–Ito) by its position in the study, the same in every figure.

Text from a run directory (arm names, setting labels, parameter names) goes into labels, titles,
legends and tick labels through `label_text`: matplotlib reads a pair of `$` as mathtext, so an arm
named `a$\\frac{$b` would fail when the figure is saved. The figures use no mathtext of their own,
so `save_figure` also escapes any `$` pair that reached a figure some other way.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import cbook
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, FuncFormatter, MaxNLocator, NullFormatter

from analysis import output
from analysis.text import shown

ONE_COLUMN = 3.25  # inches: one column of a two-column paper
TWO_COLUMNS = 6.75
MAX_CURVES = 8  # more lines than this in one axes cannot be told apart
PNG_DPI = 150
# Okabe & Ito (2008), ordered so the first arms get the most distinct colours; yellow and black last.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
# for a ninth arm and beyond: Paul Tol's muted scheme, the colours unlike any above (wine, olive, indigo,
# teal, grey); a study with more arms than both give repeats them, so no two arms share a colour up to 13
MORE_COLORS = ("#882255", "#999933", "#332288", "#44AA99", "#888888")
ARM_COLORS = OKABE_ITO + MORE_COLORS

STYLE = {
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "legend.framealpha": 0.85,
    "figure.titlesize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "figure.dpi": 100,
    "svg.hashsalt": "decaylab",
}


@contextmanager
def figure_style() -> Iterator[None]:
    """The house style for every figure made inside the block."""
    with mpl.rc_context(STYLE):
        yield


def new_figure(nrows: int, ncols: int, width: float = TWO_COLUMNS, panel_height: float = 2.2, **kwargs) -> tuple:
    """A Figure `width` inches wide with an (nrows, ncols) array of axes, `panel_height` per row."""
    fig = Figure(figsize=(width, panel_height * nrows + 0.35), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def panel_grid(count: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) for `count` panels, at most `max_cols` across a two-column figure."""
    cols = min(max(count, 1), max_cols)
    return -(-max(count, 1) // cols), cols


def hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in axes.flat[used:]:
        ax.set_visible(False)


_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


def _escape_dollars(text: str) -> str:
    """`text` with every `$` that has no backslash before it escaped."""
    return _UNESCAPED_DOLLAR.sub(lambda _: "\\$", text)


def label_text(text: object) -> str:
    """Run-directory text as a figure label, shown as written: one line, controls visible, `$` escaped."""
    return shown(text).replace("$", r"\$")


def _no_mathtext(fig: Figure) -> None:
    """Escape the `$` of any text matplotlib would read as mathtext (the figures use none of their own)."""
    for artist in fig.findobj(Text):
        if cbook.is_math_text(artist.get_text()):
            artist.set_text(_escape_dollars(artist.get_text()))
    for ax in fig.axes:
        for formatter in (ax.xaxis.get_major_formatter(), ax.yaxis.get_major_formatter()):
            if isinstance(formatter, FixedFormatter):
                formatter.seq = [_escape_dollars(str(label)) for label in formatter.seq]


def save_figure(fig: Figure, figures_dir: Path, name: str) -> list[Path]:
    """Write `<name>.png` and `<name>.pdf`, each atomically; PDF without a creation date so reruns are identical."""
    output.ensure_dir(figures_dir)
    _no_mathtext(fig)
    # Both are rendered before either is written, so a figure that cannot be drawn leaves no file.
    png_data = _render(fig, "png", dpi=PNG_DPI, metadata={"Software": None})
    # The PNG pass has laid the figure out; freezing it spares the PDF pass a second layout.
    fig.set_layout_engine("none")
    pdf_data = _render(fig, "pdf", metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    png, pdf = figures_dir / f"{name}.png", figures_dir / f"{name}.pdf"
    # Atomic without a sync each: a figure lost to a crash is rebuilt by running the report again.
    output.write_atomic(png, png_data, durable=False)
    output.write_atomic(pdf, pdf_data, durable=False)
    return [png, pdf]


def _render(fig: Figure, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=kind, **options)
    return buffer.getvalue()


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """One colour per arm, by its position in the study (pass every arm of the study, in order)."""
    return {arm: ARM_COLORS[i % len(ARM_COLORS)] for i, arm in enumerate(arms)}


def shades(color: str, n: int) -> list[str]:
    """`n` shades of one arm's colour, light to dark, for the settings of that arm."""
    base = np.array(mpl.colors.to_rgb(color))
    out = []
    for x in np.linspace(-0.55, 0.35, max(n, 1)) if n > 1 else [0.0]:
        target = np.ones(3) if x < 0 else np.zeros(3)
        out.append(mpl.colors.to_hex(base + abs(x) * (target - base)))
    return out


def capital(text: str) -> str:
    """`text` with its first letter upper-cased and the rest untouched ('PGD-10 accuracy')."""
    return text[:1].upper() + text[1:]


def lr_axis(ax: Axes, lrs: Sequence[float]) -> None:
    """Log-scaled x axis with a tick at every lr of the grid."""
    ax.set_xscale("log")
    ax.set_xticks(list(lrs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("peak learning rate (log scale)")
    if len(lrs) == 1:
        ax.set_xlim(lrs[0] / 2, lrs[0] * 2)


def epoch_axis(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def plain_log_labels(ax: Axes) -> None:
    """Label a log y axis with plain numbers (0.3, 2) instead of 3×10⁻¹. Between the powers of ten,
    only 2 and 5 times a power are labelled, and only when the axis spans at most two decades (more
    labels would overlap)."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))

    def minor(y: float, _: int) -> str:
        low, high = sorted(ax.get_ylim())
        if low <= 0 or high / low > 100 or y <= 0:
            return ""
        mantissa = y / 10 ** np.floor(np.log10(y) + 1e-9)
        return f"{y:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 5)) else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def percent_axis(ax: Axes, label: str) -> None:
    """A y label '<label> (%)'; `label` may hold run-directory text (the metric's name)."""
    ax.set_ylabel(f"{label_text(label)} (%)")


def band(ax: Axes, x: np.ndarray, low: np.ndarray, high: np.ndarray, color: str,
         limits: tuple[float, float] | None = None) -> None:
    """A shaded 95% interval through the points where it is defined (not with one seed, not on epochs
    that were not evaluated); `limits` clips it to the values the quantity can take (0–100 %)."""
    x, low, high = np.asarray(x), np.asarray(low, float), np.asarray(high, float)
    keep = np.isfinite(low) & np.isfinite(high)
    if keep.any():
        low, high = low[keep], high[keep]
        if limits is not None:
            low, high = np.clip(low, *limits), np.clip(high, *limits)
        ax.fill_between(x[keep], low, high, color=color, alpha=0.2, linewidth=0)


def finite_line(ax: Axes, x: np.ndarray, y: np.ndarray, **line) -> None:
    """A line through the finite points only: epochs without a value (`eval.every` > 1) are skipped,
    not drawn as gaps (with every other epoch missing, a plain plot would draw nothing)."""
    x, y = np.asarray(x), np.asarray(y, float)
    keep = np.isfinite(y)
    ax.plot(x[keep], y[keep], **line)


def draw_points(ax: Axes, x: np.ndarray, y: np.ndarray, diverged: np.ndarray, **line) -> None:
    """A line through the finite points; diverged points get an 'x', the others a dot."""
    keep = np.isfinite(y)
    x, y, diverged = x[keep], y[keep], diverged[keep]
    ax.plot(x, y, marker="o", markevery=list(np.flatnonzero(~diverged)), **line)
    if diverged.any():
        ax.plot(x[diverged], y[diverged], linestyle="none", marker="x", markersize=6, mew=1.5, color=line["color"])


def mark_no_data(ax: Axes, message: str = "no finished trial") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def legend_below(fig: Figure, axes: Sequence[Axes], ncols: int = 4) -> None:
    """One legend for the figure, under the panels (so it never covers a curve)."""
    handles, labels, seen = [], [], set()
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in seen and not label.startswith("_"):
                seen.add(label)
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)), frameon=False)
