"""Training cost per method on a model with the exact shapes of Qwen3.5-0.8B (random weights).

The model is built from `benchmarks/configs/qwen3_5-0.8b.json` (the public config's shapes: 24 layers,
3 gated-delta-net layers per full-attention one, hidden 1024, a 248,320-token vocabulary, a 12-layer
vision tower), so it needs no download. Per method it measures, in one run with the methods
interleaved (A B C D, D C B A, ...) and warm-up steps excluded:

- the median time of a training step (loss, backward, clip, AdamW update), tokens per second;
- peak memory of a step (CUDA: allocated tensors; CPU: resident set size) and what the step adds;
- model FLOPs utilisation: 4 × (non-embedding parameters) × (tokens the language model runs) per step
  over the device's peak, with the frozen weights taking no weight gradients (forward 2, backward 2),
  plus the LM head at the answer positions. The peak is a table entry for known GPUs or `--peak-tflops`.

Methods: `art` (the canvas, shared prefix), `art-unshared` (every row runs the canvas itself),
`art-full-logits` (the shared prefix, but the language-model head over every position as before
answer-only logits: the memory those logits cost), `lora` (rank 8 on q/v, the harness's default),
`lora-every-layer` (rank 8 on q, k, v, o and the MLP's three projections), `soft-prompt` (the
canvas's token count of trained vectors).

    python benchmarks/bench_scale.py                          # the full 24 layers on a GPU (without one: says so, exits)
    python benchmarks/bench_scale.py --layers 2 --repeats 2   # a CPU smoke run (the test suite's)
    python benchmarks/bench_scale.py --layers 4,8             # two depths, extrapolated to the config's 24

Cutting layers is not neutral between methods: Qwen3.5 has three linear-attention layers before each
full-attention one, and LoRA (q/v) adapts only the full-attention ones, so its backward stops at the
first of them (layer 3). At 4 layers that skips 3 of 4 layers, at 24 only 3 of 24. With several
depths (each a whole number of the pattern's blocks) the script fits each method's time and memory as
a fixed part plus a part per layer and reads the line at the config's depth.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import string
import sys
from pathlib import Path

import torch

from artstudio.backbone import Backbone
from artstudio.comparison import PeakMemory
from artstudio.data import Example
from artstudio.forward import encode, shared_prefix_length, token_logprobs
from artstudio.methods import build_method
from artstudio.objectives.sft import compute_loss
from artstudio.prompts import IGNORE_INDEX
from artstudio.tiny import char_tokenizer, tiny_processor
from bench_art_vs_lora import grpo_pass, grpo_shape, train_step  # the same timed steps (this folder is on sys.path)

CONFIGS = Path(__file__).parent / "configs"
# Dense bf16 peak TFLOP/s of the GPUs this project may be lent (vendor data sheets, without sparsity).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
METHODS = ("art", "art-unshared", "art-full-logits", "lora", "lora-every-layer", "soft-prompt")
# LoRA on every projection of attention and MLP (a common choice, in `artstudio tune`'s LoRA space): on
# Qwen3.5 its MLP adapters sit in every layer, so its backward reaches layer 0 as ART's does.
EVERY_LAYER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(config_file: Path, layers: int | None, vision_layers: int | None, device: str, dtype: torch.dtype):
    """A random-weight model with the config's shapes (optionally fewer layers) and a character tokenizer."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    spec = json.loads(config_file.read_text())
    tokenizer = char_tokenizer(default_system=False)
    cfg = AutoConfig.for_model(spec["model_type"])
    for key, value in spec["text_config"].items():
        setattr(cfg.text_config, key, value)
    for key, value in spec["vision_config"].items():
        setattr(cfg.vision_config, key, value)
    text = cfg.text_config
    n = layers or text.num_hidden_layers
    text.num_hidden_layers = n
    every = text.full_attention_interval
    text.layer_types = ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(n)]
    if "full_attention" not in text.layer_types:  # fewer layers than the interval: keep one of each kind
        text.layer_types[-1] = "full_attention"
    if vision_layers:
        cfg.vision_config.depth = vision_layers
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                            "<|vision_end|>", "<|im_end|>", "<|endoftext|>")}
    cfg.image_token_id, cfg.video_token_id = ids["<|image_pad|>"], ids["<|video_pad|>"]
    cfg.vision_start_token_id, cfg.vision_end_token_id = ids["<|vision_start|>"], ids["<|vision_end|>"]
    text.bos_token_id, text.eos_token_id, text.pad_token_id = None, ids["<|im_end|>"], ids["<|endoftext|>"]
    cfg.tie_word_embeddings = spec.get("tie_word_embeddings", False)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = text.eos_token_id, text.pad_token_id
    processor = tiny_processor(spec["model_type"], tokenizer, max_pixels=1024 * 1024)
    return Backbone(model, processor, f"{config_file.stem} (random weights, {n} layers)")


