"""GRPO: advantages, loss variants, gradients only where they belong, seeded resumes, logged stats, chaining."""

from __future__ import annotations

import json
import re
import math

import pytest
import torch

from artstudio.backbone import load_backbone
from artstudio.data import Example, write_jsonl
from artstudio.errors import ConfigError, DataError
from artstudio.methods import build_method, method_names
from artstudio.objectives.grpo import (GRPOConfig, GRPOObjective, aggregate, completion_logprobs, default_reward,
                                       group_advantages, policy_loss)
from artstudio.prompts import encode_batch
from artstudio.forward import token_logprobs
from artstudio.training import TrainConfig, train

ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(i))
        for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (6, 3)])]
STATS = {"reward_mean", "reward_std", "frac_zero_std", "completion_length", "clip_frac", "accuracy"}
SMALL = {"group_size": 3, "max_new_tokens": 4, "temperature": 1.5}


def parity_reward(prompt: str, completion: str, answer: str) -> float:
    """A reward that varies between samples of a random model: 1 for an even completion length."""
    return float(len(completion) % 2 == 0)


@pytest.fixture(scope="module")
def bb(tiny_model_dir):
    return load_backbone(tiny_model_dir("qwen3_vl"))


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, ROWS)
    return str(path)


# --- the maths on hand examples -----------------------------------------------------------------

