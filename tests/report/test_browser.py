"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright.

It must load with no console error and no request leaving the page (figures are data URIs), decode
every image, show its findings, and sort a table when a header is clicked. The screenshot is kept as
``test-artifacts/report.png`` for a person to look at. Skipped only where no Chromium is installed
(CI installs it: ``apt-get install chromium``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
#: Flags for a sandboxed, offline, quiet headless run (no first-run UI, no background fetches).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      user_agent="nnstudy-report-test")
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def test_report_opens_cleanly_in_chromium(reports, page, tmp_path):
    path = reports("batch-size-tuned").write(tmp_path / "report")
    url = path.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until="load")

    assert errors == []
    assert [r for r in requests if r != url and not r.startswith("data:")] == []

    images = page.evaluate("""async () => Promise.all([...document.images].map(async img => {
        try { await img.decode(); } catch (e) { return {src: img.src.slice(0, 40), ok: false}; }
        return {src: img.src.slice(0, 40), ok: img.naturalWidth > 0 && img.naturalHeight > 0};
    }))""")
    assert len(images) == 7 and all(i["ok"] and i["src"].startswith("data:image/png") for i in images), images

    findings = page.locator("#findings li")
    assert findings.count() >= 1 and "has the best mean val_accuracy" in findings.first.inner_text()
    assert page.locator("#checks").inner_text().strip() != ""

    def column(table: str, index: int) -> list[str]:
        return page.locator(f"#table-{table} tbody tr").evaluate_all(
            f"rows => rows.map(r => r.cells[{index}].textContent.trim())")

    ranks = column("arms", 0)
    assert ranks == sorted(ranks)  # rank order, best first
    header = page.locator("#table-arms th").nth(0)
    header.click()  # ascending: already in that order
    header.click()  # descending
    assert column("arms", 0) == sorted(ranks, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"

    page.locator("#run-specs summary").first.click()  # the first arm's RunSpec, opened
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert errors == []
