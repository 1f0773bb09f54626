"""The `artstudio` command: generated options, help on every verb, and errors without tracebacks."""

from __future__ import annotations

import dataclasses
import json
import re
import os
import subprocess
import sys
import types

import pytest
from PIL import Image

from artstudio.cli import VERBS, build_parser, main, parse_config
from artstudio.errors import ConfigError
from artstudio.data import Example, write_jsonl
from artstudio.methods import ArtConfig, get_method, method_names
from artstudio.training import TrainConfig


def _options(argv_verb: str) -> set[str]:
    verb_parser = build_parser(only=argv_verb)._subparsers._group_actions[0].choices[argv_verb]
    return {s for a in verb_parser._actions for s in a.option_strings}


@pytest.mark.parametrize("argv", [[], *[[v] for v in VERBS], ["tasks", "list"], ["tasks", "make"]])
def test_help_for_every_verb(argv, capsys):
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: artstudio {' '.join(argv)}".rstrip())
    assert "--debug" in out


def test_every_train_config_field_is_an_option():
    opts = _options("train")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "method_options":  # filled from the method options below
            continue
        flag = "--" + f.name.replace("_", "-")
        assert flag in opts or any(o.startswith(flag + "-") for o in opts), flag
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(ArtConfig):
        name = f.name.replace("_", "-")
        assert (f"--art-{name}" if f.name in train_fields else f"--{name}") in opts
    for m in method_names():
        cls = get_method(m).config_class
        if dataclasses.is_dataclass(cls) and not issubclass(cls, ArtConfig):
            for f in dataclasses.fields(cls):
                # One rule for every canvas-sized slot (the soft prompt's too): the shared --canvas-size.
                shared = f.name == "canvas_size" and get_method(m).takes_canvas_size()
                assert ("--canvas-size" if shared else f"--{m}-{f.name.replace('_', '-')}") in opts
    for short in ("--model", "--data", "--eval-data", "--metric", "--steps", "--batch-size", "--lr",
                  "--canvas-size", "--init", "--seed", "--out", "--resume", "--no-quantize", "-o"):
        assert short in opts, short


def test_train_options_build_the_config():
    config = parse_config([
        "train", "--data", "d.jsonl", "--eval-data", "t.jsonl", "--model", "m", "--metric", "numeric",
        "--steps", "7", "--batch-size", "3", "--grad-accum", "2", "--lr", "0.5", "--weight-decay", "0.1",
        "--warmup", "0", "--schedule", "constant", "--seed", "4", "--eval-every", "5", "--eval-size", "9",
        "--checkpoint-every", "0", "--snapshot-every", "0", "--resume", "--max-new-tokens", "6",
        "--device", "cpu", "--dtype", "fp32", "-o", "runs/x",
        "--canvas-size", "64", "--init", "noise", "--no-quantize", "--tv-weight", "0.01", "--art-seed", "3",
        "--placement", "after-text",
    ])
    assert isinstance(config, TrainConfig)
    assert (config.data, config.eval_data, config.model, config.metric) == ("d.jsonl", "t.jsonl", "m", "numeric")
    assert (config.steps, config.batch_size, config.grad_accum, config.lr) == (7, 3, 2, 0.5)
    assert (config.seed, config.resume, config.out, config.schedule, config.eval_size) == (4, True, "runs/x", "constant", 9)
    assert config.method == "art"
    # only the options given reach method_options; the rest keep the method's own defaults
    assert config.method_options == {"canvas_size": 64, "init": "noise", "quantize": False, "tv_weight": 0.01,
                                     "seed": 3, "placement": "after-text"}
    defaults = parse_config(["train", "--data", "d.jsonl"])
    assert defaults == TrainConfig(data="d.jsonl")


