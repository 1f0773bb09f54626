"""Every method (ART, its controls and the baselines) against one table of cases, PEFT-test style.

Each generic test runs over every row of CASES × family: gradients reach only the method's own
parameters, save/load and export round-trip exactly, the parameter count matches an independent
count, a few optimiser steps lower the loss on a memorised batch, and methods that promise it equal
the frozen model at step 0. All methods of a family share ONE backbone (module-scoped), as in a
`compare` run, and a test checks that no method leaves it changed. Method-specific behaviour
(targets, hooks, slot layout, initialisation) follows at the end.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artstudio.backbone import load_backbone
from artstudio.data import Example
from artstudio.errors import CanvasSizeError, ConfigError
from artstudio.methods import Method, build_method, get_method, method_names, recommended_canvas_size
from artstudio.forward import token_logprobs
from artstudio.objectives.sft import compute_loss

from conftest import FACTOR

# (method, options); canvas-shaped methods get a 2x2-merge-window canvas per family unless told otherwise.
# Every registered method runs the whole suite: the table is the registry itself. A method gets options
# here only where a non-default makes a test stronger (a noise canvas has a gradient everywhere).
CASE_OPTIONS = {"art": {"init": "noise", "seed": 0}}
# Methods that need a hypernetwork trained for the backbone (t2l, t2c) have their own suites.
CASES = [(name, CASE_OPTIONS.get(name, {})) for name in method_names() if get_method(name).standalone]
FAMILIES = ("qwen2_5_vl", "qwen3_5")
# Qwen3-VL feeds visual tokens into early layers too (deepstack): every method that touches the slot
# or the visual embeddings runs there as well.
DEEPSTACK_METHODS = ("art", "soft-prompt", "adalink")
MATRIX = [pytest.param(name, opts, fam, id=f"{name}-{fam}")
          for name, opts in CASES
          for fam in FAMILIES + (("qwen3_vl",) if name in DEEPSTACK_METHODS else ())]

# What each method promises comes from the method itself (its class attributes), never a list here.
CANVAS_METHODS = tuple(m for m, _ in CASES if get_method(m).takes_canvas_size())
TRAINED = tuple(m for m, _ in CASES if get_method(m).trains)
IDENTITY_AT_START = tuple(m for m, _ in CASES if get_method(m).starts_frozen)
# Three AdamW steps at a few times the method's default rate clearly lower the loss of a random tiny model.
LR_BOOST = 2.5


def lr_for(name: str) -> float:
    return get_method(name).default_lr * LR_BOOST


PAIRS = [(1, 2), (3, 4), (2, 2), (5, 1)]


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backbones(tiny_model_dir):
    """One backbone per family for the whole module: methods must not change it for each other."""
    cache: dict[str, object] = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_backbone(tiny_model_dir(family))
        return cache[family]

    return get


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[Example]:
    """A memorisable batch of 4; the first row carries its own picture (AdaLink's visual adapter sees it)."""
    path = tmp_path_factory.mktemp("img") / "extra.png"
    gen = torch.Generator().manual_seed(1)
    pixels = (torch.rand(64, 64, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(i), image=str(path) if i == 0 else None)
            for i, (a, b) in enumerate(PAIRS)]


def options(name: str, opts: dict, family: str) -> dict:
    opts = dict(opts)
    if name in CANVAS_METHODS:
        opts.setdefault("canvas_size", 2 * FACTOR[family])
    return opts


def make(backbones, name: str, opts: dict, family: str) -> Method:
    return build_method(name, backbones(family), options(name, opts, family))


def perturb(method: Method, scale: float = 0.5, seed: int = 0) -> None:
    """Move every trainable tensor away from its initialisation (zero-initialised ones included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=gen).to(p.device, p.dtype) * scale * (p.float().std().item() or 0.1))


def logprobs(method: Method, rows: list[Example]) -> torch.Tensor:
    with torch.no_grad():
        logp, _ = token_logprobs(method, rows)
    return logp


def fingerprint(model: torch.nn.Module) -> tuple:
    """What a method could leave behind on the backbone: modules, hooks, flags, weights."""
    modules = tuple((n, type(m).__name__, len(m._forward_hooks), len(m._forward_pre_hooks), m.training)
                    for n, m in model.named_modules())
    params = tuple((n, p.requires_grad, p.grad is None, float(p.detach().double().sum())) for n, p in model.named_parameters())
    return modules, params


class Served(Method):
    """A stand-in method that runs an arbitrary model (an adapter loaded back by PEFT) on a backbone."""

    name = "served"

    def __init__(self, backbone, model: torch.nn.Module):
        super().__init__(backbone)
        object.__setattr__(self, "_served", model)

    @property
    def model(self) -> torch.nn.Module:
        return self._served


# --- generic tests: every method, every family ----------------------------------------------------

@pytest.mark.parametrize("name,opts,family", MATRIX)
def test_gradients_reach_only_the_methods_parameters(backbones, rows, name, opts, family):
    method = make(backbones, name, opts, family)
    backbone = backbones(family)
    params = method.trainable_parameters()
    if name not in TRAINED:
        assert params == [] and method.num_trainable() == 0
        return
    # Zero-initialised factors (LoRA B, VeRA b, AdaLink W_up) leave their partners' gradient at zero
    # in the very first step; after one step every trainable tensor must receive a gradient.
    opt = torch.optim.AdamW(params, lr=lr_for(name))
    compute_loss(method, rows).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    compute_loss(method, rows).backward()
    leaked = [n for n, p in backbone.model.named_parameters() if p.grad is not None]
    assert not leaked, f"{name} sent gradients into the frozen backbone: {leaked[:3]}"
    assert all(p.grad is not None for p in params), "a trainable tensor got no gradient"
    dead = [n for n, p in method.trainable_state().items() if p.requires_grad and p.grad.abs().sum() == 0]
    assert not dead, f"trainable tensors with an all-zero gradient: {dead[:3]}"
    opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name,opts,family", MATRIX)
def test_backbone_is_unchanged_for_the_next_method(backbones, rows, name, opts, family):
    backbone = backbones(family)
    before_print = fingerprint(backbone.model)
    before = logprobs(build_method("base", backbone), rows)
    method = make(backbones, name, opts, family)
    perturb(method)
    loss = compute_loss(method, rows)
    if loss.requires_grad:
        loss.backward()
    logprobs(method, rows)
    for p in method.trainable_parameters():
        p.grad = None
    assert fingerprint(backbone.model) == before_print, f"{name} left modules, hooks or weights changed"
    assert torch.equal(logprobs(build_method("base", backbone), rows), before)


@pytest.mark.parametrize("name,opts,family", MATRIX)
def test_save_load_round_trip(backbones, rows, tmp_path, name, opts, family):
    method = make(backbones, name, opts, family)
    perturb(method, seed=3)
    expected = logprobs(method, rows)
    folder = method.save(tmp_path / "m")
    loaded = Method.load(folder, backbones(family))
    assert type(loaded) is type(method)
    assert loaded.num_trainable() == method.num_trainable()
    assert torch.allclose(logprobs(loaded, rows), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,opts,family", MATRIX)
def test_export_loads_back(backbones, rows, tmp_path, tiny_model_dir, name, opts, family):
    backbone = backbones(family)
    method = make(backbones, name, opts, family)
    if not method.trains and not method.paints():  # the frozen model itself: its export was a folder info, infer and serve turned away
        with pytest.raises(ConfigError, match="has nothing to export"):
            method.export(tmp_path / "out")
        assert not (tmp_path / "out").exists()
        return
    perturb(method, seed=4)
    expected = logprobs(method, rows)
    if name in ("lora", "vera"):
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText

        path = method.export(tmp_path / "adapter")
        assert (path / "adapter_config.json").is_file() and (path / "adapter_model.safetensors").is_file()
        fresh = AutoModelForImageTextToText.from_pretrained(tiny_model_dir(family))
        served = Served(backbone, PeftModel.from_pretrained(fresh, str(path)).eval())
    elif get_method(name).paints():  # every canvas method exports a PNG artwork
        from artstudio.methods import load_artwork

        served = load_artwork(method.export(tmp_path / "art.png"), backbone)
    else:
        served = Method.load(method.export(tmp_path / "out"), backbone)
    assert torch.allclose(logprobs(served, rows), expected, atol=1e-5, rtol=0)


def expected_count(name: str, method: Method, family: str) -> int:
    """Trainable parameters derived from the options and the model config, not from the method."""
    cfg = method.backbone.model.config.get_text_config()
    hidden = cfg.hidden_size
    side = 2 * FACTOR[family]
    if name in ("art", "art-single"):
        return 3 * side * side
    if name == "soft-prompt":
        pipc = method.backbone.processor.image_processor
        return (side // pipc.patch_size) ** 2 // pipc.merge_size**2 * hidden
    if name in ("lora", "vera"):
        pattern = re.compile(r".*language_model\.layers\.\d+\.self_attn\.(q_proj|v_proj)")
        linears = [m for n, m in method.backbone.model.named_modules() if pattern.fullmatch(n)]
        assert linears
        if name == "lora":
            return sum(8 * (m.in_features + m.out_features) for m in linears)
        return sum(m.out_features + min(256, hidden) for m in linears)
    if name == "adalink":
        return 2 * (4 * hidden + hidden * 4)
    return 0


@pytest.mark.parametrize("name,opts,family", MATRIX)
def test_parameter_count(backbones, name, opts, family):
    method = make(backbones, name, opts, family)
    assert method.num_trainable() == expected_count(name, method, family)
    assert method.describe()["trainable_params"] == method.num_trainable()


@pytest.mark.parametrize("name,opts,family", [m for m in MATRIX if m.values[0] in TRAINED])
def test_optimiser_steps_lower_the_loss(backbones, rows, name, opts, family):
    method = make(backbones, name, opts, family)
    opt = torch.optim.AdamW(method.trainable_parameters(), lr=lr_for(name))
    first = None
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss = compute_loss(method, rows)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = compute_loss(method, rows).item()
    assert after < first - 2e-3, f"{name}: loss {first:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name,opts,family", [m for m in MATRIX if m.values[0] in IDENTITY_AT_START])
def test_step_zero_is_the_frozen_model(backbones, rows, name, opts, family):
    method = make(backbones, name, opts, family)
    base = build_method("base", backbones(family))
    assert torch.allclose(logprobs(method, rows), logprobs(base, rows), atol=1e-6, rtol=0)


# --- LoRA / VeRA ----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
@pytest.mark.parametrize("name", ["lora", "vera"])
def test_peft_adapts_only_the_language_models_q_and_v(backbones, name, family):
    method = build_method(name, backbones(family))
    adapted = sorted({n.rsplit(".", 1)[0] for n, _ in method.trainable_state().items()
                      if ".vera_A." not in n and ".vera_B." not in n})
    layers = {n.split(".lora_")[0].split(".vera_lambda_")[0] for n in adapted}
    assert layers and all(re.search(r"\.language_model\.layers\.\d+\.self_attn\.(q_proj|v_proj)$", n) for n in layers), layers
    text_cfg = backbones(family).model.config.get_text_config()
    full = sum(1 for t in getattr(text_cfg, "layer_types", None) or ["full_attention"] * text_cfg.num_hidden_layers
               if t == "full_attention")
    assert len(layers) == 2 * full  # Qwen3.5's linear-attention layers have no q/v projection: no adapter


@pytest.mark.parametrize("name", ["lora", "vera"])
def test_peft_wrapper_shares_the_backbones_weights(backbones, name):
    backbone = backbones("qwen3_5")
    method = build_method(name, backbone)
    own = {p.data_ptr() for p in backbone.model.parameters()}
    frozen = [p for p in method.model.parameters() if not p.requires_grad]
    assert frozen and all(p.data_ptr() in own for p in frozen), "the wrapper copied backbone weights"
    assert method.model.get_base_model() is not backbone.model


def test_lora_options_reach_peft(backbones):
    method = build_method("lora", backbones("qwen2_5_vl"), {"r": 4, "alpha": 32, "target_modules": ["o_proj"]})
    layer = next(m for n, m in method.model.named_modules() if n.endswith("o_proj") and hasattr(m, "scaling"))
    assert layer.scaling["default"] == 8.0
    assert layer.lora_A["default"].weight.shape[0] == 4
    rs = build_method("lora", backbones("qwen2_5_vl"), {"r": 4, "alpha": 8, "use_rslora": True})
    layer = next(m for n, m in rs.model.named_modules() if n.endswith("q_proj") and hasattr(m, "scaling"))
    assert layer.scaling["default"] == pytest.approx(8 / 2)


def test_unknown_target_names_what_exists(backbones):
    with pytest.raises(ConfigError, match=r"match no linear layer.*q_proj"):
        build_method("lora", backbones("qwen2_5_vl"), {"target_modules": ["qkv"]})
    # a misspelt name beside a good one was dropped without a word: the adapter wrapped q_proj alone
    with pytest.raises(ConfigError, match=r"target_modules \['v_prj'\] match no linear layer.*v_proj"):
        build_method("lora", backbones("qwen2_5_vl"), {"target_modules": ["q_proj", "v_prj"]})
    with pytest.raises(ConfigError, match=r"target_modules \['v_prj'\] match no linear layer"):
        build_method("vera", backbones("qwen2_5_vl"), {"target_modules": ["q_proj", "v_prj"]})
    with pytest.raises(ConfigError, match="unknown option"):
        build_method("lora", backbones("qwen2_5_vl"), {"rank": 4})


def test_lora_seed_draws_the_initialisation(backbones):
    a, b, c = (build_method("lora", backbones("qwen2_5_vl"), {"seed": s}) for s in (0, 0, 1))
    first = lambda m: next(v for k, v in m.trainable_state().items() if "lora_A" in k)  # noqa: E731
    assert torch.equal(first(a), first(b)) and not torch.equal(first(a), first(c))


def test_lora_dropout_only_while_training(backbones, rows):
    method = build_method("lora", backbones("qwen2_5_vl"), {"dropout": 0.5})
    perturb(method)
    # Decoding (no graph) is deterministic; a training pass draws a dropout mask.
    assert torch.equal(logprobs(method, rows), logprobs(method, rows))
    assert compute_loss(method, rows).item() != compute_loss(method, rows).item()


def test_vera_rank_defaults_to_the_hidden_size_on_small_models(backbones, tmp_path):
    backbone = backbones("qwen3_5")
    method = build_method("vera", backbone)
    hidden = backbone.model.config.get_text_config().hidden_size
    assert method.config.r == min(256, hidden)
    assert '"r": %d' % method.config.r in (method.save(tmp_path / "v") / "method.json").read_text()


def test_vera_shares_one_projection_pair_across_layers_of_different_shapes(backbones):
    method = build_method("vera", backbones("qwen3_5"), {"r": 8})
    layers = [m for n, m in method.model.named_modules() if hasattr(m, "vera_lambda_b") and "default" in m.vera_lambda_b]
    outs = {m.out_features for m in layers}
    assert len(outs) > 1, "Qwen3.5's gated q_proj is wider than v_proj"
    assert len({id(m.vera_A["default"]) for m in layers}) == 1
    assert all(torch.all(m.vera_lambda_b["default"] == 0) for m in layers)
    assert all(torch.allclose(m.vera_lambda_d["default"], torch.full((8,), 0.1)) for m in layers)


# --- AdaLink --------------------------------------------------------------------------------------

def test_adalink_hooks_never_stay_or_stack(backbones, rows):
    backbone = backbones("qwen2_5_vl")
    embed = backbone.input_embeddings()
    one = build_method("adalink", backbone, {"seed": 1})
    perturb(one)
    alone = logprobs(one, rows)
    two = build_method("adalink", backbone, {"seed": 2})
    perturb(two, seed=5)
    logprobs(two, rows)
    assert len(embed._forward_hooks) == 0, "a hook stayed on the embedding after a pass"
    assert torch.equal(logprobs(one, rows), alone), "another AdaLink instance changed this one's output"
    with one.attached():
        with one.attached():
            assert len(embed._forward_hooks) == 1
        one.close()
        assert len(embed._forward_hooks) == 0


def test_adalink_visual_adapter_acts_on_pooled_embeddings_only(backbones, rows):
    backbone = backbones("qwen3_vl")
    method = build_method("adalink", backbone)
    with torch.no_grad():
        method.visual.up.weight.normal_()
    base = build_method("base", backbone)
    text_rows = [r for r in rows if r.image is None]
    assert torch.equal(logprobs(method, text_rows), logprobs(base, text_rows)), "rows without a picture changed"
    assert not torch.allclose(logprobs(method, rows[:1]), logprobs(base, rows[:1]))
    from artstudio.vision import to_pixel_values

    out = backbone.encode_images(*to_pixel_values(torch.rand(3, 64, 64), backbone.geometry))
    adapted = method.transform_image_outputs(out)
    assert not torch.equal(adapted.pooler_output[0], out.pooler_output[0])
    assert adapted.deepstack_features is out.deepstack_features  # deepstack features left as they are


# --- soft prompt ----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def test_soft_prompt_takes_the_canvas_slot_exactly(backbones, family):
    backbone = backbones(family)
    for size in (None, 3 * FACTOR[family]):
        opts = {} if size is None else {"canvas_size": size}
        soft, art = build_method("soft-prompt", backbone, opts), build_method("art", backbone, opts)
        assert soft.placement == art.placement == "first"
        assert soft.slot_tokens == art.slot_tokens
        assert torch.equal(soft.slot_grid, art.slot_grid)
        assert soft.num_trainable() == soft.slot_tokens * backbone.input_embeddings().embedding_dim
    assert build_method("soft-prompt", backbone).slot_tokens == backbone.geometry.tokens(recommended_canvas_size(backbone))
    slot, canvas = soft.slot_outputs(), art.slot_outputs()
    assert type(slot) is type(canvas)
    assert slot.pooler_output[0].shape == canvas.pooler_output[0].shape
    deep = getattr(canvas, "deepstack_features", None)
    if deep is not None:  # Qwen3-VL: as many deepstack layers as a real picture has, all zero
        assert len(slot.deepstack_features) == len(deep)
        assert all(torch.all(layer[0] == 0) for layer in slot.deepstack_features)


def test_soft_prompt_initialisations(backbones):
    backbone = backbones("qwen2_5_vl")
    table = backbone.input_embeddings().weight
    normal = build_method("soft-prompt", backbone, {"canvas_size": 112, "seed": 0})
    assert normal.prompt.std().item() == pytest.approx(table.std().item(), rel=0.3)
    vocab = build_method("soft-prompt", backbone, {"canvas_size": 112, "init": "vocab"})
    assert all(torch.isclose(table, row).all(-1).any() for row in vocab.prompt)
    with pytest.raises(ConfigError, match="init"):
        build_method("soft-prompt", backbone, {"init": "zeros"})
    with pytest.raises(CanvasSizeError):
        build_method("soft-prompt", backbone, {"canvas_size": 100})


@pytest.mark.parametrize("name", ["art", "soft-prompt"])
@pytest.mark.parametrize("side", [0, -32])
def test_a_canvas_side_of_zero_or_less_is_refused_not_replaced_by_the_default(backbones, name, side):
    """`--canvas-size 0` trained at the default size while config.json recorded 0."""
    with pytest.raises(CanvasSizeError, match="each side must be a positive number of pixels"):
        build_method(name, backbones("qwen3_5"), {"canvas_size": side})


def test_lora_export_of_the_shipped_model_looks_nothing_up():
    """PEFT's default looked the base model's config.json up on the Hub and warned, offline, on every export."""
    import warnings

    from artstudio.backbone import DEFAULT_NAME

    backbone = load_backbone()  # the shipped studio-tiny, named by DEFAULT_NAME in the adapter
    method = build_method("lora", backbone, {"seed": 0})
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("always")
        path = method.export(Path(tmp) / "adapter")
        assert (path / "adapter_model.safetensors").is_file()
        assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == DEFAULT_NAME
    assert [str(w.message) for w in caught if "config" in str(w.message)] == []


def test_every_baseline_is_registered():
    assert {"lora", "vera", "adalink", "soft-prompt"} <= set(method_names())


def test_a_loaded_artwork_saves_loads_and_exports_with_what_its_file_said(backbones, tmp_path):
    """`load_artwork(png).save(folder)` wrote an empty weights file that Method.load refused ('lacks canvas.param'),
    and `.export(other.png)` dropped the artwork's task, steps and scores."""
    from artstudio.artwork import read_artwork
    from artstudio.methods import load_artwork

    bb = backbones("qwen3_5")
    art = build_method("art", bb, {"canvas_size": 64, "init": "noise", "seed": 1})
    png = art.export(tmp_path / "art.png", task={"name": "sum", "description": "add"}, steps=30,
                     metrics={"accuracy": 0.9})
    loaded = load_artwork(png, bb)
    again = Method.load(loaded.save(tmp_path / "saved"), bb)
    assert torch.equal(again.canvas().detach(), loaded.canvas().detach())
    meta = read_artwork(loaded.export(tmp_path / "copy.png")).metadata
    assert (meta.task["name"], meta.steps, meta.metrics) == ("sum", 30, {"accuracy": 0.9})
    with torch.no_grad():
        loaded.canvas.param.add_(0.2)  # other pixels: the old scores no longer describe them
    meta = read_artwork(loaded.export(tmp_path / "changed.png")).metadata
    assert meta.task["name"] == "sum" and meta.metrics == {} and meta.steps == 0


def test_a_non_square_artwork_saves_and_loads_at_its_own_size(backbones, tmp_path):
    """A loaded 64×128 PNG saved with `.save` came back through Method.load as the default square canvas, and
    copying its pixels failed ("The size of tensor a (64) must match the size of tensor b (128)")."""
    from artstudio.methods import load_artwork

    bb = backbones("qwen3_5")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    loaded = load_artwork(tmp_path / "wide.png", bb)
    again = Method.load(loaded.save(tmp_path / "saved"), bb)
    assert again.canvas.size == (64, 128) and again.slot_tokens == loaded.slot_tokens
    assert np.array_equal(np.asarray(again.image()), pixels)
    assert torch.equal(again.slot_grid, loaded.slot_grid)
    square = build_method("art", bb, {"canvas_size": 64})
    square.save(tmp_path / "square")
    from safetensors.torch import save_file

    save_file({"canvas.param": torch.zeros(3, 64, 128)}, str(tmp_path / "square" / "method.safetensors"))
    with pytest.raises(ConfigError, match=r"canvas.param of shape \(3, 64, 128\); this art method's is \(3, 64, 64\)"):
        Method.load(tmp_path / "square", bb)  # a side the config names still has to match


def test_method_load_says_what_a_folder_is_and_takes_a_model_name(backbones, tmp_path):
    """A run folder or an exported adapter gave a bare FileNotFoundError for method.json; a model name in place
    of the backbone an AttributeError."""
    lora = build_method("lora", backbones("qwen3_5"), {})
    lora.save(tmp_path / "run" / "final")
    with pytest.raises(ConfigError, match=r"is a run folder; its trained method is in .*final"):
        Method.load(tmp_path / "run", backbones("qwen3_5"))
    lora.export(tmp_path / "adapter")
    with pytest.raises(ConfigError, match="is a PEFT adapter folder"):
        Method.load(tmp_path / "adapter", backbones("qwen3_5"))
    with pytest.raises(ConfigError, match="no such folder"):
        Method.load(tmp_path / "nowhere", backbones("qwen3_5"))
    with pytest.raises(ConfigError, match=r"names a \.png file; an adapter export is a folder"):
        lora.export(tmp_path / "lora.png")
    assert not (tmp_path / "lora.png").exists()
    model = str(backbones("qwen3_5").model_id)
    assert Method.load(tmp_path / "run" / "final", model).name == "lora"
