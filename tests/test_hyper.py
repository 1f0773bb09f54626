"""Hypernetworks (artstudio.hyper): the task encoder, the interface, the training loop and Text-to-Canvas.

All on the tiny random-weight Qwen3.5 model of conftest.py (seconds); the shipped T2C is checked at the end.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from artstudio.artwork import read_artwork
from artstudio.methods import load_artwork
from artstudio.backbone import load_backbone
from artstudio.data import load_jsonl
from artstudio.errors import ConfigError, ModelLoadError
from artstudio.evaluation import evaluate
from artstudio.hyper import (HyperGenerateConfig, HyperTrainConfig, Hypernetwork, TaskEncoder, get_hyper,
                             hyper_generate, hyper_train, train_hypernetwork)
from artstudio.hyper.generate import DEFAULT_HYPER
from artstudio.tiny import FAMILIES
from artstudio.hyper.training import step_rows, step_tasks, step_wording
from artstudio.tasks import make_task, task_specs
from artstudio.objectives.sft import compute_loss

SIDE = 64  # the tiny model's patch 16 x merge 2 -> 4 visual tokens


@pytest.fixture(scope="module")
def bb(tiny_model_dir):
    return load_backbone(tiny_model_dir("qwen3_5"))


@pytest.fixture(scope="module")
def encoder(bb):
    return TaskEncoder.from_backbone(bb)


@pytest.fixture(scope="module")
def task_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hyper-tasks")
    return {n: make_task(n, root / n, n_train=24, n_test=6) for n in ("add-plain", "sub-paren", "upper-quote")}


def _t2c(bb, encoder, **options):
    torch.manual_seed(0)
    return get_hyper("t2c").build(bb, encoder, {"canvas_size": SIDE, "preset": "S", "hidden": 32, "blocks": 1, **options})


# --- encoder ----------------------------------------------------------------------------------------

def test_encoder_is_frozen_mean_pooled_and_batch_independent(encoder):
    a = encoder.encode(["Reply with their sum.", "Reverse the word, please, in brackets."])
    assert a.shape == (2, encoder.dim) and a.dtype == torch.float32 and not a.requires_grad
    # Right padding: a description's embedding does not depend on what it is batched with.
    alone = encoder.encode(["Reply with their sum."])
    assert torch.allclose(a[0], alone[0], atol=1e-5)
    assert encoder.name == "backbone"


def test_encoder_bad_input(encoder, tmp_path):
    with pytest.raises(ConfigError, match="the task description is empty"):
        encoder.encode([""])
    with pytest.raises(ConfigError, match="task description 2 of 2 is empty"):
        encoder.encode(["ok", "   "])
    with pytest.raises(ConfigError, match="no task description"):
        encoder.encode([])
    with pytest.raises(ConfigError, match="does not exist"):
        TaskEncoder.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        TaskEncoder.from_pretrained(tmp_path / "empty")


def test_encoder_says_what_of_a_description_it_does_not_read(encoder, caplog):
    """Characters the tokenizer drops (emoji, accents) and tokens past max_length were left out silently; each
    is a warning that starts with what happened."""
    with caplog.at_level("WARNING", logger="artstudio.hyper"):
        encoder.encode(["Reply with their sum, written as a bare value."])
    assert caplog.records == []  # a description read in full says nothing
    with caplog.at_level("WARNING", logger="artstudio.hyper"):
        plain = encoder.encode(["Reply with their sum , caf"])
        odd = encoder.encode(["Reply with their sum 😀, café"])
    assert torch.allclose(plain, odd, atol=1e-6)  # what the warning says: read without them
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("the task description has 2 characters the task encoder does not know ('😀', 'é')")
    assert "without them" in said
    caplog.clear()
    long = "Reply with their sum, written as a bare value. " * 15  # 705 characters, one token each
    with caplog.at_level("WARNING", logger="artstudio.hyper"):
        encoder.encode([long])
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"the task description is {len(long.strip())} characters ({len(long.strip())} tokens); "
                           "the task encoder reads the first 512 tokens")
    caplog.clear()
    with caplog.at_level("WARNING", logger="artstudio.hyper"):
        encoder.encode(["ok"] + [f"task {c}" for c in "éüñçà"])
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("task description 2 of 6 ('task é') has 1 character")
    assert len(said) == 4 and said[-1].startswith("2 more of the 6 task descriptions are not read in full")
    # Nothing read but spaces: painting from it would paint from nothing the user wrote
    for unread in ("😀😀", "😀😀 éé"):
        with pytest.raises(ConfigError, match="has no character this task encoder reads"):
            encoder.encode(["Reply with their sum.", unread])


def test_encoder_from_a_local_transformers_folder(tmp_path):
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(tmp_path / "enc")
    fast.save_pretrained(tmp_path / "enc")
    enc = TaskEncoder.from_pretrained(tmp_path / "enc")
    out = enc.encode(["add them", "reverse"])
    assert out.shape == (2, 16) and enc.dim == 16 and enc.name == str((tmp_path / "enc").resolve())


# --- the interface ------------------------------------------------------------------------------------

def test_untrained_t2c_paints_a_grey_uint8_canvas(bb, encoder):
    for head in ("grid", "basis"):
        net = _t2c(bb, encoder, head=head)
        (canvas,) = net.generate(encoder, ["Reply with their sum, written as a bare value."])
        assert canvas.shape == (3, SIDE, SIDE)
        assert torch.equal(canvas, torch.full_like(canvas, 128 / 255))
        assert torch.equal(canvas * 255, (canvas * 255).round())  # already uint8 values


def test_cue_basis_starts_on_the_cue_paper_and_sums_parts_into_a_cue(bb, encoder):
    from artstudio.hyper.t2c import cue_basis
    from artstudio.tasks import pictures

    parts, paper = cue_basis(96)
    assert parts.shape == (21, 3, 96, 96)  # 10 operation glyphs + 11 format bands
    band = parts[10 + 2]  # json's band: only the top token row
    assert band[:, pictures.BAND:].abs().max() == 0 and band[:, : pictures.BAND].abs().max() > 0
    net = _t2c(bb, encoder, head="basis", basis=24, basis_init="cues")
    (canvas,) = net.generate(encoder, ["anything"])
    assert torch.allclose(canvas, torch.full_like(canvas, 245 / 255))  # blank paper until trained
    with pytest.raises(ConfigError, match="basis >= 21"):
        _t2c(bb, encoder, head="basis", basis=8, basis_init="cues")


def test_global_standardisation_scales_every_dimension_alike(bb, encoder):
    """standardise=global divides by one number, so a word the library never varied is not blown up."""
    e = encoder.encode(["one task", "another task", "a third"])
    per_dim, one = _t2c(bb, encoder), _t2c(bb, encoder, standardise="global")
    per_dim.set_embedding_stats(e)
    one.set_embedding_stats(e)
    assert torch.equal(per_dim.embed_mean, one.embed_mean)
    assert one.embed_std.unique().numel() == 1 and per_dim.embed_std.unique().numel() > 1
    assert torch.allclose(one.embed_std[0], e.std(0).square().mean().sqrt())
    with pytest.raises(ConfigError, match="option standardise is 'rank'; choose one of dim, global"):
        _t2c(bb, encoder, standardise="rank")


def test_gradients_reach_only_the_hypernetwork(bb, encoder, task_dirs):
    net = _t2c(bb, encoder)
    net.set_embedding_stats(encoder.encode(["a b", "add them", "reverse it"]))
    emb = encoder.encode(["Reply with their sum, written as a bare value."])
    (canvas,) = net(emb)
    rows = load_jsonl(task_dirs["add-plain"] / "train.jsonl")[:4]
    loss = compute_loss(net.method_for(bb, canvas), rows)
    loss.backward()
    assert all(p.grad is None for p in bb.model.parameters())
    assert not any(p.requires_grad for p in bb.model.parameters())
    assert net.head.weight.grad is not None and net.head.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())
    assert not net.embed_mean.requires_grad  # statistics are buffers, not trained


@pytest.mark.slow
def test_generated_artwork_round_trips_through_png_exactly(bb, encoder, task_dirs, tmp_path):
    net = _t2c(bb, encoder, grid=8)
    with torch.no_grad():  # a non-grey canvas, so the round trip is not trivial
        net.head.bias.copy_(torch.linspace(-0.6, 0.6, net.head.bias.numel()))
    description = "Reply with their sum, written as a bare value."
    (canvas,) = net.generate(encoder, [description])
    path = net.export(bb, canvas, tmp_path / "art.png", description, source="tests", name="add-plain")
    art = read_artwork(path)
    assert art.metadata.task == {"name": "add-plain", "description": description}
    assert art.metadata.extra["description"] == description
    assert art.metadata.extra["hypernetwork"]["kind"] == "t2c"
    loaded = load_artwork(path, bb)
    assert torch.equal(loaded.canvas().detach().cpu(), canvas.cpu())
    rows = load_jsonl(task_dirs["add-plain"] / "test.jsonl")
    with torch.no_grad():
        a = compute_loss(net.method_for(bb, canvas), rows)
        b = compute_loss(loaded, rows)
    assert torch.allclose(a, b, atol=1e-6)
    ea, eb = evaluate(net.method_for(bb, canvas), rows), evaluate(loaded, rows)
    assert [r["prediction"] for r in ea.predictions] == [r["prediction"] for r in eb.predictions]


def test_t2c_artwork_metadata_names_no_invented_task_and_the_mixer_as_built(bb, encoder, tmp_path):
    """No --name: the task name was "t2c" (T2L records none); the hypernetwork was recorded as preset "S", which
    says nothing where hidden/blocks replace it (the shipped T2C: blocks=0). Now: no name, the width and blocks."""
    net = _t2c(bb, encoder, blocks=0)
    (canvas,) = net.generate(encoder, ["Reply with their sum."])
    art = read_artwork(net.export(bb, canvas, tmp_path / "a.png", "Reply with their sum.", source="here"))
    assert art.metadata.task == {"name": "", "description": "Reply with their sum."}
    hyper = art.metadata.extra["hypernetwork"]
    assert "preset" not in hyper and hyper["width"] == 32 and hyper["blocks"] == 0 and hyper["head"] == "grid"
    named = read_artwork(net.export(bb, canvas, tmp_path / "b.png", "Reply with their sum.", name="my-sum"))
    assert named.metadata.task["name"] == "my-sum"
    assert net.describe()["width"] == 32 and "preset" not in net.describe()


def test_info_on_a_t2c_artwork_names_the_hypernetwork_that_painted_it(bb, encoder, tmp_path, capsys):
    """`info` showed a generated artwork like a trained one (objective t2c, steps 0): not what painted it."""
    from artstudio.cli import main

    net = _t2c(bb, encoder)
    (canvas,) = net.generate(encoder, ["Reply with their sum."])
    path = net.export(bb, canvas, tmp_path / "a.png", "Reply with their sum.", source="models/hyper/mine")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "generated by  the t2c hypernetwork models/hyper/mine" in out
    assert "objective" not in out and "steps" not in out  # it was never trained
    # A run's T2C start is that painting trained a few steps: it was shown as "generated by" with no steps.
    import dataclasses

    from artstudio.artwork import export_artwork, read_artwork

    art = read_artwork(path)
    trained = export_artwork(art.image, tmp_path / "start.png", dataclasses.replace(art.metadata, objective="sft", steps=9))
    assert main(["info", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "painted by the t2c hypernetwork, then trained" in out and "generated by" not in out
    assert "steps" in out and "9" in out


def test_save_and_load_keep_outputs_and_refuse_another_model(bb, encoder, tmp_path, tiny_model_dir):
    net = _t2c(bb, encoder)
    net.set_embedding_stats(encoder.encode(["one task", "another task", "a third"]))
    with torch.no_grad():
        net.head.bias.normal_(0, 0.3)
    folder = net.save_pretrained(tmp_path / "h")
    back = Hypernetwork.from_pretrained(folder, bb)
    d = ["Reply with the word reversed."]
    assert torch.equal(net.generate(encoder, d)[0], back.generate(encoder, d)[0])
    meta = json.loads((folder / "hyper.json").read_text())
    assert meta["kind"] == "t2c" and meta["encoder"] == "backbone" and meta["target"]["canvas_size"] == SIDE
    # Made for another model: refused with a clear message.
    other = load_backbone(tiny_model_dir("qwen2_5_vl"))
    with pytest.raises(ConfigError, match="made for another model"):
        Hypernetwork.from_pretrained(folder, other)
    meta["target"]["model_id"] = "Qwen/Qwen3.5-0.8B"
    (folder / "hyper.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="made for another model"):
        Hypernetwork.from_pretrained(folder, bb)
    with pytest.raises(ConfigError, match="not a hypernetwork folder"):
        Hypernetwork.from_pretrained(tmp_path, bb)
    with pytest.raises(ConfigError, match="unknown hypernetwork kind"):
        get_hyper("t2x")


def test_bad_options_are_explained(bb, encoder):
    with pytest.raises(ConfigError, match="unknown hypernetwork option"):
        get_hyper("t2c").build(bb, encoder, {"canvas_size": SIDE, "colour": "red"})
    # a value of the wrong kind: a TypeError deep in the constructor, or kept and written into hyper.json
    for bad, said in [({"palette": "x"}, "t2c hypernetwork option palette is 'x'; expected a number"),
                      ({"blocks": "two"}, "t2c hypernetwork option blocks is 'two'; expected a number"),
                      ({"final_norm": "false"}, "t2c hypernetwork option final_norm is 'false'; expected true or false"),
                      ({"head": "nope"}, "t2c hypernetwork option head is 'nope'; choose one of grid, basis, parts")]:
        with pytest.raises(ConfigError, match=re.escape(said)):
            get_hyper("t2c").build(bb, encoder, {"canvas_size": SIDE, **bad})
    with pytest.raises(ConfigError, match="preset"):
        get_hyper("t2c").build(bb, encoder, {"canvas_size": SIDE, "preset": "XL"})
    with pytest.raises(ConfigError, match="mode"):
        HyperTrainConfig(mode="rl").validate()
    with pytest.raises(ConfigError, match="unknown hyper training option"):
        HyperTrainConfig.from_dict({"stepz": 3})


def test_task_and_row_order_is_seeded_and_covers_every_task():
    seen = [t for s in range(5) for t in step_tasks(10, s, 4, seed=3)]
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert step_tasks(10, 2, 4, seed=3) == step_tasks(10, 2, 4, seed=3) != step_tasks(10, 2, 4, seed=4)
    assert step_rows(7, 1, 2, 3, seed=0) == step_rows(7, 1, 2, 3, seed=0)
    # Each of a task's wordings is used once per n steps, in a seeded order.
    assert sorted(step_wording(5, s, 2, seed=0) for s in range(5, 10)) == list(range(5))
    assert [step_wording(5, s, 2, seed=0) for s in range(5)] != [step_wording(5, s, 3, seed=0) for s in range(5)]
    assert step_wording(1, 7, 0, seed=0) == 0


# --- the loop, end to end -----------------------------------------------------------------------------

def _config(tmp_path, name, **kw):
    base = dict(out=str(tmp_path / name), steps=3, tasks_per_step=2, batch_size=3, eval_size=2, checkpoint_every=1,
                task_cache=str(tmp_path / "cache"), options={"canvas_size": SIDE, "hidden": 32, "blocks": 1}, lr=1e-2)
    return HyperTrainConfig(**(base | kw))


@pytest.mark.slow
def test_training_moves_the_canvas_and_resume_continues_exactly(bb, encoder, task_dirs, tmp_path):
    specs = task_specs([str(p) for p in task_dirs.values()], tmp_path)
    full = train_hypernetwork(_config(tmp_path, "full", steps=4, heldout_eval=False), bb, _t2c(bb, encoder),
                              encoder, specs, progress=False)
    assert full.metrics["steps"] == 4 and all(h["loss"] is not None for h in full.history)
    first = _t2c(bb, encoder)
    train_hypernetwork(_config(tmp_path, "part", steps=2, heldout_eval=False), bb, first, encoder, specs, progress=False)
    resumed = train_hypernetwork(_config(tmp_path, "part", steps=4, heldout_eval=False, resume=True), bb,
                                 _t2c(bb, encoder), encoder, specs, progress=False)
    for (k, a), b in zip(full.hypernetwork.state_dict().items(), resumed.hypernetwork.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    (canvas,) = full.hypernetwork.generate(encoder, [specs[0].description])
    assert not torch.equal(canvas, torch.full_like(canvas, 128 / 255))
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2, 3, 4]



def test_ctrl_c_finishes_the_step_saves_a_checkpoint_and_resume_continues_exactly(bb, encoder, task_dirs, tmp_path,
                                                                                   caplog):
    """Ctrl-C in `hyper train` stopped mid-step with no checkpoint (only every --checkpoint-every steps), and
    `--resume` then started over from step 0 without a word."""
    import os
    import signal

    specs = task_specs([str(p) for p in task_dirs.values()], tmp_path)
    full = train_hypernetwork(_config(tmp_path, "full", steps=4, heldout_eval=False, checkpoint_every=50), bb,
                              _t2c(bb, encoder), encoder, specs, progress=False)

    def ctrl_c_at_step_2(record):
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # lands in the step's callbacks: the step is already done

    cut = _config(tmp_path, "cut", steps=4, heldout_eval=False, checkpoint_every=50)
    with pytest.raises(KeyboardInterrupt):
        train_hypernetwork(cut, bb, _t2c(bb, encoder), encoder, specs, progress=False, callbacks=[ctrl_c_at_step_2])
    assert json.loads((tmp_path / "cut" / "checkpoint" / "checkpoint.json").read_text())["step"] == 2
    assert "interrupted after step 2" in caplog.text and "checkpoint saved" in caplog.text
    from artstudio.hyper.generate import resolve_hyper_folder  # `hyper generate` said "not a hypernetwork folder"
    with pytest.raises(ConfigError, match=r"has not finished .*hyper train --resume --out .*cut. finishes it"):
        resolve_hyper_folder(tmp_path / "cut")
    resumed = train_hypernetwork(_config(tmp_path, "cut", steps=4, heldout_eval=False, checkpoint_every=50,
                                         resume=True), bb, _t2c(bb, encoder), encoder, specs, progress=False)
    for (k, a), b in zip(full.hypernetwork.state_dict().items(), resumed.hypernetwork.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2, 3, 4]


def test_resume_of_a_run_stopped_before_its_first_checkpoint_says_it_starts_over(bb, encoder, task_dirs, tmp_path,
                                                                                caplog):
    specs = task_specs([str(p) for p in task_dirs.values()][:2], tmp_path)
    cfg = _config(tmp_path, "run", steps=1, heldout_eval=False, checkpoint_every=0)
    train_hypernetwork(cfg, bb, _t2c(bb, encoder), encoder, specs, progress=False)
    # as a run stopped before its first step ends leaves it (Ctrl-C while the task targets are computed)
    shutil.rmtree(tmp_path / "run" / "checkpoint")
    shutil.rmtree(tmp_path / "run" / "final")
    (tmp_path / "run" / "result.json").unlink()
    train_hypernetwork(_config(tmp_path, "run", steps=1, heldout_eval=False, checkpoint_every=0, resume=True), bb,
                       _t2c(bb, encoder), encoder, specs, progress=False)
    assert "holds no checkpoint" in caplog.text and "starts at step 0" in caplog.text


@pytest.mark.slow
def test_reconstruction_mode_matches_cached_targets(bb, encoder, task_dirs, tmp_path):
    specs = task_specs([str(task_dirs["add-plain"]), str(task_dirs["upper-quote"])], tmp_path)
    cfg = _config(tmp_path, "rec", mode="reconstruction", steps=30, target_steps=2, heldout_eval=False, lr=3e-2,
                  checkpoint_every=0)
    res = train_hypernetwork(cfg, bb, _t2c(bb, encoder, grid=SIDE), encoder, specs, progress=False)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < losses[0]
    cached = sorted(p.parent.name for p in (tmp_path / "cache" / "targets-t2c").glob("*/target.safetensors"))
    assert cached == ["add-plain", "upper-quote"]


@pytest.mark.slow
def test_hyper_train_generate_evaluate_end_to_end(bb, tiny_model_dir, task_dirs, tmp_path, caplog):
    """`hyper train` -> `hyper generate` -> `eval` on the tiny model, as a user would run them. A held-out task
    among the training tasks is left out of the zero-shot score (it was reported as zero-shot)."""
    heldout_too = make_task("max-bracket", tmp_path / "max-bracket", n_train=24, n_test=6)
    tasks = ",".join(str(p) for p in [*task_dirs.values(), heldout_too])
    cfg = _config(tmp_path, "run", model=tiny_model_dir("qwen3_5"), tasks=tasks, steps=2, checkpoint_every=0)
    with caplog.at_level("WARNING"):
        result = hyper_train(cfg, backbone=bb, progress=False)
    assert (result.out / "final" / "hyper.json").is_file()
    assert set(result.heldout["per_task"]) >= {"add-json", "reverse-bracket", "word-problems-json"}
    assert "max-bracket" not in result.heldout["per_task"]
    assert "trains on held-out task(s) max-bracket: the zero-shot evaluation at the end leaves it out" in caplog.text
    assert json.loads((result.out / "heldout.json").read_text())["eval_size"] == 2
    assert set(result.heldout["rows"].values()) == {2} and "(2 rows each)" in result.summary()
    result.heldout["rows"]["add-json"] = 1  # a split shorter than --eval-size is scored whole, and said so
    assert "(1-2 rows each)" in result.summary()
    art = hyper_generate(HyperGenerateConfig(description="Reply with their sum, written inside square brackets.",
                                             hyper=str(result.out), out=str(tmp_path / "art.png")))
    method = load_artwork(art, bb)
    res = evaluate(method, load_jsonl(task_dirs["add-plain"] / "test.jsonl"))
    assert res.n == 6 and 0.0 <= res.accuracy <= 1.0
    with pytest.raises(ConfigError, match="empty"):
        hyper_generate(HyperGenerateConfig(description=" ", hyper=str(result.out), out=str(tmp_path / "x.png")))
    with pytest.raises(ConfigError, match=r"\.png"):
        hyper_generate(HyperGenerateConfig(description="sum", hyper=str(result.out), out=str(tmp_path / "x.jpg")))


def test_a_run_folder_is_never_overwritten_by_accident(bb, task_dirs, tmp_path):
    tasks = ",".join(str(p) for p in task_dirs.values())
    cfg = _config(tmp_path, "run", tasks=tasks, steps=1, heldout_eval=False, checkpoint_every=0)
    hyper_train(cfg, backbone=bb, progress=False)
    before = (tmp_path / "run" / "final" / "hyper.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run.*--resume.*--overwrite"):
        hyper_train(cfg, backbone=bb, progress=False)
    assert (tmp_path / "run" / "final" / "hyper.safetensors").read_bytes() == before
    with pytest.raises(ConfigError, match="pass one of them"):
        hyper_train(_config(tmp_path, "run", tasks=tasks, resume=True, overwrite=True), backbone=bb, progress=False)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    hyper_train(_config(tmp_path, "run", tasks=tasks, steps=1, heldout_eval=False, checkpoint_every=0, overwrite=True),
                backbone=bb, progress=False)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_resume_refuses_options_that_would_train_another_run(bb, task_dirs, tmp_path):
    """--resume continues the run in the folder with its own options: a changed seed, lr, tasks, batch size,
    hypernetwork option or kind is refused by name (config.json keeps describing the weights); where it runs,
    evaluates and saves may change, and --steps may grow."""
    tasks = ",".join(str(p) for p in task_dirs.values())
    run = tmp_path / "run"
    cfg = dict(tasks=tasks, steps=2, heldout_eval=False)
    hyper_train(_config(tmp_path, "run", **cfg), backbone=bb, progress=False)
    saved = (run / "config.json").read_text()
    for change, said in [({"seed": 5}, r"--seed 5 \(the run has 0\)"), ({"lr": 0.01 / 2}, r"--lr 0\.005 \(the run has 0\.01\)"),
                         ({"tasks": str(task_dirs["add-plain"])}, "--tasks .*add-plain' \\(the run has"),
                         ({"batch_size": 4}, r"--batch-size 4 \(the run has 3\)"),
                         ({"options": {"canvas_size": SIDE, "hidden": 32, "blocks": 1, "palette": 4}},
                          r"--options palette 4 \(the run has its default, 16\)"),
                         ({"kind": "t2l", "options": {}}, r"--kind 't2l' \(the run has 't2c'\)")]:
        with pytest.raises(ConfigError, match="--resume continues the hypernetwork run.*" + said +
                           ".*the run's own options.*another --out"):
            hyper_train(_config(tmp_path, "run", **(cfg | change), resume=True), backbone=bb, progress=False)
    with pytest.raises(ConfigError, match=r"--batch-size 4 \(the run has 3\); --seed 5 \(the run has 0\)"):
        hyper_train(_config(tmp_path, "run", **cfg, seed=5, batch_size=4, resume=True), backbone=bb, progress=False)
    with pytest.raises(ConfigError, match="already finished its 2 steps; nothing to resume"):
        hyper_train(_config(tmp_path, "run", **cfg, resume=True), backbone=bb, progress=False)
    # An option typed as its default is the run's own ("palette 16 (the run has its default)" was refused).
    typed = {"options": {"canvas_size": SIDE, "hidden": 32, "blocks": 1, "palette": 16}}
    with pytest.raises(ConfigError, match="already finished its 2 steps; nothing to resume"):
        hyper_train(_config(tmp_path, "run", **(cfg | typed), resume=True), backbone=bb, progress=False)
    with pytest.raises(ConfigError, match="already at step 2; --steps 1 would end before it"):
        hyper_train(_config(tmp_path, "run", **(cfg | {"steps": 1}), resume=True), backbone=bb, progress=False)
    assert (run / "config.json").read_text() == saved  # refused: the record still describes the weights
    # Evaluation, checkpoints, device and a longer run may change.
    res = hyper_train(_config(tmp_path, "run", **(cfg | {"steps": 3}), eval_size=1, checkpoint_every=0, device="cpu",
                              max_minutes=5.0, resume=True), backbone=bb, progress=False)
    assert res.metrics["steps"] == 3
    assert [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_a_checkpoint_that_does_not_fit_is_a_config_error(bb, encoder, task_dirs, tmp_path):
    """A run folder whose checkpoint holds another hypernetwork (one from before resume compared options, or
    edited by hand): a ConfigError naming the checkpoint, not torch's size-mismatch traceback."""
    specs = task_specs([str(p) for p in task_dirs.values()], tmp_path)
    train_hypernetwork(_config(tmp_path, "run", steps=1, heldout_eval=False), bb, _t2c(bb, encoder), encoder, specs,
                       progress=False)
    (tmp_path / "run" / "config.json").unlink()  # nothing to compare with
    with pytest.raises(ConfigError, match="checkpoint in .* does not fit this t2c hypernetwork"):
        train_hypernetwork(_config(tmp_path, "run", steps=2, heldout_eval=False, resume=True), bb,
                           _t2c(bb, encoder, hidden=48), encoder, specs, progress=False)


