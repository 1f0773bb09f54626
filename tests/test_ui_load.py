"""The app under load and under path probes: 20 concurrent Playground requests through gradio_client
all answer and the app stays up; `/file=` and `/gradio_api/file=` probes outside its folders are refused."""

from __future__ import annotations

import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from artstudio.backbone import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
ARTWORK = ROOT / "canvases" / "max-bracket.png"
CONCURRENT = 20

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (Path(DEFAULT_MODEL) / "config.json").is_file() or
                                                   not ARTWORK.is_file(), reason="needs studio-tiny and its gallery")]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from artstudio.ui.app import start
    from artstudio.ui.settings import AppSettings

    root = tmp_path_factory.mktemp("ui-load")
    (root / "canvases").mkdir()
    shutil.copy(ARTWORK, root / "canvases" / "max-bracket.png")
    server = start(AppSettings(runs_dir=str(root / "runs"), canvases_dir=str(root / "canvases"), poll_seconds=5))
    server.root = root
    yield server
    server.close()


def _ask(url: str, prompt: str) -> tuple[str, float]:
    from gradio_client import Client

    client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})  # a busy 2-core machine is slow, not down
    start = time.perf_counter()
    with_chat, *_ = client.predict(model="studio-tiny", artwork="canvases/max-bracket.png", prompt=prompt, greedy=True,
                                   temperature=0.7, max_tokens=8, allow_mismatch=False, history_with=[],
                                   history_without=[], api_name="/ask")
    return with_chat[-1]["content"][0]["text"], time.perf_counter() - start


def test_twenty_concurrent_playground_requests_all_answer(app):
    prompts = [f"{a} {b}" for a, b in zip(range(10), range(9, -1, -1))] * 2
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(lambda p: _ask(app.url, p), prompts))
    for prompt, (text, _) in zip(prompts, results):
        a, b = map(int, prompt.split())
        assert text.startswith(f"[{max(a, b)}]"), (prompt, text)
    latencies = sorted(s for _, s in results)
    print(f"\n{CONCURRENT} concurrent Playground requests: p50 {statistics.median(latencies):.2f} s, "
          f"max {latencies[-1]:.2f} s")
    assert httpx.get(app.url, timeout=30).status_code == 200, "the app went down under load"


@pytest.mark.parametrize("probe", ["/file=/etc/passwd", "/gradio_api/file=/etc/passwd", "/file=../../../etc/passwd",
                                   "/gradio_api/file=../../../../etc/passwd", "/gradio_api/file=%2Fetc%2Fpasswd",
                                   "/gradio_api/file=runs/../../../etc/passwd", "/file={root}/../secret.txt"])
def test_file_probes_outside_the_app_folders_are_refused(app, probe):
    (app.root.parent / "secret.txt").write_text("do not serve me")
    url = app.url.rstrip("/") + probe.format(root=app.root)
    response = httpx.get(url, timeout=30, follow_redirects=True)
    assert response.status_code != 200 or ("root:" not in response.text and "do not serve me" not in response.text)
    assert response.status_code in (400, 403, 404, 405), (probe, response.status_code)
