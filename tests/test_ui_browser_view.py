"""What a reader sees in a real browser (headless Chromium via Playwright), where only a browser can tell.

The live log follows its newest line to the end of a run ("finished" in view, not below the fold);
a second save under a taken name replaces the "Saved as …" under the button with the refusal; the
Compare summary's tables keep every word and number on one line at 1400 px. Screenshots go to
`test-artifacts/screenshots/view-*.png`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from artstudio.backbone import DEFAULT_MODEL

from test_ui_browser import CHROMIUM_ARGS, SHOTS, _chromium, textbox  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    from artstudio.ui.app import start
    from artstudio.ui.studio import AppSettings

    if (Path(DEFAULT_MODEL) / "config.json").is_file():
        model, canvas = DEFAULT_MODEL, 96
    else:
        model, canvas = tiny_model_dir("qwen3_5"), 64
    root = tmp_path_factory.mktemp("ui-browser-view")
    server = start(AppSettings(runs_dir=str(root / "runs"), canvases_dir=str(root / "canvases"), model=model,
                               poll_seconds=0.5))
    server.canvas = canvas
    yield server
    server.close()


@pytest.fixture(scope="module")
def page(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        page.goto(app.url)
        page.wait_for_selector("#as-start")
        yield page
        browser.close()


def test_the_log_follows_its_newest_line(page, app):
    page.locator("#as-train-steps input").fill("20")
    page.locator("#as-train-batch_size input").fill("4")
    textbox(page, "as-train-canvas_size").fill(str(app.canvas))
    textbox(page, "as-train-run").fill("view-run")
    page.click("#as-start")
    page.wait_for_selector("#as-train-progress:has-text('Finished')", timeout=300_000)
    log = page.locator("#as-train-log textarea")
    page.wait_for_function("(() => { const t = document.querySelector('#as-train-log textarea');"
                           " return t && t.value.endsWith('finished'); })()")
    page.wait_for_timeout(500)
    top, height, client = log.evaluate("t => [t.scrollTop, t.scrollHeight, t.clientHeight]")
    assert height > client, "the log should be longer than its box for this check"
    assert top + client >= height - 2, (top, height, client)  # scrolled to the end: "finished" in view
    log.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "view-log-end.png"))


def test_a_refused_second_save_replaces_the_saved_message(page):
    textbox(page, "as-save-name").fill("adder")
    page.click("#as-save")
    page.wait_for_selector("#as-save-message:has-text('canvases/adder.png')")
    page.click("#as-save")
    page.wait_for_selector("#as-save-message:has-text('already has adder.png')")
    assert "Saved as" not in page.inner_text("#as-save-message")


def test_compare_tables_keep_words_whole(page, app):
    folder = app.studio.runs / "compare" / "view-compare"
    folder.mkdir(parents=True)
    shutil.copyfile(ROOT / "docs" / "results" / "compare_results.csv", folder / "results.csv")
    shutil.copyfile(ROOT / "docs" / "results" / "compare_results.md", folder / "results.md")
    page.get_by_role("tab", name="Compare").click()
    page.locator("#as-compare-summary").locator("xpath=..").first.wait_for(state="attached")
    folder_box = page.get_by_label("results folder")
    folder_box.fill("view-compare")
    folder_box.press("Enter")
    page.get_by_role("button", name="Load", exact=True).click()
    page.wait_for_selector("#as-compare-summary td:has-text('soft-prompt')")
    # Every cell and header on one line: one box per text (no "metho/d", no "0.0/5", no "soft-/prompt").
    broken = page.evaluate("""() => [...document.querySelectorAll('#as-compare-summary td, #as-compare-summary th')]
      .filter(c => { const r = document.createRange(); r.selectNodeContents(c);
                     return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1; })
      .map(c => c.innerText)""")
    assert broken == []
    page.locator("#as-compare-summary table").last.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "view-compare-tables.png"))
