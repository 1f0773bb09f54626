"""ART's training cost as a ratio of LoRA's at the same batch size, measured in one run.

Both methods train on the same rows of a built-in task with the same batch size, each on its own copy
of the frozen backbone (PEFT injects LoRA layers into the model it wraps, and ART must not run through
them). Steps alternate A B B A so drift (thermal, other processes) hits both alike; warm-up steps are
excluded; medians are reported. Memory is what a step adds over its start (`compare.PeakMemory`: RSS
on CPU, allocated tensors on CUDA), next to the absolute peak.

ART runs with the shared prefix (`artstudio.forward`: the template opening and the canvas computed
once per batch); "art-unshared" is the same canvas with every row running the prefix itself, which
was ART's step before, so the saving is measured in the same run.

Then the explanation: ART's step split into its parts. The canvas goes through the vision tower
once per step (forward and backward, for the whole batch), and every row carries the canvas's visual
tokens, which LoRA's text-only prompt does not; LoRA instead updates q/v adapters in every layer.

    python benchmarks/bench_art_vs_lora.py                             # studio-tiny, batch 16
    python benchmarks/bench_art_vs_lora.py --model path/to/model --batch-size 8 --repeats 8
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.comparison import PeakMemory
from artstudio.data import load_jsonl
from artstudio.methods import build_method, method_names
from artstudio.prompts import encode_batch
from artstudio.tasks import make_task
from artstudio.forward import shared_prefix_length, token_logprobs
from artstudio.objectives.sft import compute_loss
from artstudio.training import batch_indices


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(method, opt, rows, loss_fn=compute_loss) -> float:
    """Seconds of one optimisation step exactly as `train.train` takes it (loss, backward, clip, update)."""
    device = method.backbone.device
    sync(device)
    start = time.perf_counter()
    loss = loss_fn(method, rows)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(method.trainable_parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - start


def measured_step(method, opt, rows) -> tuple[float, float, float]:
    """(seconds, MiB added over the start, absolute peak MiB) of one step."""
    with PeakMemory(method.backbone.device) as mem:
        seconds = train_step(method, opt, rows)
    return seconds, mem.delta_mb, mem.peak_mb


def _leaf(slot):
    """The canvas encoding cut from the vision tower: a leaf that still takes gradients."""
    fields = {"pooler_output": tuple(t.detach().requires_grad_() for t in slot.pooler_output)}
    deep = getattr(slot, "deepstack_features", None)
    if deep is not None:
        fields["deepstack_features"] = [tuple(t.detach().requires_grad_() for t in layer) for layer in deep]
    return type(slot)(**fields)


def art_components(method, rows) -> dict[str, float]:
    """Seconds of the vision tower's forward and backward, and of the language model's part, for ART."""
    device = method.backbone.device
    sync(device)
    t0 = time.perf_counter()
    slot = method.slot_outputs()
    sync(device)
    t1 = time.perf_counter()
    probe = sum((t.float() * torch.randn_like(t, dtype=torch.float32)).sum() for t in slot.pooler_output)
    probe.backward()
    sync(device)
    t2 = time.perf_counter()
    logp, mask = token_logprobs(method, rows, slot=_leaf(slot))
    (-(logp.sum() / mask.sum().clamp_min(1))).backward()
    sync(device)
    t3 = time.perf_counter()
    method.zero_grad(set_to_none=True)
    return {"vision_forward": t1 - t0, "vision_backward": t2 - t1, "language_model": t3 - t2}


def seq_len(method, rows) -> int:
    bb = method.backbone
    batch = encode_batch(bb.processor, rows, image_tokens=method.slot_tokens, placement=method.placement,
                         with_answers=True, padding_side="right")
    return int(batch.attention_mask.sum(1).float().mean().round())


def shared_len(method, rows) -> int:
    bb = method.backbone
    batch = encode_batch(bb.processor, rows, image_tokens=method.slot_tokens, placement=method.placement,
                         with_answers=True, padding_side="right")
    return shared_prefix_length(batch.input_ids.tolist(), min(batch.prompt_lengths) - 1, bb.image_token_id, True)


def depth_note(art, other, name: str) -> str:
    """How deep each method's backward goes: ART's reaches the canvas below every layer; an adapter's
    stops at its lowest adapted layer (Qwen3.5's linear-attention layers have no q/v projections)."""
    layers = {int(m.group(1)) for n, _ in art.backbone.model.named_modules()
              if "language_model" in n and (m := re.search(r"\.layers\.(\d+)$", n))}
    if not hasattr(other, "targets") or not layers:
        return "Both methods back-propagate through every layer, so depth is not the difference."
    adapted = sorted({int(m.group(1)) for n, _ in other.targets() if (m := re.search(r"\.layers\.(\d+)\.", n))})
    if adapted and len(adapted) == len(layers) and adapted[0] == min(layers):
        return (f"Both back-propagate through every layer ({name}'s adapters sit in all {len(layers)}), so depth is "
                f"not the difference; {name} also pays its adapters' extra matrix products in every layer.")
    return (f"{name}'s adapters sit in {len(adapted)} of the {len(layers)} language-model layers, the lowest at layer "
            f"{adapted[0]}, so its backward stops there; ART's goes through every layer and the vision tower to the canvas.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder or id (default: studio-tiny when it is installed)")
    ap.add_argument("--task", default="add-json", help="built-in task whose training rows are used")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=10, help="measured steps per method (after 2 warm-up steps)")
    ap.add_argument("--canvas-size", type=int, default=None, help="ART canvas side (default: the model's recommended)")
    ap.add_argument("--baseline", default="lora", help="the method ART is compared with")
    ap.add_argument("--grpo", type=grpo_shape, default="4x8", help="GRPO policy pass timed as PROMPTSxG (0 to skip)")
    args = ap.parse_args()

    model = args.model or DEFAULT_MODEL
    if args.model is None and not (Path(DEFAULT_MODEL) / "config.json").exists():
        print(f"studio-tiny is not installed at {DEFAULT_MODEL}; pass --model with a model folder", file=sys.stderr)
        return 2
    if args.baseline not in method_names():
        print(f"method {args.baseline!r} is not available (have: {', '.join(method_names())})", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    art_bb, base_bb = load_backbone(model), load_backbone(model)
    art = build_method("art", art_bb, {"canvas_size": args.canvas_size} if args.canvas_size else {})
    unshared = build_method("art", art_bb, {"canvas_size": art.canvas.size[0]})  # ART does not change the model
    unshared.shared_prefix = False
    other = build_method(args.baseline, base_bb, {})
    methods = {"art": art, "art-unshared": unshared, args.baseline: other}
    opts = {k: torch.optim.AdamW(m.trainable_parameters(), lr=m.lr_for("sft")) for k, m in methods.items()}
    with tempfile.TemporaryDirectory() as tmp:
        rows = load_jsonl(make_task(args.task, Path(tmp) / args.task, seed=0) / "train.jsonl")
    batches = [[rows[i] for i in batch_indices(len(rows), s, 0, args.batch_size, 1, seed=0)] for s in range(args.repeats + 2)]
    gc.freeze()  # the models and libraries stay out of each step's garbage collection

    print(f"model {model} ({art_bb.family}, {art_bb.num_parameters / 1e6:.1f} M parameters) on {art_bb.device}, "
          f"{torch.get_num_threads()} threads; task {args.task}, batch {args.batch_size}")
    print(f"  art:  canvas {art.canvas.size[0]} px = {art.slot_tokens} visual tokens per row, "
          f"{art.num_trainable():,} trainable, {seq_len(art, batches[0])} tokens per row")
    print(f"  {args.baseline}: {other.num_trainable():,} trainable, {seq_len(other, batches[0])} tokens per row")
    print(f"  rows' shared prefix (run once per batch by ART): {shared_len(art, batches[0])} tokens")

    for b in batches[:2]:  # warm-up: allocator, kernels, lazy imports
        for k, m in methods.items():
            train_step(m, opts[k], b)
        art_components(art, b)
    res: dict[str, list[tuple[float, float, float]]] = {k: [] for k in methods}
    parts = []
    for i, b in enumerate(batches[2:]):
        order = list(methods) if i % 2 == 0 else list(methods)[::-1]  # A B C, C B A, ...: drift hits all alike
        for k in order:
            res[k].append(measured_step(methods[k], opts[k], b))
        parts.append(art_components(art, b))
    med = {k: [statistics.median(x[j] for x in v) for j in range(3)] for k, v in res.items()}
    fast = {k: min(x[0] for x in v) for k, v in res.items()}
    (ta, da, pa), (tb, db, pb), tu = med["art"], med[args.baseline], med["art-unshared"][0]
    print(f"\ntime per step:     art {ta * 1000:.0f} ms, art-unshared {tu * 1000:.0f} ms, {args.baseline} {tb * 1000:.0f} ms "
          f"-> ART / {args.baseline} = {ta / tb:.2f}x  (fastest steps: {fast['art'] / fast[args.baseline]:.2f}x; "
          "a large gap between the two means a busy machine); unshared ART / "
          f"{args.baseline} = {tu / tb:.2f}x; shared prefix speed-up {tu / ta:.2f}x")
    print(f"memory added/step: art {da:.1f} MiB, {args.baseline} {db:.1f} MiB "
          f"-> ART / {args.baseline} = {da / db if db > 0 else float('inf'):.2f}x")
    print(f"absolute peak:     art {pa:.0f} MiB, {args.baseline} {pb:.0f} MiB -> {pa / pb:.2f}x "
          "(mostly the frozen model itself)")

    comp = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    vision = comp["vision_forward"] + comp["vision_backward"]
    total = vision + comp["language_model"]
    print(f"\nwhere ART's step goes (medians, measured apart): vision tower forward {comp['vision_forward'] * 1000:.0f} ms "
          f"+ backward {comp['vision_backward'] * 1000:.0f} ms ({vision / total:.0%}); language model forward+backward "
          f"{comp['language_model'] * 1000:.0f} ms ({comp['language_model'] / total:.0%})")
    la, lb, shared = seq_len(art, batches[0]), seq_len(other, batches[0]), shared_len(art, batches[0])
    print(f"why: (1) the vision tower runs forward and backward once per step for the canvas: a fixed "
          f"{vision * 1000:.0f} ms whatever the batch size, so its share falls as batches grow; (2) every row "
          f"carries the canvas's {art.slot_tokens} visual tokens ({la} tokens per row against {lb} for "
          f"{args.baseline}), but the rows' common prefix ({shared} tokens: the template opening and the canvas) "
          f"runs once per batch, so each row runs {la - shared} tokens of its own; unshared, the language model's "
          f"work grows by about {la / lb:.1f}x over {args.baseline}'s. {depth_note(art, other, args.baseline)} "
          f"At inference the served canvas is a cached prefix.")
    if args.grpo:
        prompts, group = args.grpo
        grpo_pass(art, rows[:prompts], group, args.repeats)
    return 0


def grpo_shape(text: str) -> tuple[int, int] | None:
    """`--grpo PROMPTSxG` as (prompts, G); "0" is None (skip)."""
    if text.strip() == "0":
        return None
    try:
        prompts, group = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PROMPTSxG such as 4x8, or 0; got {text!r}") from None
    if prompts < 1 or group < 2:
        raise argparse.ArgumentTypeError(f"expected at least 1 prompt and G >= 2; got {text!r}")
    return prompts, group


def grpo_pass(art, prompts, group: int, repeats: int) -> None:
    """GRPO's policy pass (log-probabilities of G sampled completions per prompt, and backward), three ways:
    each group's whole prompt run once, only the batch's common opening run once, and nothing shared."""
    import dataclasses
    import random

    rng = random.Random(0)
    tok = art.backbone.tokenizer
    answers = [tok.encode(p.answer) for p in prompts]
    rows = [p for p in prompts for _ in range(group)]
    distinct = [dataclasses.replace(p, id=f"{p.id}-{j}") for p in prompts for j in range(group)]  # no repeats
    ids = [rng.choice(answers)[: rng.randint(1, 8)] + tok.encode("<|im_end|>") for _ in rows]

    from artstudio import forward

    threshold = forward.GROUP_SHARING_MIN_PARAMETERS

    def step(examples, shared: bool) -> float:
        art.shared_prefix = shared
        sync(art.backbone.device)
        start = time.perf_counter()
        logp, mask = token_logprobs(art, examples, completion_ids=ids)
        (-(logp.sum() / mask.sum())).backward()
        for q in art.trainable_parameters():
            q.grad = None
        sync(art.backbone.device)
        return time.perf_counter() - start

    ways = {"per group": (rows, True), "batch opening only": (distinct, True), "unshared": (rows, False)}
    times = {k: [] for k in ways}
    forward.GROUP_SHARING_MIN_PARAMETERS = 0  # time per-group sharing whatever the model's size
    try:
        for i in range(repeats + 1):
            for k in (list(ways) if i % 2 == 0 else list(ways)[::-1]):
                t = step(*ways[k])
                if i:  # the first round warms up
                    times[k].append(t)
    finally:
        art.shared_prefix = True
        forward.GROUP_SHARING_MIN_PARAMETERS = threshold
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nGRPO policy pass, {len(prompts)} prompts x {group} completions: "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in med.items())
          + f" -> per-group sharing {med['unshared'] / med['per group']:.2f}x faster than unshared, "
            f"{med['batch opening only'] / med['per group']:.2f}x faster than sharing only the batch's opening; "
            f"the studio shares {'per group' if art.backbone.num_parameters >= threshold else 'only the opening'} "
            f"on this model ({art.backbone.num_parameters / 1e6:.0f} M parameters; threshold {threshold / 1e6:.0f} M)")


if __name__ == "__main__":
    sys.exit(main())
