"""The Gallery page: every artwork as a thumbnail; one selected shows large with what it was made for.

Artworks are the PNG files of the gallery folder plus finished runs not saved yet. The page keeps the
keys of the listed artworks (`canvases/NAME.png`, `runs/RUN/artwork.png`), never server paths, and
every request that names one goes through `Studio.artwork_path`, which refuses anything else.
Deleting removes exactly one gallery PNG or one run folder, after a confirmation that the API needs
too (`request_delete` gives a token, `delete_artwork` takes it). An uploaded PNG is checked against
the models the app serves (its header's size first, so a pixel bomb is never decoded) before it is
added. A failed action leaves the page as it was and says why in a toast.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .studio import Studio
from .widgets import action, friendly, keep_page


@dataclass
class GalleryTab:
    grid: gr.Gallery
    keys: gr.State
    selected: gr.Textbox
    open_in_playground: gr.Button
    refresh: object
    refresh_outputs: list


def _details_html(info: dict) -> str:
    rows = [("model", info.get("model")), ("task", info.get("task")),
            ("accuracy", None if info.get("accuracy") is None else f"{100 * info['accuracy']:.1f}%"
             + (f" on {info['eval_n']} prompts" if info.get("eval_n") else "")),
            ("made", info.get("generated")), ("steps", info.get("steps")), ("objective", info.get("objective")),
            ("date", info.get("date")),
            ("canvas", info.get("size")), ("placement", info.get("placement")), ("from run", info.get("run")),
            ("note", info.get("note"))]
    body = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows if v not in (None, ""))
    desc = f"<p>{html.escape(info['description'])}</p>" if info.get("description") else ""
    return (f'<div class="as-meta"><h3>{html.escape(str(info.get("title", "")))}</h3>{desc}'
            f'<table>{body}</table><code>{html.escape(info["key"])}</code></div>')


def build_gallery_tab(studio: Studio) -> GalleryTab:
    keys = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            grid = gr.Gallery(label="artworks", columns=4, height=560, allow_preview=False, object_fit="contain",
                              fit_columns=False,
                              elem_id="as-gallery", show_label=False)
            with gr.Row():
                upload = gr.UploadButton("Add a PNG artwork…", file_types=[".png"], type="filepath",
                                         elem_id="as-gallery-upload", variant="secondary")
                reload = gr.Button("Refresh", variant="secondary", elem_id="as-gallery-refresh")
            note = gr.Markdown(elem_id="as-gallery-message")
        with gr.Column(scale=2, min_width=320, elem_classes="as-panel"):
            large = gr.Image(type="filepath", label="selected artwork", height=360, interactive=False,
                             elem_id="as-gallery-large", placeholder="Select an artwork.", buttons=["fullscreen"])
            details = gr.HTML(elem_id="as-gallery-details")
            selected = gr.Textbox(visible=False, label="key")
            # The main action on a row of its own: three buttons side by side wrapped their labels at 1440 px.
            to_playground = gr.Button("Open in Playground", visible=False, variant="primary", elem_id="as-open-playground")
            with gr.Row():
                download = gr.DownloadButton("Download PNG", visible=False, elem_id="as-download")
                delete = gr.Button("Delete…", visible=False, variant="stop", elem_id="as-delete")
            with gr.Group(visible=False, elem_id="as-confirm-box") as confirm_box:
                confirm_text = gr.Markdown(elem_classes="as-pad", elem_id="as-confirm-text")
                token = gr.Textbox(value="", visible=False, label="token")
                with gr.Row():
                    confirm = gr.Button("Yes, delete it", variant="stop", elem_id="as-confirm-delete")
                    cancel = gr.Button("Cancel", elem_id="as-cancel-delete")

    def listing():
        items = studio.gallery()
        pictures = [(str(i.path), i.label) for i in items]
        text = "" if items else "The gallery is empty: train a canvas and save it, or add a PNG."
        return pictures, [i.key for i in items], text

    def refresh():
        return listing()

    refresh_outputs = [grid, keys, note]
    reload.click(refresh, None, refresh_outputs, api_visibility="private")

    @friendly
    def list_gallery() -> list[str]:
        """The keys of every artwork the gallery shows (newest first)."""
        return [i.key for i in studio.gallery()]

    gr.api(list_gallery, api_name="list_gallery")

    def artwork_details(key: str):
        """One artwork: the picture, its metadata and the buttons that act on it."""
        info = studio.artwork_details(key)
        path = str(studio.artwork_path(key))
        return (path, _details_html(info), key, gr.DownloadButton(value=path, visible=True),
                gr.Button(visible=True), gr.Button(visible=True), gr.Group(visible=False))

    detail_outputs = [large, details, selected, download, to_playground, delete, confirm_box]

    def on_select(keys: list[str], evt: gr.SelectData):
        if evt.index is None or evt.index >= len(keys):
            return (gr.skip(),) * len(detail_outputs)
        return artwork_details(keys[evt.index])

    grid.select(keep_page(on_select, len(detail_outputs)), keys, detail_outputs, api_visibility="private")
    action(selected.submit, artwork_details, selected, detail_outputs, api_name="artwork_details")

    def request_delete(key: str) -> tuple:
        """Step one of deleting: what would be removed, and the token `delete_artwork` needs to do it."""
        question, confirmation = studio.delete_request(key)
        return gr.Group(visible=True), f"**{question}**", confirmation

    action(delete.click, request_delete, selected, [confirm_box, confirm_text, token], api_name="request_delete")
    cancel.click(lambda: (gr.Group(visible=False), ""), None, [confirm_box, token], api_visibility="private")

    def delete_artwork(key: str, confirmation: str):
        """Delete exactly one artwork (or one unsaved run folder), with the token `request_delete` gave for it."""
        message = studio.delete(key, confirmation)
        gr.Info(message)
        pictures, new_keys, _ = listing()
        return (pictures, new_keys, message, None, "", "", gr.DownloadButton(visible=False), gr.Button(visible=False),
                gr.Button(visible=False), gr.Group(visible=False), "")

    action(confirm.click, delete_artwork, [selected, token], [grid, keys, note, large, details, selected, download,
                                                             to_playground, delete, confirm_box, token],
           api_name="delete_artwork")

    def upload_artwork(file: str):
        """Add an uploaded PNG to the gallery after checking it against the models the app serves."""
        known = {item.key for item in studio.gallery()}
        key = studio.add_upload(file, Path(file).name)  # the same pixels again are not copied again
        pictures, new_keys, _ = listing()
        said = f"**{key}** is in the gallery already; nothing was added." if key in known else f"Added **{key}**."
        return (pictures, new_keys, said, *artwork_details(key))

    action(upload.upload, upload_artwork, upload, [grid, keys, note, *detail_outputs], api_name="upload_artwork")
    return GalleryTab(grid=grid, keys=keys, selected=selected, open_in_playground=to_playground,
                      refresh=refresh, refresh_outputs=refresh_outputs)
