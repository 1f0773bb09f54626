"""Issue 19 through the API (gradio_client on 127.0.0.1): the app as a tool several people share.

Deletes remove exactly one artwork or one run folder and need the confirmation the page asks for;
models come from the menu fixed at launch; imports are checked against the served models (a pixel
bomb is refused from its header); errors show no server paths; the Train tab's command line parses
back to the run's own config; a network address needs a login.
"""

from __future__ import annotations

import json
import shlex
import struct
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from artstudio.backbone import DEFAULT_MODEL  # noqa: E402

pytestmark = pytest.mark.slow

CANVAS = 96  # studio-tiny's recommended canvas


def _needs_studio_tiny():
    if not (Path(DEFAULT_MODEL) / "config.json").is_file():
        pytest.skip("studio-tiny is not installed")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from artstudio.ui.app import start
    from artstudio.ui.settings import AppSettings

    _needs_studio_tiny()
    root = tmp_path_factory.mktemp("ui-shared")
    models = root / "models"
    (models / "my-model").mkdir(parents=True)
    (models / "my-model" / "config.json").write_text("{}")
    server = start(AppSettings(runs_dir=str(root / "runs"), canvases_dir=str(root / "canvases"), model=DEFAULT_MODEL,
                               model_roots=[str(models)], poll_seconds=0.5, max_upload_mb=2))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def refused(client, *args, api_name: str, **kwargs) -> str:
    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name, **kwargs)
    message = str(err.value)
    assert "Traceback" not in message
    return message


