"""Text-to-LoRA on tiny random models: PEFT round trip, gradients, sizes, reconstruction, bad input."""

from __future__ import annotations

import json
import re

import pytest
import torch

from artstudio.backbone import load_backbone
from artstudio.data import Example, write_jsonl
from artstudio.errors import ConfigError
from artstudio.hyper.t2l import PRESETS, T2LHypernetwork, batched_lora
from artstudio.objectives.sft import compute_loss

TASK_DIM = 16


class StubEncoder:
    """A frozen 'encoder': a fixed random projection of character counts (enough to tell texts apart)."""

    name, dim = "stub", TASK_DIM

    def __init__(self) -> None:
        self.proj = torch.randn(128, TASK_DIM, generator=torch.Generator().manual_seed(0))

    def encode(self, texts):
        counts = torch.zeros(len(texts), 128)
        for i, t in enumerate(texts):
            for ch in t:
                counts[i, min(ord(ch), 127)] += 1
        return counts @ self.proj / 10


@pytest.fixture(scope="module")
def backbone(tiny_model_dir):
    return load_backbone(tiny_model_dir("qwen3_5"), device="cpu")


def _build(backbone, **options) -> T2LHypernetwork:
    return T2LHypernetwork.build(backbone, StubEncoder(), preset=options.pop("preset", "S"), **options)


def _randomised(backbone, preset="S") -> T2LHypernetwork:
    """A hypernetwork whose B heads are not zero, so its adapters change the model's outputs."""
    torch.manual_seed(0)
    hyper = _build(backbone, preset=preset).eval()
    with torch.no_grad():
        for head in hyper.heads.values():
            head.weight.normal_(0, 0.05)
            head.bias.normal_(0, 0.05)
    return hyper