def make_rows(n: int, prompt_tokens: int, answer_tokens: int, seed: int = 0) -> list[Example]:
    """Rows of about `prompt_tokens` prompt tokens (the tokenizer has one token per character)."""
    rng = random.Random(seed)
    letters = string.ascii_lowercase + " "
    return [Example(prompt="".join(rng.choice(letters) for _ in range(prompt_tokens)),
                    answer="".join(rng.choice(string.digits) for _ in range(answer_tokens)), id=str(i))
            for i in range(n)]


def full_logits_loss(method, rows) -> torch.Tensor:
    """The SFT loss from the head over EVERY position (the pre-answer-only way), shared prefix off."""
    from artstudio.forward import batch_images

    bb = method.backbone
    slot = method.slot_outputs()
    images, grid, extra = batch_images(method, rows, slot)
    batch = encode(method, rows, with_answers=True, extra_image_tokens=extra)
    out = method.forward(input_ids=batch.input_ids.to(bb.device), attention_mask=batch.attention_mask.to(bb.device),
                         mm_token_type_ids=batch.mm_token_type_ids.to(bb.device), image_outputs=images,
                         image_grid_thw=grid)
    labels = batch.labels[:, 1:].to(bb.device)
    mask = labels.ne(IGNORE_INDEX)
    logp = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, labels.clamp_min(0)[..., None]).squeeze(-1)
    return -(logp * mask).sum() / mask.sum()


def lm_tokens(method, rows, shared: bool) -> tuple[int, int]:
    """(tokens the language model runs per step, answer positions through the head)."""
    bb = method.backbone
    batch = encode(method, rows, with_answers=True,
                   extra_image_tokens=[None] * len(rows))
    total = int(batch.attention_mask.sum())
    answers = int(batch.labels[:, 1:].ne(IGNORE_INDEX).sum())
    if shared:
        p = shared_prefix_length(batch.input_ids.tolist(), min(batch.prompt_lengths) - 1, bb.image_token_id,
                                 method.slot_tokens is not None)
        total -= (len(rows) - 1) * p
    return total, answers