@pytest.mark.parametrize("change, said", [
    ({"lr": -1.0}, r"--lr is -1\.0; expected a positive learning rate"),
    ({"lr": 0.0}, "--lr is 0.0; expected a positive"), ({"lr": float("nan")}, "--lr is nan"),
    ({"lr": float("inf")}, "--lr is inf"), ({"lr": "fast"}, "lr is 'fast'; expected a number"),
    ({"steps": -1}, "--steps is -1"), ({"batch_size": 0}, "--batch-size is 0; expected at least 1"),
    ({"tasks_per_step": 0}, "--tasks-per-step is 0"), ({"weight_decay": -0.1}, "--weight-decay is -0.1"),
    ({"warmup": 1.0}, "--warmup is 1.0"), ({"warmup": -0.1}, "--warmup is -0.1"),
    ({"target_steps": 0}, "--target-steps is 0"), ({"checkpoint_every": -1}, "--checkpoint-every is -1"),
    ({"eval_every": -5}, "--eval-every is -5"), ({"eval_size": 0}, "--eval-size is 0"),
    ({"max_minutes": 0.0}, "--max-minutes is 0.0"), ({"batch_size": 2.5}, "batch_size is 2.5; expected a whole number"),
    ({"device": "tpu"}, "--device 'tpu' is not a device"), ({"dtype": "fp8"}, "--dtype 'fp8' is not a dtype"),
])
def test_bad_numbers_device_and_dtype_are_refused_before_any_folder(change, said, tmp_path):
    """Checked by validate() before the model loads or --out is made: no folder, no .lock, no traceback."""
    cfg = HyperTrainConfig(**{"out": str(tmp_path / "h7"), "steps": 1, **change})
    with pytest.raises(ConfigError, match=said):
        cfg.validate()
    with pytest.raises(ConfigError, match=said):
        hyper_train(cfg, progress=False)
    assert not (tmp_path / "h7").exists()


