"""Months, percentiles, bad input and empty months for the monthly review and the
exception log (the seeded month's figures are in tests/test_reviews_month.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from router.reviews.periods import BadMonth, month_of, month_span, nearest_rank, parse_month
from router.service import build_service
from router.settings import Settings
from tests.support import EXAMPLE_SCOPE, firstline

BERLIN = ZoneInfo("Europe/Berlin")
JSON = {"Authorization": "Bearer x", "Accept": "application/json"}


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "11-2026", "2026/11", "",
                                  "2026-11-01", "november", "0000-01"])
def test_a_month_that_is_not_yyyy_mm_is_refused_naming_it(text: str) -> None:
    with pytest.raises(BadMonth) as caught:
        parse_month(text)
    assert str(caught.value) == f"month {text!r}: use YYYY-MM, e.g. 2026-11"


def test_a_month_is_its_local_calendar_month_and_the_weeks_that_start_in_it() -> None:
    november = month_span(2026, 11, BERLIN, 0)
    assert november.label == "2026-11"
    assert november.begins == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert november.ends == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert [w.start.day for w in november.weeks] == [2, 9, 16, 23, 30]
    assert november.weeks[-1].ends == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)  # into December
    assert november.last_day == date(2026, 11, 30)
    sundays = month_span(2026, 11, BERLIN, 6)  # 1 November 2026 is a Sunday
    assert [w.start.day for w in sundays.weeks] == [1, 8, 15, 22, 29]


def test_a_month_with_a_clock_change_keeps_local_midnights() -> None:
    october = month_span(2026, 10, BERLIN, 0)  # summer time ends on 25 October
    assert october.begins == datetime(2026, 9, 30, 22, 0, tzinfo=UTC)
    assert october.ends == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    week = next(w for w in october.weeks if w.start == date(2026, 10, 19))
    assert week.ends - week.begins == timedelta(days=7, hours=1)


def test_without_a_month_the_last_complete_one_in_the_notes_timezone() -> None:
    # 23:30 UTC on 30 November is already 1 December in Berlin: November is complete.
    assert month_of(None, BERLIN, 0, datetime(2026, 11, 30, 23, 30, tzinfo=UTC)).label \
        == "2026-11"
    assert month_of(None, BERLIN, 0, datetime(2026, 11, 30, 22, 30, tzinfo=UTC)).label \
        == "2026-10"
    assert month_of(None, BERLIN, 0, datetime(2027, 1, 10, tzinfo=UTC)).label == "2026-12"


@pytest.mark.parametrize(("values", "percent", "expected"), [
    ([], 50, None),
    ([7.0], 90, 7.0),
    ([1.0, 2.0, 3.0], 50, 2.0),  # rank ceil(1.5) = 2
    ([float(n) for n in range(1, 11)], 50, 5.0),
    ([float(n) for n in range(1, 11)], 90, 9.0),
    ([float(n) for n in range(1, 12)], 90, 10.0),  # rank ceil(9.9) = 10
])
def test_percentiles_use_the_nearest_rank(values: list[float], percent: int,
                                          expected: float | None) -> None:
    assert nearest_rank(values, percent) == expected


# -- an empty month and bad input, over HTTP and on the command line ----------------------


@pytest.fixture
def app(db_url: str) -> TestClient:
    return TestClient(build_service(Settings(rules=EXAMPLE_SCOPE, database_url=db_url,
                                             api_token="x"), run_worker=False))


def test_an_empty_month_is_a_report_of_zeros(app: TestClient) -> None:
    with app as client:
        report = client.get("/api/v1/reports/monthly?month=2026-02", headers=JSON).json()
        log = client.get("/api/v1/exceptions?month=2026-02", headers=JSON).json()
    assert report["weeks"] == [{"start": f"2026-02-{d:02d}", "cto_hours": 0.0,
                                "over_cap": False} for d in (2, 9, 16, 23)]
    assert report["escalations"] == {"total": 0, "by_trigger": {}, "items": []}
    assert report["handed_back"] == {"total": 0, "by_source": {}, "by_assigner": {},
                                     "top_senders": []}
    assert report["exceptions"] == {"total": 0, "items": []}
    assert (report["deferred"], report["time_to_owner_minutes"], report["decisions"]) == (
        0, {}, {})
    assert all(line["items"] == 0 for line in report["scope_lines"])
    assert set(report["triggers_fired"].values()) == {0}
    assert report["suggestions"] == [
        "Set one change for next month: firstline recorded no decisions this month, so "
        "first check that the trackers' webhooks reach it."]
    assert (log["total"], log["hours"], log["entries"]) == (0, 0, [])


@pytest.mark.parametrize("path", ["/api/v1/reports/monthly", "/api/v1/exceptions"])
def test_a_bad_month_over_http_is_a_422_with_one_line(app: TestClient, path: str) -> None:
    with app as client:
        answer = client.get(f"{path}?month=2026-13", headers=JSON)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "month '2026-13': use YYYY-MM, e.g. 2026-11"}


def test_without_a_month_the_api_reviews_the_last_complete_month(app: TestClient) -> None:
    today = datetime.now(BERLIN).date()
    last = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    with app as client:
        assert client.get("/api/v1/reports/monthly", headers=JSON).json()["month"] == last
        assert client.get("/api/v1/exceptions", headers=JSON).json()["month"] == last


def test_the_api_answers_markdown_unless_asked_for_json_or_csv(app: TestClient) -> None:
    with app as client:
        markdown = client.get("/api/v1/reports/monthly?month=2026-02",
                              headers={"Authorization": "Bearer x"})
        as_csv = client.get("/api/v1/exceptions?month=2026-02",
                            headers={"Authorization": "Bearer x", "Accept": "text/csv"})
        anonymous = client.get("/api/v1/reports/monthly?month=2026-02")
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert markdown.text.startswith("# Monthly review 2026-02 (Europe/Berlin)\n")
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.text == ("at,kind,items,what,why,hours,follow_up_owner,decision_id,"
                           "escalation_id\n")
    assert anonymous.status_code == 401


@pytest.mark.parametrize("command", ["report", "exceptions"])
def test_a_bad_month_on_the_command_line_is_one_line_and_exit_2(command: str) -> None:
    run = firstline("sqlite:////nonexistent/never-opened.db", command, "--rules",
                    str(EXAMPLE_SCOPE), "--month", "2026-13")
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == "firstline: month '2026-13': use YYYY-MM, e.g. 2026-11\n"


def test_an_empty_month_on_the_command_line_is_zeros_and_exit_0(db_url: str) -> None:
    run = firstline(db_url, "exceptions", "--rules", str(EXAMPLE_SCOPE), "--month", "2026-02")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("# Exception log 2026-02 (Europe/Berlin)\n\n"
                                 "0 entries, 0 CTO hours charged.\n")
    assert run.stdout.endswith("\n(none)\n")


def test_a_database_without_tables_is_one_line_saying_what_to_run(tmp_path: Path) -> None:
    run = firstline(f"sqlite:///{tmp_path / 'empty.db'}", "report", "--rules",
                    str(EXAMPLE_SCOPE), "--month", "2026-11")
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == ("firstline: the database has no firstline tables: run "
                          "`firstline db upgrade`\n")
