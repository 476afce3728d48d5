"""Plots drawn on the server as inline SVG with pygal: readable without JavaScript, each
with a legend, axis titles that give the unit, and the same figures as a table beneath
(for screen readers and for copying).

pygal is small, pure Python and draws plain SVG. Its JavaScript (tooltips) is switched off
and the config script it embeds anyway is removed, so a page runs no script of pygal's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from xml.etree import ElementTree

import pygal
from markupsafe import Markup
from pygal.style import Style

PALETTE = ("#3465a4", "#cc0000", "#73d216", "#f57900", "#75507b", "#c17d11", "#555753")
CAP_COLOUR = "#cc0000"
DAYS = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
        "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}
STYLE = Style(
    background="white", plot_background="white", foreground="#2e3436",
    foreground_strong="#2e3436", foreground_subtle="#888a85", colors=PALETTE,
    font_family="system-ui, sans-serif", label_font_size=12, major_label_font_size=12,
    legend_font_size=13, title_font_size=15, guide_stroke_color="#d3d7cf",
    major_guide_stroke_color=CAP_COLOUR, major_guide_stroke_dasharray="6,3",
)
# pygal marks some round values as major on its own: without a cap line they are drawn
# as the other guides, so that only a cap looks like one.
PLAIN = STYLE.__class__(**{**STYLE.to_dict(), "major_guide_stroke_color": "#d3d7cf",
                           "major_guide_stroke_dasharray": "4,4"})
LONG_LABEL = 12  # x labels longer than this are drawn slanted, in full
BOX_EXACT = 64  # a box plot's series up to this long go to pygal as they are


@dataclass(frozen=True, slots=True)
class Plot:
    """An SVG plot and its figures as a table (`headers`, then one row per x label)."""

    title: str
    svg: Markup
    series: int
    headers: list[str]
    rows: list[list[str]]


def bars(title: str, x_title: str, y_title: str, labels: Sequence[str],
         series: Mapping[str, Sequence[float | None]], *, stacked: bool = False,
         y_guides: Sequence[tuple[float, str]] = (), unit: str = "",
         counts: bool = False, horizontal: bool = False) -> Plot:
    """Draw one bar per label and series (stacked: one bar per label); `counts` puts
    the values' axis on whole numbers; `horizontal` lays the bars along the x axis, for
    long labels (`x_title` still names the labels, `y_title` the values).

    `y_guides` are (value, label) lines across the plot, drawn dashed in red (a cap).
    A series given only None values draws no bar: it names a guide in the legend.
    """
    top = max([v or 0 for values in series.values() for v in values]
              + [v for v, _ in y_guides] + [1])
    config: dict[str, Any] = {}
    if y_guides:
        ticks = _ticks(top * 1.1)
        guide_values = {v for v, _ in y_guides}
        config.update(
            y_labels=[*[t for t in ticks if t not in guide_values],
                      *[{"value": v, "label": text} for v, text in y_guides]],
            y_labels_major=[v for v, _ in y_guides], show_minor_y_labels=True,
            range=(0, ticks[-1]))
    elif counts and series:  # pygal places no labels on a plot without series
        ticks = _ticks(top * 1.1)
        config.update(y_labels=ticks, range=(0, ticks[-1]))
    if any(len(label) > LONG_LABEL for label in labels):
        config["truncate_label"] = -1
        if not horizontal:
            config["x_label_rotation"] = 20
    kind = (pygal.HorizontalBar if horizontal else
            pygal.StackedBar if stacked else pygal.Bar)
    titles = {"x_title": y_title, "y_title": x_title} if horizontal else \
        {"x_title": x_title, "y_title": y_title}
    chart = kind(js=[], style=STYLE if y_guides else PLAIN, title=title, **titles,
                 legend_at_bottom=True, legend_at_bottom_columns=min(3, len(series)),
                 width=720, height=340, print_values=False, show_x_guides=False,
                 disable_xml_declaration=True, no_prefix=False, **config)
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    headers = [x_title, *series]
    rows = [[label, *(_number(values[i], unit) for values in series.values())]
            for i, label in enumerate(labels)]
    return Plot(title, _svg(chart, title), len(series), headers, rows)


def weekly_hours(weeks: Sequence[tuple[date, float]], cap: float, week_starts: str,
                 title: str = "CTO unplanned hours per week") -> Plot:
    """Draw the CTO's hours per week as bars against the weekly cap, a dashed line."""
    labels = [week.isoformat() for week, _ in weeks]
    cap_name = f"Cap: {cap:g} h a week (dashed line)"
    plot = bars(title, f"Week starting {DAYS.get(week_starts, week_starts)}", "Hours (h)", labels,
                {"CTO unplanned hours": [h for _, h in weeks],
                 cap_name: [None] * len(weeks)},
                stacked=True, y_guides=[(cap, f"cap {cap:g} h")], unit="h")
    rows = [[label, _number(h, "h"), _number(cap, "h"), "yes" if h > cap else "no"]
            for label, (_, h) in zip(labels, weeks, strict=True)]
    return Plot(plot.title, plot.svg, plot.series,
                [plot.headers[0], "CTO unplanned hours", "Cap", "Over the cap"], rows)