def test_method_mismatched_option_is_refused(capsys):
    assert main(["train", "--method", "base", "--canvas-size", "64", "--data", "x.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --canvas-size is an option of --method art") and "Traceback" not in err


def test_unknown_option_and_bad_value_exit_2(capsys):
    assert main(["train", "--data", "x.jsonl", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert main(["train", "--steps", "many"]) == 2
    assert "--steps: invalid int value: 'many'" in capsys.readouterr().err
    assert main(["eval", "--metric", "fuzzy"]) == 2
    assert "invalid choice: 'fuzzy'" in capsys.readouterr().err


def test_user_error_prints_message_not_traceback(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    assert main(["train", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.jsonl" in err and "Traceback" not in err
    assert main(["train", "--data", str(missing), "--out", str(tmp_path / "run"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_exits_2_without_traceback(tmp_path):
    data = tmp_path / "test.jsonl"
    write_jsonl(data, [Example(prompt="1 2", answer="3")])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "artstudio.cli", "eval", "--model", str(tmp_path / "no-model"),
                           "--data", str(data)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "no-model" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--limit", "--batch-size", "--max-new-tokens"])
def test_eval_refuses_counts_below_one_before_loading_anything(capsys, option):
    """`--limit 0` ended in a ValueError traceback; `--max-new-tokens 0` scored empty answers."""
    assert main(["eval", "--data", "max-bracket", option, "0"]) == 2
    assert f"error: {option} is 0; expected at least 1" in capsys.readouterr().err


def test_eval_and_infer_need_their_inputs(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl" in capsys.readouterr().err
    assert main(["infer", "--print-request"]) == 2
    assert "exactly one of --prompt" in capsys.readouterr().err
    assert main(["export", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_tasks_list_and_make(tmp_path, capsys):
    assert main(["tasks", "list", "--kind", "heldout", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert len(cards) >= 12 and all(c["kind"] == "heldout" and c["description"] for c in cards)
    assert main(["tasks", "list", "--kind", "heldout"]) == 0
    listed = capsys.readouterr().out
    assert all(c["description"] in listed for c in cards)  # whole: cut short, the digit tasks all read alike
    out = tmp_path / "task"
    assert main(["tasks", "make", "add-json", "--out", str(out), "--n-train", "5", "--n-test", "3", "--seed", "1"]) == 0
    assert len((out / "train.jsonl").read_text().splitlines()) == 5
    assert len((out / "test.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "card.json").read_text())["name"] == "add-json"
    assert main(["tasks", "make", "no-such-task", "--out", str(out)]) == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err


def test_tasks_make_keeps_a_folder_that_holds_another_task(tmp_path, capsys):
    out = tmp_path / "task"
    make = ["tasks", "make", "add-json", "--out", str(out), "--n-train", "5", "--n-test", "3"]
    assert main(make) == 0
    assert main(make) == 0  # the same task, seed and sizes: the same rows again
    rows = (out / "train.jsonl").read_text()
    capsys.readouterr()
    assert main(make + ["--seed", "1"]) == 2
    assert "already holds train.jsonl, test.jsonl, card.json; pass --overwrite" in capsys.readouterr().err
    assert (out / "train.jsonl").read_text() == rows
    assert main(make + ["--seed", "1", "--overwrite"]) == 0
    mine = tmp_path / "mine"  # a user's own data, no card
    mine.mkdir()
    (mine / "train.jsonl").write_text('{"prompt": "a", "answer": "b"}\n')
    assert main(["tasks", "make", "max-bracket", "--out", str(mine)]) == 2
    assert "already holds train.jsonl; pass --overwrite" in capsys.readouterr().err
    assert (mine / "train.jsonl").read_text() == '{"prompt": "a", "answer": "b"}\n'


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("mine")
    for argv in (["tasks", "make", "add-json", "--out"], ["eval", "--data", "add-json", "--limit", "1", "--out"]):
        assert main(argv + [str(tmp_path / "a-file"), "--overwrite"]) == 2
        assert "a-file is a file; this output is a folder" in capsys.readouterr().err
    for argv in (["compare", "--methods", "base", "--tasks", "max-bracket", "--seeds", "0", "--out"],
                 ["tune", "--method", "lora", "--data", "max-bracket", "--out"]):
        assert main(argv + [str(tmp_path / "a-file")]) == 2
        assert "a-file is a file; expected a folder" in capsys.readouterr().err
    assert (tmp_path / "a-file").read_text() == "mine"


def test_infer_print_request_needs_no_model(tmp_path, capsys):
    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "plain.png")
    assert main(["infer", "--canvas", str(tmp_path / "plain.png"), "--prompt", "3 4", "--print-request",
                 "--served-model-name", "served", "--max-new-tokens", "5"]) == 0
    req = json.loads(capsys.readouterr().out)
    assert req["model"] == "served" and req["max_tokens"] == 5 and req["temperature"] == 0
    assert [c["type"] for c in req["messages"][0]["content"]] == ["image_url", "text"]
    assert main(["infer", "--canvas", str(tmp_path / "plain.png"), "--prompt", "3 4", "--print-curl"]) == 0
    assert capsys.readouterr().out.startswith("curl -s http://localhost:8000/v1/chat/completions")
    for url in ("", "  "):  # printed `curl -s '' ...`
        assert main(["infer", "--canvas", str(tmp_path / "plain.png"), "--prompt", "3 4", "--print-curl", "--url", url]) == 2
        assert f"--url {url!r}: expected the server's endpoint" in capsys.readouterr().err


def test_info_on_a_model(tiny_model_dir, capsys):
    assert main(["info", "--model", tiny_model_dir("qwen3_5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["model"]
    assert info["family"] == "qwen3_5" and info["geometry"]["factor"] == 32
    assert info["tokens_per_size"]["64"] == 4 and 64 in info["valid_sizes"]
    assert main(["info", "--model", tiny_model_dir("qwen3_5")]) == 0
    assert "64 (4)" in capsys.readouterr().out


def test_info_on_a_plain_png(tmp_path, capsys):
    Image.new("RGB", (32, 32)).save(tmp_path / "plain.png")
    assert main(["info", str(tmp_path / "plain.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["artwork"]["metadata"] is None
    assert main(["info", str(tmp_path / "plain.png")]) == 0
    assert "a plain PNG: name the model with --model" in capsys.readouterr().out
    # A size no model takes: naming a model only led to that model's refusal
    Image.new("RGBA", (97, 50)).save(tmp_path / "odd.png")
    assert main(["info", str(tmp_path / "odd.png")]) == 0
    out = capsys.readouterr().out
    assert "97×50 is no canvas size of any Qwen-VL model" in out and "--model" not in out


def test_a_closed_stdout_ends_quietly_without_a_traceback(tmp_path):
    """`artstudio info ART.png --json | head -1` printed a BrokenPipeError traceback."""
    Image.new("RGB", (32, 32)).save(tmp_path / "plain.png")
    proc = subprocess.Popen([sys.executable, "-m", "artstudio.cli", "info", str(tmp_path / "plain.png"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


def test_info_shows_what_saving_to_the_gallery_recorded(tmp_path, capsys):
    """The title and note typed in the app's "Save to gallery" showed only in --json."""
    from dataclasses import replace
    from pathlib import Path

    from artstudio.artwork import export_artwork, read_artwork

    art = read_artwork(Path(__file__).resolve().parents[1] / "canvases" / "add-json.png")
    meta = replace(art.metadata, extra=dict(art.metadata.extra) | {"title": "my-sum", "description": "sums in JSON"})
    export_artwork(art.image, tmp_path / "mine.png", meta)
    assert main(["info", str(tmp_path / "mine.png")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^title +my-sum$", out, re.M) and re.search(r"^note +sums in JSON$", out, re.M)


def test_info_shows_a_picture_size_as_width_by_height(tmp_path, capsys):
    """A picture 128 wide and 96 tall was shown as `size 96×128`; PIL and `file` say 128×96."""
    Image.new("RGB", (128, 96)).save(tmp_path / "wide.png")
    assert main(["info", str(tmp_path / "wide.png")]) == 0
    assert "size      128×96" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "wide.png"), "--json"]) == 0
    art = json.loads(capsys.readouterr().out)["artwork"]
    assert (art["width"], art["height"]) == (128, 96)


def test_a_folder_given_as_an_artwork_says_what_the_option_takes(tmp_path, capsys):
    """An exported LoRA adapter folder was reported as `no such file`."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    for argv in (["eval", "--canvas", str(adapter), "--data", "max-bracket"],  # (`info` shows an adapter folder)
                 ["serve", "--artwork", str(adapter), "--port", "0"]):  # serve said only "the folder has no PNG files"
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is a PEFT adapter folder" in err and "takes an artwork PNG file" in err and "no such file" not in err
    final = tmp_path / "run" / "final"  # a run's trained weights
    final.mkdir(parents=True)
    (final / "method.json").write_text("{}")
    for argv in (["infer", "--canvas", str(final), "--prompt", "3 4"], ["serve", "--artwork", str(final), "--port", "0"]):
        assert main(argv) == 2
        assert f"holds a run's trained weights, not an artwork; `artstudio export {final.parent}`" in capsys.readouterr().err


def test_infer_print_request_names_the_shipped_model_not_its_path(capsys):
    """Without --canvas the request named /…/artstudio/models/studio-tiny; with one, studio-tiny."""
    from artstudio.backbone import DEFAULT_MODEL

    for extra in ([], ["--model", DEFAULT_MODEL], ["--model", "studio-tiny"]):
        assert main(["infer", "--prompt", "3 4", "--print-request", *extra]) == 0
        assert json.loads(capsys.readouterr().out)["model"] == "studio-tiny"


def test_infer_data_takes_a_task_name_or_folder_as_eval_does(tmp_path, capsys):
    """`infer --data max-bracket` said `no such file`, and a task folder `is not a file`."""
    from artstudio.data import Example, load_jsonl, write_jsonl

    write_jsonl(tmp_path / "task" / "test.jsonl", [Example(prompt="cat", answer="[CAT]", id="a"), Example(prompt="sun", answer="", id="b")])
    assert main(["infer", "--data", str(tmp_path / "task"), "--print-request"]) == 0
    prompts = [json.loads(line)["messages"][-1]["content"][-1]["text"] for line in capsys.readouterr().out.splitlines()]
    assert prompts == ["cat", "sun"]
    assert main(["tasks", "make", "max-bracket", "--out", str(tmp_path / "mb")]) == 0
    capsys.readouterr()
    assert main(["infer", "--data", "max-bracket", "--print-request"]) == 0
    said = [json.loads(line)["messages"][-1]["content"][-1]["text"] for line in capsys.readouterr().out.splitlines()]
    assert said == [e.prompt for e in load_jsonl(tmp_path / "mb" / "test.jsonl")]  # the split eval scores


def test_export_of_a_missing_run_folder_says_so(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nonexist")]) == 2
    assert "nonexist: no such run folder" in capsys.readouterr().err
    (tmp_path / "file.png").write_bytes(b"x")
    assert main(["export", str(tmp_path / "file.png")]) == 2
    assert "is a file, not a run folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv, source", [
    (["--pattern", r"\[\d\]"], "the task card's metric is 'exact'"),
    (["--metric", "exact", "--pattern", "zzz"], "--metric is 'exact'"),
])
def test_eval_refuses_a_pattern_it_would_ignore(capsys, argv, source):
    """`--pattern` without `--metric regex` was silently ignored."""
    assert main(["eval", "--data", "max-bracket", *argv]) == 2
    err = capsys.readouterr().err
    assert "--pattern applies only to --metric regex" in err and source in err


def test_eval_takes_a_pattern_when_the_card_says_regex(tmp_path, monkeypatch):
    from artstudio import evaluation

    folder = tmp_path / "task"
    write_jsonl(folder / "test.jsonl", [Example(prompt="1 2", answer="[2]")])
    (folder / "card.json").write_text(json.dumps({"name": "t", "metric": "regex"}))
    seen = {}

    def fake_evaluate(method, rows, metric, *, pattern=None, **kw):
        seen.update(metric=metric, pattern=pattern)
        return "scored"

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    model = types.SimpleNamespace(backbone=types.SimpleNamespace(tokenizer=None, max_positions=None),  # no limit
                                  slot_tokens=None, keep_default_system=False)
    monkeypatch.setattr("artstudio.methods.artwork_or_base", lambda *a, **k: model)
    config = evaluation.EvalConfig(data=str(folder), pattern=r"\[\d\]")
    assert evaluation.run_eval(config) == "scored" and seen == {"metric": "regex", "pattern": r"\[\d\]"}


def test_a_card_that_is_not_an_object_is_an_error_not_a_traceback(tmp_path, capsys):
    folder = tmp_path / "task"
    write_jsonl(folder / "train.jsonl", [Example(prompt="1 2", answer="[2]")])
    write_jsonl(folder / "test.jsonl", [Example(prompt="1 2", answer="[2]")])
    (folder / "card.json").write_text("[1, 2]")
    for argv in (["eval", "--data", str(folder)], ["train", "--data", str(folder), "--out", str(tmp_path / "run")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {folder / 'card.json'} holds an array") and "Traceback" not in err


def test_app_verb_passes_its_options(monkeypatch):
    calls = []
    fake = types.ModuleType("artstudio.ui.app")
    fake.launch = calls.append
    monkeypatch.setitem(sys.modules, "artstudio.ui.app", fake)
    assert main(["app", "--port", "9999", "--share", "--runs-dir", "r", "--canvases-dir", "c"]) == 0
    (settings,) = calls
    assert (settings.host, settings.port, settings.share, settings.runs_dir, settings.canvases_dir) == \
        ("127.0.0.1", 9999, True, "r", "c")
    assert main(["app", "--host", "0.0.0.0", "--no-auth"]) == 0 and calls[-1].no_auth is True
    assert main(["app"]) == 0 and calls[-1].no_auth is False


def test_a_switch_named_no_has_no_double_negative(capsys):
    assert main(["app", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "[--no-auth]" in shown and "--no-no-auth" not in shown


def test_compare_verb_is_generated_from_compare_config():
    from artstudio.comparison import CompareConfig

    opts = _options("compare")
    for f in dataclasses.fields(CompareConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in opts or any(o.startswith(flag + "-") for o in opts), flag
    config = parse_config(["compare", "--methods", "art,base", "--seeds", "3", "--objective", "grpo",
                           "--grpo-group-size", "4"])
    assert (config.methods, config.seeds, config.objective, config.grpo) == ("art,base", "3", "grpo", {"group_size": 4})


def test_a_json_option_may_be_a_file(tmp_path, capsys):
    """tune's best_method_options.json is meant for `compare --method-options`; its path was refused as bad JSON."""
    options = tmp_path / "best_method_options.json"
    options.write_text('{"lora": {"r": 4, "alpha": 8.0}}')
    config = parse_config(["compare", "--methods", "lora", "--method-options", str(options)])
    assert config.method_options == {"lora": {"r": 4, "alpha": 8.0}}
    with pytest.raises(SystemExit):
        parse_config(["compare", "--method-options", str(tmp_path / "missing.json")])
    assert "missing.json: no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(SystemExit):
        parse_config(["compare", "--method-options", str(tmp_path / "bad.json")])
    assert "bad.json: expected a JSON object" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the Python API

def test_import_is_lazy_and_the_api_resolves():
    code = ("import sys, artstudio; assert 'torch' not in sys.modules, 'import artstudio pulled in torch'; "
            "print(artstudio.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    import artstudio
    from artstudio import artwork, backbone, canvas, generation, methods, tasks

    assert artstudio.load_backbone is backbone.load_backbone and artstudio.Canvas is canvas.Canvas
    assert artstudio.TrainConfig is TrainConfig and artstudio.load_artwork is methods.load_artwork
    assert artstudio.export_artwork is artwork.export_artwork and artstudio.generate is generation.generate
    assert artstudio.list_tasks is tasks.list_tasks and artstudio.make_task is tasks.make_task
    for name in artstudio.__all__:
        assert getattr(artstudio, name) is not None, name


def test_train_evaluate_compare_are_functions_whatever_was_imported():
    import artstudio
    import artstudio.comparison as C
    import artstudio.evaluation as E
    import artstudio.training as T

    assert artstudio.train is T.train and artstudio.evaluate is E.evaluate and artstudio.compare is C.compare


def test_canvas_size_is_one_option_for_every_canvas_sized_method():
    for method in ("art", "random-canvas", "soft-prompt"):
        config = parse_config(["train", "--data", "add-json", "--method", method, "--canvas-size", "64"])
        assert config.method_options == {"canvas_size": 64}, method
    with pytest.raises(ConfigError, match="--canvas-size is an option of --method"):
        parse_config(["train", "--data", "add-json", "--method", "lora", "--canvas-size", "64"])


def test_transformers_spellings_are_accepted_beside_the_short_names():
    config = parse_config(["train", "--data", "add-json", "--output-dir", "runs/x", "--max-steps", "7",
                           "--learning-rate", "0.01", "--gradient-accumulation-steps", "2", "--lr-scheduler-type",
                           "constant", "--warmup-ratio", "0.2", "--eval-steps", "3", "--save-steps", "4"])
    assert (config.out, config.steps, config.lr, config.grad_accum, config.schedule, config.warmup,
            config.eval_every, config.checkpoint_every) == ("runs/x", 7, 0.01, 2, "constant", 0.2, 3, 4)
    assert parse_config(["export", "runs/x", "--output", "a.png"]).out == "a.png"


def test_a_repeated_list_option_adds_up_instead_of_keeping_the_last():
    """`--artwork a=x.png --artwork b=y.png` served only b: argparse's store drops earlier uses silently."""
    assert parse_config(["serve", "--artwork", "a=x.png", "--artwork", "b=y.png", "c=z.png"]).artwork == \
        ["a=x.png", "b=y.png", "c=z.png"]
    assert parse_config(["serve"]).artwork == []
    lora = ["train", "--data", "add-json", "--method", "lora"]
    assert parse_config(lora + ["--lora-target-modules", "q_proj", "--lora-target-modules", "k_proj"]) \
        .method_options == {"target_modules": ["q_proj", "k_proj"]}  # the default (q, v) replaced, then extended
    assert parse_config(lora + ["--lora-target-modules", "o_proj"]).method_options == {"target_modules": ["o_proj"]}
    assert parse_config(lora).method_options == {}


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "--lr is -1.0; expected a positive learning rate"),
    (["--lr", "0"], "--lr is 0.0"),
    (["--steps", "0"], "--steps is 0; expected at least 1"),
    (["--warmup", "10"], "--warmup is 10.0; expected the fraction"),
    (["--batch-size", "0"], "--batch-size is 0; expected at least 1"),
])
def test_bad_training_values_name_the_option_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["train", "--data", "add-json", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists(), "a refused run left a folder behind"


def test_out_pointing_at_a_file_and_an_empty_prompt_are_clear_errors(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert main(["train", "--data", "add-json", "--steps", "1", "--out", str(tmp_path / "file.txt")]) == 2
    assert "is a file; expected a folder" in capsys.readouterr().err
    assert main(["infer", "--prompt", "  "]) == 2
    assert "--prompt is empty" in capsys.readouterr().err


def test_train_reads_a_config_file_and_the_command_line_overrides_it(tmp_path):
    saved = TrainConfig(data="add-json", steps=12, lr=0.02, method="lora", method_options={"r": 4}, seed=3)
    path = tmp_path / "best.json"
    path.write_text(json.dumps(dataclasses.asdict(saved) | {"resolved": {"lr": 0.02}}))
    config = parse_config(["train", "--config", str(path), "--steps", "5", "--lora-alpha", "8"])
    assert (config.steps, config.lr, config.method, config.seed) == (5, 0.02, "lora", 3)
    assert config.method_options == {"r": 4, "alpha": 8.0}
    # The file's method options belong to its method: another --method leaves them out (they were refused).
    art = TrainConfig(data="add-json", method="art", method_options={"canvas_size": 64, "init": "noise"})
    (tmp_path / "art.json").write_text(json.dumps(dataclasses.asdict(art)))
    config = parse_config(["train", "--config", str(tmp_path / "art.json"), "--method", "lora", "--lora-r", "2"])
    assert config.method == "lora" and config.method_options == {"r": 2}
    # ... and so does its learning rate (an ART study's 0.05 trained LoRA, whose default is 0.002, in silence)
    (tmp_path / "art.json").write_text(json.dumps(dataclasses.asdict(dataclasses.replace(art, lr=0.05))))
    assert parse_config(["train", "--config", str(tmp_path / "art.json"), "--method", "lora"]).lr is None
    assert parse_config(["train", "--config", str(tmp_path / "art.json"), "--method", "lora", "--lr", "0.01"]).lr == 0.01
    assert parse_config(["train", "--config", str(tmp_path / "art.json")]).lr == 0.05
    with pytest.raises(ConfigError, match="a folder; expected a JSON TrainConfig"):  # it said "no such file"
        parse_config(["train", "--config", str(tmp_path)])
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ConfigError, match="expected an object"):
        parse_config(["train", "--config", str(tmp_path / "bad.json")])


def test_resume_takes_the_options_left_out_from_the_run(tiny_model_dir, tmp_path, capsys):
    """`train --resume --out RUN` asked for --data (and every other option) again."""
    rows = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(a * 10 + b)) for a in range(3) for b in range(2)]
    write_jsonl(tmp_path / "task" / "train.jsonl", rows)
    write_jsonl(tmp_path / "task" / "test.jsonl", rows[:2])
    run = str(tmp_path / "run")
    assert main(["train", "--model", tiny_model_dir("qwen3_5"), "--data", str(tmp_path / "task"), "--steps", "2",
                 "--batch-size", "2", "--canvas-size", "64", "--starts", "1", "--snapshot-every", "0",
                 "--lr", "0.1", "--out", run]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", run, "--steps", "4", "--seed", "9"]) == 2
    assert "--seed 9 (the run has 0)" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", run, "--method", "lora"]) == 2  # said "unknown option(s) canvas_size,
    assert "--method 'lora' (the run has 'art')" in capsys.readouterr().err  # starts for LoraOptions"
    assert main(["train", "--resume", "--out", run, "--steps", "3"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["steps"], saved["lr"], saved["method_options"]["canvas_size"]) == (3, 0.1, 64)


def test_a_resume_warns_only_about_what_the_run_has(tiny_model_dir, tmp_path, capsys):
    """A one-start run resumed with more steps was told "its starts (none was chosen yet) are trained for these
    steps"; the same rows from a bare file turned the run's scoring off without a word."""
    rows = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(a * 10 + b)) for a in range(3) for b in range(2)]
    write_jsonl(tmp_path / "task" / "train.jsonl", rows)
    write_jsonl(tmp_path / "task" / "test.jsonl", rows[:2])
    run = str(tmp_path / "run")
    common = ["--batch-size", "2", "--canvas-size", "64", "--starts", "1", "--snapshot-every", "0", "--out", run]
    assert main(["train", "--model", tiny_model_dir("qwen3_5"), "--data", str(tmp_path / "task"), "--steps", "2",
                 *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", run, "--steps", "3", "--data", str(tmp_path / "task" / "train.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "--steps 3 differs from the run's 2: the learning-rate schedule now spans 3 steps\n" in err
    assert "none was chosen" not in err
    assert "holds the run's training rows but no test split, so this resume scores nothing" in err


def test_runs_name_the_shipped_model_not_the_folder_this_install_keeps_it_in():
    """config.json recorded /…/site-packages/artstudio/models/studio-tiny: a run moved to another environment
    could not resume (the folder was gone, and `--model studio-tiny` was refused as another model)."""
    from artstudio.backbone import DEFAULT_MODEL, model_name
    from artstudio.training import config_record

    assert config_record(TrainConfig(data="add-json"))["model"] == "studio-tiny"
    assert config_record(TrainConfig(data="add-json", model=DEFAULT_MODEL))["model"] == "studio-tiny"
    moved = "/old/venv/lib/python3.11/site-packages/artstudio/models/studio-tiny"
    assert model_name(moved) == "studio-tiny" and model_name("/elsewhere/studio-tiny") == "/elsewhere/studio-tiny"


def test_a_run_config_names_the_folder_it_sits_in(tmp_path, caplog):
    """`--config COPY/config.json --resume` on a copied run resumed the original folder its "out" names."""
    saved = TrainConfig(data="add-json", steps=12, out=str(tmp_path / "original"))
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text(json.dumps(dataclasses.asdict(saved) | {"resolved": {"lr": 0.05}}))
    config = parse_config(["train", "--config", str(copy / "config.json"), "--resume"])
    assert config.out == str(copy) and config.resume
    assert "it was started as" in caplog.text
    assert parse_config(["train", "--config", str(copy / "config.json"), "--out", "elsewhere"]).out == "elsewhere"


def test_a_run_config_does_not_carry_its_resume_or_overwrite(tmp_path, caplog):
    """`train --config RUN/config.json --out NEW` replaced NEW's finished run (the file had overwrite: true) or
    asked for a run to resume in NEW (resume: true), though neither was typed."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(TrainConfig(data="add-json", overwrite=True,
                                                                                 resume=True, out=str(run)))))
    config = parse_config(["train", "--config", str(run / "config.json"), "--out", str(tmp_path / "new")])
    assert not config.overwrite and not config.resume
    assert "has overwrite: true, which a config file does not carry over; pass --overwrite" in caplog.text
    assert "has resume: true" in caplog.text
    assert parse_config(["train", "--config", str(run / "config.json"), "--out", "x", "--overwrite"]).overwrite


@pytest.mark.parametrize("values, message", [
    ({"overwrite": "false"}, "overwrite is 'false'; expected true or false"),  # a string is true: it would overwrite
    ({"steps": "300"}, "steps is '300'; expected a number"),
    ({"steps": 2.5}, "steps is 2.5; expected a whole number"),
    ({"lr": True}, "lr is True; expected a number"),
])
def test_a_config_file_value_of_the_wrong_kind_is_named(tmp_path, capsys, values, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"data": "add-json"} | values))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_whole_number_written_as_a_float_is_taken(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"data": "add-json", "steps": 300.0}))
    config = parse_config(["train", "--config", str(path)])
    assert config.steps == 300 and isinstance(config.steps, int)


def test_a_verb_that_runs_in_one_process_refuses_a_launcher(capsys, monkeypatch):
    """`torchrun --nproc_per_node 2 -m artstudio eval ...` ran the whole evaluation twice into one folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["info"]) == 2
    assert "artstudio info runs in one process; start it without torchrun" in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["infer", "--prompt", "3 4", "--temperature", "-1"], "--temperature -1.0: expected 0 (greedy) or more"),
    # bytes that are not UTF-8 on a command line reach Python as lone surrogates: a UnicodeEncodeError traceback
    (["infer", "--prompt", "ab\udcffc"], "--prompt holds '\\udcff' at character 2"),
    (["train", "--method", "lora", "--lora-alpha", "-3", "--data", "add-json", "--steps", "1"], "LoRA option alpha (--lora-alpha) is -3.0;"),
    (["train", "--method", "lora", "--lora-r", "0", "--data", "add-json", "--steps", "1"], "LoRA option r (--lora-r) is 0; "),
    (["train", "--method", "vera", "--vera-d-initial", "-1", "--data", "add-json", "--steps", "1"], "VeRA option d_initial (--vera-d-initial) is -1.0;"),
    # compare's options are JSON keys, so the error names the key as well as train's flag (it named only --lora-r)
    (["compare", "--methods", "lora", "--tasks", "add-json", "--method-options", '{"lora": {"r": 0}}'],
     "LoRA option r (--lora-r) is 0; the rank must be 1 or more"),
    (["compare", "--methods", "art", "--tasks", "add-json", "--method-options", '{"art": {"tv_weight": -1}}'],
     "canvas option tv_weight (--tv-weight) is -1; expected 0 (off)"),
])
def test_a_bad_value_is_named_by_its_option(argv, said, capsys, tmp_path):
    """`--lora-alpha -3` trained; `--lora-r 0` said "LoRA rank r must be >= 1", not which option."""
    assert main(argv + (["--out", str(tmp_path / "run")] if argv[0] in ("train", "compare") else [])) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_infer_says_which_options_it_does_not_use():
    """`infer --url ...` without --print-curl, `--seed` at temperature 0: each was ignored silently."""
    from artstudio.inference import InferConfig, unused_options

    assert unused_options(InferConfig(prompt="3 4")) == []
    said = unused_options(InferConfig(prompt="3 4", url="http://x/v1", seed=3, served_model_name="m"))
    assert [s.split()[0] for s in said] == ["--served-model-name", "--url", "--seed"]
    assert unused_options(InferConfig(prompt="3 4", print_curl=True, url="http://x/v1", served_model_name="m")) == []
    assert unused_options(InferConfig(prompt="3 4", temperature=0.7, seed=3)) == []
    assert [s.split()[0] for s in unused_options(InferConfig(prompt="3 4", print_request=True, print_curl=True))] == \
        ["--print-request:"]


def test_a_prompt_given_twice_is_refused_not_dropped(capsys):
    """`infer --prompt A --prompt B` answered only B."""
    assert main(["infer", "--prompt", "3 4", "--prompt", "5 6"]) == 2
    err = capsys.readouterr().err
    assert "--prompt: given twice ('3 4', then '5 6')" in err and "--data FILE.jsonl" in err


def test_infer_names_a_picture_it_cannot_take(tmp_path, capsys):
    """A folder, a non-image and a 6400×20 strip gave tracebacks from the processor."""
    Image.new("RGB", (6400, 20)).save(tmp_path / "wide.png")
    (tmp_path / "notes.png").write_text("not a picture")
    for image, message in [(tmp_path, "is a folder, not an image file"), (tmp_path / "notes.png", "cannot be decoded"),
                           (tmp_path / "wide.png", "6400×20, more than 200 times as long as it is wide, which Qwen's "
                            "processors refuse; expected a picture at most 200 times as long as it is wide (crop it")]:
        assert main(["infer", "--prompt", "3 4", "--image", str(image)]) == 2
        assert message in capsys.readouterr().err


def test_a_usage_error_is_short_and_points_at_help(capsys):
    """A wrong choice printed the verb's whole usage (58 lines) before the one line that mattered."""
    assert main(["train", "--method", "lorra"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("error: argument --method: invalid choice: 'lorra'")
    assert len(err.splitlines()) == 2 and "`artstudio train --help` lists the options" in err
    for argv in (["train", "--bogus"], ["tasks", "make", "add-json", "-o", "x", "--bogus"]):  # named `artstudio --help`
        assert main(argv) == 2
        assert f"`artstudio {' '.join(argv[:-1 if argv[0] == 'train' else 2])} --help` lists" in capsys.readouterr().err


def test_logged_warnings_read_like_the_commands_own_messages():
    import logging

    from artstudio.cli import _Formatter

    record = logging.LogRecord("artstudio.train", logging.WARNING, "x", 1, "the loss %s", ("plateaued",), None)
    assert _Formatter().format(record) == "warning: the loss plateaued"
    record.levelno, record.levelname = logging.INFO, "INFO"
    assert _Formatter().format(record) == "INFO artstudio.train: the loss plateaued"


def test_info_on_a_generated_adapter_shows_its_description(tmp_path, capsys):
    """`info` on a `hyper generate t2l` adapter showed method and model only: not the sentence it came from."""
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "artstudio.json").write_text(json.dumps({
        "method": "t2l", "model_id": "studio-tiny", "family": "qwen3_5", "description": "Two digits; reply with their sum.",
        "hypernetwork": {"kind": "t2l"}, "metadata": {"source": "models/hyper/t2l", "name": None}}))
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Two digits; reply with their sum." in out and "the t2l hypernetwork models/hyper/t2l" in out
    (folder / "adapter_config.json").write_text("{}")  # a file inside it: "expected a complete PNG image" before
    assert main(["info", str(folder / "adapter_config.json")]) == 2
    assert f"pass the folder: artstudio info {folder}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["train", "--data", "max-bracket", "--out", ""], ["eval", "--data", "max-bracket", "--out", " "],
    ["export", "runs/x", "-o", ""], ["infer", "--prompt", "3 4", "--canvas", ""],
    ["tasks", "make", "max-bracket", "--out", ""], ["hyper", "generate", "--description", "x", "-o", ""]])
def test_an_empty_path_is_refused(argv, tmp_path, monkeypatch, capsys):
    """`--out ""` (an unset shell variable) wrote a run, an evaluation or a task into the working folder."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is empty; name a file or folder" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["train", "--data", "max-bracket", "--steps", "1", "--out"],
                                  ["tasks", "make", "max-bracket", "--out"],
                                  ["eval", "--data", "max-bracket", "--limit", "1", "--out"]])
def test_an_out_the_system_refuses_is_an_error_not_a_traceback(argv, tmp_path, capsys):
    """An --out under a file raised NotADirectoryError with a traceback (exit 1) in every verb that writes."""
    (tmp_path / "afile").write_text("x")
    assert main([*argv, str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot use {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a folder"), err
    assert "Traceback" not in err


def test_infer_and_eval_refuse_a_prompt_longer_than_the_model_reads(tmp_path, capsys):
    """infer and eval answered a 10,000-token prompt with garbage (23 s each); train and serve refuse it."""
    long = "x " * 5000
    assert main(["infer", "--prompt", long]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --prompt: the row is too long") and "4,096 positions" in err
    assert err.rstrip().endswith("; shorten the prompt"), err  # it said "shorten or drop the row" of a prompt
    assert main(["infer", "--prompt", "x " * 1000, "--max-new-tokens", "3900"]) == 2
    assert capsys.readouterr().err.rstrip().endswith("ask for fewer new tokens (--max-new-tokens), or shorten the prompt")
    write_jsonl(tmp_path / "long.jsonl", [Example(prompt=long, answer="1")])
    assert main(["eval", "--data", str(tmp_path / "long.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "long.jsonl:1: the row is too long" in err and "Traceback" not in err


def test_a_resume_of_a_run_stopped_during_its_starts_asks_for_its_options(tmp_path, capsys):
    """Stopped during the starts, a run has no config.json yet: `train --resume --out RUN` said only
    "no training data"."""
    run = tmp_path / "run"
    (run / "starts" / "0-gray").mkdir(parents=True)
    assert main(["train", "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "was stopped during its starts, before its config.json was written" in err
    assert "repeat the command that started it, with --resume" in err


def test_info_on_a_peft_folder_from_elsewhere_shows_its_config(tmp_path, capsys):
    """A PEFT adapter saved by PEFT itself (no artstudio.json) was refused as 'not an artwork; this takes an
    artwork PNG file', though `info` reads adapter folders."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "peft"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "base_model_name_or_path": "Qwen/Qwen3.5-0.8B", "r": 8, "lora_alpha": 16,
        "target_modules": ["v_proj", "q_proj"]}))
    save_file({"a.lora_A.weight": torch.zeros(8, 64), "a.lora_B.weight": torch.zeros(64, 8)},
              str(folder / "adapter_model.safetensors"))
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    for shown in ("LORA", "Qwen/Qwen3.5-0.8B", "q_proj, v_proj", "1,024 parameters", "not written by `artstudio export`"):
        assert shown in out, out
    assert main(["info", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["adapter"]["parameters"] == 1024
    assert main(["info", str(folder / "adapter_config.json")]) == 2
    assert f"pass the folder: artstudio info {folder}" in capsys.readouterr().err
    (folder / "adapter_model.safetensors").write_bytes(b"\x10\x00")  # truncated
    assert main(["info", str(folder)]) == 0
    assert "adapter_model.safetensors cannot be read" in capsys.readouterr().out


def test_a_run_s_final_folder_given_as_an_adapter_says_to_export_it(tmp_path, capsys):
    """It said 'an export of a method that is not a PEFT adapter (a soft prompt or AdaLink)' for a LoRA run."""
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "final" / "method.json").write_text(json.dumps({"method": "lora"}))
    assert main(["infer", "--adapter", str(run / "final"), "--prompt", "3 8"]) == 2
    err = capsys.readouterr().err
    assert f"the trained weights inside the run {run}" in err and f"artstudio export {run} -o {run}-adapter/" in err


def test_eval_errors_name_a_built_in_task_not_its_temporary_copy(capsys):
    """`eval --data max-bracket --metric numeric` named /tmp/artstudio-eval-XXXX/max-bracket/test.jsonl:1, a file
    gone by the time the message was read."""
    assert main(["eval", "--data", "max-bracket", "--metric", "numeric", "--limit", "3"]) == 2
    err = capsys.readouterr().err
    assert "--data max-bracket (its test split):1: reference answer" in err and "artstudio-eval-" not in err


def test_info_on_a_grayscale_copy_says_its_colours_are_not_an_artwork_s(tmp_path, capsys):
    """`info gray.png` said nothing of the mode (eval and serve warn); it shows it without --model too."""
    Image.new("L", (96, 96)).save(tmp_path / "gray.png")
    assert main(["info", str(tmp_path / "gray.png")]) == 0
    assert "mode L, not the RGB an artwork is written in" in capsys.readouterr().out
    Image.new("RGB", (96, 96)).save(tmp_path / "rgb.png")
    assert main(["info", str(tmp_path / "rgb.png")]) == 0
    assert "colours" not in capsys.readouterr().out


@pytest.mark.parametrize("damaged", ["{bad", "[1, 2]"])
def test_a_resume_of_a_run_whose_config_json_is_damaged_says_so(tmp_path, capsys, damaged):
    """`train --resume --out RUN` with an unreadable config.json asked for --data ("no training data"), and a
    config.json holding a JSON list ended in a TypeError traceback from the resume check."""
    import artstudio

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(damaged)
    for extra in ([], ["--data", "max-bracket"]):
        assert main(["train", "--resume", "--out", str(tmp_path / "run"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'run' / 'config.json'} is not a readable run config" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="is not a readable run config"):
        artstudio.train(out=str(tmp_path / "run"), resume=True)


@pytest.mark.parametrize("argv, said", [
    (["train", "--data", "max-bracket", "--steps", "1", "--seed", "99999999999999999999"],
     "seed is 99999999999999999999; expected a whole number from 0 to 4294967295"),
    (["train", "--data", "max-bracket", "--steps", "1", "--seed", "-1"], "seed is -1; expected a whole number from 0"),
    (["train", "--data", "max-bracket", "--steps", "1", "--art-seed", "99999999999999999999"], "ArtConfig option seed is"),
    (["train", "--data", "max-bracket", "--steps", "1", "--tv-weight", "nan"], "tv_weight is nan; expected a number"),
    (["compare", "--methods", "lora", "--tasks", "max-bracket", "--seeds", "0,99999999999999999999"],
     "--seeds: seed is 99999999999999999999; expected a whole number"),
    (["tune", "--method", "lora", "--data", "max-bracket", "--seed", "-1"], "seed is -1; expected a whole number from 0"),
    (["infer", "--prompt", "3 4", "--temperature", "1", "--seed", "99999999999999999999"], "(--seed) is 99999999999999999999"),
    (["infer", "--prompt", "3 4", "--temperature", "nan"], "--temperature nan: expected 0 (greedy) or more")])
def test_seeds_out_of_range_and_nan_values_are_refused_by_name(argv, said, tmp_path, monkeypatch, capsys):
    """A huge seed was a torch OverflowError traceback (exit 1) after the run began, -1 was taken by train and refused
    by tune with Optuna's words, and a NaN weight trained nothing behind a normal summary."""
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", "o"] if argv[0] in ("train", "compare", "tune") else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_objective_sft_over_a_grpo_config_leaves_the_files_grpo_options_out(tmp_path, caplog):
    """`--config grpo.json --objective sft` was refused for GRPO options the user never typed (--method over another
    method's config already left that method's options out with a warning)."""
    file = tmp_path / "grpo.json"
    file.write_text(json.dumps({"data": "max-bracket", "objective": "grpo", "grpo": {"group_size": 2}, "out": "runs/g"}))
    with caplog.at_level("WARNING", logger="artstudio"):
        config = parse_config(["train", "--config", str(file), "--objective", "sft"])
    assert (config.objective, config.grpo) == ("sft", {})
    assert f"--objective sft: the GRPO options of {file} (group_size) are left out" in caplog.text
    kept = parse_config(["train", "--config", str(file), "--steps", "3"])
    assert (kept.objective, kept.grpo) == ("grpo", {"group_size": 2})
