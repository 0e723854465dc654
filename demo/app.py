"""The Gradio demo's page: photos, webcam snapshots, video clips and a live webcam stream, served from the Model
Registry.

    python -m demo                                  # builds the ModelServer and launches this UI
    python -c "from demo.app import build_app; help(build_app)"

The page is laid out by `build_app(server)`, so tests can `launch(prevent_thread_lock=True)` and drive it with
`gradio_client.Client`. What it answers is in demo/results.py, how uploads are kept from piling up in
demo/uploads.py. Endpoints for API users:

- `/predict`: one image file -> `{"image": name, "faces": [...], "error": null | message}`,
  the object `python -m fer predict IMAGE --json` prints for one image;
- `/predict_video`: one clip -> its sampled frames and each face's track;
- `/status`: what serves (registered name, version, alias, PublicTest accuracy, tracking URI).
"""

from __future__ import annotations

import logging
import os
import time

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from demo.results import (
    COLUMNS,
    SHOWN_MAX_SIDE,
    VIDEO_FPS,
    VIDEO_MAX_SECONDS,
    _options,
    _shrink,
    analyze_upload,
    analyze_video,
    display_name,
    face_rows,
    predict,
    summary_message,
    video_message,
)
from demo.serving import ModelServer
from demo.uploads import EXAMPLES, EXAMPLES_DIR, SWEEP_EVERY_S, UPLOAD_MAX_AGE_S, PhotoFile, start_upload_sweeper
from fer import EMOTIONS
from fer.inference.detect import MIN_FACE, PNET_WINDOW
from fer.inference.faces import FACE_MODES

log = logging.getLogger("demo")

STATUS_EVERY_S = 3.0  # how often an open page refreshes the model panel
LIVE_STREAM_EVERY_S = 0.05  # the page offers a webcam frame every 50 ms; each is answered as soon as it can be
# a full detection every Nth frame (FER_LIVE_DETECT_EVERY, default 5; 1: every frame); between, the last
# frame's faces are followed (FacePipeline.analyze(near=...)), and a face entering the frame waits for the next one
LIVE_DETECT_EVERY = max(1, int(os.environ.get("FER_LIVE_DETECT_EVERY", "5") or 5))
LIVE_FPS_WINDOW = 20  # the frames/s on the page are measured over the last 20 answered frames
LIVE_TIME_LIMIT_S = 120  # a stream stops after two minutes; pressing record again restarts it
LIVE_MAX_SIDE = 640  # webcam frames are shrunk to this before detection