def wait_job(client, job_id: int, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def train(client, run: str, **extra) -> int:
    kwargs = {"source": "task", "task": "add-json", "steps": 5, "batch_size": 4, "canvas_size": str(CANVAS),
              "snapshot_every": 5, "eval_every": 0, "run": run, "train_file": None, "eval_file": None} | extra
    _, _, job = client.predict(api_name="/start_training", **kwargs)
    return int(job)


@pytest.fixture(scope="module")
def finished_run(app, client):
    job = train(client, "finished")
    assert wait_job(client, job)["status"] == "done"
    return app.studio.runs / "finished"


def ask_kwargs(artwork: str, model: str = "studio-tiny") -> dict:
    return dict(model=model, artwork=artwork, prompt="3 4", greedy=True, temperature=0.7, max_tokens=4,
                allow_mismatch=False, history_with=[], history_without=[])


# --- 1. deletes ------------------------------------------------------------------------------------

def test_delete_needs_the_confirmation_token_and_removes_one_thing(app, client, finished_run, tmp_path):
    studio = app.studio
    compare = studio.runs / "compare" / "X"
    compare.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(compare / "accuracy.png")
    assert (finished_run / "snapshots" / "step-00005.png").is_file()
    # What the issue did: these named a file inside a folder, and the folder went.
    for key in ("runs/compare/X/accuracy.png", "runs/finished/snapshots/step-00005.png", "runs/finished",
                "canvases", "canvases/", "runs/compare/artwork.png"):
        refused(client, key, api_name="/request_delete")
        refused(client, key, "", api_name="/delete_artwork")
    assert (compare / "accuracy.png").is_file() and (finished_run / "snapshots" / "step-00005.png").is_file()

    # Without the token the page's confirmation gives, nothing is deleted.
    assert "confirmation" in refused(client, "runs/finished/artwork.png", "", api_name="/delete_artwork")
    assert "confirmation" in refused(client, "runs/finished/artwork.png", "guessed", api_name="/delete_artwork")
    assert finished_run.is_dir()

    # A token confirms the one key it was issued for, once.
    good = tmp_path / "keep me.png"
    Image.new("RGB", (CANVAS, CANVAS), (10, 200, 30)).save(good)
    client.predict(handle_file(str(good)), api_name="/upload_artwork")
    question, token = client.predict("canvases/keep-me.png", api_name="/request_delete")[-2:]
    assert "canvases/keep-me.png" in question
    refused(client, "runs/finished/artwork.png", token, api_name="/delete_artwork")
    assert finished_run.is_dir()
    out = client.predict("canvases/keep-me.png", token, api_name="/delete_artwork")
    assert any("deleted keep-me.png" in str(x) for x in out)
    assert not (studio.canvases / "keep-me.png").exists()
    refused(client, "canvases/keep-me.png", token, api_name="/delete_artwork")  # used up

    # A run: exactly its own folder, nothing beside it.
    question, token = client.predict("runs/finished/artwork.png", api_name="/request_delete")[-2:]
    assert "runs/finished/" in question
    client.predict("runs/finished/artwork.png", token, api_name="/delete_artwork")
    assert not finished_run.exists() and studio.runs.is_dir() and (compare / "accuracy.png").is_file()


# --- 2. models -------------------------------------------------------------------------------------

def test_a_model_not_on_the_menu_is_refused_at_once(app, client):
    start = time.perf_counter()
    message = refused(client, **ask_kwargs("canvases/none.png", model="someone/nonexistent-model"), api_name="/ask")
    assert time.perf_counter() - start < 5
    assert "not in the list of choices" in message and "studio-tiny" in message  # Gradio's own check of the menu
    assert "someone/nonexistent-model" in message
    with pytest.raises(Exception, match="not one this app serves"):
        app.studio.ask("someone/nonexistent-model", "canvases/none.png", "hi")
    message = refused(client, api_name="/start_training", source="task", task="add-json", steps=1, batch_size=4,
                      canvas_size="", run="hub", train_file=None, eval_file=None, model="someone/nonexistent-model")
    assert "not in the list of choices" in message
    assert not (app.studio.runs / "hub").exists()


def test_menu_shows_names_and_offers_folders_under_the_roots(app, client):
    studio = app.studio
    assert studio.model_choices() == ["studio-tiny", "models/my-model"]  # never DEFAULT_MODEL's path
    assert DEFAULT_MODEL not in json.dumps(client.view_api(return_format="dict"))
    command = client.predict(model="models/my-model", source="task", task="add-json", run="x",
                             api_name="/train_command")
    assert "--model" in command and "my-model" in command and not command.startswith("#")
    for bad in ("models/../models/my-model", "models/nope", "/etc", "../models/my-model"):
        with pytest.raises(Exception, match="not one this app serves"):
            studio.check_model(bad)


def test_any_hub_id_only_with_the_option(tmp_path):
    from artstudio.ui.models import Models
    from artstudio.ui.settings import AppSettings

    strict = Models(AppSettings(canvases_dir=str(tmp_path)), tmp_path)
    with pytest.raises(Exception, match="not one this app serves"):
        strict.resolve("Qwen/Qwen3.5-0.8B")
    loose = Models(AppSettings(canvases_dir=str(tmp_path), allow_any_model=True), tmp_path)
    assert loose.resolve("Qwen/Qwen3.5-0.8B") == ("Qwen/Qwen3.5-0.8B", "Qwen/Qwen3.5-0.8B")
    with pytest.raises(Exception, match="not one this app serves"):
        loose.resolve("/etc")  # a path is never a hub id


def test_default_menu_has_the_gallery_models(tmp_path):
    from artstudio.artwork import METADATA_KEY
    from artstudio.ui.models import Models
    from artstudio.ui.settings import AppSettings
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps({"model_id": "Qwen/Qwen3.5-0.8B"}))
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png", pnginfo=info)
    assert Models(AppSettings(), tmp_path).choices() == ["studio-tiny", "Qwen/Qwen3.5-0.8B"]


def test_a_slow_model_load_does_not_block_another_model(tmp_path, monkeypatch):
    import artstudio.backbone as backbone_module
    from artstudio.ui.models import Models
    from artstudio.ui.settings import AppSettings

    def fake_load(source, **_):
        if source == "slow/model":
            time.sleep(3)  # a download
        return source

    monkeypatch.setattr(backbone_module, "load_backbone", fake_load)
    models = Models(AppSettings(models=["slow/model"]), tmp_path)
    slow = threading.Thread(target=models.backbone, args=("slow/model",))
    slow.start()
    time.sleep(0.2)
    start = time.perf_counter()
    assert models.backbone("studio-tiny") == "studio-tiny"
    assert time.perf_counter() - start < 1
    slow.join()


# --- 5. imports ------------------------------------------------------------------------------------

