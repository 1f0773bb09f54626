"""The web app through its named API endpoints (gradio_client against a running app on 127.0.0.1).

The flow a user follows (train ART for 10 steps, save to the gallery, find it, ask with and without
it) and the bad inputs the app must refuse with a clear message: a corrupt PNG, a malformed JSONL
file (the error names the line), and paths outside the configured folders, relative or absolute.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from artstudio.backbone import DEFAULT_MODEL  # noqa: E402

pytestmark = pytest.mark.slow

OUTSIDE = ["../../etc/passwd", "/etc/passwd", "canvases/../../etc/passwd", "runs/../../../etc/passwd",
           "canvases//etc/passwd", "runs/../canvases/../../x.png"]


def app_model(tiny_model_dir) -> tuple[str, int]:
    """studio-tiny when it is installed (its recommended canvas), else a tiny random Qwen3.5 (64 px canvas)."""
    if (Path(DEFAULT_MODEL) / "config.json").is_file():
        return DEFAULT_MODEL, 96
    return tiny_model_dir("qwen3_5"), 64


def start_app(root: Path, model: str):
    from artstudio.ui.app import start
    from artstudio.ui.studio import AppSettings

    settings = AppSettings(runs_dir=str(root / "runs"), canvases_dir=str(root / "canvases"), model=model,
                           poll_seconds=0.5, max_upload_mb=1)
    return start(settings)


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_model_dir):
    model, canvas = app_model(tiny_model_dir)
    server = start_app(tmp_path_factory.mktemp("ui-api"), model)
    server.model, server.canvas = model, canvas
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ui-data")
    rows = [{"prompt": f"{i} {i + 1}", "answer": str(2 * i + 1)} for i in range(12)]
    (folder / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def train_kwargs(app, **extra) -> dict:
    """Every /start_training parameter without a default in the form, plus the run's own values."""
    return {"canvas_size": str(app.canvas), "batch_size": 4, "train_file": None, "eval_file": None, **extra}


def wait_job(client, job_id: int, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {status}")


def refused(client, *args, api_name: str, **kwargs) -> str:
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name, **kwargs)
    message = str(err.value)
    assert "Traceback" not in message
    return message


def test_train_save_find_and_ask(app, client, data):
    _, run, job = client.predict(api_name="/start_training", **train_kwargs(
        app, source="upload", train_file=handle_file(str(data / "sums.jsonl")),
        eval_file=handle_file(str(data / "sums.jsonl")), steps=10, snapshot_every=2, run="api-flow"))
    assert run == "api-flow"
    status = wait_job(client, int(job))
    assert status["status"] == "done", status
    assert status["done"] == 10 and status["result"]["metrics"]["eval_n"] == 12
    run_dir = app.studio.runs / "api-flow"
    assert len(list((run_dir / "snapshots").glob("step-*.png"))) == 5  # the canvas the page shows, every 2 steps
    assert (run_dir / "checkpoint" / "checkpoint.json").is_file()

    message = client.predict("api-flow", "sum maker", "adds two numbers", api_name="/save_to_gallery")
    assert "canvases/sum-maker.png" in message
    assert client.predict(api_name="/list_gallery")[0] == "canvases/sum-maker.png"
    # The saved run is not listed twice (as the gallery artwork and as an unsaved run).
    assert "runs/api-flow/artwork.png" not in client.predict(api_name="/list_gallery")
    details = client.predict("canvases/sum-maker.png", api_name="/artwork_details")
    assert "sum maker" in details[1] and "adds two numbers" in details[1] and "<th>steps</th><td>10</td>" in details[1]
    again = refused(client, "api-flow", "sum maker", "", api_name="/save_to_gallery")
    assert "already has sum-maker.png" in again

    with_chat, without_chat, request, serve, _ = client.predict(
        model=app.studio.default_model, artwork="canvases/sum-maker.png", prompt="3 4", greedy=True, temperature=0.7, max_tokens=6,
        allow_mismatch=False, history_with=[], history_without=[], api_name="/ask")
    for chat in (with_chat, without_chat):
        assert [m["role"] for m in chat] == ["user", "assistant"]
        assert " ms</sub>" in chat[1]["content"][0]["text"]
    body = json.loads(request)
    content = body["messages"][0]["content"]
    assert body["temperature"] == 0 and body["max_tokens"] == 6 and content[-1] == {"type": "text", "text": "3 4"}
    png = base64.b64decode(content[0]["image_url"]["url"].split(",", 1)[1])
    served = Image.open(io.BytesIO(png)).convert("RGB")
    assert served.tobytes() == Image.open(app.studio.canvases / "sum-maker.png").convert("RGB").tobytes()
    assert "--enable-prefix-caching" in serve


