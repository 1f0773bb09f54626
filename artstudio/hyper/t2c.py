"""Text-to-Canvas (T2C): a hypernetwork that paints an artwork from a task description.

    description -> frozen TaskEncoder -> standardise -> Linear -> residual MLP blocks -> LayerNorm
                -> canvas head -> (3, H, W) in [0, 1] -> uint8 straight-through (`quantize_st`)

The canvas goes through the same uint8 rounding as a trained ART canvas, so the PNG that `export`
writes serves exactly the pixels that were evaluated. Heads (option `head`):

    grid   a `grid` x `grid` RGB image upsampled bilinearly to the canvas size (low-resolution, smooth)
    basis  coefficients over `basis` learned full-resolution images (a low-rank canvas)
    parts  `parts` softmax choices, each over its own palette of `palette` learned full-resolution
           images, summed: a canvas made of parts (e.g. a format band and an operation glyph), so a
           new description can pick a new combination of parts the library taught (docs/hyper.md)

Pixel activation (option `activation`): `clamp` (0.5 + x, clamped with the inward straight-through
clamp that ART's `pixels` parametrisation uses) or `sigmoid`. The head starts at zero, so an
untrained T2C paints ART's grey starting canvas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from artstudio.atomic import atomic_save_file
from artstudio.canvas import inward_clamp, quantize_st
from artstudio.errors import ConfigError
from artstudio.methods import Method, canvas_side
from artstudio.vision import tensor_to_image, to_pixel_values

from .base import HyperConfig, Hypernetwork, ResidualBlock, backbone_target, register_hyper


@dataclass
class T2CConfig(HyperConfig):
    """Text-to-Canvas: the mixer of Text-to-LoRA with a canvas head."""

    canvas_size: int | None = field(default=None, metadata={"help": "canvas side in pixels (default: the model's recommended size; studio-tiny: 96)"})
    head: Literal["grid", "basis", "parts"] = field(default="grid", metadata={"help": "grid (low-resolution image upsampled), basis (coefficients over learned full-size images) or parts (a softmax choice per part over its own palette of learned images, summed)"})
    grid: int = field(default=24, metadata={"help": "grid head: side of the low-resolution image"})
    basis: int = field(default=64, metadata={"help": "basis head: number of learned basis images"})
    parts: int = field(default=2, metadata={"help": "parts head: number of parts (softmax choices) summed into the canvas"})
    palette: int = field(default=16, metadata={"help": "parts head: learned images each part chooses among"})
    basis_init: Literal["zeros", "cues"] = field(default="zeros", metadata={"help": "basis/parts head: start the images at zero (a grey canvas), or from the suite's cue components (one image per operation glyph and per format band, on the cue paper) that studio-tiny learned to read (parts: glyphs in part 1, bands in part 2); every image still trains"})
    activation: Literal["clamp", "sigmoid"] = field(default="clamp", metadata={"help": "pixel activation: clamp (0.5 + x, inward straight-through clamp) or sigmoid"})
    quantize: bool = field(default=True, metadata={"help": "uint8 rounding with a straight-through gradient (what you train is what you serve)"})
    final_norm: bool = field(default=True, metadata={"help": "LayerNorm on the mixer's output; off, a mixer without residual blocks (blocks=0) is one linear map of the task embedding"})
    fit: Literal["pixels", "choice", "ridge"] = field(default="pixels", metadata={"help": "reconstruction: pixels (mean squared error of the generated canvas; every image trains), choice (parts head: find the palette images whose sum is nearest each target, then train the mixer to choose them with cross-entropy; the palette stays as initialised, so basis_init=cues) or ridge (choice, with the linear mixer first solved in closed form by ridge regression onto the choices: needs blocks=0 and final_norm=false; steps=0 keeps that solution)"})
    ridge: float | None = field(default=None, metadata={"help": "fit=ridge: the ridge penalty on standardised embeddings (default: chosen by leave-one-task-out over the training tasks, the largest penalty that predicts as many left-out tasks' choices as the best)"})
    choice: Literal["soft", "hard"] = field(default="soft", metadata={"help": "parts head, when generating: soft (the softmax blend of each palette) or hard (each part's most likely image, so the artwork is one glyph on one band, never a blend; training always uses the softmax)"})


class GeneratedCanvasMethod(Method):
    """A Method that serves a canvas tensor in the canvas slot, keeping its autograd graph.

    The hypernetwork owns the trainable parameters, so this method has none of its own; the SFT loss
    of `compute_loss(method, rows)` backpropagates through the vision tower into the tensor.
    """

    name = "t2c-canvas"

    def __init__(self, backbone, canvas: torch.Tensor, placement: str = "first") -> None:
        super().__init__(backbone, {})
        if canvas.dim() != 3 or canvas.shape[0] != 3:
            raise ConfigError(f"a generated canvas must have shape (3, H, W), got {tuple(canvas.shape)}")
        backbone.geometry.check(int(canvas.shape[1]), int(canvas.shape[2]))
        self.canvas_tensor = canvas
        self.placement = placement
        g = backbone.geometry
        self._grid = torch.tensor([[1, canvas.shape[1] // g.patch_size, canvas.shape[2] // g.patch_size]],
                                  device=backbone.device)

    @property
    def slot_tokens(self) -> int:
        return self.backbone.geometry.tokens(int(self.canvas_tensor.shape[1]), int(self.canvas_tensor.shape[2]))

    @property
    def slot_grid(self) -> torch.Tensor:
        return self._grid

    def slot_outputs(self):
        pixels, grid = to_pixel_values(self.canvas_tensor.to(self.backbone.device, self.backbone.dtype),
                                       self.backbone.geometry)
        return self.backbone.encode_images(pixels, grid)

    def image(self):
        return tensor_to_image(self.canvas_tensor)


def cue_parts(side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cue pictures' parts (see `cue_basis`), split: (glyphs (10, 3, H, W), bands (11, 3, H, W), paper)."""
    parts, paper = cue_basis(side)
    from artstudio.tasks.suite import NUMERIC_OPS, STRING_OPS

    n_ops = len(NUMERIC_OPS) + len(STRING_OPS)
    return parts[:n_ops], parts[n_ops:], paper