def measure(args, layers: int | None, chosen: list[str], device: str, dtype: torch.dtype,
            peak: float | None) -> dict[str, dict]:
    """One table: every chosen method's step at this depth, the methods interleaved."""
    bb = build_model(args.config, layers, args.vision_layers, device, dtype)
    text = bb.model.config.text_config
    embed = text.vocab_size * text.hidden_size
    lm_params = sum(p.numel() for p in bb.model.model.language_model.parameters()) - embed
    rows_all = make_rows(args.batch_size * (args.repeats + 1), args.prompt_tokens, args.answer_tokens)
    batches = [rows_all[i * args.batch_size:(i + 1) * args.batch_size] for i in range(args.repeats + 1)]

    methods, losses, shared = {}, {}, {}
    for name in chosen:
        base = "lora" if name.startswith("lora") else name if name == "soft-prompt" else "art"
        opts = {"r": 8} if base == "lora" else {"canvas_size": args.canvas_size}
        if name == "lora-every-layer":
            opts["target_modules"] = EVERY_LAYER
        if base == "art":
            opts["init"] = "noise"
        # PEFT injects LoRA layers into the model it wraps, which the other methods must not run
        # through: LoRA gets its own copy (same seed, same weights).
        owner = build_model(args.config, layers, args.vision_layers, device, dtype) if base == "lora" else bb
        m = build_method(base, owner, opts)
        m.shared_prefix = name not in ("art-unshared", "art-full-logits")
        methods[name], shared[name] = m, m.shared_prefix
        losses[name] = full_logits_loss if name == "art-full-logits" else compute_loss
    opts = {k: torch.optim.AdamW(m.trainable_parameters(), lr=1e-3) for k, m in methods.items()}
    gc.collect()

    print(f"\nmodel {bb.model_id} on {bb.device} ({dtype}), {sum(p.numel() for p in bb.model.parameters()) / 1e6:.0f} M "
          f"parameters ({lm_params / 1e6:.0f} M in the language model's layers, {embed / 1e6:.0f} M embedding); "
          f"batch {args.batch_size}, {args.prompt_tokens}-token prompts, canvas {args.canvas_size} px = "
          f"{methods[chosen[0]].slot_tokens if methods[chosen[0]].slot_tokens else '-'} tokens; "
          f"{torch.get_num_threads()} CPU threads")
    for name in (n for n in methods if n.startswith("lora")):
        adapted = sorted({int(n.split(".layers.")[1].split(".")[0]) for n, _ in methods[name].model.named_parameters()
                          if "lora_" in n and ".layers." in n})
        print(f"{name} adapts layers {adapted} of {text.num_hidden_layers}: its backward stops at layer {adapted[0]}"
              if adapted else f"{name} adapts no layer")
    for k, m in methods.items():  # warm-up
        train_step(m, opts[k], batches[0], losses[k])
    res: dict[str, list[tuple[float, float, float]]] = {k: [] for k in methods}
    for i, b in enumerate(batches[1:]):
        for k in (list(methods) if i % 2 == 0 else list(methods)[::-1]):
            with PeakMemory(bb.device) as mem:
                seconds = train_step(methods[k], opts[k], b, losses[k])
            res[k].append((seconds, mem.peak_mb, mem.delta_mb))

    out = {}
    print(f"\n{'method':<16} {'s/step':>8} {'tokens/s':>10} {'peak MiB':>9} {'added MiB':>9} {'MFU':>6}")
    for k, runs in res.items():
        t = statistics.median(r[0] for r in runs)
        peak_mb = max(r[1] for r in runs)
        added = statistics.median(r[2] for r in runs)
        tokens, answers = lm_tokens(methods[k], batches[0], shared[k])
        head = answers if k != "art-full-logits" else tokens
        flops = 4 * lm_params * tokens + 4 * embed * head
        mfu = flops / t / (peak * 1e12) if peak else None
        out[k] = {"seconds_per_step": t, "tokens_per_second": args.batch_size * (args.prompt_tokens + args.answer_tokens) / t,
                  "peak_mb": peak_mb, "added_mb": added, "lm_tokens": tokens, "mfu": mfu}
        print(f"{k:<16} {t:>8.3f} {out[k]['tokens_per_second']:>10.0f} {peak_mb:>9.0f} {added:>9.0f} "
              f"{'n/a' if mfu is None else f'{mfu:.1%}':>6}")
    print_ratios(out)
    if args.grpo and "art" in methods:
        prompts, group = args.grpo
        grpo_pass(methods["art"], rows_all[:prompts], group, args.repeats)
    del methods, opts, bb
    gc.collect()
    return out


def print_ratios(out: dict[str, dict], note: str = "") -> None:
    ratios = []
    if "art" in out and "lora" in out:
        ratios.append(f"ART / LoRA time {out['art']['seconds_per_step'] / out['lora']['seconds_per_step']:.2f}x, "
                      f"peak memory {out['art']['peak_mb'] / out['lora']['peak_mb']:.2f}x, "
                      f"added memory {out['art']['added_mb'] / out['lora']['added_mb']:.2f}x")
    if "art" in out and "lora-every-layer" in out:
        ratios.append(f"ART / LoRA on every layer time "
                      f"{out['art']['seconds_per_step'] / out['lora-every-layer']['seconds_per_step']:.2f}x, "
                      f"peak memory {out['art']['peak_mb'] / out['lora-every-layer']['peak_mb']:.2f}x")
    if "art" in out and "art-unshared" in out:
        ratios.append(f"shared prefix {out['art-unshared']['seconds_per_step'] / out['art']['seconds_per_step']:.2f}x faster")
    if "art" in out and "art-full-logits" in out:
        ratios.append(f"answer-only logits: added memory {out['art-full-logits']['added_mb']:.0f} -> "
                      f"{out['art']['added_mb']:.0f} MiB a step")
    if ratios:
        print("\n" + note + "; ".join(ratios))


