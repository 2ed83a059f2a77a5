"""Reports opened in headless Chromium: hostile post content stays inert text, nothing loads
from the network, and the layout holds (no horizontal overflow, even with a 3000-letter word)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flows.report_step import build_report
from reports.build import MAX_REPORT_BYTES
from tests.test_reports import HOSTILE, RUN_ID, hostile_settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("hostile")
    settings = hostile_settings(folder)
    return build_report(settings, RUN_ID, folder / "out")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, path: Path, width: int) -> tuple[object, dict[str, list]]:
    """The page at ``path`` (file://) and everything it did: dialogs, console, errors, requests."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    seen: dict[str, list] = {"dialogs": [], "console": [], "errors": [], "requests": []}

    def on_dialog(dialog):
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)  # let anything that would run (onerror, onload) have its chance
    return page, seen


@pytest.mark.parametrize("width", [1280, 375])
def test_hostile_reports_are_inert_and_keep_their_layout(site, browser, width):
    pages = [Path(p) for p in site["report_paths"]] + [Path(site["index_path"])]
    assert len(pages) == 3  # overall, the week, the index
    for path in pages:
        page, seen = open_page(browser, path, width)
        try:
            assert seen["dialogs"] == [], path
            assert seen["errors"] == [], path
            assert [m for m in seen["console"] if m[0] in ("error", "warning")] == [], path
            others = [u for u in seen["requests"] if u != path.as_uri() and not u.startswith("data:")]
            assert others == [], path
            # Nothing executable made it into the DOM.
            assert page.evaluate("document.querySelectorAll('script, iframe, object, embed, svg, form').length") == 0
            assert page.evaluate(
                "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some("
                "a => a.name.startsWith('on'))).length") == 0
            protocols = set(page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.protocol)"))
            assert protocols <= {"http:", "https:", "file:"}, protocols
            for rel in page.evaluate("[...document.querySelectorAll('a[href^=\"http\"]')].map(a => a.rel)"):
                assert rel == "noopener noreferrer nofollow"
            # Rendered: one h1, section headings, visible text; the CSP is in force.
            assert page.locator("h1").count() == 1
            assert page.locator("h2").count() >= (2 if path.name == "index.html" and path.parent.name == "out" else 8)
            assert page.evaluate("document.documentElement.lang") == "en"
            assert page.evaluate("document.body.innerText.length") > 200
            # Layout: the 3000-letter word wraps instead of widening the page.
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert scroll <= client, (path, width, scroll, client)
            widest = page.evaluate("Math.max(...[...document.querySelectorAll('main > section, .post')]"
                                   ".map(e => e.getBoundingClientRect().right))")
            assert widest <= client + 1, (path, width, widest)
        finally:
            page.close()


def test_hostile_text_is_shown_as_text(site, browser):
    overall = Path(site["report_paths"][0])
    page, seen = open_page(browser, overall, 1280)
    try:
        quotes = page.evaluate("[...document.querySelectorAll('.post blockquote')].map(b => b.innerText)")
        shown = "\n".join(quotes)
        for hostile in HOSTILE:
            start = hostile[:40]
            assert start in shown, start  # the markup is visible as characters
        assert page.evaluate("document.title").startswith("Whole corpus")
        images = page.evaluate("[...document.querySelectorAll('img')].map(i => [i.naturalWidth, i.alt.length])")
        assert images and all(width > 0 and alt > 20 for width, alt in images)  # charts decoded, described
    finally:
        page.close()


def test_report_folders_stay_small_and_index_links_work(site, browser):
    for path in site["report_paths"]:
        folder = Path(path).parent
        assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) <= MAX_REPORT_BYTES
    index = Path(site["index_path"])
    page, _ = open_page(browser, index, 1280)
    try:
        hrefs = page.evaluate("[...document.querySelectorAll('main a[href]')].map(a => a.href)")
        targets = {Path(urlsplit(h).path) for h in hrefs if h.startswith("file:")}
        assert {Path(p) for p in site["report_paths"]} <= targets
        assert all(t.is_file() for t in targets), [t for t in targets if not t.is_file()]
        with page.expect_navigation():
            page.locator(".latest a").first.click()  # the newest report of the finest granularity
        assert Path(urlsplit(page.url).path).parent.name.startswith("week-")
        assert page.locator("h1").count() == 1
    finally:
        page.close()
