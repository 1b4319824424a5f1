"""Progress charts (by reform area, by lead unit) as PNG images, drawn locally with
matplotlib's Agg renderer (no display, no outside service) and embedded in the .docx."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from workflow.evaluation import Figures

# The four national statuses, stacked: done on time, done late, open in time, open late.
COLOURS = ("#1d7a35", "#b7791f", "#2b6cb0", "#a50e0e")
LEGEND = (
    "Hoàn thành đúng hạn",
    "Hoàn thành quá hạn",
    "Chưa hoàn thành trong hạn",
    "Chưa hoàn thành quá hạn",
)


def progress_png(title: str, rows: Sequence[tuple[str, Figures]]) -> bytes:
    """A horizontal stacked bar per row (label, figures): the instances by national status,
    with the completion rate written at the end of the bar."""
    height = 1.2 + 0.42 * max(1, len(rows))
    figure = Figure(figsize=(6.3, height), dpi=150)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    labels = [label for label, _ in rows][::-1]
    data = [f for _, f in rows][::-1]
    left = [0] * len(data)
    parts = [
        [f.accepted_on_time for f in data],
        [f.accepted_late for f in data],
        [f.open_on_time for f in data],
        [f.open_overdue for f in data],
    ]
    for values, colour, name in zip(parts, COLOURS, LEGEND, strict=True):
        axes.barh(labels, values, left=left, color=colour, label=name, height=0.6)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, f in enumerate(data):
        rate = "—" if f.completion_rate is None else f"{f.completion_rate}%".replace(".", ",")
        axes.text(left[y] + 0.2, y, f"{f.accepted}/{f.led} · {rate}", va="center", fontsize=7)
    axes.set_title(title, fontsize=9)
    axes.set_xlim(0, max([*left, 1]) * 1.25)
    axes.tick_params(labelsize=7)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=6, loc="lower right", frameon=False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