def test_a_run_refused_inside_the_run_folder_leaves_no_folder(bb, task_dirs, tmp_path):
    """A refusal after --out was made (here: the hypernetwork refuses the model) removes the folder it made."""
    cfg = _config(tmp_path, "new", tasks=",".join(str(p) for p in task_dirs.values()), steps=1, heldout_eval=False)
    hyper = _t2c(bb, TaskEncoder.from_backbone(bb))
    hyper.check_backbone = lambda backbone: (_ for _ in ()).throw(ConfigError("refused in the folder"))
    with pytest.raises(ConfigError, match="refused in the folder"):
        train_hypernetwork(cfg, bb, hyper, TaskEncoder.from_backbone(bb), task_specs(cfg.tasks, tmp_path), progress=False)
    assert not (tmp_path / "new").exists()


def test_generate_refuses_a_bad_device_or_dtype_before_writing(tmp_path):
    for change, said in [({"device": "tpu"}, "--device 'tpu' is not a device"), ({"dtype": "fp8"}, "--dtype 'fp8'")]:
        cfg = HyperGenerateConfig(description="Reply with their sum.", out=str(tmp_path / "sub" / "art.png"), **change)
        with pytest.raises(ConfigError, match=said):
            hyper_generate(cfg)
    assert not (tmp_path / "sub").exists()


