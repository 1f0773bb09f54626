"""The Gallery page: every artwork as a thumbnail; one selected shows large with what it was made for.

Artworks are the PNG files of the gallery folder plus finished runs not saved yet. The page keeps the
keys of the listed artworks (`canvases/NAME.png`, `runs/RUN/artwork.png`), never server paths, and
every request that names one goes through `Studio.artwork_path`, which refuses anything else.
Deleting asks for a confirmation; an uploaded PNG is decoded and its metadata checked before it is added.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .studio import Studio
from .widgets import friendly


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
            ("steps", info.get("steps")), ("objective", info.get("objective")), ("date", info.get("date")),
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
            with gr.Row():
                download = gr.DownloadButton("Download PNG", visible=False, elem_id="as-download")
                to_playground = gr.Button("Open in Playground", visible=False, variant="primary", elem_id="as-open-playground")
                delete = gr.Button("Delete…", visible=False, variant="stop", elem_id="as-delete")
            with gr.Group(visible=False) as confirm_box:
                confirm_text = gr.Markdown(elem_classes="as-pad")
                with gr.Row():
                    confirm = gr.Button("Yes, delete it", variant="stop", elem_id="as-confirm-delete")
                    cancel = gr.Button("Cancel")

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

    @friendly
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

    grid.select(on_select, keys, detail_outputs, api_visibility="private")
    selected.submit(artwork_details, selected, detail_outputs, api_name="artwork_details")

    delete.click(lambda key: (gr.Group(visible=True), f"Delete **{key}**? This cannot be undone."
                              + (" The whole run folder goes." if key.startswith("runs/") else "")),
                 selected, [confirm_box, confirm_text], api_visibility="private")
    cancel.click(lambda: gr.Group(visible=False), None, confirm_box, api_visibility="private")

    @friendly
    def delete_artwork(key: str):
        """Delete an artwork (after the page asked for confirmation)."""
        message = studio.delete(key)
        gr.Info(message)
        pictures, new_keys, _ = listing()
        return (pictures, new_keys, message, None, "", "", gr.DownloadButton(visible=False), gr.Button(visible=False),
                gr.Button(visible=False), gr.Group(visible=False))

    confirm.click(delete_artwork, selected, [grid, keys, note, large, details, selected, download, to_playground,
                                             delete, confirm_box], api_name="delete_artwork")

    @friendly
    def upload_artwork(file: str):
        """Add an uploaded PNG to the gallery after checking it decodes and its metadata is valid."""
        key = studio.add_upload(file, Path(file).name)
        pictures, new_keys, _ = listing()
        return (pictures, new_keys, f"Added **{key}**.", *artwork_details(key))

    upload.upload(upload_artwork, upload, [grid, keys, note, *detail_outputs], api_name="upload_artwork")
    return GalleryTab(grid=grid, keys=keys, selected=selected, open_in_playground=to_playground,
                      refresh=refresh, refresh_outputs=refresh_outputs)