def _bomb(path: Path, side: int) -> None:
    """A valid PNG of side × side black pixels, a few hundred KB on disk (streamed, never held in memory)."""
    raw_row = b"\x00" + bytes(side * 3)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(raw_row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_pixel_bombs_and_misfits_are_refused_before_they_enter_the_gallery(app, client, tmp_path, monkeypatch):
    before = client.predict(api_name="/list_gallery")
    bomb = tmp_path / "huge.png"
    _bomb(bomb, 12000)
    assert bomb.stat().st_size < 1024 * 1024
    message = refused(client, handle_file(str(bomb)), api_name="/upload_artwork")
    assert "12000×12000" in message and "huge.png" in message

    small = tmp_path / "odd size.png"
    Image.new("RGB", (100, 100), "white").save(small)
    message = refused(client, handle_file(str(small)), api_name="/upload_artwork")
    assert "100×100" in message and "studio-tiny" in message and message.count("does not fit") <= 1
    assert "/tmp" not in message and str(app.studio.runs) not in message
    assert client.predict(api_name="/list_gallery") == before


def test_the_bomb_is_never_decoded(app, tmp_path, monkeypatch):
    from PIL import ImageFile

    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or None)
    bomb = tmp_path / "huge.png"
    _bomb(bomb, 12000)
    with pytest.raises(Exception, match="12000×12000"):
        app.studio.add_upload(str(bomb), "huge.png")
    assert decoded == []


def test_an_artwork_for_a_model_the_app_does_not_serve_is_refused(app, client, tmp_path):
    from artstudio.artwork import METADATA_KEY
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps({"model_id": "someone/else"}))
    png = tmp_path / "foreign.png"
    Image.new("RGB", (CANVAS, CANVAS)).save(png, pnginfo=info)
    assert "does not serve" in refused(client, handle_file(str(png)), api_name="/upload_artwork")


# --- 6. messages -----------------------------------------------------------------------------------

def test_errors_name_app_folders_not_server_paths(app, client):
    studio = app.studio
    # An artwork that reached the folder by hand (not through an upload) and does not fit.
    Image.new("RGB", (100, 100), "white").save(studio.canvases / "by-hand.png")
    message = refused(client, **ask_kwargs("canvases/by-hand.png"), api_name="/ask")
    assert "canvases/by-hand.png" in message
    assert str(studio.canvases) not in message and DEFAULT_MODEL not in message and "/tmp" not in message
    assert message.count("does not fit") == 1
    (studio.canvases / "by-hand.png").unlink()


def test_vllm_command_names_something_vllm_can_load(app, client, tmp_path):
    png = tmp_path / "plain.png"
    Image.new("RGB", (CANVAS, CANVAS), (90, 90, 200)).save(png)
    client.predict(handle_file(str(png)), api_name="/upload_artwork")
    *_, request, serve, _ = client.predict(**ask_kwargs("canvases/plain.png"), api_name="/ask")
    assert not serve.startswith("vllm serve studio-tiny")
    assert "b.DEFAULT_MODEL" in serve and "--served-model-name studio-tiny" in serve
    assert json.loads(request)["model"] == "studio-tiny"
    assert DEFAULT_MODEL not in serve


# --- the command line preview (issue 16) ----------------------------------------------------------

@pytest.mark.parametrize("form", [
    {"steps": 3, "batch_size": 4, "canvas_size": str(CANVAS), "lr": "0.02", "seed": 3},
    {"method": "lora", "steps": 2, "batch_size": 2, "method_options": '{"r": 2}', "warmup": 0.2},
    {"objective": "grpo", "steps": 2, "batch_size": 2, "canvas_size": str(CANVAS), "grpo": '{"group_size": 2}',
     "method_options": '{"init": "noise"}', "eval_every": 0, "schedule": "constant"},
])
def test_the_shown_command_is_the_form(app, client, form):
    from artstudio.cli import parse_config
    from artstudio.training import TrainConfig

    run = f"cmd-{len(list(app.studio.runs.glob('cmd-*')))}"
    values = {"source": "task", "task": "add-json", "run": run, "snapshot_every": 5, "eval_every": 0} | form
    command = client.predict(api_name="/train_command", **values)
    assert command.startswith("artstudio train ") and DEFAULT_MODEL not in command
    parsed = parse_config(shlex.split(command)[1:])
    job = train(client, **values)
    wait_job(client, job)
    from dataclasses import fields

    known = {f.name for f in fields(TrainConfig)}
    saved = json.loads((app.studio.runs / run / "config.json").read_text())
    saved = TrainConfig.from_dict({k: v for k, v in saved.items() if k in known})
    parsed = replace(parsed, out=str(app.studio.runs.parent / parsed.out))
    assert parsed == saved, (command, parsed, saved)


# --- access ----------------------------------------------------------------------------------------