def test_generate_from_python_refuses_wrong_types_and_takes_a_dict(tmp_path):
    """From Python, a number for the description raised TypeError and a dict raised AttributeError; a name with a
    line break was written into the artwork and broke `artstudio info`'s lines."""
    out = str(tmp_path / "sub" / "art.png")
    for cfg, said in [(HyperGenerateConfig(description=5, out=out), "description is 5 \\(int\\); expected text"),
                      (HyperGenerateConfig(description="Reply with their sum.", out=out, overwrite="no"),
                       "overwrite is 'no'; expected true or false"),
                      (HyperGenerateConfig(description="Reply with their sum.", out=out, name="a\nb"),
                       "--name is 'a\\\\nb'; expected one line"),
                      ({"description": "Reply with their sum.", "out": out, "colour": 1}, "unknown hyper generate option"),
                      (["Reply with their sum."], "takes a HyperGenerateConfig or a dict")]:
        with pytest.raises(ConfigError, match=said):
            hyper_generate(cfg)
    assert not (tmp_path / "sub").exists()
    if (Path(DEFAULT_HYPER) / "hyper.json").is_file():
        assert hyper_generate({"description": "Reply with their sum.", "out": out}).is_file()


@pytest.mark.skipif(not (Path(DEFAULT_HYPER) / "hyper.json").is_file(), reason="no shipped hypernetworks")
def test_each_kind_refuses_an_output_of_the_other_shape(tmp_path):
    """T2C writes one .png file, T2L a folder: `-o adapter.png` for t2l used to make a folder named adapter.png."""
    from artstudio.hyper.generate import check_output

    with pytest.raises(ConfigError, match="Text-to-LoRA hypernetwork writes a PEFT adapter folder.*-o .*adapter/"):
        hyper_generate(HyperGenerateConfig(description="Reply with their sum.", hyper="t2l",
                                           out=str(tmp_path / "adapter.png")))
    assert not (tmp_path / "adapter.png").exists()
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ConfigError, match="is a file; a Text-to-LoRA hypernetwork writes a PEFT adapter folder"):
        hyper_generate(HyperGenerateConfig(description="Reply with their sum.", hyper="t2l", out=str(tmp_path / "file"),
                                           overwrite=True))
    assert (tmp_path / "file").read_text() == "mine"
    (tmp_path / "folder.png").mkdir()
    for overwrite in (False, True):  # an empty folder is a free output, and --overwrite must not replace a folder
        with pytest.raises(ConfigError, match="is a folder; a Text-to-Canvas hypernetwork writes one PNG file"):
            hyper_generate(HyperGenerateConfig(description="Reply with their sum.", out=str(tmp_path / "folder.png"),
                                               overwrite=overwrite))
    with pytest.raises(ConfigError, match=r"ending in \.png"):
        hyper_generate(HyperGenerateConfig(description="Reply with their sum.", out=str(tmp_path / "art")))
    check_output("t2l", tmp_path / "adapter")  # a new folder
    check_output("t2c", tmp_path / "art.PNG")
    # -o x.png/ wrote a file x.png; -o file/x.png said "cannot use file: File exists"
    with pytest.raises(ConfigError, match=r"ends in a slash, which names a folder; this output is one PNG file: pass -o .*x\.png$"):
        check_output("t2c", f"{tmp_path / 'x.png'}/")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'file'} is a file, not a folder"):
        check_output("t2c", tmp_path / "file" / "deeper" / "x.png")


