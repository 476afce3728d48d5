"""The plots: inline SVG with no script, a legend, titled axes, and the figures as a table."""

from __future__ import annotations

import random
import re
from datetime import date

import pygal

from router.http.pages.plots import bars, box_input, distribution, weekly_hours


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


def test_distribution_whiskers_end_at_data_and_outliers_are_dots() -> None:
    """Tukey's box: whiskers reach the furthest value within 1.5 times the spread between
    the quartiles; values beyond are drawn one dot each."""
    minutes = {"jira": [1, 2, 3, 4, 5, 6, 7, 8, 100, 120]}
    svg = str(distribution("Time to owner", "Source", "Minutes (min)", minutes).svg)
    assert svg.count("<circle") == 2
    assert "<circle" not in str(distribution("t", "x", "y", {"jira": [1, 2, 3, 4, 5]}).svg)


def test_counts_of_any_size_get_a_few_round_ticks_past_the_top() -> None:
    """A busy month's scope line takes thousands of items (past 8,000 the page failed)."""
    for top in (0.4, 3, 8, 95, 7_300, 9_839, 48_000, 2_500_000):
        for horizontal in (False, True):
            plot = bars("Items per scope line", "Owner line", "Items (count)", ["a", "b"],
                        {"items": [top, 1]}, counts=True, horizontal=horizontal)
            ticks = [float(t) for t in
                     re.findall(r"<text[^>]*>([0-9.]+)</text>", str(plot.svg))]
            step = ticks[1] - ticks[0]
            assert ticks[0] == 0 and ticks[-1] >= top and 3 <= len(ticks) <= 10, (top, ticks)
            assert step >= 1 and f"{step:g}".strip("0.") in ("1", "2", "5"), (top, step)
            assert ticks == [step * n for n in range(len(ticks))], (top, ticks)
    weeks = weekly_hours([(date(2026, 11, 2), 26_000.0)], 6, "mon")
    assert weeks.rows == [["2026-11-02", "26000 h", "6 h", "yes"]]


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_a_long_series_is_boxed_from_a_few_values_into_the_same_svg() -> None:
    """The times to owner a busy month has (thousands per source, with ties and long
    tails, odd and even counts) draw the same box, whiskers and dots from the shortened
    list as from all of them."""
    rng = random.Random(5)
    samples = {
        "lognormal": [round(rng.lognormvariate(3, 1), 1) for _ in range(4_001)],
        "uniform": [rng.uniform(0, 90) for _ in range(1_002)],
        "ties": [rng.choice([0.0, 1.0, 1.0, 2.0, 45.0]) for _ in range(1_003)],
        "short": [3.0, 1.0, 2.0],
    }
    for name, values in samples.items():
        drawn = [pygal.Box(box_mode="tukey", js=[]) for _ in range(2)]
        drawn[0].add(name, values)
        drawn[1].add(name, box_input(values))
        raw, short = (re.sub(UUID, "", chart.render(is_unicode=True)) for chart in drawn)
        assert raw == short, name  # each chart has its own random id, nothing else differs
    assert len(box_input(samples["uniform"])) < 20 < len(samples["uniform"])
