"""Answering prompts with an artwork (or the base model), and the request a serving engine takes instead.

    artstudio infer --canvas art.png --prompt "3 4"
    artstudio infer --canvas art.png --prompt "3 4" --print-request > request.json   # for vLLM

The command line, the demo and the web app's Playground all answer through `answer`, so a prompt
gets the same text from each of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from .data import Example, image_problem, load_jsonl, lone_surrogate
from .errors import ConfigError, DataError
from .options import DEVICE_HELP, DTYPE_HELP, check_kinds
from .generation import GenerationConfig, generate


@dataclass
class InferConfig:
    """Answer prompts with an artwork (or the base model), or print the request a vLLM server takes."""

    prompt: str | None = field(default=None, metadata={"help": "one prompt"})
    data: str | None = field(default=None, metadata={"help": "a JSONL file of prompts (answers optional), or a task folder or built-in task name (its test split), as eval takes; prints one JSON line per row"})
    model: str | None = field(default=None, metadata={"help": "Hugging Face id or local folder (default: the model the artwork's metadata names; studio-tiny without --canvas; a PNG without ArtStudio metadata needs it)"})
    canvas: str | None = field(default=None, metadata={"help": "artwork PNG (default: none, the base model)"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder (a lora, vera or t2l export) instead of an artwork; not with --print-request or --print-curl"})
    image: str | None = field(default=None, metadata={"help": "an extra picture shown after the canvas (with --prompt)"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest answer in tokens"})
    temperature: float = field(default=0.0, metadata={"help": "0 for greedy decoding, else sampling temperature"})
    seed: int = field(default=0, metadata={"help": "sampling seed (temperature > 0)"})
    allow_model_mismatch: bool = field(default=False, metadata={"help": "use an artwork made for another model anyway"})
    print_request: bool = field(default=False, metadata={"help": "print the OpenAI-compatible chat request for a vLLM server instead of answering"})
    print_curl: bool = field(default=False, metadata={"help": "print that request as a curl command"})
    served_model_name: str | None = field(default=None, metadata={"help": "model name in printed requests (default: --model, else the artwork's model id)"})
    url: str = field(default="http://localhost:8000/v1/chat/completions", metadata={"help": "server endpoint used by --print-curl (a base URL ending in /v1 gets /chat/completions)"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})


def unused_options(config: InferConfig) -> list[str]:
    """Options `config` sets that this invocation does not read (each was ignored without a word)."""
    default = InferConfig()
    printing = config.print_request or config.print_curl
    unused = []
    if not printing and config.served_model_name is not None:
        unused.append("--served-model-name names the model in printed requests (--print-request, --print-curl)")
    if config.url != default.url and not config.print_curl:
        unused.append("--url is the endpoint of --print-curl")
    if config.print_request and config.print_curl:
        unused.append("--print-request: --print-curl prints the request as a curl command instead")
    if config.seed != default.seed and config.temperature == 0:
        unused.append("--seed draws samples at --temperature above 0")
    return unused


def answer(method, examples: list[Example], *, max_new_tokens: int = 64, temperature: float = 0.0,
           seed: int = 0) -> list[str]:
    """One completion per example: greedy when `temperature` is 0, else sampled at that temperature."""
    if max_new_tokens < 1:
        raise ConfigError(f"max new tokens is {max_new_tokens}; expected at least 1")
    if temperature < 0:
        raise ConfigError(f"temperature is {temperature}; expected 0 (greedy) or more")
    gen = generate(method, examples, GenerationConfig(max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                                                      temperature=temperature or 1.0), seed=seed)
    return [texts[0] for texts in gen.texts]


def infer_examples(config: InferConfig) -> list[Example]:
    """The prompts of `config`: its one `--prompt` (with `--image`), or the rows of `--data`."""
    if (config.prompt is None) == (config.data is None):
        raise ConfigError("pass exactly one of --prompt TEXT or --data FILE.jsonl")
    if config.prompt is not None:
        if not config.prompt.strip():
            raise ConfigError("--prompt is empty; pass the text to answer, e.g. --prompt \"3 4\"")
        if (at := lone_surrogate(config.prompt)) is not None:  # bytes that were not UTF-8 on the command line
            raise ConfigError(f"--prompt holds {config.prompt[at]!r} at character {at}, half of a character or a byte "
                              "that is not UTF-8 text; pass the prompt as UTF-8")
        image = Path(config.image).expanduser().resolve() if config.image else None
        if image is not None and (found := image_problem(image)) is not None:
            raise DataError(f"--image {config.image} {found[0]}; expected {found[1]}")
        return [Example(prompt=config.prompt, image=str(image) if image else None)]
    if config.image is not None:
        raise ConfigError("--image goes with --prompt; rows of --data name their own picture in \"image\"")
    path = Path(config.data).expanduser()
    if path.is_file() or path.suffix == ".jsonl":
        return load_jsonl(config.data, require_answer=False)
    # A task folder or a built-in task, as eval takes them: the prompts of its test split. A built-in task is
    # written to a folder kept until the process ends (its rows may name pictures in it).
    import atexit
    import shutil
    import tempfile

    from .tasks.resolve import resolve_data

    workdir = tempfile.mkdtemp(prefix="artstudio-infer-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    return load_jsonl(resolve_data(config.data, workdir, role="test").test_file, require_answer=False)


def requests_for(config: InferConfig, examples: list[Example]) -> list[dict]:
    """The vLLM chat requests for `examples`, built without loading the model."""
    from .artwork import read_artwork
    from .backbone import DEFAULT_NAME, model_name
    from .serving import vllm_request

    if config.adapter is not None:  # a vLLM LoRA request names the adapter the server was started with
        raise ConfigError("--print-request and --print-curl build artwork requests; an adapter is served by the "
                          "engine's own LoRA support (vLLM: --enable-lora --lora-modules NAME=FOLDER, then "
                          "\"model\": NAME), so give --canvas or leave out --adapter")
    if config.print_curl and not config.url.strip():
        raise ConfigError(f"--url {config.url!r}: expected the server's endpoint, such as {InferConfig().url} or the "
                          "base URL `artstudio serve` prints (…/v1)")
    placement, name = "first", config.model
    if config.canvas is not None:
        meta = read_artwork(config.canvas).metadata
        placement = meta.placement if meta is not None else "first"
        name = name or (meta.model_id if meta is not None else None)
    name = config.served_model_name or model_name(name or DEFAULT_NAME)
    return [vllm_request(config.canvas, ex.prompt, name, placement, config.max_new_tokens, config.temperature,
                         image=ex.image, seed=config.seed) for ex in examples]


def run_infer(config: InferConfig, examples: list[Example] | None = None) -> list[str]:
    """Answers to the prompts of `config` (greedy unless `temperature` > 0); `examples` are its prompts where
    the caller already read them (`infer_examples`)."""
    from .methods import artwork_or_base

    # NaN --temperature was refused as "GenerationConfig temperature is nan"; a huge --seed was an OverflowError
    check_kinds(InferConfig, {f.name: getattr(config, f.name) for f in fields(config)}, what="infer", flag="--")
    examples = infer_examples(config) if examples is None else examples
    if config.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {config.max_new_tokens}: expected 1 or more")
    if not (math.isfinite(config.temperature) and config.temperature >= 0):
        raise ConfigError(f"--temperature {config.temperature}: expected 0 (greedy) or more")
    method = artwork_or_base(config.model, config.canvas, allow_mismatch=config.allow_model_mismatch,
                             device=config.device, dtype=config.dtype, adapter=config.adapter)
    from .forward import row_room
    from .prompts import check_row_lengths

    # a prompt longer than the model's positions was answered with garbage; training and serve refuse it
    check_row_lengths(row_room(method), examples, "--prompt" if config.prompt is not None else f"--data {config.data}",
                      answers=False, max_new_tokens=config.max_new_tokens)
    return answer(method, examples, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                  seed=config.seed)