def test_advantages_scaled_and_unscaled():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.4, 0.4, 0.4, 0.4]])
    centred = group_advantages(rewards, scale=False)
    assert torch.allclose(centred, torch.tensor([[0.5, -0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    scaled = group_advantages(rewards, scale=True)
    std = math.sqrt(1 / 3)  # unbiased std of (1, 0, 0, 1)
    assert torch.allclose(scaled[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4))
    assert torch.equal(scaled[1], torch.zeros(4)), "a group with equal rewards has zero advantage"


def test_trl_option_values_batch_scaling_dapo_and_sequence_ratios():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    batch = group_advantages(rewards, scale="batch")
    assert torch.allclose(batch, (rewards - rewards.mean(1, keepdim=True)) / (rewards.std() + 1e-4))
    assert torch.equal(group_advantages(rewards, scale="none"), group_advantages(rewards, scale=False))
    assert GRPOObjective.build({"scale_rewards": False}).config.scale_rewards == "none"
    logp, mask = torch.zeros(2, 3), torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    adv = torch.tensor([1.0, -0.5])
    dapo, _ = policy_loss(logp, logp, adv, mask, loss_type="dapo")
    bnpo, _ = policy_loss(logp, logp, adv, mask, loss_type="bnpo")
    assert dapo.item() == pytest.approx(bnpo.item())
    # GSPO: one ratio per completion, the geometric mean of its token ratios.
    new = torch.tensor([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, math.log(0.5) + 0.3]], requires_grad=True)
    loss, _ = policy_loss(new, torch.zeros(2, 3), torch.tensor([0.0, 1.0]), torch.ones(2, 3, dtype=torch.bool),
                          importance_sampling_level="sequence", epsilon=10.0, loss_type="bnpo")
    assert loss.item() == pytest.approx(-math.exp(0.1) * 3 / 6)
    with pytest.raises(ConfigError, match="importance_sampling_level"):
        GRPOObjective.build({"importance_sampling_level": "word"})


def test_loss_aggregation_variants():
    # Two completions of 1 and 3 tokens; ratio 1, so every token's loss is -A.
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    adv = torch.tensor([1.0, -0.5])
    expected = {"grpo": (-1.0 + 0.5) / 2, "bnpo": (-1.0 + 1.5) / 4, "dr_grpo": (-1.0 + 1.5) / (2 * 4)}
    for loss_type, value in expected.items():
        loss, stats = policy_loss(logp, logp, adv, mask, loss_type=loss_type, max_new_tokens=4)
        assert loss.item() == pytest.approx(value), loss_type
        assert stats["clip_frac"] == 0.0 and "kl" not in stats


def test_clipping_and_kl_on_hand_values():
    mask = torch.ones(2, 1, dtype=torch.bool)
    logp = torch.full((2, 1), math.log(1.5), requires_grad=True)  # ratio 1.5 against old log-prob 0
    loss, stats = policy_loss(logp, torch.zeros(2, 1), torch.tensor([1.0, -1.0]), mask, epsilon=0.2)
    # A = +1: clipped to 1.2 (no gradient); A = -1: the unclipped -1.5 is the minimum (pessimistic bound).
    assert loss.item() == pytest.approx((-1.2 + 1.5) / 2)
    loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[1, 0] != 0
    assert stats["clip_frac"] == pytest.approx(0.5)
    ref = torch.full((2, 1), math.log(2.0))
    _, stats = policy_loss(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2), mask, beta=0.1, ref_logp=ref)
    assert stats["kl"] == pytest.approx(2 - math.log(2) - 1)  # k3 = e^d - d - 1, d = ref - logp


def test_aggregate_rejects_unknown_variant():
    with pytest.raises(ConfigError, match="loss_type"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "ppo", 1)


def test_options_are_validated():
    with pytest.raises(ConfigError, match="unknown GRPO option.*group_sise.*valid: .*group_size"):
        GRPOObjective.build({"group_sise": 4})
    with pytest.raises(ConfigError, match="loss_type"):
        GRPOObjective.build({"loss_type": "sum"})
    with pytest.raises(ConfigError, match=r"GRPO option group_size \(--grpo-group-size\) must be >= 2"):
        GRPOObjective.build({"group_size": 1})
    assert default_reward("numeric") == "numeric" and default_reward("json") == "json-tool-call"
    assert GRPOObjective.build({}, metric="numeric").reward_spec == "numeric"


def test_every_option_check_names_its_command_line_flag():
    """`--grpo-group-size 1` said `GRPO option: group_size must be ...`, naming no flag."""
    bad = {"group_size": 1, "temperature": 0, "top_p": 0, "max_new_tokens": 0, "epsilon": -1, "epsilon_high": -1,
           "num_iterations": 0, "beta": -1, "generation_batch_size": 0}
    for option, value in bad.items():
        flag = "--grpo-" + option.replace("_", "-")
        with pytest.raises(ConfigError, match=rf"^GRPO option {option} \({flag}\) must be"):
            GRPOObjective.build({option: value})
    for option in ("temperature", "beta", "epsilon", "epsilon_high"):  # inf crashed the sampler or NaN'd every step
        with pytest.raises(ConfigError, match=rf"^GRPO option {option} .* must be a finite number"):
            GRPOObjective.build({option: float("inf")})
    # choices and kinds, from a config file: they named no flag either
    with pytest.raises(ConfigError, match=r"^GRPO option loss_type \(--grpo-loss-type\) is 'sum'; choose one of grpo"):
        GRPOObjective.build({"loss_type": "sum"})
    with pytest.raises(ConfigError, match=r"^GRPO option epsilon \(--grpo-epsilon\) is 'x'; expected a number"):
        GRPOObjective.build({"epsilon": "x"})


def test_bad_grpo_options_are_refused_before_the_model_loads_or_a_folder_is_made(tmp_path, monkeypatch):
    """A bad value in a config file's `grpo` was found only after the backbone had loaded."""
    import artstudio.training as training

    monkeypatch.setattr(training, "load_backbone", lambda *a, **k: pytest.fail("the model loaded first"))
    for grpo in ({"loss_type": "nope"}, {"group_size": 1}, {"temperature": "hot"}):
        with pytest.raises(ConfigError, match="--grpo-"):
            train(TrainConfig(out=str(tmp_path / "run"), data="sub-answer", objective="grpo", steps=1, grpo=grpo),
                  progress=False)
    assert not (tmp_path / "run").exists()


def test_default_reward_is_shaped_for_answer_number_tasks():
    """Exact-match tasks answered `Answer: <n>` train on the paper's shaped reward unless told otherwise."""
    assert default_reward("exact", ["Answer: 4", "Answer: -2"]) == "numeric"
    assert default_reward("exact", ["Answer: 4", "[4]"]) == "exact"
    assert default_reward("exact", ["Answer: goow"]) == "exact" and default_reward("exact") == "exact"
    assert GRPOObjective.build({}, answers=["Answer: 3"]).reward_spec == "numeric"
    assert GRPOObjective.build({"reward": "exact"}, answers=["Answer: 3"]).reward_spec == "exact"


# --- the objective on a tiny model --------------------------------------------------------------

def test_completion_logprobs_match_answer_logprobs(bb, monkeypatch):
    """Scoring sampled ids gives what the SFT path gives for the same tokens (reference answers + end token)."""
    import artstudio.generation as G

    monkeypatch.setattr(G, "placeholder_ids", lambda backbone: [])  # the SFT path keeps every token
    art = build_method("art", bb, {"canvas_size": 64, "init": "noise"})
    enc = encode_batch(bb.processor, ROWS[:3], image_tokens=art.slot_tokens, placement="first", padding_side="right")
    ids = [enc.input_ids[i, n:][enc.labels[i, n:].ne(-100)].tolist() for i, n in enumerate(enc.prompt_lengths)]
    ours, mask = completion_logprobs(art, ROWS[:3], ids)
    ref, ref_mask = token_logprobs(art, ROWS[:3])
    assert torch.allclose(ours.sum(-1), ref.sum(-1), atol=1e-5)
    assert mask.sum() == ref_mask.sum()


def test_zero_variance_groups_give_zero_gradient(bb):
    art = build_method("art", bb, {"canvas_size": 64, "init": "noise"})
    objective = GRPOObjective(GRPOConfig(**SMALL), reward=lambda p, c, a: 0.7)
    loss, stats = objective(art, ROWS[:2], step=0)
    loss.backward()
    assert stats["frac_zero_std"] == 1.0 and stats["reward_std"] == 0.0
    assert art.canvas.param.grad is None or not art.canvas.param.grad.any()


def test_gradients_reach_only_the_method(bb):
    art = build_method("art", bb, {"canvas_size": 64, "init": "noise"})
    objective = GRPOObjective(GRPOConfig(group_size=4, max_new_tokens=6, temperature=2.0), reward=parity_reward)
    loss, stats = objective(art, ROWS[:3], step=0)
    loss.backward()
    assert STATS <= set(stats) and 0 <= stats["reward_mean"] <= 1 and stats["frac_zero_std"] < 1
    assert art.canvas.param.grad is not None and art.canvas.param.grad.abs().sum() > 0
    assert all(p.grad is None for p in bb.model.parameters()), "a backbone parameter received a gradient"


def test_canvas_encoded_once_per_step(bb, monkeypatch):
    art = build_method("art", bb, {"canvas_size": 64})
    calls = []
    original = bb.encode_images
    monkeypatch.setattr(bb, "encode_images", lambda *a, **k: calls.append(1) or original(*a, **k))
    GRPOObjective(GRPOConfig(**SMALL), reward=parity_reward)(art, ROWS[:3], step=0)
    assert len(calls) == 1, "sampling and the gradient pass should share one canvas encoding"


def test_inner_iterations_reuse_samples(bb, monkeypatch):
    import artstudio.generation as G

    art = build_method("art", bb, {"canvas_size": 64, "init": "noise"})
    objective = GRPOObjective(GRPOConfig(num_iterations=2, **SMALL), reward=parity_reward)
    calls = []
    original = G.generate
    monkeypatch.setattr(G, "generate", lambda *a, **k: calls.append(1) or original(*a, **k))
    opt = torch.optim.SGD(art.trainable_parameters(), lr=50.0)
    for step in range(4):
        opt.zero_grad()
        loss, stats = objective(art, ROWS[2 * (step % 2):][:2], step=step)
        loss.backward()
        opt.step()
    assert len(calls) == 2, "num_iterations=2 samples once every two steps"
    assert objective._batches[0].old_logp is not None


def test_kl_reference_is_the_starting_method(bb):
    art = build_method("art", bb, {"canvas_size": 64, "init": "noise"})
    objective = GRPOObjective(GRPOConfig(beta=0.5, **SMALL), reward=parity_reward)
    _, stats = objective(art, ROWS[:2], step=0)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6), "the policy is its own reference at the start"
    with torch.no_grad():
        art.canvas.param.add_(torch.randn_like(art.canvas.param) * 3)
    moved = art.canvas.param.detach().clone()
    loss, stats = objective(art, ROWS[:2], step=1)
    loss.backward()
    assert stats["kl"] > 0
    assert torch.equal(art.canvas.param.detach(), moved), "the reference swap must restore the canvas"


@pytest.mark.parametrize("name", ["lora", "soft-prompt"])
def test_baselines_train_with_grpo(tiny_model_dir, data, tmp_path, name):
    if name not in method_names():
        pytest.skip(f"baseline {name!r} is not registered yet (artstudio.baselines)")
    bb = load_backbone(tiny_model_dir("qwen3_vl"))
    res = train(TrainConfig(out=str(tmp_path / name), data=data, method=name, objective="grpo", steps=2, batch_size=2,
                            checkpoint_every=0, snapshot_every=0, grpo=SMALL), backbone=bb, progress=False)
    records = [h for h in res.history if "loss" in h]
    assert len(records) == 2 and all(STATS <= set(r) for r in records)


@pytest.mark.parametrize("name", ["lora", "soft-prompt"])
def test_baselines_take_a_grpo_step(tiny_model_dir, name):
    if name not in method_names():
        pytest.skip(f"baseline {name!r} is not registered yet (artstudio.baselines)")
    bb = load_backbone(tiny_model_dir("qwen3_vl"))  # its own copy: an adapter may wrap the model in place
    method = build_method(name, bb, {})
    objective = GRPOObjective(GRPOConfig(group_size=4, max_new_tokens=6, temperature=2.0), reward=parity_reward)
    loss, stats = objective(method, ROWS[:3], step=0)
    loss.backward()
    grads = [p.grad for p in method.trainable_parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name} got no gradient"
    assert all(p.grad is None for n, p in bb.model.named_parameters() if "lora_" not in n)


# --- through the training loop ------------------------------------------------------------------

def test_train_logs_grpo_stats(bb, data, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), data=data, objective="grpo", steps=2, batch_size=2, checkpoint_every=0,
                      snapshot_every=0, grpo=dict(SMALL, beta=0.1)), backbone=bb, progress=False, canvas_size=64)
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 2
    for r in steps:
        assert STATS | {"kl"} <= set(r), set(r)
        assert r["loss"] is not None and math.isfinite(r["loss"])
    assert json.loads((out / "config.json").read_text())["grpo"]["group_size"] == 3