def test_the_seed_alone_sets_the_initial_hypernetwork(bb, task_dirs, tmp_path, caplog):
    """Two runs with one seed start from the same weights, whatever the process drew before."""
    tasks = ",".join(str(p) for p in task_dirs.values())
    runs = []
    for name in ("a", "b"):
        torch.rand(1000)  # other work in the same process
        cfg = _config(tmp_path, name, tasks=tasks, steps=0, heldout_eval=False, checkpoint_every=0)
        with caplog.at_level("WARNING", logger="artstudio.hyper"):
            runs.append(hyper_train(cfg, backbone=bb, progress=False).hypernetwork.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    # steps 0 with nothing fitted in closed form: the network as built was saved (and offered) without a word
    assert caplog.text.count("--steps 0 with no closed-form fit trained nothing") == 2


# --- the shipped T2C ------------------------------------------------------------------------------------

SHIPPED = Path(DEFAULT_HYPER)


@pytest.mark.skipif(not (SHIPPED / "hyper.json").is_file(), reason="no shipped T2C weights")
def test_shipped_t2c_generates_an_artwork_offline_with_defaults(tmp_path):
    import time

    from artstudio.hyper import HyperGenerator

    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) <= 10 * 2**20
    gen = HyperGenerator()
    t0 = time.perf_counter()
    path = gen.generate("Reply with the larger of the two digits, in square brackets.", tmp_path / "a.png")
    seconds = time.perf_counter() - t0
    assert seconds < 5  # measured well under 1 s on a quiet CPU (docs/hyper.md); generous on a busy one
    art = read_artwork(path)
    assert art.metadata.model_id == "studio-tiny" and art.metadata.extra["hypernetwork"]["kind"] == "t2c"
    paraphrases = json.loads((Path(__file__).resolve().parents[1] / "artstudio/hyper/paraphrases.json").read_text())
    for i, p in enumerate(paraphrases["max-bracket"]):
        assert gen.generate(p, tmp_path / f"p{i}.png").is_file()
    before = path.read_bytes()  # an existing artwork is never replaced by accident
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        gen.generate("Reply with their sum, written as a bare value.", path)
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        hyper_generate(HyperGenerateConfig(description="Reply with their sum.", out=str(path)))
    assert path.read_bytes() == before
    gen.generate("Reply with their sum, written as a bare value.", path, overwrite=True)
    assert path.read_bytes() != before


