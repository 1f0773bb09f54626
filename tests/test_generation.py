"""Shared-prefix decoding: greedy equals `model.generate`; sampled groups equal per-sample decoding."""

from __future__ import annotations

import pytest
import torch

from artstudio.backbone import load_backbone
from artstudio.data import Example
from artstudio.generation import GenerationConfig, generate
from artstudio.methods import build_method
from artstudio.prompts import render_prompt

PROMPTS = [Example(prompt=p, id=str(i)) for i, p in enumerate(["1 2", "3 4", "hello", "7 8 9"])]


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def art(request, tiny_model_dir):
    bb = load_backbone(tiny_model_dir(request.param))
    side = 56 if request.param.startswith("qwen2") else 64
    return build_method("art", bb, {"canvas_size": side, "init": "noise"})


def test_greedy_matches_model_generate(art):
    bb = art.backbone
    ours = generate(art, PROMPTS, GenerationConfig(max_new_tokens=6))
    for ex, got in zip(PROMPTS, ours.token_ids):
        text = render_prompt(bb.processor, ex.prompt, placement="first")
        inputs = bb.processor(text=[text], images=[art.image()], return_tensors="pt")
        ref = bb.model.generate(**inputs, max_new_tokens=6, do_sample=False)
        expected = ref[0, inputs["input_ids"].shape[1]:].tolist()
        assert got[0] == expected[: len(got[0])], ex.prompt


def test_groups_share_prompt_yet_match_naive_sampling(art):
    cfg = GenerationConfig(max_new_tokens=5, do_sample=True, temperature=1.5, num_return_sequences=3)
    shared = generate(art, PROMPTS[:2], cfg, seed=7)
    # The naive way: every sample its own row, whole prompt recomputed, no prefix cache.
    naive_cfg = GenerationConfig(max_new_tokens=5, do_sample=True, temperature=1.5, prefix_reuse=False)
    naive = generate(art, [ex for ex in PROMPTS[:2] for _ in range(3)], naive_cfg, seed=7)
    assert [len(t) for t in shared.token_ids] == [3, 3]
    assert [s for seqs in shared.token_ids for s in seqs] == [seqs[0] for seqs in naive.token_ids]


def test_sampling_is_seeded(art):
    cfg = GenerationConfig(max_new_tokens=6, do_sample=True, temperature=2.0, num_return_sequences=4)
    a = generate(art, PROMPTS[:2], cfg, seed=1)
    b = generate(art, PROMPTS[:2], cfg, seed=1)
    c = generate(art, PROMPTS[:2], cfg, seed=2)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_group_prompt_runs_once(art, monkeypatch):
    """With G samples per prompt the prompt's own tokens are computed for one row, not G."""
    rows_seen = []
    original = art.forward

    def spy(**inputs):
        ids = inputs.get("input_ids")
        if ids is not None and ids.shape[1] > 1:
            rows_seen.append(ids.shape[0])
        return original(**inputs)

    monkeypatch.setattr(art, "forward", spy)
    generate(art, PROMPTS[:2], GenerationConfig(max_new_tokens=3, do_sample=True, num_return_sequences=4), seed=0)
    assert rows_seen and max(rows_seen) <= 2, rows_seen


def test_a_served_artwork_encodes_its_canvas_and_prefix_once_per_process(tmp_path):
    """Two requests to a frozen artwork: the vision tower and the shared prefix run once; the answers equal
    a fresh method's, and a changed canvas is encoded again."""
    from artstudio.backbone import load_backbone as load
    from artstudio.methods import load_artwork
    from artstudio.tiny import build_tiny

    bb = load(str(build_tiny("qwen3_5", tmp_path / "m", seed=0)))
    trained = build_method("art", bb, {"canvas_size": 64, "init": "noise", "seed": 2})
    png = trained.export(tmp_path / "a.png")
    served = load_artwork(png, bb)
    calls = {"vision": 0}
    handle = bb.model.model.visual.register_forward_hook(lambda *a: calls.__setitem__("vision", calls["vision"] + 1))
    try:
        rows = [Example(prompt="1 2"), Example(prompt="3 4")]
        first = generate(served, rows, GenerationConfig(max_new_tokens=4)).texts
        second = generate(served, rows[::-1], GenerationConfig(max_new_tokens=4)).texts
        assert calls["vision"] == 1
        fresh = generate(load_artwork(png, bb), rows, GenerationConfig(max_new_tokens=4)).texts
        assert first == fresh and second == first[::-1]
        with torch.no_grad():
            served.canvas.param.mul_(0.5)
        generate(served, rows, GenerationConfig(max_new_tokens=4))
        assert calls["vision"] == 3  # the fresh method's encoding, then the changed canvas's
    finally:
        handle.remove()


@pytest.mark.parametrize("options, said", [
    ({"max_new_tokens": "4"}, "max_new_tokens is '4'"), ({"max_new_tokens": 0}, "max_new_tokens is 0"),
    ({"top_p": 1.5}, "top_p is 1.5"), ({"temperature": 0}, "temperature is 0"), ({"do_sample": "yes"}, "do_sample")])
def test_a_bad_generation_option_is_a_clear_error(options, said):
    """A string failed deep inside decoding with a TypeError; 0 new tokens returned empty answers without a word."""
    from artstudio.errors import ConfigError

    with pytest.raises(ConfigError, match=f"GenerationConfig {said}"):
        GenerationConfig(**options)


