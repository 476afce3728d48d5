"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against the
app served by uvicorn on a seeded week (tests/dashboard_seed.py).

Screenshots of every step go to artifacts/screenshots/ (kept by CI, ignored by git); the
SQLite run also saves the week and the monthly review to docs/screenshots/, which the
README shows (the clock and the data are fixed, so an unchanged page is an unchanged file).
Playwright's own browser download does not work here, so the test launches
/usr/bin/chromium; without it the test is skipped locally, and fails in CI (`CI` set).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, select

from router.db.engine import worker_engine
from router.db.tables import outbox
from router.service import build_service
from tests.dashboard_seed import CLOCK, GITHUB_API, HANDED_BACK_ISSUE, seed, settings
from tests.dashboard_seed import perform as seeded_perform
from tests.standin_github import GitHubStandIn
from tests.support import ROOT, eventually

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
TOKEN = "browser-operator-token-42"
LEGAL = "match: {labels: [legal, compliance]}"
LEGAL_CLOUD = "match: {labels: [legal, compliance, cloud-bill]}"
# The monthly review's plots of 2026-11 and their series: the hours and the cap's legend
# entry; the one trigger that fired; the three sources with a time to owner; the senders;
# each line's items and those that reached the CTO.
MONTH_PLOTS = {"cto-hours": 2, "escalations-by-week": 1, "time-to-owner": 3,
               "hand-backs": 1, "scope-lines": 2}

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: CI must install Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); CI runs this",
                allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def served(db_url: str, tmp_path: Path, httpx_mock: HTTPXMock) -> Iterator[dict[str, Any]]:
    """Seed the week, serve the app with uvicorn on a free port; yield what the test needs."""
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    seeded = seed(db_url, tmp_path, gh)
    app = build_service(settings(db_url, seeded.enforce_rules, api_token=TOKEN),
                        run_worker=False, clock=lambda: CLOCK)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    eventually(lambda: server.started, "uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield {"url": f"http://127.0.0.1:{port}", "seeded": seeded, "gh": gh, "db_url": db_url}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    shots = SHOTS / request.node.name.replace("[", "-").rstrip("]")
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(30_000)
        tab.shots = shots  # type: ignore[attr-defined]
        tab.for_docs = "sqlite" in request.node.name  # type: ignore[attr-defined]
        try:
            yield tab
        finally:
            browser.close()


def shot(page: Page, name: str, docs: str | None = None) -> None:
    """Save a screenshot of the page as an artefact, and as docs/screenshots/`docs`.png."""
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    if docs and page.for_docs:  # type: ignore[attr-defined]
        page.screenshot(path=str(DOC_SHOTS / f"{docs}.png"), full_page=True)


def print_checklist(page: Page) -> None:
    """Print the escalation page: only its review checklist, on one A4 page."""
    page.emulate_media(media="print")
    try:
        for hidden in ("header.top", "#actions-h", "#page-h", "#items-h", "#review-h"):
            expect(page.locator(hidden)).to_be_hidden()
        expect(page.locator("#checklist")).to_be_visible()
        pdf = page.pdf(prefer_css_page_size=True, print_background=False)
    finally:
        page.emulate_media(media="screen")
    (page.shots / "05-checklist.pdf").write_bytes(pdf)  # type: ignore[attr-defined]
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1, "the checklist takes one page"


def series_in(page: Page, selector: str) -> int:
    """Count the distinct pygal series drawn in the SVG under `selector`."""
    return int(page.eval_on_selector(selector, """svg => new Set(
        [...svg.querySelectorAll('[class*="serie-"]')]
          .map(e => e.getAttribute('class').match(/serie-\\d+/)[0])).size"""))


def test_a_session_in_the_browser(served: dict[str, Any], page: Page) -> None:
    url = served["url"]
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    shot(page, "01-login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/")
    expect(page.locator("h1")).to_contain_text("This week")
    expect(page.locator("#cap-plot svg")).to_have_count(1)
    assert series_in(page, "#cap-plot svg") == 2  # the hours and the cap's legend entry
    expect(page.locator("#cap-plot table tbody tr")).to_have_count(4)
    expect(page.locator("#health tr.silent")).to_contain_text("linear")
    shot(page, "02-week", docs="week")

    page.click("nav >> text=Decisions")
    page.select_option("select[name=outcome]", "defer")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"outcome=defer"))
    expect(page.locator("#decisions tbody tr")).to_have_count(7)
    shot(page, "03-decisions-deferred")
    page.locator("#decisions tbody tr").first.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text("defer")
    expect(page.locator("#evidence")).to_contain_text("Owner line: Weekly architecture review")
    expect(page.locator("#evidence table.checks").first).to_contain_text("labels")
    expect(page.locator("#tracker-link")).to_have_attribute("href", re.compile("^https://"))
    shot(page, "04-decision-evidence")

    page.click("nav >> text=Escalations")
    page.locator("#escalations tr", has_text="revenue-path").locator("a").first.click()
    expect(page.locator("h1")).to_contain_text("revenue-path")
    expect(page.locator("main")).to_contain_text("OPS-2")
    expect(page.locator("#page-state")).to_have_text("shadow")
    expect(page.locator("#checklist h3")).to_contain_text("Review of escalation")
    expect(page.locator("#timeline tbody tr.source-jira").first).to_contain_text("OPS-1")
    # PagerDuty resolved the checkout page before the switch to enforce (not closed)
    expect(page.locator("#timeline tbody tr.source-firstline").last).to_contain_text(
        "escalation resolved: ready for review")
    shot(page, "05-escalation")
    print_checklist(page)

    page.click("nav >> text=Monthly review")
    expect(page.locator("h1")).to_contain_text("2026-10")  # the last complete month
    expect(page.locator("#scope-lines")).to_contain_text("0")
    page.fill("#month", "2026-11")
    page.click("form.month-picker button[type=submit]")
    expect(page).to_have_url(re.compile(r"/month\?month=2026-11$"))
    expect(page.locator("h1")).to_contain_text("2026-11")
    for plot, expected in MONTH_PLOTS.items():
        expect(page.locator(f"#{plot}-plot svg")).to_have_count(1)
        assert series_in(page, f"#{plot}-plot svg") == expected, plot
        expect(page.locator(f"#{plot}-plot .legends")).to_have_count(1)
    expect(page.locator("#cto-hours-plot tbody tr", has_text="2026-11-16")).to_contain_text(
        "3.5 h")
    with page.expect_download() as download:
        page.click("#scope-lines a.csv")
    assert download.value.suggested_filename == "firstline-2026-11-scope-lines.csv"
    shot(page, "06-monthly-review", docs="monthly-review")
    page.click("a[rel=prev]")
    expect(page.locator("h1")).to_contain_text("2026-10")

    page.click("nav >> text=Scope note")
    note = served["seeded"].enforce_rules.read_text()
    page.fill("#note", note.replace("owner: ops-lead", "owner: nobody-known"))
    page.click("text=Run the what-if")
    expect(page.locator(".problems")).to_contain_text("edited scope note:")
    expect(page.locator(".problems li.bad")).to_contain_text("nobody-known")
    shot(page, "07-what-if-invalid")
    page.fill("#note", note.replace(LEGAL, LEGAL_CLOUD))
    page.click("text=Run the what-if")
    summary = page.locator("#what-if-summary")
    expect(summary).to_contain_text("2 decisions would change")
    expect(page.locator("#pages-old")).to_have_text("7")
    expect(page.locator("#pages-new")).to_have_text("8")
    expect(page.locator("#changes tbody tr")).to_have_count(2)
    shot(page, "08-what-if")

    page.click("nav >> text=This week")
    dead = served["seeded"].dead_actions[0]
    page.locator(f"#action-{dead} button", has_text="Retry").click()
    expect(page.locator(f"#action-{dead}")).to_contain_text("will be retried now")
    assert status(served["db_url"], dead) == "pending"
    shot(page, "09-retried")
    served["gh"].add(*HANDED_BACK_ISSUE, ["dreyes"])  # the issue exists now: it can work
    perform(served["db_url"], served["seeded"].enforce_rules)
    assert status(served["db_url"], dead) == "done"
    page.reload()
    expect(page.locator("#dead-actions tbody tr")).to_have_count(
        len(served["seeded"].dead_actions) - 1)

    page.click("text=Log out")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(url + "/decisions")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    shot(page, "10-logged-out")


def status(db_url: str, action_id: int) -> str:
    engine = worker_engine(db_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(select(outbox.c.status).where(
                outbox.c.id == action_id)).scalar_one())
    finally:
        engine.dispose()


def perform(db_url: str, rules: Path) -> None:
    """Run the real performer once, as the service's would after the retry."""
    engine: Engine = worker_engine(db_url)
    try:
        seeded_perform(engine, db_url, rules)
    finally:
        engine.dispose()