@pytest.mark.skipif(not (SHIPPED / "hyper.json").is_file(), reason="no shipped T2C weights")
def test_shipped_t2c_chooses_each_heldout_tasks_glyph_and_band_from_its_card():
    """The shipped T2C's held-out result (docs/hyper.md) rests on these 13 choices: 12 cue pairs and
    word-problems-json as no glyph on the JSON band. None of the 13 is a training task."""
    from artstudio.hyper import HyperGenerator, heldout_descriptions
    from artstudio.tasks.suite import HELDOUT_PAIRS, NUMERIC_OPS, PRETRAIN_FORMATS, STRING_OPS

    gen = HyperGenerator()
    cards = heldout_descriptions()
    ops, formats = [*NUMERIC_OPS, *STRING_OPS], list(PRETRAIN_FORMATS)
    want = {f"{op}-{how}": [ops.index(op), formats.index(how)] for op, how in HELDOUT_PAIRS}
    want["word-problems-json"] = [len(ops), formats.index("json")]  # the first blank image: no glyph
    with torch.no_grad():
        chosen = gen.hyper.part_logits(gen.encoder.encode(list(cards.values()))).argmax(-1).tolist()
    assert dict(zip(cards, chosen)) == want
    assert gen.hyper.config.fit == "ridge" and gen.hyper.config.ridge == 100.0


# --- compare methods t2c and t2c+art (baselines/t2c.py) ----------------------------------------------------

def _painting_hyper(bb, encoder, task_dirs, tmp_path):
    """A saved tiny T2C whose head paints something other than grey, add-plain's card, and its painting."""
    net = _t2c(bb, encoder, grid=8)
    net.set_embedding_stats(encoder.encode(["one task", "another task", "a third"]))
    with torch.no_grad():
        net.head.weight.normal_(0, 0.2)
    folder = net.save_pretrained(tmp_path / "h")
    card = json.loads((task_dirs["add-plain"] / "card.json").read_text())
    (painted,) = net.generate(encoder, [card["description"]])
    return folder, card, painted


def test_t2c_methods_start_from_the_generated_artwork(bb, encoder, task_dirs, tmp_path):
    from artstudio.methods import build_method
    from artstudio.training import TrainConfig, train

    folder, card, expected = _painting_hyper(bb, encoder, task_dirs, tmp_path)

    zero = build_method("t2c", bb, {"hyper": str(folder)})
    assert zero.num_trainable() == 0
    with pytest.raises(ConfigError, match="description"):
        zero.slot_outputs()
    zero.bind_task(card)
    assert torch.equal(zero.canvas().detach().cpu(), expected)

    run = train(TrainConfig(out=str(tmp_path / "run"), data=str(task_dirs["add-plain"]), method="t2c+art", steps=2,
                            batch_size=4, checkpoint_every=0, snapshot_every=0, method_options={"hyper": str(folder)}),
                backbone=bb, progress=False)
    method = run.method
    assert method.num_trainable() == 3 * SIDE * SIDE and run.metrics["steps"] == 2
    assert torch.equal(method.canvas.initial.cpu(), expected)  # started from the generated artwork
    assert not torch.equal(method.canvas().detach().cpu(), expected)  # and was fine-tuned (ART's lr)
    assert read_artwork(run.artwork).metadata.extra["description"] == card["description"]


def test_t2c_art_starts_a_larger_canvas_from_the_painting_resized_and_frozen_t2c_refuses_one(bb, encoder, task_dirs,
                                                                                               tmp_path):
    """A --canvas-size other than the painting's: t2c+art (the run's T2C start) resizes the painting;
    the frozen painting only means something at its own size."""
    from artstudio.methods import build_method

    folder, card, painted = _painting_hyper(bb, encoder, task_dirs, tmp_path)

    larger = build_method("t2c+art", bb, {"hyper": str(folder), "canvas_size": 2 * SIDE})
    larger.bind_task(card)
    assert tuple(larger.canvas.initial.shape) == (3, 2 * SIDE, 2 * SIDE)
    start = larger.canvas.initial.cpu()
    assert start.min() >= 0 and start.max() <= 1 and not torch.equal(start, torch.full_like(start, 0.5))
    # each 2 x 2 block of the start averages to about the painted pixel it was resized from
    assert (torch.nn.functional.avg_pool2d(start[None], 2)[0] - painted).abs().mean() < 0.05
    assert larger.canvas.param.requires_grad
    logits = build_method("t2c+art", bb, {"hyper": str(folder), "parametrization": "sigmoid"})
    logits.bind_task(card)  # the parameter is the painting's logit: the canvas shows the painting itself
    assert torch.allclose(logits.canvas.continuous().detach().cpu(), painted.clamp(1e-3, 1 - 1e-3), atol=1e-5)
    frozen = build_method("t2c", bb, {"hyper": str(folder), "canvas_size": 2 * SIDE})
    with pytest.raises(ConfigError, match=r"paints \(64, 64\) canvases.*leave canvas_size unset"):
        frozen.bind_task(card)