def extrapolate(tables: dict[int, dict[str, dict]], depth: int) -> dict[str, dict]:
    """Each method's time and memory as a straight line in the depth (least squares), read at `depth`.

    A step's cost is a fixed part (embedding, head, vision tower, optimiser) plus a part per layer, so
    it is linear in the depth when every measured depth is made of whole blocks of the layer pattern.
    """
    xs = sorted(tables)
    mean_x = statistics.mean(xs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    out = {}
    for k in tables[xs[0]]:
        out[k] = {}
        for field in ("seconds_per_step", "peak_mb", "added_mb"):
            ys = [tables[x][k][field] for x in xs]
            slope = sum((x - mean_x) * (y - statistics.mean(ys)) for x, y in zip(xs, ys)) / sxx
            out[k][field] = statistics.mean(ys) + slope * (depth - mean_x)
            out[k][field + "_per_layer"] = slope
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=CONFIGS / "qwen3_5-0.8b.json", help="shape config (JSON)")
    ap.add_argument("--layers", default=None,
                    help="language-model layers (default: the config's); several, e.g. 4,8, also extrapolate "
                         "each method's cost to the config's depth")
    ap.add_argument("--vision-layers", type=int, default=None, help="vision-tower layers (default: the config's)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--canvas-size", type=int, default=256, help="canvas side in pixels (256: 64 tokens)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--answer-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=6, help="measured steps per method (after 1 warm-up step)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--grpo", type=grpo_shape, default="0", help="also time GRPO's policy pass for ART as PROMPTSxG, e.g. 2x4 (0: skip)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU (default: known GPUs)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}", file=sys.stderr)
        return 2
    text = json.loads(args.config.read_text())["text_config"]
    full_depth, period = text["num_hidden_layers"], text.get("full_attention_interval", 1)
    try:
        depths = [int(d) for d in args.layers.split(",")] if args.layers else [None]
    except ValueError:
        print(f"error: --layers takes whole numbers, e.g. 4 or 4,8; got {args.layers!r}", file=sys.stderr)
        return 2
    if any(d is not None and d < 1 for d in depths):
        print("error: --layers must be at least 1", file=sys.stderr)
        return 2
    if len(depths) > 1 and (len(set(depths)) < 2 or any(d % period for d in depths)):
        print(f"error: extrapolating needs two or more different depths, each a multiple of the layer pattern's "
              f"period ({period}: whole blocks of linear-attention and full-attention layers); got {args.layers}",
              file=sys.stderr)
        return 2
    if args.device is None and not torch.cuda.is_available() and args.layers is None:
        # The full model in float32 on a CPU wants more memory than a small machine has (on 24 GiB the
        # process was killed), and would take hours: say so, and how to measure on CPU instead.
        print(f"no GPU: this benchmark measures the full {full_depth}-layer model on a GPU. On CPU, cut the depth "
              "(`--layers 4,8` extrapolates to the full depth; `--layers 2 --repeats 2` is a smoke run) or force "
              "the full model with `--device cpu` (float32: tens of GiB of memory).")
        return 0
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    peak = args.peak_tflops
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    if peak is None and gpu:
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None)

    tables = {d if d is not None else full_depth: measure(args, d, chosen, device, dtype, peak) for d in depths}
    report = {"device": gpu or "cpu", "args": {k: str(v) for k, v in vars(args).items()}}
    if len(tables) == 1:
        report["results"] = next(iter(tables.values()))
    else:
        report["by_depth"] = {str(d): t for d, t in tables.items()}
        line = extrapolate(tables, full_depth)
        report["extrapolated"] = {"depth": full_depth, "results": line}
        print(f"\nextrapolated to the config's {full_depth} layers (a straight line through depths "
              f"{', '.join(map(str, sorted(tables)))}):")
        print(f"{'method':<16} {'s/step':>8} {'s/layer':>8} {'peak MiB':>9} {'added MiB':>9}")
        for k, r in line.items():
            print(f"{k:<16} {r['seconds_per_step']:>8.2f} {r['seconds_per_step_per_layer']:>8.3f} "
                  f"{r['peak_mb']:>9.0f} {r['added_mb']:>9.0f}")
        print_ratios(line, note=f"extrapolated to {full_depth} layers: ")
    if peak is None:
        print("MFU: n/a (no known peak for this device; pass --peak-tflops)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
