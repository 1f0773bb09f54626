"""The Describe page: a task in words in, an artwork out, in a fraction of a second and with no training.

The Text-to-Canvas hypernetwork (`artstudio hyper generate`; the shipped one paints for studio-tiny)
is loaded once, on the first Generate, and kept by the `Studio`. A generated artwork is an ordinary
artwork PNG: it waits in `RUNS/describe/` (key `describe/NAME.png`) until it is saved to the gallery
under a free name, and the Playground can use it at once, saved or not.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

import gradio as gr

from artstudio.tasks import TASKS

from .studio import Studio
from .widgets import action, markdown_text

# Descriptions of library tasks: the wordings the shipped hypernetwork was trained on, so they work.
# They all start alike, so each gets a short label of what it asks.
EXAMPLES = {"add-bracket": "sum of two digits, in [square brackets]", "max-paren": "the larger digit, in (round brackets)",
            "sub-json": "first minus second, as JSON", "upper-quote": 'a word in capitals, in "quotes"'}


@dataclass
class DescribeTab:
    key: gr.Textbox  # the generated artwork (describe/NAME.png)
    saved_key: gr.Textbox  # its gallery copy once saved (canvases/NAME.png), else empty
    to_playground: gr.Button


def _details_html(studio: Studio, key: str, seconds: float, total: float) -> str:
    info = studio.artwork_details(key)
    took = f"{seconds:.2f} s" + (f" (first use: {total:.0f} s with loading the model)" if total > seconds + 1 else "")
    rows = [("made for", info.get("model")), ("canvas", info.get("size")), ("generated in", took), ("file", key)]
    body = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows if v)
    return f'<div class="as-meta"><table>{body}</table></div>'


NOT_SAVED = "Not in the gallery yet: **Save to gallery** keeps it; the Playground can use it either way."


def build_describe_tab(studio: Studio) -> DescribeTab:
    gr.Markdown("Describe a task in a sentence or two: what the prompt is and what the reply should be. The "
                "Text-to-Canvas hypernetwork paints its artwork in a fraction of a second, with no training. It "
                "knows the wordings it was trained on best (the examples); other tasks deserve a real training "
                "(Train tab).", elem_classes="as-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360, elem_classes="as-panel"):
            text = gr.Textbox(label="Describe a task", lines=4, max_lines=10, elem_id="as-describe-text",
                              # add-bracket's card: the shipped hypernetworks score 100 % with it (a shorter
                              # wording of the same task, without "with no instruction" and "like [<value>]", 0 %).
                              placeholder="e.g. The prompt is two digits separated by a space, with no instruction. "
                                          "Reply with their sum, written inside square brackets, like [<value>].")
            examples = {TASKS[n].description: label for n, label in EXAMPLES.items() if n in TASKS}
            if examples:
                gr.Examples(examples=[[e] for e in examples], inputs=text, label="examples (click one to fill the box)",
                            example_labels=list(examples.values()), examples_per_page=len(examples))
            generate = gr.Button("✦ Generate", variant="primary", elem_id="as-describe-generate")
            message = gr.Markdown(elem_id="as-describe-message")
        with gr.Column(scale=2, min_width=320, elem_classes="as-panel", elem_id="as-describe-panel"):
            image = gr.Image(type="filepath", label="generated artwork", height=320, interactive=False,
                             elem_id="as-describe-image", buttons=["download", "fullscreen"],
                             placeholder="The artwork appears here.")
            details = gr.HTML(elem_id="as-describe-details")
            key = gr.Textbox(visible=False, label="key")
            saved_key = gr.Textbox(visible=False, label="saved as")
            to_playground = gr.Button("Try it in the Playground", interactive=False, elem_id="as-describe-playground")
            with gr.Row(equal_height=True):
                save_name = gr.Textbox(show_label=False, placeholder="name (empty: from the description)", scale=3,
                                       elem_id="as-describe-name", interactive=False)
                save = gr.Button("Save to gallery", scale=2, elem_id="as-describe-save", interactive=False)
            saved = gr.Markdown(elem_id="as-describe-saved")

    def describe_task(description: str):
        """Paint an artwork for a task described in words; returns the picture, its details and its key."""
        start = time.perf_counter()
        new = studio.describe(description)
        total = time.perf_counter() - start
        seconds = getattr(studio.hyper_generator(), "last_seconds", total)
        enabled = gr.Button(interactive=True)
        # What the task encoder did not read (characters it does not know, text past its length): the command
        # line warns; the page painted in silence.
        notes = [f"The description {n}." for n in studio.hyper_generator().encoder.unread(description.strip())]
        for note in notes:
            gr.Warning(html.escape(note, quote=False), duration=12)
        said = "\n\n".join(f"⚠ {markdown_text(n)}" for n in notes)
        return (str(studio.artwork_path(new)), _details_html(studio, new, seconds, total), new, said, enabled,
                gr.Textbox(interactive=True), enabled, NOT_SAVED, "")

    outputs = [image, details, key, message, to_playground, save_name, save, saved, saved_key]
    action(generate.click, describe_task, text, outputs, api_name="describe_task", inline=3, show_progress="minimal")

    def save_described(key: str, name: str) -> tuple:
        """Copy a generated artwork to the gallery (a free name when none is given); returns a message and its key.
        Save is then off until the next Generate: a second press saved a second copy (`NAME-2.png`)."""
        new = studio.save_described(key, name)
        gr.Info(f"Saved to the gallery as {new}")
        return (f"Saved as **{new}**: find it in the Gallery.", new, gr.Button(interactive=False),
                gr.Textbox(interactive=False))

    action(save.click, save_described, [key, save_name], [saved, saved_key, save, save_name], api_name="save_described",
           inline=0, show_progress="hidden")
    return DescribeTab(key=key, saved_key=saved_key, to_playground=to_playground)