def test_malformed_jsonl_names_the_line(app, client, data):
    bad = data / "broken.jsonl"
    bad.write_text('{"prompt": "1 2", "answer": "3"}\n{"prompt": "2 3", "answer": "5"}\n{"prompt": "oops"\n')
    message = refused(client, handle_file(str(bad)), api_name="/check_jsonl")
    assert "broken.jsonl:3" in message
    message = refused(client, api_name="/start_training", **train_kwargs(
        app, source="upload", train_file=handle_file(str(bad)), steps=2, run="bad-data"))
    assert "broken.jsonl:3" in message
    assert not (app.studio.runs / "bad-data" / "metrics.jsonl").exists()
    # A row naming an "image" could make the server open any file: refused, with its line.
    sneaky = data / "sneaky.jsonl"
    sneaky.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "a", "answer": "b", "image": "/etc/passwd"}\n')
    assert "sneaky.jsonl:2" in refused(client, handle_file(str(sneaky)), api_name="/check_jsonl")


def test_corrupt_or_oversized_png_is_refused(app, client, tmp_path):
    before = client.predict(api_name="/list_gallery")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    assert "corrupt.png" in refused(client, handle_file(str(corrupt)), api_name="/upload_artwork")
    jpeg = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "red").save(jpeg, format="JPEG")
    assert "not a PNG" in refused(client, handle_file(str(jpeg)), api_name="/upload_artwork")
    # Over the app's 1 MB limit: the server's upload route refuses it before anything reads it.
    import httpx

    big = b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024)
    response = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert client.predict(api_name="/list_gallery") == before

    good = tmp_path / "plain picture.png"
    Image.new("RGB", (app.canvas, app.canvas), (200, 120, 40)).save(good)
    said = client.predict(handle_file(str(good)), api_name="/upload_artwork")
    assert "Added **canvases/plain-picture.png**." in said
    assert "canvases/plain-picture.png" in client.predict(api_name="/list_gallery")
    assert (app.studio.canvases / "plain-picture.png").is_file()
    # The same picture again is not copied again, and the page says so ("Added" named a file that was not added).
    said = client.predict(handle_file(str(good)), api_name="/upload_artwork")
    assert "**canvases/plain-picture.png** is in the gallery already; nothing was added." in said


@pytest.mark.parametrize("name", OUTSIDE)
def test_paths_outside_the_folders_are_refused(app, client, name):
    assert "Traceback" not in refused(client, name, api_name="/artwork_details")
    refused(client, name, api_name="/delete_artwork")
    refused(client, model=app.studio.default_model, artwork=name, prompt="hi", greedy=True, temperature=0.7, max_tokens=2,
            allow_mismatch=False, history_with=[], history_without=[], api_name="/ask")
    refused(client, name, api_name="/load_results")
    assert Path("/etc/passwd").exists()  # nothing was deleted