# --- the parts head, cue targets, init, encoder depth (the shipped T2C's recipe) ---------------------

def test_encoder_depth_is_chosen_by_name(bb, encoder):
    zero = TaskEncoder.load("backbone:0", bb)
    assert zero.name == "backbone:0" and zero.dim == encoder.dim
    text = "Reply with their sum, written as a bare value."
    ids = bb.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    tokens = bb.model.get_input_embeddings()(ids)[0].mean(0)  # hidden state 0: the token embeddings, pooled
    assert torch.allclose(zero.encode([text])[0], tokens.float(), atol=1e-5)
    assert TaskEncoder.load("backbone:-1", bb).name == "backbone"  # -1 is the last layer, named plainly
    assert torch.allclose(TaskEncoder.load("backbone:-1", bb).encode([text]), encoder.encode([text]), atol=1e-5)
    with pytest.raises(ConfigError, match="hidden states 0.."):
        TaskEncoder.load("backbone:99", bb)
    with pytest.raises(ConfigError, match="hidden-state index"):
        TaskEncoder.load("backbone:last", bb)
    net = _t2c(bb, zero)
    with pytest.raises(ConfigError, match="backbone:0"):
        net.check_encoder(encoder)


@pytest.mark.parametrize("family", FAMILIES)
def test_encoder_layers_equal_transformers_hidden_states_and_leave_no_hooks(family, tiny_model_dir):
    """backbone:N is transformers' hidden_states[N], mean-pooled, and leaves the backbone as it was
    (output_hidden_states would install recording hooks for good; a comparison saw a changed backbone)."""
    from artstudio.comparison.guard import _fingerprint

    model = load_backbone(tiny_model_dir(family))
    reference = load_backbone(tiny_model_dir(family)).model  # a second copy for output_hidden_states
    lm = reference.model.language_model
    text = "Reply with their sum, written as a bare value."
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        states = lm(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True).hidden_states
    before = _fingerprint(model.model)
    for n in range(len(states)):
        got = TaskEncoder.load(f"backbone:{n}", model).encode([text])[0]
        assert torch.allclose(got, states[n][0].float().mean(0), atol=1e-5), n
    assert _fingerprint(model.model)[0] == before[0]


def test_parts_head_starts_grey_and_picks_one_image_per_part(bb, encoder):
    net = _t2c(bb, encoder, head="parts", parts=2, palette=4)
    (canvas,) = net.generate(encoder, ["anything"])
    assert torch.equal(canvas, torch.full_like(canvas, 128 / 255))
    with torch.no_grad():  # a saturated choice paints exactly the chosen images on the offset
        net.atoms.normal_(0, 0.1)
        net.head.bias.copy_(torch.tensor([0, 0, 50.0, 0, 50.0, 0, 0, 0]))
        logits = net.canvas_logits(encoder.encode(["anything"]))[0].flatten()
    assert torch.allclose(logits, net.atoms[0, 2] + net.atoms[1, 0] + net.offset, atol=1e-4)
    with pytest.raises(ConfigError, match="parts=2 and palette >= 11"):
        _t2c(bb, encoder, head="parts", parts=2, palette=8, basis_init="cues")
    with pytest.raises(ConfigError, match="needs head=basis or head=parts"):
        _t2c(bb, encoder, head="grid", basis_init="cues")


def test_hard_choice_paints_one_image_per_part_and_trains_through_the_softmax(bb, encoder):
    """choice=hard: the artwork is each part's most likely image, never a blend; training keeps the softmax."""
    net = _t2c(bb, encoder, head="parts", parts=2, palette=4, choice="hard", quantize=False)
    with torch.no_grad():
        net.atoms.normal_(0, 0.1)
        net.head.bias.copy_(torch.tensor([0, 0, 0.3, 0, 0.2, 0, 0, 0]))  # a weak preference: a soft blend
    emb = encoder.encode(["anything"])
    net.eval()
    with torch.no_grad():
        hard = net.canvas_logits(emb)[0].flatten()
    assert torch.allclose(hard, net.atoms[0, 2] + net.atoms[1, 0] + net.offset, atol=1e-5)
    net.train()
    soft = net.canvas_logits(emb)[0]
    assert not torch.allclose(soft.flatten(), hard, atol=1e-3)
    soft.sum().backward()
    assert net.head.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="choice=hard needs head=parts"):
        _t2c(bb, encoder, head="grid", choice="hard")
    with pytest.raises(ConfigError, match="option choice is 'argmax'; choose one of soft, hard"):
        _t2c(bb, encoder, head="parts", choice="argmax")


def test_word_dropout_wordings_are_seeded_and_never_empty():
    from artstudio.hyper.training import word_dropped

    text = "The prompt is two digits separated by a space. Reply with their sum, written as a bare value."
    a = word_dropped(text, 64, 0.1, seed=3)
    assert a == word_dropped(text, 64, 0.1, seed=3) != word_dropped(text, 64, 0.1, seed=4)
    assert len(a) == 64 and all(w.strip() for w in a)
    words = text.split(" ")
    assert all(set(w.split(" ")) <= set(words) for w in a)
    kept = sum(len(w.split(" ")) for w in a) / (64 * len(words))
    assert 0.8 < kept < 0.97  # about 90 % of the words survive at p=0.1
    assert word_dropped("one", 5, 0.99, seed=0) == ["one"] * 5  # never an empty description
    with pytest.raises(ConfigError, match="--word-dropout is 1.0; expected at least 0 and less than 1"):
        HyperTrainConfig(word_dropout=1.0, wordings=4).validate()
    with pytest.raises(ConfigError, match="pass --wordings 2 or more"):
        HyperTrainConfig(word_dropout=0.1).validate()


@pytest.mark.slow
def test_cue_reconstruction_paints_each_tasks_cue_and_init_continues_from_it(bb, encoder, task_dirs, tmp_path):
    from artstudio.hyper.t2c import cue_target

    specs = task_specs([str(p) for p in task_dirs.values()], tmp_path)
    opts = {"canvas_size": SIDE, "hidden": 32, "blocks": 0, "head": "parts", "palette": 11, "basis_init": "cues"}
    cfg = _config(tmp_path, "cue", mode="reconstruction", targets="cue", steps=150, tasks_per_step=3, lr=3e-2,
                  checkpoint_every=0, heldout_eval=False, options=opts)
    res = train_hypernetwork(cfg, bb, _t2c(bb, encoder, **opts), encoder, specs, progress=False)
    canvases = res.hypernetwork.generate(encoder, [s.description for s in specs])
    for spec, canvas in zip(specs, canvases):
        op, how = spec.name.split("-")
        assert (canvas - cue_target(SIDE, op, how)).abs().mean() < 0.02, spec.name
    # init: a run started from that hypernetwork begins exactly where it ended (steps=0 writes it back)
    again = hyper_train(_config(tmp_path, "again", steps=0, init=str(tmp_path / "cue" / "final"), heldout_eval=False,
                                encoder="backbone",
                                tasks=",".join(str(p) for p in task_dirs.values())), backbone=bb, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(again.hypernetwork.generate(encoder, [specs[0].description]), canvases[:1]))


