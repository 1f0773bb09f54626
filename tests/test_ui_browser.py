"""The web app in a real browser: headless Chromium (Debian's package) driven by Playwright.

One user session, in order: train a 10-step ART canvas and watch the canvas and the loss curve
appear, save it to the gallery, find it there, open it in the Playground and get the answers with and
without it, run a small comparison, see the jobs; reload the page during a long run and find it
again, then stop it. A screenshot of every page goes to `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from artstudio.backbone import DEFAULT_MODEL

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("ARTSTUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"


def _chromium() -> str:
    """Debian's chromium; installed here when missing and we are root (as `make browser` does)."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get") and os.geteuid() == 0:
        import subprocess

        subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} and it could not be installed (run `make browser` as root, "
                    "or set ARTSTUDIO_CHROMIUM to a Chromium binary)")
    return CHROMIUM


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    from artstudio.ui.app import start
    from artstudio.ui.studio import AppSettings

    if (Path(DEFAULT_MODEL) / "config.json").is_file():
        model, canvas = DEFAULT_MODEL, 96
    else:
        model, canvas = tiny_model_dir("qwen3_5"), 64
    root = tmp_path_factory.mktemp("ui-browser")
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
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app.url)
        page.wait_for_selector("#as-start")
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.wait_for_timeout(700)  # let plots and images finish drawing
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id}").get_by_role("textbox")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_1_train_shows_canvas_and_loss(page, app):
    shot(page, "0-train-ready")
    page.locator("#as-train-steps input").fill("10")
    page.locator("#as-train-batch_size input").fill("4")
    textbox(page, "as-train-canvas_size").fill(str(app.canvas))
    textbox(page, "as-train-run").fill("browser-run")
    page.click("#as-start")
    page.wait_for_selector("#as-train-message:has-text('browser-run')")
    page.wait_for_selector("#as-train-progress:has-text('Finished')")
    page.wait_for_selector("#as-canvas-caption:has-text('trained artwork')")
    src = page.locator("#as-canvas img").get_attribute("src")
    assert src and "artwork" in src
    # The loss curve has one point per step.
    page.wait_for_function("document.querySelectorAll('#as-loss-plot [aria-roledescription=point]').length >= 10")
    assert "step 10 / 10" in page.inner_text("#as-train-progress")
    assert "final accuracy" in page.inner_text("#as-metrics")
    snapshots = sorted((app.studio.runs / "browser-run" / "snapshots").glob("*.png"))
    assert [p.name for p in snapshots][-1] == "step-00010.png"
    shot(page, "1-train-finished")


def test_2_save_to_gallery_and_find_it(page, app):
    textbox(page, "as-save-name").fill("browser art")
    page.locator("#as-save-box").get_by_role("textbox").nth(1).fill("trained by the browser test")
    page.click("#as-save")
    page.wait_for_selector("#as-save-message:has-text('canvases/browser-art.png')")
    open_tab(page, "Gallery")
    thumb = page.locator("#as-gallery button.thumbnail-item", has_text="browser-art")
    thumb.first.wait_for()
    thumb.first.click()
    page.wait_for_selector("#as-gallery-details:has-text('trained by the browser test')")
    details = page.inner_text("#as-gallery-details")
    for word in ("model", "task", "accuracy", "steps", "objective", "date"):
        assert word in details
    assert page.locator("#as-gallery-large img").count() == 1
    shot(page, "2-gallery")


def test_3_playground_answers_with_and_without(page, app):
    page.click("#as-open-playground")
    page.wait_for_selector("#as-tab-playground", state="visible")
    page.wait_for_selector("#as-pg-preview img")
    textbox(page, "as-prompt").fill("3 4")
    page.click("#as-ask")
    page.wait_for_selector("#as-chat-with :text('ms')")
    page.wait_for_selector("#as-chat-without :text('ms')")
    page.get_by_role("button", name="vLLM request").click()
    page.wait_for_selector("#as-request :text('image_url')")
    shot(page, "3-playground")


def test_4_compare_runs_in_the_background(page, app):
    open_tab(page, "Compare")
    page.locator("#as-compare-methods").get_by_label("lora").uncheck()
    page.locator("#as-compare-seeds").get_by_role("textbox").fill("0")
    page.locator("#as-compare-steps input").fill("3")
    page.locator("#as-compare-batch_size input").fill("4")
    page.get_by_role("button", name="All comparison options").click()
    textbox(page, "as-compare-eval_size").fill("8")
    textbox(page, "as-compare-method_options").fill('{"art": {"canvas_size": %d}}' % app.canvas)
    textbox(page, "as-compare-name").fill("browser-compare")
    page.click("#as-compare-start")
    page.wait_for_selector("#as-compare-progress:has-text('Finished')", timeout=120_000)
    page.wait_for_selector("#as-compare-table :text('art')")
    page.wait_for_selector("#as-compare-plots img")
    assert (app.studio.runs / "compare" / "browser-compare" / "results.csv").is_file()
    shot(page, "4-compare")


def test_5_reload_reconnects_and_stop_keeps_checkpoint(page, app):
    open_tab(page, "Train")
    page.locator("#as-train-steps input").fill("100000")
    textbox(page, "as-train-canvas_size").fill(str(app.canvas))
    textbox(page, "as-train-run").fill("long-run")
    page.get_by_role("button", name="All training options").click()
    page.locator("#as-train-checkpoint_every input").fill("1000")
    page.click("#as-start")
    page.wait_for_selector("#as-train-progress:has-text('Training')")
    page.reload()
    page.wait_for_selector("#as-train-progress:has-text('/ 100000')")
    page.wait_for_selector("#as-canvas-caption:has-text('long-run')")
    open_tab(page, "Jobs")
    page.wait_for_function("document.querySelector('#as-jobs').innerText.includes('running')")
    shot(page, "5-jobs")
    open_tab(page, "Train")
    page.click("#as-stop")
    page.wait_for_selector("#as-train-progress:has-text('Stopped')")
    assert (app.studio.runs / "long-run" / "checkpoint" / "checkpoint.json").is_file()


def test_6_errors_are_messages_not_tracebacks(page, app):
    textbox(page, "as-train-run").fill("long-run")
    page.click("#as-start")
    toast = page.locator(".toast-body", has_text="exists already")
    toast.first.wait_for()
    assert "Traceback" not in page.content()
    shot(page, "6-error-message")
