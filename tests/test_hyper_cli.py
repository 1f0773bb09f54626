"""`artstudio hyper train|generate` as a user types them: a resume continues the run's own options, a usage
error names the subcommand's --help, a model or an output that cannot work is refused before anything loads
or is looked up, and the examples in the help and the docs are wordings the shipped hypernetworks answer."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from artstudio.cli import main, parse_config
from artstudio.errors import ConfigError
from artstudio.hyper import HyperGenerateConfig, HyperTrainConfig, check_hyper_resume, hyper_generate
from artstudio.hyper.generate import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
shipped = pytest.mark.skipif(not all((SHIPPED / k / "hyper.json").is_file() for k in ("t2c", "t2l")),
                             reason="no shipped hypernetworks")


def _started(run: Path, **options) -> HyperTrainConfig:
    """A run folder as `hyper train` leaves it (its config.json), without training."""
    run.mkdir(parents=True)
    config = HyperTrainConfig(**({"out": str(run)} | options))
    (run / "config.json").write_text(json.dumps(asdict(config) | {"resolved": {"tasks": ["a", "b"]}}))
    return config


# --- resume ------------------------------------------------------------------------------------------

def test_resume_takes_every_option_left_out_from_the_run(tmp_path):
    """`hyper train --resume --out RUN` used to start from the defaults and refuse them all (kind, tasks, seed, ...):
    the user had to retype the whole command. What is left out is now the run's; what is typed is compared."""
    run = tmp_path / "run"
    started = _started(run, kind="t2l", tasks="a,b", seed=3, lr=0.002, steps=40, batch_size=4, eval_size=7,
                       options={"rank": 4, "hidden": 16}, heldout_eval=False, device="cpu", max_minutes=5.0)
    _, config = parse_config(["hyper", "train", "--resume", "--out", str(run)])
    assert config.resume and config.out == str(run)
    for name in ("kind", "tasks", "seed", "lr", "steps", "batch_size", "eval_size", "options", "heldout_eval"):
        assert getattr(config, name) == getattr(started, name), name
    assert config.device is None and config.max_minutes is None  # this invocation's, not the run's
    assert check_hyper_resume(config, run) == 40  # nothing differs
    # Typed options stay typed: a longer run is allowed, another seed is refused by name; --options keys add up.
    _, config = parse_config(["hyper", "train", "--resume", "--out", str(run), "--steps", "60", "--seed", "4",
                           "--options", '{"rank": 4}'])
    assert config.steps == 60 and config.options == {"rank": 4, "hidden": 16}
    with pytest.raises(ConfigError, match=r"these differ: --seed 4 \(the run has 3\)\. Leave them out to resume "
                                          r"with the run's own options"):
        check_hyper_resume(config, run)
    # No --resume: nothing is taken from a folder.
    assert parse_config(["hyper", "train", "--out", str(run)])[1].kind == "t2c"