def cue_target(side: int, op: str | None, how: str) -> torch.Tensor:
    """The un-jittered cue picture of (operation, format) as a (3, H, W) canvas in [0, 1].

    `op=None` draws the format band alone (a word problem's operation is in its words)."""
    from artstudio.tasks.suite import NUMERIC_OPS, PRETRAIN_FORMATS, STRING_OPS

    glyphs, bands, paper = cue_parts(side)
    ops = [*NUMERIC_OPS, *STRING_OPS]
    if (op is not None and op not in ops) or how not in PRETRAIN_FORMATS:
        raise ConfigError(f"no cue picture for operation {op!r} and format {how!r}")
    glyph = glyphs[ops.index(op)] if op is not None else 0
    return (paper + glyph + bands[list(PRETRAIN_FORMATS).index(how)]).clamp(0, 1)


def cue_basis(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The cue pictures' parts as images in [−1, 1]: one per operation glyph, one per format band.

    studio-tiny was pretrained to read cue pictures (a format band on top, an operation glyph below,
    `artstudio.tasks.pictures`). Each part is drawn once without jitter, as the difference from the
    blank cue paper, which is the offset: paper + glyph part + band part is a cue picture, and a held-out
    pair is a new sum of parts the library already uses. Returns (parts (K, 3, H, W), paper (3, H, W)).
    """
    from PIL import Image, ImageDraw

    from artstudio.tasks import pictures
    from artstudio.tasks.suite import NUMERIC_OPS, PRETRAIN_FORMATS, STRING_OPS
    from artstudio.vision import image_to_tensor

    paper_img = Image.new("RGB", (side, side), pictures.PAPER)
    paper = image_to_tensor(paper_img)
    band = side * pictures.BAND // pictures.SIDE
    parts = []
    for glyph, _, _ in (*NUMERIC_OPS.values(), *STRING_OPS.values()):
        img = paper_img.copy()
        pictures._shape(ImageDraw.Draw(img), glyph, side / 2, band + (side - band) / 2, side * 0.195, (20, 20, 20))
        parts.append(image_to_tensor(img) - paper)
    for how in PRETRAIN_FORMATS:
        img = paper_img.copy()
        ImageDraw.Draw(img).rectangle([0, 0, side, band - 1], fill=pictures.FORMAT_COLOURS[how])
        parts.append(image_to_tensor(img) - paper)
    return torch.stack(parts), paper


@register_hyper
class TextToCanvas(Hypernetwork):
    kind = "t2c"
    config_class = T2CConfig
    PRESETS = {"S": {"hidden": 256, "blocks": 2}, "M": {"hidden": 512, "blocks": 3}, "L": {"hidden": 768, "blocks": 4}}

    def __init__(self, config: T2CConfig, embed_dim: int, target: dict, encoder_name: str = "backbone") -> None:
        super().__init__(config, embed_dim, target, encoder_name)
        side = int(target.get("canvas_size") or 0)
        if side <= 0:
            raise ConfigError("a t2c target must record canvas_size")
        if config.head not in ("grid", "basis", "parts"):
            raise ConfigError(f"t2c head must be grid, basis or parts, got {config.head!r}")
        if config.choice not in ("soft", "hard"):
            raise ConfigError(f"t2c choice must be soft or hard, got {config.choice!r}")
        if config.choice == "hard" and config.head != "parts":
            raise ConfigError("choice=hard needs head=parts (a choice among each part's palette)")
        if config.fit not in ("pixels", "choice", "ridge"):
            raise ConfigError(f"t2c fit must be pixels, choice or ridge, got {config.fit!r}")
        if config.fit != "pixels" and (config.head != "parts" or config.basis_init != "cues"):
            raise ConfigError(f"fit={config.fit} trains the choice among fixed palette images: it needs head=parts "
                              "and basis_init=cues")
        if config.fit == "ridge" and (self.depth != 0 or config.final_norm):
            raise ConfigError("fit=ridge solves a linear mixer: it needs blocks=0 and final_norm=false")
        if config.ridge is not None and config.ridge <= 0:
            raise ConfigError(f"t2c ridge must be > 0, got {config.ridge}")
        if config.activation not in ("clamp", "sigmoid"):
            raise ConfigError(f"t2c activation must be clamp or sigmoid, got {config.activation!r}")
        self.side = side
        w = self.width
        self.inp = torch.nn.Linear(embed_dim, w)
        self.blocks = torch.nn.ModuleList(ResidualBlock(w, config.dropout) for _ in range(self.depth))
        self.norm = torch.nn.LayerNorm(w) if config.final_norm else torch.nn.Identity()
        self._choices: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (target kept alive, its choice)
        if config.basis_init not in ("zeros", "cues"):
            raise ConfigError(f"t2c basis_init must be zeros or cues, got {config.basis_init!r}")
        if config.basis_init == "cues" and config.head == "grid":
            raise ConfigError("basis_init=cues needs head=basis or head=parts")
        if config.basis_init == "cues" and config.activation != "clamp":
            raise ConfigError("basis_init=cues needs activation=clamp (the images are in pixel units)")
        if config.head == "grid":
            if not 1 <= config.grid <= side:
                raise ConfigError(f"t2c grid must be between 1 and the canvas side {side}, got {config.grid}")
            self.head = torch.nn.Linear(w, 3 * config.grid * config.grid)
        elif config.head == "basis":
            if config.basis < 1:
                raise ConfigError(f"t2c basis must be >= 1, got {config.basis}")
            self.head = torch.nn.Linear(w, config.basis)
            # Coefficients start small and the images at zero, so the first canvas is grey and both learn.
            self.atoms = torch.nn.Parameter(torch.zeros(config.basis, 3 * side * side))
            self.offset = torch.nn.Parameter(torch.zeros(3 * side * side))
            if config.basis_init == "cues":
                atoms, offset = cue_basis(side)
                if config.basis < atoms.shape[0]:
                    raise ConfigError(f"basis_init=cues needs basis >= {atoms.shape[0]}, got {config.basis}")
                with torch.no_grad():
                    self.atoms[: atoms.shape[0]] = atoms.reshape(atoms.shape[0], -1)
                    self.offset.copy_(offset.reshape(-1) - 0.5)
        else:
            if config.parts < 1 or config.palette < 1:
                raise ConfigError(f"t2c parts and palette must be >= 1, got {config.parts} and {config.palette}")
            self.head = torch.nn.Linear(w, config.parts * config.palette)
            # Zero logits: each part starts as the mean of its palette (grey for a zero palette).
            self.atoms = torch.nn.Parameter(torch.zeros(config.parts, config.palette, 3 * side * side))
            self.offset = torch.nn.Parameter(torch.zeros(3 * side * side))
            if config.basis_init == "cues":
                glyphs, bands, paper = cue_parts(side)
                if config.parts != 2 or config.palette < max(len(glyphs), len(bands)):
                    raise ConfigError(f"basis_init=cues with head=parts needs parts=2 and palette >= "
                                      f"{max(len(glyphs), len(bands))}, got parts={config.parts}, palette={config.palette}")
                with torch.no_grad():
                    self.atoms[0, : len(glyphs)] = glyphs.reshape(len(glyphs), -1)
                    self.atoms[1, : len(bands)] = bands.reshape(len(bands), -1)
                    self.offset.copy_(paper.reshape(-1) - 0.5)
        # The head starts at zero (grid: a grey canvas; cue images: the blank paper; parts: each palette's
        # mean), except a zero basis, whose coefficients must be non-zero for the images to get gradient.
        if not (config.head == "basis" and config.basis_init == "zeros"):
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

    @classmethod
    def target_of(cls, backbone, config) -> dict:
        side = canvas_side(backbone, config.canvas_size)
        return backbone_target(backbone) | {"canvas_size": int(side)}

    def mixer(self, task_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, width) features of the task embeddings, which the head reads."""
        h = self.inp(self.normalise(task_embeddings))
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def part_logits(self, task_embeddings: torch.Tensor) -> torch.Tensor:
        """Parts head: (N, parts, palette) scores of each part's palette images."""
        return self._part_scores(self.mixer(task_embeddings))

    def _part_scores(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h).view(h.shape[0], self.config.parts, self.config.palette)

    def canvas_logits(self, task_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) pre-activation canvases."""
        h = self.mixer(task_embeddings)
        n = h.shape[0]
        if self.config.head == "grid":
            g = self.config.grid
            low = self.head(h).view(n, 3, g, g)
            if g == self.side:
                return low
            return torch.nn.functional.interpolate(low, size=(self.side, self.side), mode="bilinear", align_corners=False)
        if self.config.head == "parts":
            logits = self._part_scores(h)
            if self.config.choice == "hard" and not self.training:
                weights = torch.nn.functional.one_hot(logits.argmax(-1), self.config.palette).to(logits.dtype)
            else:
                weights = torch.softmax(logits, dim=-1)
            return (torch.einsum("npk,pkd->nd", weights, self.atoms) + self.offset).view(n, 3, self.side, self.side)
        return (self.head(h) @ self.atoms + self.offset).view(n, 3, self.side, self.side)

    def forward(self, task_embeddings: torch.Tensor) -> list[torch.Tensor]:
        x = self.canvas_logits(task_embeddings)
        image = torch.sigmoid(x) if self.config.activation == "sigmoid" else inward_clamp(0.5 + x)
        if self.config.quantize:
            image = quantize_st(image)
        return list(image.unbind(0))

    # --- use ------------------------------------------------------------------------------------
    def method_for(self, backbone, generated: torch.Tensor) -> GeneratedCanvasMethod:
        return GeneratedCanvasMethod(backbone, generated)

    def export(self, backbone, generated: torch.Tensor, path: str | Path, description: str, *, source: str | None = None,
               name: str | None = None, **extra) -> Path:
        """An ordinary artwork PNG; the metadata records the description and this hypernetwork.

        The task's name is `name` where one is given, else empty: nothing invented (T2L's adapter records no
        name either)."""
        from artstudio.artwork import export_artwork, metadata_for

        image = tensor_to_image(generated)
        info = {"hypernetwork": {"kind": self.kind, **self.mixer_size(), "head": self.config.head, "source": source,
                                 "encoder": self.encoder_name, "parameters": self.num_parameters()},
                "description": description, **extra}
        meta = metadata_for(backbone, canvas_size=(image.height, image.width), placement="first",
                            task={"name": name or "", "description": description}, objective="t2c", steps=0,
                            extra=info)
        return export_artwork(image, path, meta)

    # --- reconstruction ---------------------------------------------------------------------------
    def reconstruction_loss(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(generated.float(), target.to(generated.device, torch.float32))

    RIDGE_MARGIN = 10.0  # scores are scaled so the training tasks' mean margin (best - second) is 10 nats
    RIDGE_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)

    @torch.no_grad()
    def prepare_reconstruction(self, embeddings: list[torch.Tensor], targets: list) -> None:
        """fit=ridge: the linear mixer (inp, then head) solved in closed form from the tasks' choices.

        inp projects the standardised embeddings onto their principal directions (the ridge solution
        lies in their span, so nothing is lost), the head is the ridge regression of each task's
        one-hot choices on that projection, scaled so that on the training tasks the best image leads the
        second by RIDGE_MARGIN nats on average (the softmax then picks, not blends). Without `ridge`, the penalty
        is the largest of RIDGE_GRID whose leave-one-task-out choices are as often right as the best:
        a left-out library task is a new combination of parts, as a held-out task is."""
        if self.config.fit != "ridge":
            return
        X = [self.normalise(e).cpu().double() for e in embeddings]
        Y = [torch.nn.functional.one_hot(self.choice_of(t), self.config.palette).reshape(1, -1).double()
             .expand(len(e), -1) for e, t in zip(X, targets)]
        if self.config.ridge is None:
            if len(X) < 3:
                raise ConfigError(f"fit=ridge picks its penalty by leaving training tasks out, and there are {len(X)}; "
                                  'train on 3 tasks or more, or set the penalty (--options \'{"ridge": 10}\')')
            scores = self._leave_one_task_out(X, Y, self.RIDGE_GRID)
            best = max(scores.values())
            self.config.ridge = max(lam for lam, right in scores.items() if right == best)
            self.fit_report = {"ridge_penalty": self.config.ridge, "chosen_by": "leave-one-task-out",
                               "left_out_right": {f"{k:g}": v for k, v in scores.items()}, "tasks": len(X)}
        else:
            self.fit_report = {"ridge_penalty": self.config.ridge, "chosen_by": "option"}
        X_all = torch.cat(X)
        V, x_mean, W, y_mean = self._ridge(X_all, torch.cat(Y), self.config.ridge)
        scores = ((X_all - x_mean) @ V.T @ W + y_mean).view(-1, self.config.parts, self.config.palette)
        top2 = scores.topk(2, dim=-1).values
        scale = self.RIDGE_MARGIN / float((top2[..., 0] - top2[..., 1]).mean().clamp_min(1e-6))
        r = V.shape[0]
        inp_w = torch.zeros_like(self.inp.weight, dtype=torch.float64)
        inp_b = torch.zeros_like(self.inp.bias, dtype=torch.float64)
        inp_w[:r], inp_b[:r] = V, -(V @ x_mean)
        head_w = torch.zeros_like(self.head.weight, dtype=torch.float64)
        head_w[:, :r] = W.T
        self.inp.weight.copy_(inp_w.to(self.inp.weight))
        self.inp.bias.copy_(inp_b.to(self.inp.bias))
        self.head.weight.copy_((scale * head_w).to(self.head.weight))
        self.head.bias.copy_((scale * y_mean).to(self.head.bias))

    def _ridge(self, X: torch.Tensor, Y: torch.Tensor, lam: float):
        """(V (r, dim), x mean, W (r, outputs), y mean): scores = ((x - x mean) V^T) W + y mean."""
        V, x_mean, Z, y_mean, Yc = self._project(X, Y)
        return V, x_mean, self._solve(Z, Yc, lam), y_mean

    def _project(self, X: torch.Tensor, Y: torch.Tensor):
        """The centred embeddings' principal directions V (at most the mixer's width), their means, the
        projection Z = (X - x mean) V^T, and the centred targets: what every penalty's solution shares."""
        x_mean, y_mean = X.mean(0), Y.mean(0)
        Xc = X - x_mean
        V = torch.linalg.svd(Xc, full_matrices=False)[2]
        V = V[: min(self.width, V.shape[0])]
        return V, x_mean, Xc @ V.T, y_mean, Y - y_mean

    @staticmethod
    def _solve(Z: torch.Tensor, Yc: torch.Tensor, lam: float) -> torch.Tensor:
        return torch.linalg.solve(Z.T @ Z + lam * torch.eye(Z.shape[1], dtype=Z.dtype), Z.T @ Yc)

    def _leave_one_task_out(self, X: list[torch.Tensor], Y: list[torch.Tensor], penalties) -> dict[float, int]:
        """Per penalty, how many tasks get every part's choice right (on their card's description) when
        left out. Each fold's projection is computed once and serves every penalty."""
        P, K = self.config.parts, self.config.palette
        right = dict.fromkeys(penalties, 0)
        for i in range(len(X)):
            V, x_mean, Z, y_mean, Yc = self._project(torch.cat(X[:i] + X[i + 1:]), torch.cat(Y[:i] + Y[i + 1:]))
            z = (X[i][:1] - x_mean) @ V.T
            want = Y[i][0].view(P, K).argmax(-1)
            for lam in penalties:
                scores = (z @ self._solve(Z, Yc, lam) + y_mean).view(P, K)
                right[lam] += int(torch.equal(scores.argmax(-1), want))
        return right

    def reconstruction_objective(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.fit == "pixels":
            return super().reconstruction_objective(embedding, target)
        logits = self.part_logits(embedding)[0]
        return torch.nn.functional.cross_entropy(logits, self.choice_of(target).to(logits.device))

    @torch.no_grad()
    def choice_of(self, target: torch.Tensor) -> torch.Tensor:
        """(parts,) the palette images whose sum on the offset is nearest `target` (fit=choice's labels).

        Every combination is scored (palette ** parts of them); among equal images the first wins."""
        cache = self._choices
        if id(target) in cache and cache[id(target)][0] is target:
            return cache[id(target)][1]
        P, K = self.config.parts, self.config.palette
        if K ** P > 65536:
            raise ConfigError(f"fit=choice scores every combination: palette ** parts = {K ** P} is too many (<= 65536)")
        atoms = self.atoms.detach().float().cpu()
        want = target.detach().float().cpu().reshape(-1)
        sums = self.offset.detach().float().cpu() + 0.5 + torch.zeros(1, atoms.shape[-1])
        for part in range(P):  # (K**part, D) -> (K**(part+1), D): every combination's canvas
            sums = (sums[:, None, :] + atoms[part][None, :, :]).reshape(-1, atoms.shape[-1])
        err = (sums.clamp(0, 1) - want).square().sum(1)
        flat = int(torch.argmin(err))
        labels = [(flat // K ** (P - 1 - part)) % K for part in range(P)]
        cache[id(target)] = (target, torch.tensor(labels))
        return cache[id(target)][1]

    def cue_target(self, task) -> torch.Tensor:
        """The cue picture of a studio-tiny library task (`op-format`), the canvas it was pretrained to read."""
        from artstudio.tasks.library import LIBRARY_CUES

        if task.name not in LIBRARY_CUES:
            raise ConfigError(f"task {task.name!r} has no cue picture: targets=cue works on studio-tiny's library "
                              "tasks only; use targets=trained (per-task ART canvases) for your own tasks")
        return cue_target(self.side, *LIBRARY_CUES[task.name])

    def train_target(self, backbone, task, cache_dir: str | Path, *, steps: int, seed: int = 0) -> torch.Tensor:
        """The task's ART canvas (SFT, `steps` steps, the shipped ART defaults), trained once and cached."""
        from safetensors.torch import load_file

        from artstudio.training import TrainConfig, train

        folder = Path(cache_dir) / task.name
        file = folder / "target.safetensors"
        key = {"steps": steps, "seed": seed, "canvas_size": self.side, "model_id": str(backbone.model_id)}
        meta_file = folder / "target.json"
        if file.is_file() and meta_file.is_file() and json.loads(meta_file.read_text()) == key:
            return load_file(str(file))["canvas"]
        result = train(TrainConfig(out=str(folder / "run"), data=str(task.folder), method="art", steps=steps,
                                   seed=seed, checkpoint_every=0, snapshot_every=0,
                                   method_options={"canvas_size": self.side, "starts": 1}),  # plain ART: no T2C start
                       backbone=backbone, progress=False)
        with torch.no_grad():
            canvas = result.method.canvas().detach().float().cpu()
        atomic_save_file({"canvas": canvas}, file)
        meta_file.write_text(json.dumps(key))
        return canvas
