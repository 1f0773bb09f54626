"""How large are the vectors a canvas can put in front of the language model, next to text tokens?

Prints the L2 norms of the input embeddings the language model receives: text token embeddings,
the visual tokens of a grey canvas, of random-noise canvases, and of any artworks given. A soft
prompt writes vectors of its own choosing into the same positions; a canvas can only write what the
vision tower produces, in scale and in direction. On studio-tiny v0 the visual tokens are about 145x
the size of text embeddings (docs/results.md, "Where ART loses").

    python benchmarks/slot_scale.py                                   # studio-tiny
    python benchmarks/slot_scale.py --artworks canvases/add-json.png canvases/max-bracket.png
"""

from __future__ import annotations

import argparse

import torch

from artstudio.methods import load_artwork
from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.methods import build_method


def visual_tokens(method) -> torch.Tensor:
    """(tokens, hidden) embeddings the canvas slot hands to the language model."""
    out = method.slot_outputs()
    tokens = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state
    if isinstance(tokens, (list, tuple)):
        tokens = torch.cat(list(tokens))
    return tokens.float().reshape(-1, tokens.shape[-1])


def describe(name: str, norms: torch.Tensor) -> str:
    return f"{name:28s} mean {norms.mean():9.2f}   min {norms.min():9.2f}   max {norms.max():9.2f}   (n={norms.numel()})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--artworks", nargs="*", default=[], help="artwork PNGs whose visual tokens to measure too")
    ap.add_argument("--noise-canvases", type=int, default=20)
    args = ap.parse_args()

    bb = load_backbone(args.model)
    text = bb.model.get_input_embeddings().weight.detach().float().norm(dim=-1)
    rows = [describe("text token embeddings", text)]
    with torch.no_grad():
        grey = visual_tokens(build_method("art", bb, {"init": "gray"})).norm(dim=-1)
        noise = torch.cat([visual_tokens(build_method("art", bb, {"init": "noise", "seed": s})).norm(dim=-1)
                           for s in range(args.noise_canvases)])
        rows += [describe("grey canvas, visual tokens", grey), describe("noise canvases, visual tokens", noise)]
        for path in args.artworks:
            rows.append(describe(f"{path}", visual_tokens(load_artwork(path, bb)).norm(dim=-1)))
    print("\n".join(rows))
    print(f"visual / text norm ratio (grey canvas): {grey.mean() / text.mean():.0f}x")


if __name__ == "__main__":
    main()