def test_a_word_problems_cue_is_its_format_band_alone(bb, encoder):
    """A word problem's operation is in its words, so its library task's cue target draws no glyph."""
    from types import SimpleNamespace

    from artstudio.hyper.t2c import cue_parts, cue_target
    from artstudio.tasks.suite import PRETRAIN_FORMATS

    glyphs, bands, paper = cue_parts(SIDE)
    band_only = cue_target(SIDE, None, "answer")
    assert torch.equal(band_only, (paper + bands[list(PRETRAIN_FORMATS).index("answer")]).clamp(0, 1))
    assert (cue_target(SIDE, "add", "answer") - band_only).abs().sum() > 1  # the glyph is the difference
    net = _t2c(bb, encoder, canvas_size=SIDE, head="parts", palette=11, basis_init="cues")
    assert torch.equal(net.cue_target(SimpleNamespace(name="word-problems-answer")), band_only)
    with pytest.raises(ConfigError, match="has no cue picture"):
        net.cue_target(SimpleNamespace(name="word-problems-json"))  # held out: never a training target


def test_choice_labels_are_the_cue_parts_of_each_library_task(bb, encoder):
    from artstudio.hyper.t2c import cue_target
    from artstudio.tasks.library import LIBRARY_CUES
    from artstudio.tasks.suite import NUMERIC_OPS, PRETRAIN_FORMATS, STRING_OPS

    net = _t2c(bb, encoder, head="parts", palette=11, basis_init="cues", fit="choice")
    ops = [*NUMERIC_OPS, *STRING_OPS]
    for name, (op, how) in list(LIBRARY_CUES.items())[::7] + [("word-problems-answer", LIBRARY_CUES["word-problems-answer"])]:
        glyph = ops.index(op) if op else 10  # 10: the first blank image after the 10 glyphs
        assert net.choice_of(cue_target(SIDE, op, how)).tolist() == [glyph, list(PRETRAIN_FORMATS).index(how)], name
    with pytest.raises(ConfigError, match="needs head=parts and basis_init=cues"):
        _t2c(bb, encoder, head="parts", palette=11, fit="choice")
    with pytest.raises(ConfigError, match="blocks=0 and final_norm=false"):
        _t2c(bb, encoder, head="parts", palette=11, basis_init="cues", fit="ridge", blocks=1, final_norm=False)
    with pytest.raises(ConfigError, match="blocks=0 and final_norm=false"):
        _t2c(bb, encoder, head="parts", palette=11, basis_init="cues", fit="ridge", blocks=0)


def test_ridge_fit_paints_each_tasks_cue_in_closed_form_whatever_the_seed(bb, encoder, task_dirs, tmp_path):
    """fit=ridge: no gradient step; the same weights from any seed; each training task gets its cue."""
    from artstudio.hyper.t2c import TextToCanvas, cue_target

    specs = task_specs([str(p) for p in task_dirs.values()], tmp_path)
    opts = {"canvas_size": SIDE, "hidden": 32, "blocks": 0, "head": "parts", "palette": 11, "basis_init": "cues",
            "fit": "ridge", "final_norm": False}
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = get_hyper("t2c").build(bb, encoder, dict(opts))
        cfg = _config(tmp_path, f"ridge{seed}", mode="reconstruction", targets="cue", steps=0, seed=seed,
                      checkpoint_every=0, heldout_eval=False, options=opts)
        result = train_hypernetwork(cfg, bb, net, encoder, specs, progress=False)
        nets.append(result.hypernetwork)
    fit = result.metrics["closed_form_fit"]  # said in result.json and in the summary
    assert fit["chosen_by"] == "leave-one-task-out" and set(fit["left_out_right"]) == {f"{x:g}" for x in TextToCanvas.RIDGE_GRID}
    assert f"closed-form fit: ridge penalty {fit['ridge_penalty']:g}, chosen by leave-one-task-out" in result.summary()
    a, b = (dict(n.state_dict()) for n in nets)
    assert all(torch.equal(a[k], b[k]) for k in a)
    chosen = nets[0].config.ridge
    assert chosen in TextToCanvas.RIDGE_GRID and chosen == fit["ridge_penalty"]
    assert json.loads((tmp_path / "ridge0" / "final" / "hyper.json").read_text())["config"]["ridge"] == chosen
    for spec, canvas in zip(specs, nets[0].generate(encoder, [s.description for s in specs])):
        op, how = spec.name.split("-")
        assert (canvas - cue_target(SIDE, op, how)).abs().max() <= 1 / 255 + 1e-6, spec.name
    # Too few tasks to leave one out: a clear error, unless the penalty is given.
    two = _config(tmp_path, "ridge-two", mode="reconstruction", targets="cue", steps=0, checkpoint_every=0,
                  heldout_eval=False, options=opts)
    with pytest.raises(ConfigError, match="train on 3 tasks or more, or set the penalty"):
        train_hypernetwork(two, bb, get_hyper("t2c").build(bb, encoder, dict(opts)), encoder, specs[:2], progress=False)
    given = _config(tmp_path, "ridge-given", mode="reconstruction", targets="cue", steps=0, checkpoint_every=0,
                    heldout_eval=False, options=opts | {"ridge": 10})
    res = train_hypernetwork(given, bb, get_hyper("t2c").build(bb, encoder, opts | {"ridge": 10}), encoder, specs[:2],
                             progress=False)
    assert res.metrics["closed_form_fit"] == {"ridge_penalty": 10, "chosen_by": "option"}


def test_cue_targets_are_refused_where_there_is_no_cue(bb, encoder, task_dirs, tmp_path):
    with pytest.raises(ConfigError, match="t2c only"):
        HyperTrainConfig(kind="t2l", mode="reconstruction", targets="cue").validate()
    with pytest.raises(ConfigError, match="--mode sft trains through the model on the tasks' rows and has no targets"):
        HyperTrainConfig(kind="t2c", mode="sft", targets="cue").validate()  # it was accepted and changed nothing
    with pytest.raises(ConfigError, match="--init .*nowhere does not exist"):
        HyperTrainConfig(init=str(tmp_path / "nowhere")).validate()
    own = tmp_path / "own"
    shutil.copytree(task_dirs["add-plain"], own)
    (own / "card.json").write_text(json.dumps({"name": "my-task", "description": "Add the two digits."}))
    cfg = _config(tmp_path, "nocue", mode="reconstruction", targets="cue", heldout_eval=False)
    with pytest.raises(ConfigError, match="has no cue picture"):
        train_hypernetwork(cfg, bb, _t2c(bb, encoder), encoder, task_specs([str(own)], tmp_path), progress=False)