def test_a_run_whose_groups_all_score_alike_is_diagnosed_as_stuck(bb, data, tmp_path):
    """The random model never writes the right sum: every completion's numeric reward is equal, so nothing trains;
    the run said only its accuracy."""
    out = tmp_path / "run"
    res = train(TrainConfig(out=str(out), data=data, objective="grpo", steps=6, batch_size=2, checkpoint_every=0,
                            snapshot_every=0, grpo=dict(SMALL)), backbone=bb, progress=False, canvas_size=64)
    assert res.metrics["diagnosis_kind"] == "stuck" and "advantages were zero" in res.metrics["diagnosis"]
    assert json.loads((out / "result.json").read_text())["diagnosis_kind"] == "stuck"
    # Told from a solved run (every completion right, groups alike too) by its answers on its training rows.
    assert res.metrics["train_accuracy"] == 0.0 and res.metrics["train_eval_n"] > 0
    from artstudio.cli import train_summary

    # The reward it trained on, chosen from the metric (exact here), is said: it never was.
    assert res.metrics["reward"] == "exact" and re.search(r"^reward +exact$", train_summary(res), re.M)


def test_train_rejects_unknown_grpo_option(bb, data, tmp_path):
    with pytest.raises(ConfigError, match="unknown GRPO option"):
        train(TrainConfig(out=str(tmp_path / "x"), data=data, objective="grpo", steps=1, grpo={"G": 4}),
              backbone=bb, progress=False, canvas_size=64)


