"""Pictures for the built-in tasks: instruction cues, rendered numbers, colour swatches, shape grids.

A cue picture carries part of the instruction in two separate places: a coloured *band* across the
top names the answer format, and the *glyph* drawn below it names the operation. The band is exactly
the top row of studio-tiny's 3 × 3 visual tokens and the glyph stays in the two rows under it, so
each visual token carries one factor (v0 painted the format as the whole background, mixing both
factors in every token). studio-tiny learns to read these during pretraining; the canvas sits where
cues sit. Whether it reads an unseen combination is measured, not assumed (`benchmarks/cue_probe.py`):
v1, taught four formats, mostly did not (1 of 12 held-out pairs); v2, taught seven more formats so
each operation runs at many answer offsets, solves 9 of 12 from the drawn cue alone.
Every picture is drawn with seeded jitter so the model learns the cue, not one exact bitmap.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

SIDE = 96  # studio-tiny's image side: 3 × 32 (patch 16, merge 2) → 9 visual tokens

BAND = SIDE // 3  # one row of merged visual tokens (32 px: patch 16 × merge 2)
PAPER = (245, 245, 245)
FORMAT_COLOURS = {
    "plain": (110, 190, 80), "answer": (250, 210, 40), "json": (60, 190, 235), "bracket": (235, 100, 190),
    # formats only pretraining uses (suite.EXTRA_FORMATS)
    "paren": (140, 60, 200), "quote": (150, 150, 20), "equals": (240, 120, 20), "arrow": (210, 40, 40),
    "out": (40, 60, 210), "result": (20, 130, 110), "sentence": (130, 80, 30),
}

COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (240, 220, 40),
    "purple": (140, 60, 190), "orange": (245, 140, 30), "black": (20, 20, 20), "white": (245, 245, 245),
}


def _jitter_colour(rng: random.Random, rgb: tuple[int, int, int], amount: int = 12) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _shape(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, ink) -> None:
    """Draw the operation glyph `name` centred at (cx, cy) with half-size r."""
    w = max(3, int(r / 3))
    if name == "plus":
        draw.rectangle([cx - r, cy - w / 2, cx + r, cy + w / 2], fill=ink)
        draw.rectangle([cx - w / 2, cy - r, cx + w / 2, cy + r], fill=ink)
    elif name == "minus":
        draw.rectangle([cx - r, cy - w / 2, cx + r, cy + w / 2], fill=ink)
    elif name == "times":
        draw.line([cx - r, cy - r, cx + r, cy + r], fill=ink, width=w)
        draw.line([cx - r, cy + r, cx + r, cy - r], fill=ink, width=w)
    elif name == "up":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=ink)
    elif name == "down":
        draw.polygon([(cx, cy + r), (cx - r, cy - r), (cx + r, cy - r)], fill=ink)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=ink, width=w)
    elif name == "stairs":
        for i in range(3):
            x0 = cx - r + i * (2 * r / 3)
            draw.rectangle([x0, cy + r - (i + 1) * (2 * r / 3), x0 + 2 * r / 3 - 2, cy + r], fill=ink)
    elif name == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=ink)
    elif name == "bars":
        draw.rectangle([cx - r, cy - r, cx - r + w, cy + r], fill=ink)
        draw.rectangle([cx + r - w, cy - r, cx + r, cy + r], fill=ink)
    elif name == "dot":
        draw.ellipse([cx - r, cy - r / 2, cx - r + r, cy + r / 2], fill=ink)
        draw.rectangle([cx, cy - w / 2, cx + r, cy + w / 2], fill=ink)
    else:  # pragma: no cover - programming error
        raise ValueError(name)


def cue(rng: random.Random, glyph: str, fmt: str, side: int = SIDE) -> Image.Image:
    """The instruction picture: a band of `fmt`'s colour on top, `glyph` (the operation) below it."""
    img = Image.new("RGB", (side, side), _jitter_colour(rng, PAPER, 8))
    draw = ImageDraw.Draw(img)
    band = side * BAND // SIDE
    draw.rectangle([0, 0, side, band - 1], fill=_jitter_colour(rng, FORMAT_COLOURS[fmt]))
    r = side * rng.uniform(0.17, 0.22)
    cx = side / 2 + rng.uniform(-side * 0.1, side * 0.1)
    cy = band + (side - band) / 2 + rng.uniform(-side * 0.04, side * 0.04)
    _shape(draw, glyph, cx, cy, r, _jitter_colour(rng, (20, 20, 20), 20))
    return img


def number(rng: random.Random, value: int, side: int = SIDE) -> Image.Image:
    """A number rendered large in black on a light background, with small offset and size jitter."""
    img = Image.new("RGB", (side, side), _jitter_colour(rng, (240, 240, 240)))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=int(side * rng.uniform(0.55, 0.7)))
    text = str(value)
    box = draw.textbbox((0, 0), text, font=font)
    x = (side - (box[2] - box[0])) / 2 - box[0] + rng.uniform(-6, 6)
    y = (side - (box[3] - box[1])) / 2 - box[1] + rng.uniform(-6, 6)
    draw.text((x, y), text, fill=_jitter_colour(rng, (15, 15, 15), 15), font=font)
    return img


def swatch(rng: random.Random, colour: str, side: int = SIDE) -> Image.Image:
    """A solid colour with mild noise: the colour-naming task."""
    img = Image.new("RGB", (side, side), _jitter_colour(rng, COLOURS[colour], 18))
    return img


def shape_grid(rng: random.Random, count: int, side: int = SIDE) -> Image.Image:
    """`count` filled squares in distinct cells of a 3×3 grid (one cell per visual token)."""
    img = Image.new("RGB", (side, side), _jitter_colour(rng, (240, 240, 240)))
    draw = ImageDraw.Draw(img)
    cell = side / 3
    ink = _jitter_colour(rng, COLOURS[rng.choice(["red", "green", "blue", "black", "purple"])], 10)
    for k in rng.sample(range(9), count):
        x0, y0 = (k % 3) * cell, (k // 3) * cell
        pad = cell * rng.uniform(0.15, 0.25)
        draw.rectangle([x0 + pad, y0 + pad, x0 + cell - pad, y0 + cell - pad], fill=ink)
    return img