def test_generate_takes_a_dict_and_refuses_prompts_longer_than_the_model(tiny_model_dir, tmp_path):
    """generate(art, rows, {"max_new_tokens": 4}) failed with AttributeError; a prompt past the model's positions
    decoded garbage from Python while the command line refused it; a Path of rows was 'not iterable'."""
    from pathlib import Path

    from artstudio.errors import ConfigError, DataError
    from artstudio.evaluation import evaluate

    art = build_method("art", load_backbone(tiny_model_dir("qwen3_5")), {"canvas_size": 64})
    assert len(generate(art, PROMPTS[:1], {"max_new_tokens": 2}).texts) == 1
    with pytest.raises(ConfigError, match="unknown generation option"):
        generate(art, PROMPTS[:1], {"max_tokens": 2})
    long = [Example(prompt="a " * (art.backbone.max_positions + 10), answer="0", id="long")]
    with pytest.raises(DataError, match="row 'long'.*too long"):
        generate(art, long, {"max_new_tokens": 2})
    with pytest.raises(DataError, match="too long"):
        evaluate(art, long)
    with pytest.raises(DataError, match=r"got the path .*rows\.jsonl; read the file first: artstudio\.load_jsonl"):
        evaluate(art, Path(tmp_path / "rows.jsonl"))


def test_the_answer_budget_of_the_numeric_metric_holds_its_answer_format():
    """Bare references ('3') under the numeric metric left 8 new tokens: studio-tiny's answers were cut at
    'Answer:' (0 % in eval, no reward in GRPO) though the artwork answered 'Answer: 3' (100 % with 16)."""
    from artstudio.evaluation import answer_budget

    studio = load_backbone()
    rows = [Example(prompt="1 2", answer="3")]
    needed = len(studio.tokenizer("Answer: 3", add_special_tokens=False)["input_ids"]) + 1  # and the end token
    assert answer_budget(studio, rows, metric="numeric") >= needed > answer_budget(studio, rows, metric="exact")
    formatted = [Example(prompt="1 2", answer="Answer: 3")]
    assert answer_budget(studio, formatted, metric="numeric") == answer_budget(studio, formatted, metric="exact")


def test_what_a_notebook_passes_is_read_as_it_means_or_refused(tiny_model_dir, tmp_path):
    """From a notebook (2026-12-07 new-user pass): a DataFrame of rows was answered as its two column names;
    write_jsonl failed on dicts and wrote files load_jsonl refuses; a model name as the backbone ended in
    AttributeError; np.int64 steps were "not a number"; max_new_tokens=0 and an out_dir holding results were
    taken silently."""
    import numpy as np
    import pandas as pd

    import artstudio
    from artstudio.errors import ConfigError, DataError
    from artstudio.evaluation import evaluate

    folder = tiny_model_dir("qwen3_5")
    art = build_method("art", folder, {"canvas_size": 64})  # a model folder, loaded
    rows = [{"prompt": "1 2", "answer": "[2]"}, {"prompt": "3 4", "answer": "[4]"}, {"prompt": "5 6", "answer": "[6]"}]
    frame = pd.DataFrame(rows)
    assert generate(art, frame, {"max_new_tokens": 2}).texts == generate(art, rows, {"max_new_tokens": 2}).texts
    assert len(generate(art, frame, {"max_new_tokens": 2}).texts) == 3
    assert evaluate(art, frame, "exact", max_new_tokens=np.int64(2)).n == 3
    with pytest.raises(ConfigError, match="max_new_tokens is 0; expected 1 or more"):
        evaluate(art, frame, "exact", max_new_tokens=0)
    evaluate(art, rows, "exact", max_new_tokens=2, out_dir=tmp_path / "ev")
    with pytest.raises(ConfigError, match="already holds predictions.jsonl, metrics.json; pass --overwrite"):
        evaluate(art, rows, "exact", max_new_tokens=2, out_dir=tmp_path / "ev")
    evaluate(art, rows, "exact", max_new_tokens=2, out_dir=tmp_path / "ev", overwrite=True)
    with pytest.raises(ConfigError, match="backbone must be an artstudio Backbone .* not int"):
        build_method("art", 5)

    assert artstudio.Example is Example and artstudio.Method.load is not None
    written = artstudio.write_jsonl(tmp_path / "rows.jsonl", rows)  # dicts, as evaluate takes them
    assert [(e.prompt, e.answer) for e in artstudio.load_jsonl(written)] == [(r["prompt"], r["answer"]) for r in rows]
    for bad, said in (([Example("3 4", 4)], "Example answer is a number"),
                      ([Example("a", "b", id="1"), Example("c", "d", id="1")], "two rows have the id '1'"),
                      ([], "no rows")):
        with pytest.raises(DataError, match=said):
            artstudio.write_jsonl(tmp_path / "bad.jsonl", bad)
    assert not (tmp_path / "bad.jsonl").exists()

    task = tmp_path / "task"
    artstudio.write_jsonl(task / "train.jsonl", rows)
    run = artstudio.train(out=str(tmp_path / "run"), backbone=folder, data=str(task), steps=np.int64(1),
                          batch_size=np.int64(2), seed=np.int64(3), canvas_size=64, method="art-single", progress=False)
    assert run.metrics["steps"] == 1 and run.method.backbone.model_id
    with pytest.raises(ConfigError, match="backbone must be an artstudio Backbone"):
        artstudio.train(out=str(tmp_path / "never"), backbone=object(), data=str(task), steps=1)
    assert not (tmp_path / "never").exists()
