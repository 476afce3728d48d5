"""The plots: inline SVG with no script, a legend, titled axes, and the figures as a table."""

from __future__ import annotations

import re
from datetime import date

from router.http.pages.plots import bars, distribution, weekly_hours


def series(svg: str) -> set[str]:
    return set(re.findall(r"serie-\d+", svg))


def test_weekly_hours_draws_bars_a_dashed_cap_and_a_table() -> None:
    plot = weekly_hours([(date(2026, 11, 2), 3.5), (date(2026, 11, 9), 7.0)], 6, "mon")
    svg = str(plot.svg)
    assert svg.startswith("<svg") and "<script" not in svg and 'role="img"' in svg
    assert plot.series == 2 == len(series(svg))
    assert ">Week starting Monday<" in svg and ">Hours (h)<" in svg
    assert ">CTO unplanned hours<" in svg and ">Cap: 6 h a week (dashed line)<" in svg
    assert ">cap 6 h<" in svg and 'class="major guide line"' in svg
    assert plot.rows == [["2026-11-02", "3.5 h", "6 h", "no"], ["2026-11-09", "7 h", "6 h", "yes"]]


def test_bars_escape_their_labels_and_stack_on_request() -> None:
    plot = bars("Escalations by trigger", "Week", "Escalations", ["<w1>", "w2"],
                {"revenue-path": [1, 2], "no-owner & co": [0, 3]}, stacked=True)
    svg = str(plot.svg)
    assert "<w1>" not in svg and "&lt;w1&gt;" in svg and "no-owner &amp; co" in svg
    assert plot.series == 2 and plot.headers == ["Week", "revenue-path", "no-owner & co"]
    assert plot.rows == [["<w1>", "1", "0"], ["w2", "2", "3"]]


def test_distribution_gives_each_series_a_box_and_its_percentiles() -> None:
    plot = distribution("Time to owner", "Source", "Minutes (min)",
                        {"jira": [1, 2, 3, 4, 40], "github": [5.0]}, unit="min")
    assert plot.series == 2 == len(series(str(plot.svg))) and "<script" not in str(plot.svg)
    assert plot.rows == [["jira", "5", "1 min", "3 min", "40 min", "40 min"],
                         ["github", "1", "5 min", "5 min", "5 min", "5 min"]]
