"""Rebuild studio-tiny from scratch: a small Qwen3.5-architecture model pretrained on the task suite.

    python scripts/pretrain_studio_tiny.py --out artstudio/models/studio-tiny          # ~60 min, 2 CPU cores
    python scripts/pretrain_studio_tiny.py --steps 50 --out /tmp/st --test-size 20     # smoke run

The model is a real `Qwen3_5ForConditionalGeneration` (transformers), sized to a few million
parameters, with a character tokenizer carrying the Qwen special tokens and a Qwen-style chat
template. It learns the *pretraining* tasks of `artstudio.tasks` (every example drawn fresh from a
seeded generator) and never sees the held-out adaptation tasks. The loss covers answer tokens only.
At the end it reloads what it saved with `load_backbone` and prints a per-task report on fixed
test splits, scored by `artstudio.evaluation` (the path every user command takes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from artstudio.scoring import score
from artstudio.tasks import list_tasks, make_task, pictures, sample
from artstudio.tiny import char_tokenizer, tiny_config, tiny_processor

# Model sizes (text hidden 192 × 6 layers, vision 96 × 3 blocks): about 3.5 M parameters, fast on CPU.
SIZES = dict(hidden_size=192, layers=6, heads=6, intermediate_size=576,
             vision_hidden_size=96, vision_depth=3, vision_heads=4, vision_intermediate_size=384)
# Tasks that need more practice (string transforms, copying long JSON, reading cues) are drawn more
# often; the one-look picture tasks (colours, counting) were at 100 % early in v0 and get less.
WEIGHTS = {"cue-numeric": 3.5, "cue-strings": 4.0, "strings-text": 2.0, "tool-call": 2.0,
           "cue-word-problems": 1.5, "arith-text": 1.0, "colour-name": 0.5, "count-shapes": 0.5}
# Rotate every dimension of each head: Qwen3.5's default 0.25 leaves a 32-wide head 8 rotary
# dimensions (4 frequencies), too coarse to tell neighbouring characters apart, and v0 (trained so)
# could not reverse or sort a word.
PARTIAL_ROTARY_FACTOR = 1.0


def build(seed: int):
    tok = char_tokenizer(default_system=False)
    cfg = tiny_config("qwen3_5", tok, **SIZES, partial_rotary_factor=PARTIAL_ROTARY_FACTOR)
    # Full attention in every layer: the gated-delta (linear attention) layers of Qwen3.5 run a slow
    # reference PyTorch kernel on CPU (measured 1.6x slower per step); the model class is unchanged.
    cfg.text_config.layer_types = ["full_attention"] * SIZES["layers"]
    torch.manual_seed(seed)
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_config(cfg, dtype=torch.float32)
    for gc in ("eos_token_id", "pad_token_id"):
        setattr(model.generation_config, gc, getattr(cfg.text_config, gc))
    model.generation_config.bos_token_id = None
    processor = tiny_processor("qwen3_5", tok, min_pixels=32 * 32, max_pixels=512 * 512)
    return model, processor


def render(processor, prompt: str, has_image: bool) -> str:
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": prompt}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)


def collate(processor, rows, *, with_answers: bool):
    """rows: (prompt, answer, image|None). Right padding for training, left for generation."""
    tok = processor.tokenizer
    end = "<|im_end|>"
    texts = [render(processor, p, img is not None) + (a + end if with_answers else "") for p, a, img in rows]
    images = [img for _, _, img in rows if img is not None]
    tok.padding_side = "right" if with_answers else "left"
    enc = processor(text=texts, images=images or None, return_tensors="pt", padding=True)
    if with_answers:
        labels = torch.full_like(enc["input_ids"], -100)
        for i, (_, a, _) in enumerate(rows):
            n = len(tok(a + end, add_special_tokens=False)["input_ids"])
            last = int(enc["attention_mask"][i].sum())
            labels[i, last - n:last] = enc["input_ids"][i, last - n:last]
        enc["labels"] = labels
    return enc


@torch.no_grad()
def evaluate(model, processor, n: int, batch: int = 100) -> dict[str, float]:
    model.eval()
    tok = processor.tokenizer
    report = {}
    for card in list_tasks("pretrain"):
        rows = sample(card, n, seed=10_000)  # fixed test seed, never used for training draws
        right = 0
        for i in range(0, n, batch):
            chunk = rows[i:i + batch]
            enc = collate(processor, chunk, with_answers=False)
            longest = max(len(tok(a, add_special_tokens=False)["input_ids"]) for _, a, _ in chunk) + 2
            out = model.generate(**enc, max_new_tokens=longest, do_sample=False)
            texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            right += sum(score(card.metric, t, a) for t, (_, a, _) in zip(texts, chunk))
        report[card.name] = right / n
    model.train()
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="artstudio/models/studio-tiny", help="output folder (save_pretrained)")
    ap.add_argument("--steps", type=int, default=8000, help="optimisation steps (the shipped weights: 8,000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (cosine decay, 3%% warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-size", type=int, default=200, help="test examples per task in the final report")
    ap.add_argument("--eval-every", type=int, default=1000, help="quick report every N steps (0: never)")
    ap.add_argument("--dtype", default="bfloat16", help="dtype of the saved weights (keeps the repo copy small)")
    ap.add_argument("--checkpoint-every", type=int, default=250, help="save model + optimiser + data stream every N steps")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/.checkpoint (bit-for-bit the same run)")
    ap.add_argument("--evaluate-only", action="store_true", help="only (re)write the report of the model in OUT")
    args = ap.parse_args()
    if args.evaluate_only:
        report_on(Path(args.out), args, json.loads((Path(args.out) / "pretraining_report.json").read_text()))
        return

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, processor = build(args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"studio-tiny: qwen3_5 architecture, {n_params / 1e6:.2f} M parameters, seed {args.seed}")
    cards = list_tasks("pretrain")
    weights = [WEIGHTS.get(c.name, 1.0) for c in cards]
    rng = random.Random(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, int(0.03 * args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))))
    model.train()
    out = Path(args.out)
    ckpt = out / ".checkpoint"
    first, spent = 0, 0.0
    if args.resume and (ckpt / "state.pt").exists():
        # Our own file, written by this script: weights_only stays on, the data stream is plain JSON.
        state = torch.load(ckpt / "state.pt", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        meta = json.loads((ckpt / "meta.json").read_text())
        first, spent = meta["step"], meta["train_seconds"]
        rng.setstate((meta["rng"][0], tuple(meta["rng"][1]), meta["rng"][2]))
        sched.last_epoch = first - 1
        sched.step()
        print(f"resumed at step {first}")
    start = time.time() - spent
    bar = tqdm(range(first, args.steps), initial=first, total=args.steps, desc="pretrain", dynamic_ncols=True)
    ema = None
    for step in bar:
        # One task per batch: rows of a task have similar lengths, so little compute goes to padding.
        card = rng.choices(cards, weights)[0]
        rows = [card.generate(rng) for _ in range(args.batch_size)]
        loss = model(**collate(processor, rows, with_answers=True)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}", lr=f"{sched.get_last_lr()[0]:.1e}")
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            quick = evaluate(model, processor, 50)
            tqdm.write(f"step {step + 1}: " + ", ".join(f"{k} {v:.0%}" for k, v in quick.items()))
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0 and step + 1 < args.steps:
            ckpt.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, ckpt / "state.tmp")
            os.replace(ckpt / "state.tmp", ckpt / "state.pt")
            meta = {"step": step + 1, "train_seconds": time.time() - start, "rng": rng.getstate()}
            (ckpt / "meta.tmp").write_text(json.dumps(meta))
            os.replace(ckpt / "meta.tmp", ckpt / "meta.json")
    train_minutes = (time.time() - start) / 60

    out.mkdir(parents=True, exist_ok=True)
    model.to(getattr(torch, args.dtype)).save_pretrained(out)
    processor.save_pretrained(out)
    # The canvas size ART should default to: the size of the cue pictures the model learned to read.
    (out / "artstudio.json").write_text(json.dumps({"canvas_size": pictures.SIDE}) + "\n")

    info = {"seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
            "parameters": n_params, "train_minutes": round(train_minutes, 1), "cpu_threads": torch.get_num_threads(),
            "sizes": SIZES}
    report_on(out, args, info)


def report_on(out: Path, args, info: dict) -> None:
    """Reload what was saved and score it exactly as users will: `load_backbone` + `artstudio.evaluation`.

    The test rows are each task's `make_task` test split with seed 10,000, a seed the training
    stream never uses, written to a temporary folder (pictures included) and read back as a dataset.
    """
    import tempfile

    from artstudio.backbone import load_backbone
    from artstudio.data import load_jsonl
    from artstudio.evaluation import evaluate as evaluate_method
    from artstudio.methods import build_method

    base = build_method("base", load_backbone(str(out)))
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for card in list_tasks("pretrain"):
            folder = make_task(card.name, Path(tmp) / card.name, seed=10_000, n_train=0, n_test=args.test_size)
            report[card.name] = evaluate_method(base, load_jsonl(folder / "test.jsonl"), card.metric).accuracy
    mean = sum(report.values()) / len(report)
    print(f"\n{'task':<20} accuracy")
    for k, v in report.items():
        print(f"{k:<20} {v:6.1%}")
    print(f"{'mean':<20} {mean:6.1%}")
    info = info | {"test_size": args.test_size, "accuracy": report, "mean_accuracy": mean}
    (out / "pretraining_report.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"saved to {out} after {info['train_minutes']:.1f} min of training")


if __name__ == "__main__":
    main()