def distribution(title: str, x_title: str, y_title: str,
                 samples: Mapping[str, Sequence[float]], unit: str = "") -> Plot:
    """Draw one Tukey box per series (quartiles; whiskers at the furthest values within
    1.5 IQR of them; values beyond, one dot each); the table gives each series' count,
    minimum, median, 90th percentile and maximum."""
    chart = pygal.Box(js=[], style=PLAIN, title=title, x_title=x_title, y_title=y_title,
                      box_mode="tukey", legend_at_bottom=True,
                      legend_at_bottom_columns=min(4, max(1, len(samples))), width=720,
                      height=340, disable_xml_declaration=True)
    for name, values in samples.items():
        chart.add(name, box_input(values))
    rows = [[name, str(len(values)), *(_number(_rank(values, p), unit)
                                        for p in (0, 50, 90, 100))]
            for name, values in samples.items()]
    return Plot(title, _svg(chart, title), len(samples),
                [x_title, "count", "minimum", "median", "90th percentile", "maximum"], rows)


def box_input(values: Sequence[float]) -> list[float]:
    """Return a short list that pygal's Tukey box draws exactly as it draws `values`.

    pygal spends about 6 µs of Python on each value it is given, and a month's times to
    owner are tens of thousands: drawing 16,436 of them took 104 ms, against 14 ms from
    this list (5,000: 30 against 10 ms). A box needs only its quartiles, its whiskers'
    ends and the outliers. pygal's own `_box_points` finds them; the list returned has 4m + 1
    values, for which pygal's quartile rule (Mendenhall and Sincich) reads Q1 from
    positions m-1 and m, the median from 2m and Q3 from 3m and 3m+1: each pair holds the
    quartile itself. The outliers are kept, each a dot, and the whiskers' ends sit next
    to them. tests/test_plots.py checks that the SVG is the same as from all values.
    """
    if len(values) <= BOX_EXACT:
        return list(values)
    (_, low, q1, q2, q3, high, _), outliers = pygal.Box._box_points(values, "tukey")
    below = [v for v in outliers if v < low]
    above = [v for v in outliers if v > high]
    if not (low <= q1 <= q2 <= q3 <= high) or len(below) + len(above) != len(outliers):
        return list(values)  # not a shape the rule above reproduces: let pygal read all
    m = max(len(below), len(above)) + 2
    return [*below, *[low] * (m - 1 - len(below)), *[q1] * (m + 1), q2, *[q3] * (m + 1),
            *[high] * (m - 1 - len(above)), *above]


def _rank(values: Sequence[float], p: float) -> float | None:
    """Return the nearest-rank percentile (p 0: the minimum); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _ticks(top: float) -> list[float]:
    """Return round ticks from 0 past `top`: the smallest step of 1, 2 or 5 times a power
    of ten (at least 1: the axes count items or hours) that needs at most 8 of them."""
    magnitude = 10 ** max(0, math.floor(math.log10(max(top, 1.0) / 8)))
    step = next(m * magnitude for m in (1, 2, 5, 10) if top / (m * magnitude) <= 8)
    count = int(top // step) + 1
    return [float(step * i) for i in range(count + 1)]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:g} {unit}".strip()


def _svg(chart: Any, title: str) -> Markup:
    """Render the chart without its script, as an image named by its title."""
    tree = chart.render_tree()  # xml.etree (pygal uses lxml instead when it is installed)
    for parent in list(tree.iter()):
        for child in [c for c in parent if str(c.tag).endswith("script")]:
            parent.remove(child)
    tree.set("role", "img")
    tree.set("aria-label", title)
    text = _lxml(tree) if hasattr(tree, "getroottree") \
        else ElementTree.tostring(tree, encoding="unicode")
    return Markup(text)  # pygal's own SVG: every label in it was escaped as XML text


def _lxml(tree: Any) -> str:
    from lxml import etree  # only where pygal found it

    return str(etree.tostring(tree, encoding="unicode"))