def test_resume_gives_identical_canvas(bb, data, tmp_path):
    common = dict(data=data, objective="grpo", batch_size=2, checkpoint_every=2, snapshot_every=0, lr=0.2, seed=1,
                  grpo={**SMALL, "reward": "tests.test_grpo:parity_reward"})
    full = train(TrainConfig(out=str(tmp_path / "full"), steps=4, **common), backbone=bb, progress=False, canvas_size=64)
    stops = iter([False, False, True])
    train(TrainConfig(out=str(tmp_path / "cut"), steps=4, **common), backbone=bb, progress=False,
          should_stop=lambda: next(stops), canvas_size=64)
    resumed = train(TrainConfig(out=str(tmp_path / "cut"), steps=4, resume=True, **common), backbone=bb,
                    progress=False, canvas_size=64)
    assert not torch.equal(full.method.canvas.param, build_method("art", bb, {"canvas_size": 64}).canvas.param)
    assert torch.equal(full.method.canvas.param, resumed.method.canvas.param)


def test_resume_with_a_reward_function_or_a_relative_reward_file(bb, data, tmp_path, monkeypatch):
    # A Python caller's reward function was recorded by its address, so its run could never resume; a
    # relative `file.py:function` could not be found from another folder.
    common = dict(data=data, objective="grpo", batch_size=2, checkpoint_every=1, snapshot_every=0, lr=0.2, seed=1)
    stops = iter([False, True])
    train(TrainConfig(out=str(tmp_path / "fn"), steps=3, grpo={**SMALL, "reward": parity_reward}, **common),
          backbone=bb, progress=False, should_stop=lambda: next(stops), canvas_size=64)
    assert json.loads((tmp_path / "fn" / "config.json").read_text())["grpo"]["reward"] == \
        f"{parity_reward.__module__}:parity_reward"
    train(TrainConfig(out=str(tmp_path / "fn"), steps=3, resume=True, grpo={**SMALL, "reward": parity_reward}, **common),
          backbone=bb, progress=False, canvas_size=64)
    assert json.loads((tmp_path / "fn" / "result.json").read_text())["steps"] == 3

    (tmp_path / "mine.py").write_text("def half(prompt, completion, answer):\n    return 0.5\n")
    monkeypatch.chdir(tmp_path)
    stops = iter([False, True])
    train(TrainConfig(out=str(tmp_path / "file"), steps=3, grpo={**SMALL, "reward": "mine.py:half"}, **common),
          backbone=bb, progress=False, should_stop=lambda: next(stops), canvas_size=64)
    saved = json.loads((tmp_path / "file" / "config.json").read_text())
    saved.pop("resolved")
    assert saved["grpo"]["reward"] == f"{tmp_path.resolve() / 'mine.py'}:half"
    monkeypatch.chdir(tmp_path.parent)
    train(TrainConfig(**{**saved, "resume": True}), backbone=bb, progress=False, canvas_size=64)
    assert json.loads((tmp_path / "file" / "result.json").read_text())["steps"] == 3