def default_concurrency() -> int:
    """Requests analysed at once: one per core (torch also uses threads inside each), at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


# -- the UI


def build_app(
    server: ModelServer, *, concurrency: int | None = None, status_every: float = STATUS_EVERY_S
) -> gr.Blocks:
    """The demo's Blocks around a started `ModelServer`; call `launch(app, server, ...)` to serve it."""
    from fer.inference.faces import annotate

    empty_table = pd.DataFrame([], columns=COLUMNS)

    def show(path, min_face, face_mode):
        image, analysis, error = analyze_upload(server, path, **_options(min_face, face_mode))
        name = display_name(path)
        result = {"image": name, "faces": [], "error": error}
        if error is not None:
            if path:  # clearing the file input is not an error
                gr.Warning(error)
                message = f"⚠️ {error}"  # read_image's messages start with the file's name
            else:
                message, result = "", None
            return None, empty_table, gr.Label(value=None, label="Probabilities of face #1"), message, result, []
        result["faces"] = [f.to_dict() for f in analysis.faces]
        probs = [dict(f.probabilities) for f in analysis.faces]
        shown = _shrink(annotate(image, analysis), SHOWN_MAX_SIDE)
        label = gr.Label(value=probs[0] if probs else None, label="Probabilities of face #1")  # undo a selection
        return shown, face_rows(analysis), label, summary_message(analysis, name), result, probs

    def select_face(probs: list[dict], evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if probs and isinstance(row, int) and 0 <= row < len(probs):
            return gr.Label(value=probs[row], label=f"Probabilities of face #{row + 1}")
        return gr.Label()

    def live(frame: np.ndarray | None, state: dict | None):
        """One webcam frame: its faces boxed, the largest face's probabilities, the frames/s, the stream's state
        (frame count, last boxes, answer times): a full detection every LIVE_DETECT_EVERY frames, or when no
        face is followed; between, the faces of the last frame are followed."""
        state = dict(state or {})
        if frame is None:
            return None, None, gr.skip(), state
        try:
            image = _shrink(Image.fromarray(frame).convert("RGB"), LIVE_MAX_SIDE)
            n, boxes = state.get("n", 0), state.get("boxes")
            follow = bool(boxes) and n % LIVE_DETECT_EVERY != 0 and state.get("size") == list(image.size)
            analysis = server.analyze(image, face_mode="detect", near=boxes if follow else None)
        except Exception:  # noqa: BLE001 - one bad frame must not end the stream
            log.exception("live frame failed")
            return None, None, gr.skip(), state
        times = [*state.get("times", []), time.monotonic()][-LIVE_FPS_WINDOW:]
        state.update(n=n + 1, boxes=[f.box for f in analysis.faces], size=list(image.size), times=times)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        largest = max(analysis.faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
        rate = f"**{fps:.1f} frames/s** annotated" if len(times) > 1 else "measuring frames/s…"
        return annotate(image, analysis), (dict(largest.probabilities) if largest else None), rate, state

    def status() -> dict:
        """What serves: registered name, version, alias or stage, PublicTest accuracy, tracking URI."""
        return server.status()

    with gr.Blocks(title="Facial emotion recognition", delete_cache=(SWEEP_EVERY_S, UPLOAD_MAX_AGE_S)) as app:
        gr.Markdown(
            "# Facial emotion recognition\n"
            "A Mini-Xception trained on FER2013 reads the emotion of every face it finds: "
            + ", ".join(server.pipeline.classes)
            + ". The model is the `production` version in the MLflow Model Registry and changes here "
            "within seconds when the alias moves."
        )
        info = gr.Markdown(server.status_markdown(), elem_id="model-info")

        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                with gr.Row():
                    with gr.Column(scale=1):
                        photo = PhotoFile(label="Photo (JPEG, PNG, WebP, ...)", type="filepath", elem_id="photo-file")
                        with gr.Accordion("Face options (for the next photo)", open=False):
                            min_face = gr.Number(
                                value=MIN_FACE,
                                minimum=PNET_WINDOW,
                                precision=0,
                                label="Smallest face, in the photo's own pixels (12 at least)",
                                elem_id="min-face",
                            )
                            face_mode = gr.Radio(
                                list(FACE_MODES),
                                value="auto",
                                label="Faces",
                                info="detect: the faces MTCNN finds; whole: the photo is one face; auto: detect, "
                                "and a photo of at most 160 px that is already a face is read whole",
                                elem_id="face-mode",
                            )
                        snapshot = gr.Image(
                            label="... or a webcam snapshot",
                            sources=["webcam"],
                            type="filepath",
                            elem_id="snapshot",
                        )
                        gr.Examples(
                            examples=[[str(p)] for p in EXAMPLES if p.exists()],
                            inputs=[photo],
                            label="Examples (public domain / CC0, see demo/examples/LICENSES.md)",
                        )
                    with gr.Column(scale=2):
                        # the caption sits above the photo, not over it: Gradio's label badge would hide the
                        # "#1 happy 92%" of a face boxed near the top-left corner
                        gr.Markdown("**Faces found**", elem_id="faces-found-caption")
                        annotated = gr.Image(
                            label="Faces found",
                            show_label=False,
                            type="pil",
                            format="png",
                            interactive=False,
                            elem_id="faces-found",
                        )
                        message = gr.Markdown(elem_id="photo-message")
                        table = gr.Dataframe(
                            value=empty_table,
                            headers=COLUMNS,
                            label="One row per face (select a row to see its probabilities)",
                            interactive=False,
                            elem_id="faces-table",
                        )
                        probabilities = gr.Label(num_top_classes=len(EMOTIONS), label="Probabilities of face #1")
                with gr.Accordion("Result as JSON (what the /predict API returns)", open=False):
                    result = gr.JSON(label="/predict")
                face_probs = gr.State([])
                photo_outputs = [annotated, table, probabilities, message, result, face_probs]
                photo.change(show, [photo, min_face, face_mode], photo_outputs, api_visibility="private")
                snapshot.change(show, [snapshot, min_face, face_mode], photo_outputs, api_visibility="private")
                table.select(select_face, [face_probs], [probabilities], api_visibility="private", queue=False)

                # The API endpoint: the visible upload as input, the JSON panel as output.
                api_button = gr.Button(visible=False)
                api_button.click(
                    lambda path, smallest, mode: predict(server, path, smallest, mode),
                    [photo, min_face, face_mode],
                    [result],
                    api_name="predict",
                    api_description="One image file (and optionally the smallest face in px, 'auto'|'detect'|"
                    "'whole') -> {image, faces: [{box, score, emotion, probabilities, whole_image}], error}",
                )

            with gr.Tab("Video", id="video"):
                gr.Markdown(
                    "Upload a clip (MP4, MOV, WebM, MKV, AVI...; up to "
                    f"{server.max_video_bytes // 1_000_000} MB and {VIDEO_MAX_SECONDS // 60} minutes). Its frames are "
                    "sampled, every face found and followed over time with an id, and you get the annotated clip, "
                    "each face's emotions over time and a CSV with one row per face per frame."
                )
                with gr.Row():
                    with gr.Column(scale=1):
                        clip = PhotoFile(label="Video clip", type="filepath", elem_id="video-file")
                        clip_fps = gr.Number(
                            value=VIDEO_FPS,
                            minimum=0,
                            maximum=30,
                            label="Frames analysed per second of video (0: every frame)",
                            elem_id="video-fps",
                        )
                        clip_message = gr.Markdown(elem_id="video-message")
                        clip_csv = gr.File(label="One row per face per frame (CSV)", elem_id="video-csv")
                    with gr.Column(scale=2):
                        clip_annotated = gr.Video(label="Annotated clip", elem_id="video-annotated")
                        clip_timeline = gr.Image(
                            label="Each face's emotions over time", type="filepath", elem_id="video-timeline"
                        )
                with gr.Accordion("Result as JSON (what the /predict_video API returns)", open=False):
                    clip_json = gr.JSON(label="/predict_video")

                def show_video(path, fps, progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
                    if not path:
                        return None, None, None, "", None
                    result = analyze_video(server, path, fps, progress)
                    outputs = result.pop("outputs")
                    return outputs["annotated"], outputs["timeline"], outputs["csv"], video_message(result), result

                clip.change(
                    show_video,
                    [clip, clip_fps],
                    [clip_annotated, clip_timeline, clip_csv, clip_message, clip_json],
                    api_visibility="private",
                    concurrency_limit=1,
                    concurrency_id="video",
                )
                video_button = gr.Button(visible=False)

                def predict_video(path, fps):
                    result = analyze_video(server, path, fps)
                    result.pop("outputs")
                    return result

                video_button.click(
                    predict_video,
                    [clip, clip_fps],
                    [clip_json],
                    api_name="predict_video",
                    api_description="One video file (and optionally frames/s, 0: every frame) -> {video, "
                    "sampled_fps, frames: [{t, frame, faces: [{box, score, emotion, probabilities, track}]}], error}",
                    concurrency_limit=1,
                    concurrency_id="video",
                )

            with gr.Tab("Live", id="live"):
                gr.Markdown(
                    "Start the webcam: every frame gets its faces boxed with their top emotion; "
                    f"the largest face's probabilities are on the right. Streams stop after {LIVE_TIME_LIMIT_S} s. "
                    f"A full face detection runs every {LIVE_DETECT_EVERY} frames; between, the faces already "
                    "found are followed."
                )
                live_fps = gr.Markdown("", elem_id="live-fps")
                live_state = gr.State({})
                with gr.Row():
                    camera = gr.Image(
                        sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="live-camera"
                    )
                    live_view = gr.Image(
                        label="Faces", type="pil", format="jpeg", interactive=False, elem_id="live-view"
                    )
                    live_probs = gr.Label(num_top_classes=len(EMOTIONS), label="Largest face", elem_id="live-probs")
                camera.stream(
                    live,
                    [camera, live_state],
                    [live_view, live_probs, live_fps, live_state],
                    stream_every=LIVE_STREAM_EVERY_S,
                    time_limit=LIVE_TIME_LIMIT_S,
                    concurrency_limit=2,
                    concurrency_id="live",
                    show_progress="hidden",
                    api_visibility="private",
                )

        timer = gr.Timer(status_every)
        for trigger in (timer.tick, app.load):
            trigger(
                server.status_markdown,
                None,
                [info],
                api_visibility="private",
                show_progress="hidden",
                concurrency_limit=None,
                concurrency_id="status",
            )
        gr.api(status, api_name="status", concurrency_limit=None, concurrency_id="status")

    app.queue(default_concurrency_limit=concurrency or default_concurrency(), max_size=256)
    return app


def launch_options(server: ModelServer) -> dict:
    """Everything `Blocks.launch` needs besides host and port (Gradio 6: theme and css go here)."""
    return {
        # twice the reader's limit: files in between reach read_image and get its message
        "max_file_size": 2 * max(server.max_image_bytes, server.max_video_bytes),
        "allowed_paths": [str(EXAMPLES_DIR)],
        "theme": gr.themes.Soft(),
        "css": "#model-info { font-size: 0.95em; }",
        "footer_links": ["api", "gradio"],
    }


def launch(app: gr.Blocks, server: ModelServer, host: str, port: int, **kwargs):
    """Serve `app` on host:port; kwargs go to `Blocks.launch` (e.g. prevent_thread_lock=True)."""
    start_upload_sweeper()
    return app.launch(server_name=host, server_port=port, **{**launch_options(server), **kwargs})