def test_requests_cannot_name_folders_or_models_elsewhere(app, client, tmp_path):
    assert "not an artwork of this app" in refused(client, "canvases/../../etc/passwd", api_name="/artwork_details")
    assert "not in the list of choices" in refused(
        client, api_name="/start_training", **train_kwargs(app, model=str(tmp_path), steps=1, run="elsewhere"))
    refused(client, "../../", "escape", "", api_name="/save_to_gallery")
    assert "expected a number" in refused(client, api_name="/start_training", **train_kwargs(app, lr="fast", run="x"))
    # A run name with path parts is refused with a message (not silently rewritten to "escape").
    assert "looks like a path" in refused(client, api_name="/start_training", **train_kwargs(
        app, source="task", task="add-json", steps=1, run="../../escape", eval_every=0))
    assert not (app.studio.runs / "escape").exists()
    assert not (app.studio.runs.parent.parent / "escape").exists()


def test_stop_keeps_the_last_checkpoint_and_resume_continues(app, client, data):
    _, run, job = client.predict(api_name="/start_training", **train_kwargs(
        app, source="upload", train_file=handle_file(str(data / "sums.jsonl")), steps=5000, checkpoint_every=1000,
        run="to-stop"))
    deadline = time.time() + 60
    while client.predict(int(job), api_name="/job_status")["done"] < 3 and time.time() < deadline:
        time.sleep(0.1)
    assert "stopping" in client.predict(int(job), api_name="/stop_job")
    status = wait_job(client, int(job))
    assert status["status"] == "stopped" and status["result"]["metrics"]["stopped"]
    saved = json.loads((app.studio.runs / "to-stop" / "checkpoint" / "checkpoint.json").read_text())
    assert 3 <= saved["step"] < 5000
    assert "already" in refused(client, int(job), api_name="/stop_job")
    assert client.predict(int(job), api_name="/stop_training") == "Nothing is training."

    # Resuming needs the same data: the upload becomes part of the run folder.
    _, _, job2 = client.predict(api_name="/start_training", **train_kwargs(
        app, source="upload", train_file=handle_file(str(data / "sums.jsonl")), steps=saved["step"] + 2,
        checkpoint_every=1000, run="to-stop", resume=True))
    status = wait_job(client, int(job2))
    assert status["status"] == "done" and status["result"]["metrics"]["steps"] == saved["step"] + 2
    # Its loss curve and log go on from the earlier steps (they held only the two new ones).
    steps = [h["step"] for h in app.studio.jobs.get(int(job2)).history if h.get("loss") is not None]
    assert steps == list(range(1, saved["step"] + 3))


def test_second_job_waits_in_the_queue_and_can_be_cancelled(app, client, data):
    _, _, first = client.predict(api_name="/start_training", **train_kwargs(
        app, source="upload", train_file=handle_file(str(data / "sums.jsonl")), steps=5000, checkpoint_every=0,
        run="queue-a"))
    message, _, second = client.predict(api_name="/start_training", **train_kwargs(
        app, source="upload", train_file=handle_file(str(data / "sums.jsonl")), steps=3, run="queue-b"))
    assert "queued" in message
    assert client.predict(int(second), api_name="/job_status")["status"] == "queued"
    client.predict(int(second), api_name="/stop_job")
    assert client.predict(int(second), api_name="/job_status")["status"] == "cancelled"
    client.predict(int(first), api_name="/stop_job")
    assert wait_job(client, int(first))["status"] == "stopped"
    assert not (app.studio.runs / "queue-b" / "metrics.jsonl").exists()


def test_safe_names_and_confinement(tmp_path):
    from artstudio.ui.files import PathRefused, inside, safe_name

    assert safe_name("My run 1!") == "My-run-1"
    for name in ("../../etc", "../", "a/b", "a\\b"):  # refused, not rewritten (docs/app.md)
        with pytest.raises(PathRefused, match="looks like a path"):
            safe_name(name)
    with pytest.raises(Exception, match="empty"):
        safe_name(" !? ")
    assert inside(tmp_path, "a/b.png") == tmp_path.resolve() / "a" / "b.png"
    (tmp_path / "link").symlink_to("/etc")
    for name in ("../x", "/etc/passwd", "link/passwd"):
        with pytest.raises(PathRefused):
            inside(tmp_path, name)