def test_grpo_starts_from_an_sft_artwork(bb, data, tmp_path):
    sft = train(TrainConfig(out=str(tmp_path / "sft"), data=data, steps=2, batch_size=2, lr=0.5, checkpoint_every=0,
                            snapshot_every=0), backbone=bb, progress=False, canvas_size=64, init="noise")
    assert sft.artwork is not None and sft.artwork.exists()
    seen = []
    grpo = train(TrainConfig(out=str(tmp_path / "grpo"), data=data, objective="grpo", steps=1, batch_size=2,
                             checkpoint_every=0, snapshot_every=0, grpo=SMALL),
                 backbone=bb, progress=False, callbacks=[seen.append], canvas_size=64, init=str(sft.artwork))
    start = build_method("art", bb, {"canvas_size": 64, "init": str(sft.artwork)})
    assert torch.equal(start.canvas().detach(), sft.method.canvas().detach()), "--init artwork.png restores the SFT canvas"
    assert seen and STATS <= set(seen[0])
    assert grpo.artwork is not None and grpo.artwork.exists()


def test_grpo_default_lr_is_a_tenth_of_sft(bb, data, tmp_path):
    from artstudio.methods import get_method
    from artstudio.training import default_lr

    assert default_lr("art", "grpo") == pytest.approx(get_method("art").default_lr / 10)
    assert default_lr("lora") == get_method("lora").default_lr
    res = train(TrainConfig(out=str(tmp_path / "g"), data=data, objective="grpo", steps=1, batch_size=2,
                            checkpoint_every=0, snapshot_every=0, grpo={"group_size": 2}), backbone=bb, progress=False)
    assert res.history[0]["lr"] == pytest.approx(default_lr("art", "grpo"))


