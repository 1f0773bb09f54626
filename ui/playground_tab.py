"""The Playground page: ask the frozen model something with the artwork and without it, side by side.

Each prompt is one user turn with the canvas first, exactly as in training and serving (ART trains
single-turn prompts), answered twice: by the artwork and by the base model with no picture, each
with its latency. Greedy decoding is the default, as in evaluation. The "vLLM request" panel shows
the exact OpenAI-compatible body that serves this artwork from an unmodified engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .studio import Studio
from .widgets import action, keep_page


@dataclass
class PlaygroundTab:
    artwork: gr.Dropdown
    preview: gr.Image
    choices: object


def build_playground_tab(studio: Studio) -> PlaygroundTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280, elem_classes="as-panel"):
            model = gr.Dropdown(studio.model_choices(), value=studio.default_model, label="model",
                                info="the frozen model that answers", elem_id="as-pg-model")
            artwork = gr.Dropdown([], value=None, allow_custom_value=True, label="artwork",
                                  info="from the gallery, or made on the Describe page", elem_id="as-pg-artwork")
            preview = gr.Image(type="filepath", height=220, interactive=False, show_label=False,
                               elem_id="as-pg-preview", placeholder="No artwork chosen.")
            upload = gr.UploadButton("Add a PNG to the gallery…", file_types=[".png"], type="filepath", variant="secondary")
            with gr.Accordion("Generation", open=True):
                greedy = gr.Checkbox(value=True, label="greedy decoding", info="as in evaluation; untick to sample")
                temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="temperature", info="used when sampling")
                max_tokens = gr.Slider(1, 512, value=64, step=1, label="max new tokens")
                allow_mismatch = gr.Checkbox(value=False, label="allow another model",
                                             info="use an artwork made for a different model (answers may be poor)")
        with gr.Column(scale=3, min_width=480):
            with gr.Row(equal_height=True):
                with_chat = gr.Chatbot(label="with the artwork", height=380, elem_id="as-chat-with",
                                       placeholder="Answers with the canvas in the prompt.")
                without_chat = gr.Chatbot(label="without (base model)", height=380, elem_id="as-chat-without",
                                          placeholder="Answers of the same model with no picture.")
            with gr.Row(equal_height=True):
                prompt = gr.Textbox(show_label=False, placeholder="Ask something, e.g. 3 4", scale=5,
                                    elem_id="as-prompt", lines=1)
                send = gr.Button("Ask both", variant="primary", scale=1, elem_id="as-ask")
                clear = gr.Button("Clear", scale=0)
            with gr.Accordion("vLLM request", open=False, elem_id="as-vllm"):
                gr.Markdown("The exact body to POST to `/v1/chat/completions` of a vLLM server started with:")
                # Two lines tall (it was a mostly empty block some 400 px high above the request body).
                serve = gr.Code(language="shell", show_label=False, interactive=False, wrap_lines=True, lines=2,
                                max_lines=4, elem_id="as-vllm-serve")
                request = gr.Code(language="json", label="request body", interactive=False, max_lines=30,
                                  elem_id="as-request")

    def choices(current: str | None = None):
        items = studio.playground_items()
        keys = [i.key for i in items]
        value = current if current in keys else (keys[0] if keys else None)
        return gr.Dropdown(choices=[(i.label, i.key) for i in items], value=value)

    def show_artwork(key: str | None):
        return str(studio.artwork_path(key)) if key else None

    artwork.change(keep_page(show_artwork, 1), artwork, preview, api_visibility="private")

    def upload_playground(file: str):
        known = {item.key for item in studio.gallery()}
        key = studio.add_upload(file, Path(file).name)
        gr.Info(f"{key} is in the gallery already" if key in known else f"Added {key} to the gallery")
        return choices(key)

    upload.upload(keep_page(upload_playground, 1), upload, artwork, api_visibility="private")

    def ask(model: str, artwork: str, prompt: str, greedy: bool, temperature: float, max_tokens: int,
            allow_mismatch: bool, history_with: list, history_without: list):
        """Answer `prompt` with the artwork and without it; returns both chats, the request and the server command."""
        out = studio.ask(model, artwork, prompt, greedy=greedy, temperature=temperature, max_tokens=int(max_tokens),
                         allow_mismatch=allow_mismatch)
        turn = {"role": "user", "content": prompt.strip()}

        def reply(side: str) -> dict:  # each answer with the artwork names it: the column outlives a change of artwork
            text = out[side]["answer"] or "(empty answer)"
            by = f"{Path(artwork).stem} · " if side == "with" and artwork else ""
            return {"role": "assistant", "content": f"{text}\n\n<sub>{by}{out[side]['latency_ms']:.0f} ms</sub>"}

        return ((history_with or []) + [turn, reply("with")], (history_without or []) + [turn, reply("without")],
                json.dumps(out["request"], indent=2, ensure_ascii=False), out["serve"], "")

    inputs = [model, artwork, prompt, greedy, temperature, max_tokens, allow_mismatch, with_chat, without_chat]
    outputs = [with_chat, without_chat, request, serve, prompt]
    action(send.click, ask, inputs, outputs, api_name="ask")
    prompt.submit(keep_page(ask, len(outputs)), inputs, outputs, api_visibility="private")
    clear.click(lambda: ([], []), None, [with_chat, without_chat], api_visibility="private")
    return PlaygroundTab(artwork=artwork, preview=preview, choices=choices)