def test_resume_without_a_readable_run_keeps_the_defaults_and_explains(tmp_path):
    _, config = parse_config(["hyper", "train", "--resume", "--out", str(tmp_path / "none")])
    assert config == HyperTrainConfig(out=str(tmp_path / "none"), resume=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    _, config = parse_config(["hyper", "train", "--resume", "--out", str(tmp_path / "bad")])
    with pytest.raises(ConfigError, match="not a readable run config"):
        check_hyper_resume(config, tmp_path / "bad")


@pytest.mark.slow
def test_resume_on_the_command_line_continues_the_run(tmp_path, tiny_model_dir, capsys):
    from artstudio.tasks import make_task

    tasks = ",".join(str(make_task(n, tmp_path / n, n_train=12, n_test=4)) for n in ("add-plain", "upper-quote"))
    run = str(tmp_path / "run")
    assert main(["hyper", "train", "--model", tiny_model_dir("qwen3_5"), "--tasks", tasks, "--out", run, "--steps", "2",
                 "--options", '{"canvas_size": 64, "hidden": 32, "blocks": 1}', "--batch-size", "3",
                 "--tasks-per-step", "2", "--no-heldout-eval", "--checkpoint-every", "1", "--lr", "0.01",
                 "--task-cache", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    assert main(["hyper", "train", "--resume", "--out", run, "--steps", "3"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().err.count("--steps 3 differs from the run's 2") == 1  # it was said twice
    assert [json.loads(line)["step"] for line in (Path(run) / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    saved = json.loads((Path(run) / "config.json").read_text())
    assert saved["tasks"] == tasks and saved["lr"] == 0.01 and saved["steps"] == 3


def test_the_default_run_folder_is_named_for_the_kind():
    """A T2L run without --out went to runs/t2c, where it then blocked a T2C run."""
    from artstudio.hyper import HyperTrainConfig

    assert HyperTrainConfig(kind="t2l").out == "runs/t2l" and HyperTrainConfig().out == "runs/t2c"
    assert HyperTrainConfig(kind="t2l", out="mine").out == "mine"


def test_a_resume_of_the_other_commands_run_names_the_command_that_continues_it(tmp_path, capsys):
    """`hyper train --resume` on a `train` run said "hyper training option eval_size is None"; `train --resume` on a
    hypernetwork run said "no training data: pass --data"."""
    plain, hyper = tmp_path / "plain", tmp_path / "hyper"
    for folder, record in ((plain, {"method": "art", "data": "max-bracket", "steps": 2}),
                           (hyper, {"kind": "t2c", "mode": "sft", "tasks": "library", "steps": 2})):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(record))
    assert main(["hyper", "train", "--resume", "--out", str(plain)]) == 2
    assert f"{plain} holds a run of `artstudio train`, not of `artstudio hyper train`; continue it with " \
           f"`artstudio train --resume --out {plain}`" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(hyper)]) == 2
    assert f"{hyper} holds a run of `artstudio hyper train`, not of `artstudio train`" in capsys.readouterr().err
    # Without --resume, it was told to pass --resume, which then failed the same ways.
    assert main(["hyper", "train", "--out", str(plain), "--steps", "1"]) == 2
    assert f"{plain} holds a run of `artstudio train`, not of `artstudio hyper train`" in capsys.readouterr().err


# --- usage errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, extra", [("train", ["--bogus", "1"]), ("generate", ["--bogus"])])
def test_an_unknown_option_points_at_the_subcommands_help(command, extra, capsys):
    """It pointed at `artstudio --help`, which lists no hyper option."""
    assert main(["hyper", command, *extra]) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {' '.join(extra)}" in err and f"(`artstudio hyper {command} --help` lists" in err


# --- generate: refused before loading ----------------------------------------------------------------

@pytest.fixture()
def no_loading(monkeypatch):
    import artstudio.backbone

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded (or looked up on the Hub) before the refusal")

    monkeypatch.setattr(artstudio.backbone, "load_backbone", refuse)


@shipped
@pytest.mark.parametrize("kind, out", [("t2c", "art.png"), ("t2l", "adapter")])
def test_another_model_is_refused_offline_before_anything_loads(kind, out, tmp_path, no_loading):
    """--model Qwen/Qwen3.5-0.8B was looked up on the Hub (half a minute of retries offline), then refused anyway."""
    with pytest.raises(ConfigError, match=f"--model Qwen/Qwen3.5-0.8B: this {kind} hypernetwork was made for "
                                          "studio-tiny.*Leave out --model"):
        hyper_generate(HyperGenerateConfig(description="Reply with their sum.", hyper=kind, model="Qwen/Qwen3.5-0.8B",
                                           out=str(tmp_path / out)))
    assert not (tmp_path / out).exists()


@shipped
def test_a_folder_of_other_files_is_refused_for_t2l_without_offering_overwrite(tmp_path, no_loading):
    """The first message said `pass --overwrite`; with it, the model loaded and then the folder was refused."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="holds files that are not an exported adapter") as err:
            hyper_generate(HyperGenerateConfig(description="Reply with their sum.", hyper="t2l", out=str(folder),
                                               overwrite=overwrite))
        assert "--overwrite" not in str(err.value)
    assert (folder / "notes.txt").read_text() == "mine"
    earlier = tmp_path / "adapter"  # an adapter written before: --overwrite is the right advice
    earlier.mkdir()
    (earlier / "artstudio.json").write_text("{}")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        hyper_generate(HyperGenerateConfig(description="Reply with their sum.", hyper="t2l", out=str(earlier)))


@shipped
def test_overwrite_replaces_a_picture_of_ones_own_not_a_runs_artwork_or_another_file(tmp_path, no_loading):
    """--overwrite replaced a trained run's canvas with a zero-shot painting, and a text file named .png."""
    from PIL import Image

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    Image.new("RGB", (96, 96)).save(run / "artwork.png")
    notes = tmp_path / "notes.png"
    notes.write_text("my notes")
    for out, said in ((run / "artwork.png", "is the artwork of the training run in"), (notes, "is not a PNG picture")):
        with pytest.raises(ConfigError, match=said) as err:
            hyper_generate(HyperGenerateConfig(description="Reply with their sum.", hyper="t2c", out=str(out),
                                               overwrite=True))
        assert "pass --overwrite" not in str(err.value)
    assert notes.read_text() == "my notes"


def test_a_mistyped_hypernetwork_names_the_shipped_kinds(tmp_path, capsys):
    """`hyper generate t2x` said only that the folder does not exist."""
    assert main(["hyper", "generate", "t2x", "--description", "Reply with their sum.", "-o", str(tmp_path / "a.png")]) == 2
    assert "a shipped one by its kind (t2c: paints an artwork, t2l: writes a LoRA adapter)" in capsys.readouterr().err


def test_a_missing_description_names_the_option(tmp_path, no_loading, capsys):
    """`hyper generate -o x.png` said "the task description is empty" without naming --description."""
    assert main(["hyper", "generate", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --description is missing or empty") and "hyper generate --help" in err


@shipped
def test_generate_prints_the_output_as_named(tmp_path, monkeypatch, capsys):
    """T2C printed `runs/hg/art.png`, T2L the absolute path of `runs/hg/adapter`."""
    monkeypatch.chdir(tmp_path)
    said = "The prompt is two digits separated by a space, with no instruction. Reply with their sum."
    assert main(["hyper", "generate", "t2l", "--description", said, "-o", "out/adapter"]) == 0
    assert capsys.readouterr().out.strip() == "out/adapter"
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    # The export names its hypernetwork by its place in the package, never this machine's absolute path.
    assert main(["hyper", "generate", "--description", said, "-o", "out/art.png"]) == 0
    from artstudio.artwork import read_artwork

    record = json.loads((tmp_path / "out" / "adapter" / "artstudio.json").read_text())
    png = read_artwork(tmp_path / "out" / "art.png").metadata.extra
    assert png["hypernetwork"]["source"] == "artstudio/models/hyper/t2c"
    assert "artstudio/models/hyper/t2l" in json.dumps(record) and str(ROOT) not in json.dumps(record)


@shipped
def test_a_folder_named_like_a_shipped_kind_does_not_hide_it(tmp_path, monkeypatch, capsys):
    """`hyper generate t2l ... -o t2l/` wrote a folder named t2l; the same command again then said "t2l is not a
    hypernetwork folder (no hyper.json)", and so did every T2C start of `train` beside a folder named t2c."""
    from artstudio.hyper.generate import resolve_hyper_folder

    monkeypatch.chdir(tmp_path)
    said = "The prompt is two digits separated by a space, with no instruction. Reply with their sum."
    assert main(["hyper", "generate", "t2l", "--description", said, "-o", "t2l/"]) == 0
    assert main(["hyper", "generate", "t2l", "--description", said, "-o", "t2l/", "--overwrite"]) == 0, \
        capsys.readouterr().err
    (tmp_path / "t2c").mkdir()
    assert resolve_hyper_folder("t2c") == SHIPPED / "t2c" and resolve_hyper_folder("t2l") == SHIPPED / "t2l"
    # A folder of that name that holds a hypernetwork of one's own is that one.
    (tmp_path / "t2c" / "hyper.json").write_text("{}")
    assert resolve_hyper_folder("t2c") == Path("t2c")
    assert resolve_hyper_folder(SHIPPED / "t2l" / "hyper.json") == SHIPPED / "t2l"  # one of its files: its folder


@shipped
def test_generate_without_an_output_writes_the_kinds_default(tmp_path, monkeypatch, capsys):
    """`hyper generate t2l` without -o was refused for T2C's default output, artwork.png."""
    monkeypatch.chdir(tmp_path)
    said = "The prompt is two digits separated by a space, with no instruction. Reply with their sum."
    assert main(["hyper", "generate", "t2l", "--description", said]) == 0
    assert main(["hyper", "generate", "--description", said]) == 0
    assert capsys.readouterr().out.split() == ["adapter", "artwork.png"]
    assert (tmp_path / "adapter" / "adapter_config.json").is_file() and (tmp_path / "artwork.png").is_file()


# --- the examples ------------------------------------------------------------------------------------

def _examples(capsys) -> dict[str, list[str]]:
    """Every concrete description the hyper help and docs/hyper.md, docs/t2l.md show as a command or call."""
    found = {}
    for argv in (["hyper", "--help"], ["hyper", "generate", "--help"], ["hyper", "train", "--help"]):
        assert main(argv) == 0
        found[" ".join(argv)] = capsys.readouterr().out
    for doc in ("docs/hyper.md", "docs/t2l.md"):
        found[doc] = (ROOT / doc).read_text(encoding="utf-8")
    pattern = re.compile(r'--description "([^"$]+)"|description="([^"]+)"')
    return {where: [a or b for a, b in pattern.findall(text) if (a or b) != "..."] for where, text in found.items()}


def test_help_and_doc_examples_are_task_card_wordings(capsys):
    """The examples were short wordings ("reply with the larger of the two digits, in square brackets") that score
    0 % with both shipped hypernetworks; they are task cards' descriptions now, which the hypernetworks know."""
    from artstudio.tasks import TASKS

    cards = {t.description for t in TASKS.values()}
    examples = _examples(capsys)
    assert examples["hyper --help"] and examples["hyper generate --help"]
    for where, sentences in examples.items():
        for sentence in sentences:
            assert sentence in cards, f"{where}: {sentence!r} is not a task card's wording"


@shipped
@pytest.mark.slow
def test_the_example_wording_works_with_both_shipped_hypernetworks(capsys, tmp_path):
    import torch

    from artstudio.backbone import load_backbone
    from artstudio.data import load_jsonl
    from artstudio.evaluation import evaluate
    from artstudio.hyper import HyperGenerator
    from artstudio.tasks import TASKS, task_specs

    (sentence,) = set(_examples(capsys)["hyper --help"])
    (task,) = [n for n, t in TASKS.items() if t.description == sentence]
    backbone = load_backbone("studio-tiny", device="cpu")
    (spec,) = task_specs([task], tmp_path)
    rows = load_jsonl(Path(spec.folder) / "test.jsonl")[:50]
    for kind in ("t2c", "t2l"):
        with torch.no_grad():
            accuracy = evaluate(HyperGenerator(kind, backbone=backbone).method(sentence), rows, spec.metric).accuracy
        assert accuracy >= 0.9, (kind, accuracy)  # measured 2026-12-05: 100 % with both (docs/hyper.md, "Wording")


def test_docs_give_the_shipped_hypernetworks_sizes_as_measured():
    """docs/t2l.md said 4.8 MB in its sizes table and 4.6 MB for the same shipped file (MiB); MB is 10^6 bytes."""
    def size(kind):
        return f"{(SHIPPED / kind / 'hyper.safetensors').stat().st_size / 1e6:.1f} MB"

    if not (SHIPPED / "t2l" / "hyper.safetensors").is_file():
        pytest.skip("no shipped hypernetworks")
    t2l, hyper = (ROOT / "docs/t2l.md").read_text(), (ROOT / "docs/hyper.md").read_text()
    said = re.search(r"Shipped as `artstudio/models/hyper/t2l/` \(preset M, [\d,]+ parameters,\s+([\d.]+ MB)", t2l)
    assert said and said.group(1) == size("t2l") and f"| M | 128 | 2 | 1,198,336 (1.20 M) | {size('t2l')} |" in t2l
    said = re.search(r"## The shipped T2C \(`artstudio/models/hyper/t2c/`, ([\d.]+ MB)", hyper)
    assert said and said.group(1) == size("t2c")


def test_an_output_names_the_hypernetwork_run_it_came_from(tmp_path):
    """`hyper generate --hyper runs/mine` recorded its source as 'final', the folder inside every run."""
    from artstudio.hyper.generate import source_name

    (tmp_path / "mine" / "final").mkdir(parents=True)
    (tmp_path / "mine" / "config.json").write_text("{}")
    assert source_name(tmp_path / "mine" / "final") == "mine/final"
    (tmp_path / "loose").mkdir()
    assert source_name(tmp_path / "loose") == "loose"
    assert source_name(SHIPPED / "t2c") == "artstudio/models/hyper/t2c"