@pytest.mark.parametrize("body, said", [
    ("def reward(completion, answer):\n    return 1.0\n", "raised TypeError"),
    ("def reward(prompt, completion, answer):\n    return int(prompt)\n", "raised ValueError"),
    ("def reward(prompt, completion, answer):\n    return 'yes'\n", "returned 'yes'"),
])
def test_a_reward_that_fails_is_refused_before_the_run_begins(bb, data, tmp_path, body, said):
    """It failed at the first step, with the run's config.json written: the same command run again with the
    reward mended was refused as 'already holds a run' until --overwrite."""
    (tmp_path / "mine.py").write_text(body)
    config = dict(data=data, objective="grpo", steps=1, batch_size=2, checkpoint_every=0, snapshot_every=0,
                  out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=f"reward .*mine.py:reward {said}.*tried before training on training row"):
        train(TrainConfig(grpo={**SMALL, "reward": f"{tmp_path / 'mine.py'}:reward"}, **config), backbone=bb,
              progress=False, canvas_size=64)
    assert not (tmp_path / "run" / "config.json").exists()
    (tmp_path / "mine.py").write_text("def reward(prompt, completion, answer):\n    return 0.5\n")
    result = train(TrainConfig(grpo={**SMALL, "reward": f"{tmp_path / 'mine.py'}:reward"}, **config), backbone=bb,
                   progress=False, canvas_size=64)
    assert result.metrics["steps"] == 1


def test_a_reward_that_underpays_the_reference_answer_is_said_before_training(caplog):
    """'exact*0.7+format*0.3' on a bracket task rewards a right answer 0.7 ('format' is the paper's 'Answer: <n>'),
    which nothing said."""
    from artstudio.data import Example
    from artstudio.objectives.grpo import GRPOObjective

    with caplog.at_level("WARNING", logger="artstudio.grpo"):
        GRPOObjective.build({"reward": "exact*0.7+format*0.3"}, probe=Example("3 4", "[4]", id="r1"))
    assert "reward exact*0.7+format*0.3 gives the reference answer of training row r1 only 0.70" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="artstudio.grpo"):
        GRPOObjective.build({"reward": "exact*0.7+format:\\[\\d\\]*0.3"}, probe=Example("3 4", "[4]", id="r1"))
    assert caplog.text == ""


def test_a_reward_that_fails_on_a_sample_names_the_row_and_the_completion(bb, data, tmp_path):
    """A reward that passes on the reference answer and fails on a sampled one said only "returned None"."""
    (tmp_path / "picky.py").write_text("def reward(prompt, completion, answer):\n"
                                       "    return 1.0 if completion == answer else None\n")
    with pytest.raises(ConfigError, match=r"picky.py:reward returned None.*\(on training row .*, for the sampled "
                                          r"completion '.*'\)"):
        train(TrainConfig(data=data, objective="grpo", steps=1, batch_size=2, checkpoint_every=0, snapshot_every=0,
                          out=str(tmp_path / "run"), grpo={**SMALL, "reward": f"{tmp_path / 'picky.py'}:reward"}),
              backbone=bb, progress=False, canvas_size=64)


def test_a_reward_that_cannot_read_the_answers_names_the_row_and_the_reward_to_change(bb, tmp_path):
    """--grpo-reward json-tool-call on '[CAT]' answers said 'or use --metric exact' (the metric was already
    exact) and named no row."""
    rows = tmp_path / "train.jsonl"
    rows.write_text('{"prompt": "cat", "answer": "[CAT]"}\n{"prompt": "dog", "answer": "[DOG]"}\n')
    with pytest.raises(DataError, match=rf"^{re.escape(str(rows))}:1: reference answer '\[CAT\]' is not valid JSON "
                                        r".*\(or use --grpo-reward exact\)$"):
        train(TrainConfig(data=str(rows), objective="grpo", steps=1, batch_size=2, out=str(tmp_path / "run"),
                          grpo={**SMALL, "reward": "json-tool-call"}), backbone=bb, progress=False, canvas_size=64)
    assert not (tmp_path / "run").exists()
