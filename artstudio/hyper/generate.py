"""Generate an artwork (T2C) or an adapter (T2L) from a task description with a trained hypernetwork.

    hyper_generate(HyperGenerateConfig(description="The prompt is two digits separated by a space, with no instruction. "
                                       "Reply with the larger of the two, written inside square brackets, like [<value>].",
                                       out="art.png"))

The shipped hypernetworks know the wording of the task cards (`artstudio tasks list --kind library --json`);
the sentence above is held-out task max-bracket's card (100 % on 50 rows with T2C and with T2L), and a short
wording of the same task, "Reply with the larger digit in [brackets].", scores 0 % (docs/hyper.md, "Wording").

With no `hyper` folder, the shipped Text-to-Canvas for studio-tiny is used, so this works offline
right after install. `HyperGenerator` keeps the model, encoder and hypernetwork loaded for repeated
use (the app's "Describe a task" box): one generation is a text encoding and one small MLP pass.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from artstudio.atomic import check_file_target, check_free
from artstudio.errors import ConfigError
from artstudio.options import DEVICE_HELP, DTYPE_HELP, check_kinds, from_dict

from .base import Hypernetwork
from .encoder import TaskEncoder, check_descriptions

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "hyper"
DEFAULT_HYPER = str(SHIPPED / "t2c")


@dataclass
class HyperGenerateConfig:
    """One generation: a description in, an artwork PNG (t2c) or a PEFT adapter folder (t2l) out."""

    description: str = field(default="", metadata={"help": "what the task is, in words (one or more sentences)"})
    hyper: str = field(default=DEFAULT_HYPER, metadata={"help": "hypernetwork folder: a run folder, its final/ subfolder, or a shipped one (default: the shipped T2C for studio-tiny)"})
    out: str | None = field(default=None, metadata={"help": "output: a .png for t2c, a folder for t2l (default: artwork.png for t2c, adapter/ for t2l)"})
    model: str | None = field(default=None, metadata={"help": "model the hypernetwork was made for (default: the one it records)"})
    encoder: str | None = field(default=None, metadata={"help": "task encoder (default: the one the hypernetwork was trained with)"})
    name: str | None = field(default=None, metadata={"help": "task name recorded in the output's metadata (the artwork's task name, the adapter's artstudio.json) (default: none)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output (default: refuse, so nothing is overwritten by accident)"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})

    def validate(self) -> None:
        """Raise ConfigError for a description, device or dtype that cannot work, before anything is loaded or written."""
        from artstudio.backbone import check_device, check_dtype

        check_kinds(HyperGenerateConfig, {f.name: getattr(self, f.name) for f in fields(self)}, what="hyper generate")
        for name in ("description", "hyper", "out", "model", "encoder", "name", "device", "dtype"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ConfigError(f"hyper generate option {name} is {value!r} ({type(value).__name__}); expected text")
        if self.name is not None and any(ch in str(self.name) for ch in "\r\n"):
            raise ConfigError(f"--name is {self.name!r}; expected one line (it is the task name the output records)")
        if not str(self.description or "").strip():
            raise ConfigError("--description is missing or empty: describe the task in words, in a task card's "
                              "wording (`artstudio hyper generate --help` shows one)")
        check_descriptions(self.description)
        check_device(self.device)
        check_dtype(self.dtype)


def resolve_hyper_folder(path: str | Path) -> Path:
    """A run folder's `final/`, or the folder itself; a shipped kind name ('t2c', 't2l') also works."""
    folder = Path(path).expanduser()
    # A shipped kind's name is the shipped hypernetwork unless a folder of that name holds one: an output folder
    # named t2l (`-o t2l/`) hid the shipped T2L behind "t2l is not a hypernetwork folder".
    holds_one = (folder / "hyper.json").is_file() or (folder / "final" / "hyper.json").is_file()
    if str(path) in ("t2c", "t2l") and not holds_one:
        folder = SHIPPED / str(path)
    if folder.is_file() and folder.name in ("hyper.json", "hyper.safetensors"):  # one of its files: its folder
        folder = folder.parent
    if (folder / "final" / "hyper.json").is_file():
        return folder / "final"
    if not folder.exists():
        raise ConfigError(f"hypernetwork folder {folder} does not exist; pass a run folder of `artstudio hyper train`, "
                          f"a shipped one by its kind (t2c: paints an artwork, t2l: writes a LoRA adapter), or leave "
                          f"it out for the shipped t2c")
    if not (folder / "hyper.json").is_file() and (folder / "checkpoint").is_dir() and (folder / "config.json").is_file():
        raise ConfigError(f"{folder} holds a `hyper train` run that has not finished (a checkpoint, no final/); "
                          f"`artstudio hyper train --resume --out {folder}` finishes it")
    return folder


