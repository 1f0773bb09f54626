"""Property-based fuzzing (hypothesis) of everything that reads user input: every malformed input gets a
clear `ArtStudioError` (or argparse's usage exit), never another exception.

Example counts per test are set with `settings(max_examples=...)` from `CASES` (2,400 in all).
"""

from __future__ import annotations

import io
import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from artstudio.artwork import METADATA_KEY, ArtworkMetadata, read_artwork
from artstudio.cli import parse_config
from artstudio.data import load_jsonl
from artstudio.errors import ArtStudioError
from artstudio.ui.files import PathRefused, inside, safe_name, validate_jsonl, validate_png

CASES = {"jsonl": 300, "jsonl_rows": 300, "metadata": 300, "png_bytes": 200, "png_chunks": 200, "train_args": 300,
         "names": 300, "paths": 300, "uploads": 200}
FUZZ_CASES = sum(CASES.values())
# Derandomised: CI sees the same 2,400 cases every run (a failure reproduces; none appears by chance).
COMMON = dict(deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=10)


def _clear(err: BaseException) -> None:
    assert isinstance(err, ArtStudioError), f"{type(err).__name__}: {err}"
    assert str(err).strip() and "Traceback" not in str(err)


@settings(max_examples=CASES["jsonl"], **COMMON)
@given(st.binary(max_size=400))
def test_jsonl_loader_takes_any_bytes(tmp_path, data):
    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    try:
        rows = load_jsonl(path)
    except Exception as err:  # noqa: BLE001 - the property: only our own, clear errors
        _clear(err)
    else:
        assert rows and all(isinstance(r.prompt, str) for r in rows)


@settings(max_examples=CASES["jsonl_rows"], **COMMON)
@given(st.lists(st.dictionaries(st.sampled_from(["prompt", "answer", "id", "image", "x"]), json_values, max_size=5),
                min_size=0, max_size=5))
def test_jsonl_loader_takes_any_rows(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    try:
        load_jsonl(path)
    except Exception as err:  # noqa: BLE001
        _clear(err)


def _valid_meta() -> dict:
    return {"format_version": 1, "model_id": "studio-tiny", "family": "qwen3_5", "canvas_size": [32, 32],
            "geometry": {"patch_size": 16}, "placement": "first", "chat_template_sha256": "0" * 64}


@settings(max_examples=CASES["metadata"], **COMMON)
@given(st.one_of(st.text(max_size=200),
                 st.builds(lambda k, v, drop: {**{a: b for a, b in _valid_meta().items() if a != drop}, k: v},
                           st.sampled_from(list(_valid_meta()) + ["task", "steps", "metrics", "extra", "objective"]),
                           json_values, st.sampled_from([None, *list(_valid_meta())])).map(json.dumps)))
def test_artwork_metadata_reader_takes_any_text(text):
    try:
        ArtworkMetadata.from_json(text)
    except Exception as err:  # noqa: BLE001
        _clear(err)


@settings(max_examples=CASES["png_bytes"], **COMMON)
@given(st.binary(max_size=600))
def test_png_import_takes_any_bytes(tmp_path, data):
    path = tmp_path / "art.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data if data[:1] == b"\x00" else data)
    for read in (lambda: read_artwork(path), lambda: validate_png(path, 1.0, "upload.png")):
        try:
            read()
        except Exception as err:  # noqa: BLE001
            _clear(err)


@settings(max_examples=CASES["png_chunks"], **COMMON)
@given(st.integers(1, 40), st.integers(1, 40), st.one_of(st.text(max_size=120), json_values.map(json.dumps)))
def test_png_import_takes_any_metadata_chunk(tmp_path, w, h, text):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, text)
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, format="PNG", pnginfo=info)
    path = tmp_path / "chunk.png"
    path.write_bytes(buf.getvalue())
    try:
        art = read_artwork(path)
    except Exception as err:  # noqa: BLE001
        _clear(err)
    else:
        assert art.image.size == (w, h)


numbers = st.one_of(st.integers(-5, 400).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.text(alphabet=string.printable, max_size=6))


@settings(max_examples=CASES["train_args"], **COMMON)
@given(st.lists(st.tuples(st.sampled_from(["--steps", "--lr", "--batch-size", "--warmup", "--grad-accum",
                                           "--eval-every", "--weight-decay", "--canvas-size", "--metric", "--schedule",
                                           "--objective", "--method", "--max-new-tokens", "--eval-size", "--init"]),
                          numbers), max_size=5))
def test_train_arguments_are_validated_before_anything_runs(options):
    argv = ["train", "--data", "add-json", "--out", "/nonexistent/never-written"]
    for flag, value in options:
        argv += [flag, value]
    try:
        config = parse_config(argv)
        config.check()
    except SystemExit as exit_:
        assert exit_.code == 2  # argparse's usage error, already printed with the option's name
    except Exception as err:  # noqa: BLE001
        _clear(err)


@settings(max_examples=CASES["names"], **COMMON)
@given(st.text(max_size=60))
def test_upload_names_are_made_safe_or_refused(name):
    try:
        cleaned = safe_name(name)
    except Exception as err:  # noqa: BLE001
        _clear(err)
    else:
        # A plain file name: safe characters only, no separator, never "." or ".." (a name like "0..0" is fine).
        assert cleaned and set(cleaned) <= set(string.ascii_letters + string.digits + "-_.")
        assert cleaned not in (".", "..") and not cleaned.startswith(".")


@settings(max_examples=CASES["paths"], **COMMON)
@given(st.lists(st.sampled_from(list("ab./\\~") + ["..", "/etc", "%2e"]), max_size=12).map("".join))
def test_paths_never_leave_the_app_folder(tmp_path, relative):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    try:
        path = inside(root, relative)
    except PathRefused:
        return
    except Exception as err:  # noqa: BLE001
        _clear(err)
        return
    assert path.is_relative_to(root.resolve())


@settings(max_examples=CASES["uploads"], **COMMON)
@given(st.binary(max_size=300), st.booleans())
def test_app_upload_handlers_take_any_file(tmp_path, data, as_jsonl):
    path = tmp_path / ("upload.jsonl" if as_jsonl else "upload.png")
    path.write_bytes(data)
    try:
        (validate_jsonl if as_jsonl else validate_png)(path, 0.001, path.name)
    except Exception as err:  # noqa: BLE001
        _clear(err)
        assert str(tmp_path) not in str(err), "an upload error shows a server path"