def _inputs(backbone, rows=2, length=7):
    ids = torch.randint(3, backbone.model.config.get_text_config().vocab_size, (rows, length),
                        generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_preset_sizes_are_printed_and_ordered(backbone, capsys):
    sizes = T2LHypernetwork.preset_sizes(backbone, TASK_DIM)
    print("T2L preset sizes on tiny qwen3_5:", {k: f"{v / 1e6:.3f} M" for k, v in sizes.items()})
    assert list(sizes) == list(PRESETS) == ["S", "M", "L"]
    assert sizes["S"] < sizes["M"] < sizes["L"]
    assert "T2L preset sizes" in capsys.readouterr().out


def test_targets_are_read_from_the_modules(backbone):
    hyper = _build(backbone)
    names = {n for n, m in backbone.model.named_modules() if n.endswith(("q_proj", "v_proj")) and "language_model" in n}
    assert {t.path for t in hyper.targets} == names  # linear-attention layers have none and get none
    gen = hyper(torch.randn(3, TASK_DIM))
    assert len(gen) == 3
    mods = dict(backbone.model.named_modules())
    for t in hyper.targets:
        lin = mods[t.path]
        assert gen[0][t.a_name].shape == (8, lin.in_features)
        assert gen[0][t.b_name].shape == (lin.out_features, 8)


def test_untrained_hypernetwork_generates_the_frozen_model(backbone):
    hyper = _build(backbone).eval()
    method = hyper.method_for(backbone, hyper(torch.randn(1, TASK_DIM))[0])
    x = _inputs(backbone)
    with torch.no_grad():
        torch.testing.assert_close(method.forward(**x).logits, backbone.forward(**x).logits)


def test_exported_adapter_loads_in_stock_peft_with_identical_outputs(backbone, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    hyper = _randomised(backbone)
    gen = hyper.generate(StubEncoder(), ["reply with the sum of the two digits"])[0]
    method = hyper.method_for(backbone, gen, description="sum")
    folder = hyper.export(backbone, gen, tmp_path / "adapter", description="sum")
    assert {p.name for p in folder.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 8
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary folder left behind

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir("qwen3_5"), dtype=torch.float32).eval()
    stock = PeftModel.from_pretrained(base, str(folder)).eval()
    x = _inputs(backbone)
    with torch.no_grad():
        ours = method.forward(**x).logits
        theirs = stock(**x).logits
        frozen = backbone.forward(**x).logits
    assert (ours - frozen).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    # The method's own export is the same folder format.
    assert (method.export(tmp_path / "again") / "adapter_model.safetensors").exists()


def test_gradients_reach_only_the_hypernetwork(backbone):
    hyper = _randomised(backbone).train()
    gen = hyper(torch.randn(1, TASK_DIM))[0]
    method = hyper.method_for(backbone, gen)
    assert method.trainable_parameters() == []
    loss = compute_loss(method, [Example(prompt="ab", answer="ba"), Example(prompt="3 4", answer="7")])
    loss.backward()
    grads = {n: p.grad for n, p in hyper.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads["task_proj.weight"].abs().sum() > 0
    assert all(p.grad is None for p in backbone.model.parameters())
    assert all(p.grad is None for p in hyper.peft_model(backbone).parameters())


def test_one_batch_mixing_tasks_matches_each_tasks_own_adapter(backbone):
    hyper = _randomised(backbone)
    gens = hyper(torch.randn(2, TASK_DIM))
    x = _inputs(backbone, rows=3)
    rows = [1, 0, 1]
    with torch.no_grad(), batched_lora(backbone, hyper, gens, rows):
        mixed = backbone.forward(**x).logits
    with torch.no_grad():
        for i, task in enumerate(rows):
            one = hyper.method_for(backbone, gens[task]).forward(**{k: v[i:i + 1] for k, v in x.items()}).logits
            torch.testing.assert_close(mixed[i:i + 1], one, rtol=0, atol=1e-5)
        # the hooks are gone after the scope
        torch.testing.assert_close(backbone.forward(**x).logits, hyper.method_for(
            backbone, {k: torch.zeros_like(v) for k, v in gens[0].items()}).forward(**x).logits)


def test_reconstruction_loss_decreases_on_a_toy_library(backbone):
    torch.manual_seed(0)
    hyper = _build(backbone, task_dropout=0.0)
    emb = torch.randn(4, TASK_DIM)
    library = [{k: torch.randn_like(v) * 0.1 for k, v in g.items()} for g in hyper(emb)]
    opt = torch.optim.Adam(hyper.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        gen = hyper(emb)
        loss = torch.stack([hyper.reconstruction_loss(g, t) for g, t in zip(gen, library)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], (losses[0], losses[-1])


def test_save_and_load_round_trip(backbone, tmp_path):
    hyper = _randomised(backbone)
    hyper.set_embedding_stats(torch.randn(5, TASK_DIM))
    hyper.save_pretrained(tmp_path / "h")
    again = T2LHypernetwork.from_pretrained(tmp_path / "h", backbone)
    e = torch.randn(2, TASK_DIM)
    for a, b in zip(hyper(e), again(e)):
        for k in a:
            torch.testing.assert_close(a[k], b[k])


def test_a_hypernetwork_made_for_another_model_is_refused(backbone, tiny_model_dir):
    hyper = _randomised(backbone)
    other = load_backbone(tiny_model_dir("qwen2_5_vl"), device="cpu")
    gen = hyper(torch.randn(1, TASK_DIM))[0]
    with pytest.raises(ConfigError, match="made for"):
        hyper.method_for(other, gen)
    with pytest.raises(ConfigError, match="made for"):
        hyper.export(other, gen, "/nonexistent/never-written")


@pytest.mark.parametrize("bad", ["", "   ", [], ["fine", ""]])
def test_an_empty_description_is_a_clear_error(backbone, bad):
    hyper = _randomised(backbone)
    with pytest.raises(ConfigError, match="description"):
        hyper.generate(StubEncoder(), bad)


def test_wrong_embedding_width_is_a_clear_error(backbone):
    hyper = _randomised(backbone)
    with pytest.raises(ConfigError, match="another encoder"):
        hyper(torch.randn(1, TASK_DIM + 1))


def test_not_a_hypernetwork_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a hypernetwork folder"):
        T2LHypernetwork.from_pretrained(tmp_path)


def test_registered_as_kind_t2l_and_loaded_by_the_generic_loader(backbone, tmp_path):
    from artstudio.hyper import Hypernetwork, get_hyper

    assert get_hyper("t2l") is T2LHypernetwork
    _randomised(backbone).save_pretrained(tmp_path / "h")
    assert isinstance(Hypernetwork.from_pretrained(tmp_path / "h", backbone), T2LHypernetwork)


# --- the compared method `t2l` -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hyper_folder(backbone, tmp_path_factory):
    """A (randomised, untrained) T2L saved for the tiny model with the backbone's own task encoder."""
    from artstudio.hyper import TaskEncoder

    torch.manual_seed(0)
    encoder = TaskEncoder.from_backbone(backbone)
    hyper = T2LHypernetwork.build(backbone, encoder, preset="S")
    with torch.no_grad():
        for head in hyper.heads.values():
            head.weight.normal_(0, 0.05)
    hyper.set_embedding_stats(encoder.encode(["add the digits", "reverse the word", "sort the letters"]))
    return hyper.save_pretrained(tmp_path_factory.mktemp("t2l") / "final")


def test_t2l_method_generates_from_the_description_and_trains_nothing(backbone, hyper_folder, tmp_path):
    from artstudio.hyper import TaskEncoder
    from artstudio.methods import build_method

    method = build_method("t2l", backbone, {"hyper": str(hyper_folder), "description": "reverse the word"})
    assert method.trains is False and method.num_trainable() == 0 and method.placement is None
    hyper = T2LHypernetwork.from_pretrained(hyper_folder, backbone)
    ref = hyper.method_for(backbone, hyper.generate(TaskEncoder.from_backbone(backbone), ["reverse the word"])[0])
    x = _inputs(backbone)
    with torch.no_grad():
        torch.testing.assert_close(method.forward(**x).logits, ref.forward(**x).logits)
    assert method.generation_seconds is not None and method.generation_seconds > 0
    assert (method.export(tmp_path / "adapter") / "adapter_config.json").exists()


def test_hyper_generate_t2l_refuses_a_png_output_before_loading(hyper_folder, tmp_path):
    """A T2L export is a folder: `-o adapter.png` used to make a FOLDER named adapter.png."""
    from artstudio.hyper import HyperGenerateConfig, hyper_generate

    for out in ("adapter.png", "adapter.PNG"):
        with pytest.raises(ConfigError, match="writes a PEFT adapter folder.*pass a folder, e.g. -o .*adapter/"):
            hyper_generate(HyperGenerateConfig(description="Reply with the larger digit.", hyper=str(hyper_folder),
                                               out=str(tmp_path / out)))
        assert not (tmp_path / out).exists()


def test_t2l_method_without_a_description_says_how_to_give_one(backbone, hyper_folder):
    from artstudio.methods import build_method

    method = build_method("t2l", backbone, {"hyper": str(hyper_folder)})
    with pytest.raises(ConfigError, match="description"):
        method.forward(**_inputs(backbone))
    with pytest.raises(ConfigError, match="no description") as said:
        method.bind_task({"name": "x", "description": ""})
    # each place's own spelling: it said "pass the t2l option description=..." to a command-line user
    assert "--t2l-description" in str(said.value) and """'{"t2l": {"description": "..."}}'""" in str(said.value)


def test_compare_refuses_a_description_method_on_a_task_without_one_before_it_starts(tmp_path):
    """`compare --methods t2l,art` on a folder with no card printed its plan and failed at the t2l cell."""
    from artstudio.comparison import CompareConfig, compare

    folder = tmp_path / "nocard"
    write_jsonl(folder / "train.jsonl", [Example(prompt=f"{i} {i}", answer=f"[{i}]") for i in range(4)])
    write_jsonl(folder / "test.jsonl", [Example(prompt="5 5", answer="[5]")])
    for methods in ("t2l,art", "t2c+art"):
        with pytest.raises(ConfigError, match=f"{re.escape(methods.split(',')[0])} generates from the task's description, "
                                              "and task .*nocard has none"):
            compare(CompareConfig(methods=methods, tasks=str(folder), seeds="0", steps=1, out=str(tmp_path / "c")))
        assert not (tmp_path / "c").exists()


def test_t2l_method_takes_the_task_cards_description_in_train(backbone, hyper_folder, tmp_path):
    from artstudio.tasks import make_task
    from artstudio.training import train

    folder = make_task("max-bracket", tmp_path / "task", n_train=4, n_test=3)
    res = train(data=str(folder), out=str(tmp_path / "run"), method="t2l", steps=0, backbone=backbone,
                method_options={"hyper": str(hyper_folder)}, progress=False, max_new_tokens=4)
    assert res.method.config.description.startswith("The prompt is two digits")
    assert res.metrics["eval_n"] == 3 and res.metrics["trainable_params"] == 0


# --- the generic hypernetwork loop drives T2L in both modes -------------------------------------------------

def _tiny_tasks(tmp_path, names=("add-plain", "reverse-paren")):
    from artstudio.tasks import task_specs

    return task_specs(",".join(names), tmp_path / "tasks", n_train=8, n_test=2)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sft", "reconstruction"])
def test_generic_loop_trains_t2l(backbone, tmp_path, mode):
    from artstudio.hyper import TaskEncoder
    from artstudio.hyper.training import HyperTrainConfig, train_hypernetwork

    encoder = TaskEncoder.from_backbone(backbone)
    hyper = T2LHypernetwork.build(backbone, encoder, preset="S")
    cfg = HyperTrainConfig(kind="t2l", mode=mode, out=str(tmp_path / "run"), steps=3, tasks_per_step=2, batch_size=2,
                           target_steps=2, target_cache=str(tmp_path / "targets"), heldout_eval=False,
                           checkpoint_every=0)
    res = train_hypernetwork(cfg, backbone, hyper, encoder, _tiny_tasks(tmp_path), progress=False)
    losses = [h["loss"] for h in res.history if h.get("loss") is not None]
    assert len(losses) == 3 and all(l == l for l in losses)
    loaded = T2LHypernetwork.from_pretrained(res.out / "final", backbone)
    assert loaded.num_parameters() == hyper.num_parameters()
    if mode == "reconstruction":  # the per-task LoRAs were trained once by train(method="lora") and cached
        cached = sorted(p.name for p in (tmp_path / "targets").iterdir())
        assert len(cached) == 2 and all(c.startswith("lora-") for c in cached)


@pytest.mark.slow
def test_hyper_train_and_hyper_generate_with_kind_t2l(backbone, tiny_model_dir, tmp_path):
    from peft import PeftConfig

    from artstudio.hyper import HyperGenerateConfig, HyperTrainConfig, hyper_generate, hyper_train

    cfg = HyperTrainConfig(kind="t2l", mode="sft", tasks="add-plain,reverse-paren", out=str(tmp_path / "run"),
                           model=tiny_model_dir("qwen3_5"), steps=2, tasks_per_step=2, batch_size=2,
                           task_cache=str(tmp_path / "tasks"), heldout_eval=False, checkpoint_every=0)
    res = hyper_train(cfg, backbone=backbone, progress=False)
    assert res.hypernetwork.kind == "t2l"
    out = hyper_generate(HyperGenerateConfig(description="Reply with the larger digit in [brackets].",
                                             hyper=str(res.out), out=str(tmp_path / "adapter")), backbone=backbone)
    assert PeftConfig.from_pretrained(str(out)).r == 8
    meta = json.loads((out / "artstudio.json").read_text())
    assert meta["description"].startswith("Reply with the larger") and meta["method"] == "t2l"


@pytest.mark.slow
def test_measure_reports_card_and_shuffled_descriptions_and_generation_time(backbone, hyper_folder, tmp_path):
    from artstudio.hyper.t2l import measure

    r = measure(hyper_folder, eval_size=1, task_cache=tmp_path / "tasks", out=tmp_path / "m.json", backbone=backbone,
                progress=False, conditions=("card", "shuffled", "para1"))
    assert len(r["card"]["per_task"]) == len(r["shuffled"]["per_task"]) == len(r["para1"]["per_task"]) == 13
    assert 0 < r["generate_seconds"]["max"] < 5
    assert json.loads((tmp_path / "m.json").read_text())["eval_size"] == 1


@pytest.mark.slow
def test_the_shipped_t2l_serves_studio_tiny_offline(tmp_path):
    from artstudio.backbone import DEFAULT_MODEL
    from artstudio.baselines.t2l import shipped_t2l
    from artstudio.methods import build_method

    folder = shipped_t2l()
    assert (folder / "hyper.json").is_file() and (folder / "hyper.safetensors").stat().st_size < 10_000_000
    studio = load_backbone(DEFAULT_MODEL, device="cpu")
    method = build_method("t2l", studio, {"description": "The prompt is two digits separated by a space, with no "
                                          "instruction. Reply with the larger of the two, written inside square brackets, like [<value>]."})
    assert method.generation_seconds is not None  # the 1 s target is measured by `python -m artstudio.hyper.t2l measure`, not here
    out = method.export(tmp_path / "adapter")
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    with pytest.raises(ConfigError, match="made for another model"):
        T2LHypernetwork.from_pretrained(folder, _tiny_other(tmp_path))


def _tiny_other(tmp_path):
    from artstudio.tiny import build_tiny

    return load_backbone(str(build_tiny("qwen3_5", tmp_path / "other", seed=0)), device="cpu")