def check_output(kind: str, out: str | Path) -> None:
    """Refuse an output path that does not fit what `kind` writes: T2C one PNG file, T2L a PEFT adapter folder."""
    path = Path(out).expanduser()
    if kind == "t2c":
        if path.suffix.lower() != ".png":
            raise ConfigError(f"a Text-to-Canvas hypernetwork writes a PNG artwork; pass an output ending in .png, "
                              f"not {str(out)!r}")
        if path.is_dir():
            raise ConfigError(f"-o {out} is a folder; a Text-to-Canvas hypernetwork writes one PNG file: pass a file "
                              f"path, e.g. -o {path / 'art.png'}")
        check_file_target(out, "one PNG file")
        # What --overwrite may replace is a picture of one's own: a trained run's canvas was replaced by a zero-shot
        # painting, and a text file named .png by a picture, each with --overwrite and without a word.
        if path.is_file() and path.name == "artwork.png" and any(
                (path.parent / n).exists() for n in ("config.json", "checkpoint")):
            raise ConfigError(f"-o {out} is the artwork of the training run in {path.parent}, which --overwrite does not "
                              f"replace; write the painting elsewhere (to start a run from it: train --init PNG)")
        if path.is_file():
            with open(path, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    raise ConfigError(f"-o {out} is a file that is not a PNG picture, which --overwrite does not "
                                      "replace; choose another output")
    else:
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".safetensors", ".json"):
            raise ConfigError(f"a Text-to-LoRA hypernetwork writes a PEFT adapter folder (adapter_config.json, "
                              f"adapter_model.safetensors), not a {path.suffix} file; pass a folder, e.g. "
                              f"-o {path.with_suffix('')}/")
        if path.exists() and not path.is_dir():
            raise ConfigError(f"-o {out} is a file; a Text-to-LoRA hypernetwork writes a PEFT adapter folder: pass a "
                              "folder path, e.g. -o adapter/")
        from artstudio.baselines.lora import check_export_target

        check_export_target(path)  # a folder of other files: refused before --overwrite is offered (it would not help)


def check_model(meta: dict, model: str | None) -> None:
    """Refuse `--model` naming another model than the one the hypernetwork (its `hyper.json`) was made for.

    The same comparison `check_backbone` makes after loading (the model's name), made before: a Hub id
    was looked up on the network, retried for half a minute offline, and then refused anyway."""
    from artstudio.backbone import model_name

    made_for = str(meta["target"].get("model_id"))
    if model is None or model_name(model) == made_for:
        return
    kind = meta.get("kind", "")
    raise ConfigError(f"--model {model}: this {kind} hypernetwork was made for {made_for}, and a hypernetwork works "
                      f"only with the model it was trained for. Leave out --model (it uses {made_for}), or train one "
                      f"for {model} with `artstudio hyper train --kind {kind} --model {model}`")


class HyperGenerator:
    """A loaded backbone + encoder + hypernetwork; `generate(description, out)` writes the artefact."""

    def __init__(self, hyper: str | Path = DEFAULT_HYPER, *, backbone=None, model: str | None = None,
                 encoder: str | None = None, device: str | None = None, dtype: str | None = None) -> None:
        from artstudio.backbone import load_backbone

        self.folder = resolve_hyper_folder(hyper)
        meta = Hypernetwork.read_meta(self.folder)
        if backbone is None:
            check_model(meta, model)  # offline: another model is refused before a download is tried
            backbone = load_backbone(model or meta["target"]["model_id"], device=device, dtype=dtype)
        self.backbone = backbone
        self.hyper = Hypernetwork.from_pretrained(self.folder, backbone)
        self.encoder = TaskEncoder.load(encoder or self.hyper.encoder_name, backbone)
        self.hyper.check_encoder(self.encoder)

    @property
    def kind(self) -> str:
        return self.hyper.kind

    def generated(self, description: str):
        return self.hyper.generate(self.encoder, [check_descriptions(description)[0]])[0]

    def method(self, description: str):
        """A Method serving the generated canvas / adapter (for evaluation or the Playground)."""
        return self.hyper.method_for(self.backbone, self.generated(description))

    def generate(self, description: str, out: str | Path, *, name: str | None = None, overwrite: bool = False) -> Path:
        description = check_descriptions(description)[0]
        check_output(self.kind, out)
        check_free(out, overwrite)
        out = Path(out).expanduser()  # "~/x.png" quoted past the shell made a folder named "~"
        t0 = time.perf_counter()
        g = self.generated(description)
        self.hyper.export(self.backbone, g, out, description, source=source_name(self.folder), name=name)
        self.last_seconds = time.perf_counter() - t0
        return out  # as named, for both kinds (T2L's came back absolute, T2C's as given)


def source_name(folder: str | Path) -> str:
    """How an export names the hypernetwork that made it: a shipped one by its place in the package
    (`artstudio/models/hyper/t2c`), another by its folder's name, never an absolute path of this machine
    (an artwork is shared; its metadata leaked `/home/...` paths)."""
    package = Path(__file__).resolve().parents[1]
    path = Path(folder).expanduser().resolve()
    if path.is_relative_to(package):
        return (Path(package.name) / path.relative_to(package)).as_posix()
    if path.name == "final" and (path.parent / "config.json").is_file():  # a hypernetwork run's own: the run
        return f"{path.parent.name}/final"
    return path.name


def hyper_generate(config: HyperGenerateConfig | dict, *, backbone=None) -> Path:
    """Write the artwork (t2c) or adapter folder (t2l) for `config.description` (a HyperGenerateConfig or a
    dict of its fields); returns its path."""
    if isinstance(config, dict):
        config = from_dict(HyperGenerateConfig, config, what="hyper generate")
    elif not isinstance(config, HyperGenerateConfig):
        raise ConfigError(f"hyper_generate() takes a HyperGenerateConfig or a dict of its fields, not a "
                          f"{type(config).__name__}")
    config.validate()
    # The kind decides what the output is (T2C: a .png file, T2L: a folder); its hyper.json says, before loading.
    kind = Hypernetwork.read_meta(resolve_hyper_folder(config.hyper))["kind"]
    if config.out is None:  # `hyper generate t2l` without -o was refused for the T2C default, artwork.png
        config = replace(config, out="artwork.png" if kind == "t2c" else "adapter")
    check_output(kind, config.out)
    check_free(config.out, config.overwrite)  # before loading anything
    gen = HyperGenerator(config.hyper, backbone=backbone, model=config.model, encoder=config.encoder,
                         device=config.device, dtype=config.dtype)
    return gen.generate(config.description, config.out, name=config.name, overwrite=config.overwrite)
