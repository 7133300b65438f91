"""Point labels that do not overlap: greedy placement with leader lines (matplotlib).

Variants of one family (the int8 ones) sit almost on top of each other in accuracy-vs-throughput plots,
so fixed offsets stack their labels into an unreadable block. Each label here takes the first position,
on rings of growing radius around its point, whose box stays inside the axes and overlaps neither an
earlier label, nor any data point, nor the other obstacles (the legend); a label pushed away from its
point gets a thin leader line. Call it after the axes' scales, limits and layout are final: offsets are in
points, so resizing the figure afterwards would move the points under the labels.
"""
from __future__ import annotations

import math

import numpy as np

RADII_PT = (6, 14, 24, 36, 50, 66, 84, 104)
ANGLES = 16
POINT_BOX_PX = 6.0


def _alignment(dx: float, dy: float) -> tuple[str, str]:
    norm = math.hypot(dx, dy) or 1.0
    ha = "left" if dx / norm > 0.3 else "right" if dx / norm < -0.3 else "center"
    va = "bottom" if dy / norm > 0.3 else "top" if dy / norm < -0.3 else "center"
    return ha, va


def overlap_count(boxes) -> int:
    """Pairs of boxes (matplotlib ``Bbox``) that overlap."""
    return sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def place_labels(ax, xs, ys, texts, obstacles=(), marker_areas=None, fontsize: float = 7, **text_kwargs) -> list:
    """Annotate (xs[i], ys[i]) with texts[i] without overlaps where the axes leave room; returns the annotations.

    ``marker_areas`` (scatter's ``s``, points^2) makes each marker's disc an obstacle too, not just its centre.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))
    area = ax.get_window_extent(renderer)
    scale = fig.dpi / 72.0  # points -> pixels
    areas = np.zeros(len(points)) if marker_areas is None else np.asarray(marker_areas, float)
    # The square inscribed in the disc: labels may graze a big marker's rim, never its middle.
    halves = [max(POINT_BOX_PX / 2, 0.7 * math.sqrt(a) / 2 * scale) for a in areas]
    taken = [Bbox.from_bounds(px - h, py - h, 2 * h, 2 * h) for (px, py), h in zip(points, halves)]
    taken += [o.get_window_extent(renderer) for o in obstacles]
    annotations = []
    for (x, y), text in zip(zip(xs, ys), texts):
        best = None  # (overlaps, radius, dx, dy): the least bad spot if none is free
        for radius in RADII_PT:
            for k in range(ANGLES):
                angle = math.pi / 4 + 2 * math.pi * k / ANGLES  # start up-right, the usual reading spot
                dx, dy = radius * math.cos(angle), radius * math.sin(angle)
                ha, va = _alignment(dx, dy)
                candidate = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                        fontsize=fontsize, **text_kwargs)
                box = candidate.get_window_extent(renderer).padded(1.5 * scale)
                candidate.remove()
                inside = (box.x0 >= area.x0 and box.x1 <= area.x1 and box.y0 >= area.y0 and box.y1 <= area.y1)
                hits = sum(box.overlaps(t) for t in taken) + (0 if inside else 100)
                if best is None or hits < best[0]:
                    best = (hits, radius, dx, dy, box)
                if hits == 0:
                    break
            if best[0] == 0:
                break
        _, radius, dx, dy, box = best
        ha, va = _alignment(dx, dy)
        leader = dict(arrowstyle="-", lw=0.5, color="0.35", shrinkA=0, shrinkB=2) if radius > RADII_PT[0] else None
        annotations.append(ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                       fontsize=fontsize, arrowprops=leader, **text_kwargs))
        taken.append(box)
    return annotations