def test_a_network_address_needs_a_login_or_no_auth():
    from artstudio.errors import ConfigError
    from artstudio.ui.settings import AppSettings

    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(ConfigError, match="--auth USER:PASS"):
            AppSettings(host=host).check()
        AppSettings(host=host, auth="ana:pw").check()
        AppSettings(host=host, no_auth=True).check()
    AppSettings().check()
    with pytest.raises(ConfigError, match="USER:PASS"):
        AppSettings(auth="nocolon").check()


def test_a_model_root_that_is_not_a_folder_is_refused(tmp_path):
    """`--model-roots ~/models` with no such folder started the app without a word, and no models."""
    from artstudio.errors import ConfigError
    from artstudio.ui.settings import AppSettings

    AppSettings(model_roots=[str(tmp_path)]).check()
    with pytest.raises(ConfigError, match="--model-roots .*absent: no such folder"):
        AppSettings(model_roots=[str(tmp_path / "absent")]).check()


def test_the_command_refuses_a_network_host_without_auth(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "artstudio.cli", "app", "--host", "0.0.0.0",
                          "--runs-dir", str(tmp_path / "r"), "--canvases-dir", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--auth USER:PASS" in out.stderr and "Traceback" not in out.stderr


def test_a_port_outside_0_to_65535_is_refused_before_anything_starts(tmp_path, capsys):
    from artstudio.cli import main
    from artstudio.errors import ConfigError
    from artstudio.ui.settings import AppSettings

    for port in (-1, 65536, 70000):
        with pytest.raises(ConfigError, match=f"--port is {port}; expected 0..65535"):
            AppSettings(port=port).check()
    AppSettings(port=0).check()
    AppSettings(port=65535).check()
    assert main(["app", "--port", "70000", "--runs-dir", str(tmp_path / "r"),
                 "--canvases-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "error: --port is 70000" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_port_0_launches_on_a_free_port_not_on_0(tmp_path, monkeypatch, capsys):
    import artstudio.ui.app as app_module
    from artstudio.ui.settings import AppSettings

    launched = {}

    class FakeStudio:
        settings = AppSettings(runs_dir=str(tmp_path / "r"), canvases_dir=str(tmp_path / "c"))
        runs, canvases = tmp_path / "r", tmp_path / "c"

        def close(self):
            launched["closed"] = True

    class FakeBlocks:
        studio = FakeStudio()

        def queue(self, **kwargs):
            pass

        share_url = None

        def launch(self, **kwargs):
            launched.update(kwargs)
            self.local_url = f"http://127.0.0.1:{kwargs['server_port']}/"

        def block_thread(self):  # the app runs here until Ctrl-C
            launched["blocked"] = True

    monkeypatch.setattr(app_module, "build_app", lambda settings: FakeBlocks())
    app_module.launch(AppSettings(port=0, runs_dir=str(tmp_path / "r"), canvases_dir=str(tmp_path / "c")))
    assert 0 < launched["server_port"] <= 65535 and launched["closed"] and launched["blocked"]
    printed = capsys.readouterr().out  # its own start-up line, naming --share (not Gradio's "share=True in launch()")
    assert f"running on http://127.0.0.1:{launched['server_port']}/" in printed and "--share" in printed
    # Where its gallery is, and that it is new and empty (started outside the repository, the shipped one seemed lost).
    assert f"Gallery: {tmp_path / 'c'} (a new, empty folder: --canvases-dir names an existing gallery)" in printed
    (tmp_path / "c").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "c" / "one.png")
    app_module.launch(AppSettings(port=0, runs_dir=str(tmp_path / "r"), canvases_dir=str(tmp_path / "c")))
    assert f"Gallery: {tmp_path / 'c'} (1 artwork) · runs:" in capsys.readouterr().out


def test_auth_uses_gradios_login(tmp_path):
    import httpx

    from artstudio.ui.app import start
    from artstudio.ui.settings import AppSettings

    server = start(AppSettings(runs_dir=str(tmp_path / "r"), canvases_dir=str(tmp_path / "c"), auth="ana:s3cret"))
    try:
        assert httpx.get(server.url + "config").status_code in (401, 403)
        with pytest.raises(Exception):
            Client(server.url, verbose=False).predict(api_name="/list_gallery")
        assert Client(server.url, auth=("ana", "s3cret"), verbose=False).predict(api_name="/list_gallery") == []
    finally:
        server.close()
