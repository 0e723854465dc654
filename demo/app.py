"""The Gradio demo's page: photos, webcam snapshots, video clips and a live webcam stream, served from the Model
Registry.

    python -m demo                                  # builds the ModelServer and launches this UI
    python -c "from demo.app import build_app; help(build_app)"

The page is laid out by `build_app(server)`, so tests can `launch(prevent_thread_lock=True)` and drive it with
`gradio_client.Client`. What it answers is in demo/results.py, its HTML pieces (the annotated photo, a face's
bars, the colour legend) in demo/panels.py, how uploads are kept from piling up in demo/uploads.py. Endpoints
for API users, each documented on the page's "Use via API" view (parameters, examples, the JSON returned):

- `/predict`: one image file -> `{"image": name, "faces": [...], "error": null | message}`,
  the object `python -m fer predict IMAGE --json` prints for one image, each face with its number `n` and `unsure`;
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

from demo.panels import CSS, face_panel, legend, photo_html
from demo.results import (
    COLUMNS,
    VIDEO_FPS,
    VIDEO_MAX_SECONDS,
    _options,
    _shrink,
    analyze_image,
    analyze_upload,
    analyze_video,
    display_name,
    face_entries,
    face_rows,
    kept_copy,
    predict,
    summary_message,
    video_message,
)
from demo.serving import ModelServer
from demo.uploads import (
    EXAMPLE_CLIPS,
    EXAMPLES,
    EXAMPLES_DIR,
    SWEEP_EVERY_S,
    UPLOAD_MAX_AGE_S,
    PhotoFile,
    start_upload_sweeper,
)
from fer import EMOTIONS, usable_cores
from fer.detection.detector import MIN_FACE, PNET_WINDOW
from fer.inference.faces import FACE_MODES, UNSURE_GAP, UNSURE_TOP

log = logging.getLogger("demo")

STATUS_EVERY_S = 3.0  # how often an open page refreshes the model panel
LIVE_STREAM_EVERY_S = 0.05  # the page offers a webcam frame every 50 ms; each is answered as soon as it can be
# a full detection every Nth frame (FER_LIVE_DETECT_EVERY, default 5; 1: every frame); between, the last
# frame's faces are followed (FacePipeline.analyze(near=...)), and a face entering the frame waits for the next one
LIVE_DETECT_EVERY = max(1, int(os.environ.get("FER_LIVE_DETECT_EVERY", "5") or 5))
LIVE_FPS_WINDOW = 20  # the frames/s on the page are measured over the last 20 answered frames
LIVE_TIME_LIMIT_S = 120  # a stream stops after two minutes; pressing record again restarts it
LIVE_MAX_SIDE = 640  # webcam frames are shrunk to this before detection
KEPT_FOR_S = UPLOAD_MAX_AGE_S  # a page session keeps its photo (to re-run it) as long as the upload folder would

# After an answer, bring the result into view where the layout stacked it below the fold (a phone), and leave
# the page alone where it is already in view (a laptop).
SCROLL_TO_RESULTS = """async () => {
  const img = document.querySelector('#faces-found img');
  if (img) { try { await img.decode(); } catch (e) {} }
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const results = document.getElementById('results');
  if (!results) return;
  const shown = ['#faces-found img', '#face-detail .bars', '#photo-message']
    .map((q) => document.querySelector(q)).filter((el) => el && el.offsetParent !== null);
  const out = shown.some((el) => { const r = el.getBoundingClientRect(); return r.top < 0 || r.bottom > innerHeight; });
  if (out) results.scrollIntoView({block: 'start'});
}"""

PREDICT_RETURNS = (
    "{image: the file's name, faces: [...], error: null or a one-line message}. Each face, numbered left to right as "
    "on the page: n (its number, '#n' on the page), box [x1, y1, x2, y2] in the image's pixels, score (the "
    "detector's certainty that it is a face, 0-1, 4 digits; null for a photo read whole), emotion (the most "
    "probable), probabilities {emotion: 0-1, 4 digits, summing to 1; the served model's 7 or 8 emotions}, "
    f"unsure (true when the top emotion is under {UNSURE_TOP:.0%} or the top two are within {UNSURE_GAP * 100:.0f} "
    "points), whole_image."
)
VIDEO_RETURNS = (
    "{video: the file's name, sampled_fps, frames: [{t (seconds), frame (index in the clip), faces: [{box, score, "
    "emotion, probabilities (0-1, 4 digits), whole_image, track (the face's id over time, '#track' on the "
    "annotated clip)}]}], error: null or a one-line message}."
)
STATUS_RETURNS = (
    "{source: 'registry' or 'bundled', name, version, via (e.g. 'alias production'), publictest_accuracy (0-1), "
    "tracking_uri (without credentials or server folders), registry_problem, loaded_at, checked_at, read_at "
    "(Unix seconds), poll_seconds, summary}."
)


def default_concurrency() -> int:
    """Requests analysed at once: one per core (torch also uses threads inside each), at most 4."""
    return max(1, min(4, usable_cores()))


def described(component, description: str, example=None, json_object: bool = False):
    """`component` as the "Use via API" view shows it: with `description` under its name, and `example` (a file
    of demo/examples, named as a clone of the repository has it) as its example input instead of Gradio's
    generic one (a PDF for a file input); `json_object`: a gr.JSON that always holds an object, typed `dict`
    rather than any JSON value."""
    api_info = component.api_info

    def with_description():
        info = {"type": "object", "additionalProperties": True} if json_object else api_info()
        return {**info, "additional_description": description, "description": description}

    component.api_info = with_description
    if example is not None:
        component.example_payload = lambda: example
        component.example_value = lambda: example
    return component


def example_file(path) -> dict:
    """`handle_file(...)` of an example as a clone of the repository names it (handle_file itself wants the file
    in the server's working folder, and would show a server path); the API view writes it as handle_file('url')."""
    name = path.relative_to(EXAMPLES_DIR.parent.parent).as_posix()
    return {"path": name, "url": name, "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}


def accuracy_words(status: dict) -> str:
    """The model's accuracy as a visitor reads it: "right about 7 times in 10 (67% ...)"."""
    acc = status.get("publictest_accuracy")
    if acc is None:
        return "its accuracy was not recorded"
    if "crowd" in status.get("publictest_against", ""):  # scored against the FER+ crowd's majority
        n = status.get("publictest_faces")
        faces = f"{n:,} FER+ test faces" if n else "the FER+ test faces"
        return (
            f"it agrees with most of 10 people about {round(acc * 10)} times in 10 "
            f"({acc:.0%} of {faces} it never trained on; details below)"
        )
    return (
        f"it reads the emotion people gave a face about {round(acc * 10)} times in 10 "
        f"({acc:.0%} of FER2013's 3,589 test faces, which it never trained on; details below)"
    )


def intro_text(server: ModelServer) -> str:
    """The page's title and what it does, naming the emotions the serving model reads (7, or FER+'s 8)."""
    return (
        "# Facial emotion recognition\nUpload a photo: every face is boxed, numbered and read as one of "
        + ", ".join(server.pipeline.classes)
        + ", with how sure the model is."
    )


def model_line(server: ModelServer) -> str:
    """The header's one line on what serves: the model and its accuracy in plain words."""
    s = server.status()
    if s["source"] == "starting":
        return "**Model:** loading…"
    name = f"`{s['name']}` version {s['version']}" if s["source"] == "registry" else "the bundled model"
    return f"**Model:** {name}: {accuracy_words(s)}."


def model_details(server: ModelServer) -> str:
    """The collapsed "Model details": the registry's words (alias, store, check times) and where the figures are."""
    return (
        server.status_markdown()
        + "  \n**How the accuracy was measured:** the share of FER2013's PublicTest faces (3,589 faces the model never"
        " trained on) whose emotion it reads as their label; the README's *Results* section has every figure."
    )


# -- the UI


def build_app(
    server: ModelServer, *, concurrency: int | None = None, status_every: float = STATUS_EVERY_S
) -> gr.Blocks:
    """The demo's Blocks around a started `ModelServer`; call `launch(app, server, ...)` to serve it."""
    from fer.inference.faces import annotate

    empty_table = pd.DataFrame([], columns=COLUMNS)
    hidden = gr.update(visible=False)

    min_face_info = f"{PNET_WINDOW} px at least, up to the photo's shorter side; the photo is read again at once"
    accepted = gr.update(info=min_face_info, elem_classes=[])

    def answer(image, analysis, error, name, kept):
        """The photo outputs for one analysis (or its error): see `photo_outputs` for their order."""
        if error is not None:
            message = f"⚠️ {error}" if error else ""  # read_image's messages start with the file's name
            result = {"image": name, "faces": [], "error": error} if error else None
            return ("", hidden, hidden, message, hidden, empty_table, result, kept, [], accepted)
        faces = face_entries(image, analysis)
        result = {"image": name, "faces": [{k: v for k, v in f.items() if k != "crop"} for f in faces], "error": None}
        shown = annotate(_shrink(image, 1280), analysis)
        width = min(analysis.width, 1280)
        photo = photo_html(shown, width, f"{name}: {analysis.message}")
        if not faces:
            return (photo, hidden, hidden, summary_message(analysis, name), gr.update(visible=True), empty_table,
                    result, kept, [], accepted)  # fmt: skip
        choices = [(f"#{f['n']} {reading_of(f)}", i) for i, f in enumerate(faces)]
        return (
            photo,
            gr.update(choices=choices, value=0, visible=len(faces) > 1, label=f"{len(faces)} faces: choose one"),
            gr.update(value=face_panel(faces[0], ferplus()), visible=True),
            summary_message(analysis, name),
            hidden,
            face_rows(analysis),
            result,
            kept,
            faces,
            accepted,
        )

    def refused(min_face, kept) -> str | None:
        """Why a smallest face cannot be looked for (in the photo on the page), or None."""
        from fer.inference.images import original_size

        if min_face in (None, ""):
            return None  # an emptied box means the default
        if min_face < PNET_WINDOW:
            return f"⚠️ {min_face:g} px is too small: give {PNET_WINDOW} px or more"
        if kept and min_face > min(original_size(kept["image"])):
            w, h = original_size(kept["image"])
            return f"⚠️ {min_face:g} px is larger than the photo ({w}×{h} px): give {min(w, h)} px or less"
        return None

    def refuse(why: str):
        """Leave the result as it is; the box itself says what is wrong (no error badge over the result)."""
        return (*(gr.skip(),) * (len(photo_outputs) - 1), gr.update(info=why, elem_classes=["refused"]))

    def reading_of(face: dict) -> str:
        from fer.inference.faces import reading

        return reading(face["probabilities"])[0]

    def ferplus() -> bool:
        return len(server.pipeline.classes) == len(EMOTIONS)  # 8 emotions: a model of the FER+ crowd's votes

    def show(path, min_face, face_mode):
        name = display_name(path)
        if not path:  # the file input was cleared: clear the result too, no message
            return answer(None, None, "", name, None)
        if why := refused(min_face, None):
            min_face = MIN_FACE  # the photo is read with the default, and the box says why its value was not used
        image, analysis, error = analyze_upload(server, path, **_options(min_face, face_mode))
        kept = {"image": kept_copy(image), "name": name} if image is not None else None
        out = answer(image, analysis, error, name, kept)
        return (*out[:-1], gr.update(info=why, elem_classes=["refused"])) if why else out

    def pick_example(min_face, face_mode, evt: gr.SelectData):
        return show(str(list(EXAMPLES)[evt.index]), min_face, face_mode)

    def rerun(kept, min_face, face_mode):
        """The photo on the page again, with the options just changed (the upload itself is long deleted)."""
        if why := refused(min_face, kept):
            return refuse(why)
        if not kept:
            return (*(gr.skip(),) * (len(photo_outputs) - 1), accepted)
        image, name = kept["image"], kept["name"]
        analysis, error = analyze_image(server, image, name, **_options(min_face, face_mode))
        return answer(image, analysis, error, name, kept)

    def select_face(index, faces: list[dict]):
        if isinstance(index, int) and faces and 0 <= index < len(faces):
            return face_panel(faces[index], ferplus())
        return gr.skip()

    def select_row(evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return gr.update(value=row) if isinstance(row, int) else gr.skip()

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

    with gr.Blocks(title="Facial emotion recognition", delete_cache=(SWEEP_EVERY_S, UPLOAD_MAX_AGE_S)) as app:
        intro = gr.Markdown(intro_text(server), elem_id="intro")
        info = gr.Markdown(model_line(server), elem_id="model-info")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=240):
                with gr.Accordion("Model details", open=False, elem_id="model-details"):
                    details = gr.Markdown(model_details(server), elem_id="model-details-text")
            with gr.Column(scale=2, min_width=300):
                colours = gr.HTML(legend(server.pipeline.classes), elem_id="legend")

        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=280):
                        photo = PhotoFile(
                            label="Your photo (JPEG, PNG, WebP, ...)", type="filepath", elem_id="photo-file"
                        )
                        examples = gr.Gallery(
                            value=[str(p) for p in EXAMPLES if p.exists()],
                            label="… or click an example",
                            columns=3,
                            rows=1,
                            height=150,
                            allow_preview=False,
                            object_fit="cover",
                            elem_id="examples",
                        )
                        gr.Markdown(
                            "Examples: public-domain and CC0 photos (sources in `demo/examples/LICENSES.md`).",
                            elem_id="examples-licences",
                        )
                        with gr.Accordion("Face options", open=False, elem_id="face-options"):
                            min_face = gr.Number(
                                value=MIN_FACE,
                                precision=0,
                                label="Smallest face, in the photo's own pixels",
                                info=min_face_info,
                                elem_id="min-face",
                            )
                            face_mode = gr.Radio(
                                list(FACE_MODES),
                                value="auto",
                                label="Faces",
                                info="detect: the faces found; whole: the photo is one face; auto: detect, and a "
                                "photo of at most 160 px that is already a face is read whole",
                                elem_id="face-mode",
                            )
                        with gr.Accordion("Webcam snapshot", open=False, elem_id="snapshot-box"):
                            snapshot = gr.Image(
                                label="Webcam snapshot", sources=["webcam"], type="filepath", elem_id="snapshot"
                            )
                    with gr.Column(scale=5, elem_id="results"):
                        message = gr.Markdown(
                            "Upload a photo or click an example: its faces appear here.", elem_id="photo-message"
                        )
                        try_whole = gr.Button(
                            "Read the whole photo as one face", visible=False, size="sm", elem_id="try-whole"
                        )
                        with gr.Row(equal_height=False):
                            with gr.Column(scale=3, min_width=260):
                                annotated = gr.HTML(elem_id="faces-found")
                            with gr.Column(scale=2, min_width=260):
                                faces_list = gr.Radio(
                                    [], label="Faces", visible=False, type="value", elem_id="faces-list"
                                )
                                panel = gr.HTML(visible=False, elem_id="face-detail")
                        with gr.Accordion("Every face's percentages, as a table", open=False, elem_id="table-box"):
                            table = gr.Dataframe(
                                value=empty_table,
                                headers=COLUMNS,
                                label="One row per face (select a row to see that face above)",
                                interactive=False,
                                elem_id="faces-table",
                            )
                        with gr.Accordion("Result as JSON (what the /predict API returns)", open=False):
                            result = gr.JSON(label="/predict")
                kept = gr.State(None, time_to_live=KEPT_FOR_S)
                faces_state = gr.State([])
                photo_outputs = [
                    *(annotated, faces_list, panel, message, try_whole, table, result, kept, faces_state, min_face)
                ]
                on_photo = dict(outputs=photo_outputs, api_visibility="private", show_progress_on=[message])
                photo.change(show, [photo, min_face, face_mode], **on_photo).then(None, js=SCROLL_TO_RESULTS)
                snapshot.change(show, [snapshot, min_face, face_mode], **on_photo).then(None, js=SCROLL_TO_RESULTS)
                examples.select(pick_example, [min_face, face_mode], **on_photo).then(None, js=SCROLL_TO_RESULTS)
                for control in (min_face, face_mode):
                    control.change(
                        rerun,
                        [kept, min_face, face_mode],
                        trigger_mode="always_last",
                        **on_photo,
                    )
                try_whole.click(lambda: "whole", None, [face_mode], api_visibility="private", queue=False)
                faces_list.change(
                    select_face, [faces_list, faces_state], [panel], api_visibility="private", queue=False
                )
                table.select(select_row, None, [faces_list], api_visibility="private", queue=False)

                # The API endpoint, on components of its own so the "Use via API" view can describe them.
                api_photo = described(
                    PhotoFile(label="path", type="filepath", visible=False),
                    "the photo: any image file (JPEG, PNG, WebP, ...), up to "
                    f"{server.max_image_bytes // 1_000_000} MB and {server.max_image_pixels // 1_000_000} megapixels",
                    example_file(next(iter(EXAMPLES))),
                )
                api_min_face = described(
                    gr.Number(value=MIN_FACE, precision=0, label="smallest", visible=False),
                    f"the smallest face looked for, in the image's own pixels ({PNET_WINDOW} or more, default "
                    f"{MIN_FACE})",
                    MIN_FACE,
                )
                api_mode = described(
                    gr.Radio(list(FACE_MODES), value="auto", label="mode", visible=False),
                    "'detect': the faces found; 'whole': the image is one face; 'auto' (default): detect, and an "
                    "image of at most 160 px that is already a face is read whole",
                    "auto",
                )
                api_result = described(gr.JSON(label="result", visible=False), PREDICT_RETURNS, json_object=True)

                def predict_photo(path, smallest=MIN_FACE, mode="auto"):
                    """Every face of one image: its box, its emotion and the probability of each emotion."""
                    return predict(server, path, smallest, mode)

                api_button = gr.Button(visible=False)
                api_button.click(
                    predict_photo,
                    [api_photo, api_min_face, api_mode],
                    [api_result],
                    api_name="predict",
                    api_description="Every face of one image (numbered left to right, as on the page), its emotion "
                    "and the probability of each emotion. Returns " + PREDICT_RETURNS,
                )

            with gr.Tab("Video", id="video"):
                gr.Markdown(
                    "Upload a clip (MP4, MOV, WebM, MKV, AVI...; up to "
                    f"{server.max_video_bytes // 1_000_000} MB and {VIDEO_MAX_SECONDS // 60} minutes). Its frames are "
                    "sampled, every face found and followed over time with a number, and you get the annotated clip, "
                    "each face's emotions over time (in the legend's colours) and a CSV with one row per face per "
                    "frame."
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=280):
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
                        # the chart's own title names it; a panel label would sit over it
                        clip_timeline = gr.Image(
                            label="Each face's emotions over time",
                            show_label=False,
                            type="filepath",
                            elem_id="video-timeline",
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
                    show_progress_on=[clip_annotated],  # one bar, where the clip will play
                )
                api_clip = described(
                    PhotoFile(label="path", type="filepath", visible=False),
                    f"the clip: any video file FFmpeg reads (MP4, MOV, WebM, MKV, AVI, ...), up to "
                    f"{server.max_video_bytes // 1_000_000} MB and {VIDEO_MAX_SECONDS // 60} minutes",
                    example_file(EXAMPLE_CLIPS[0]),
                )
                api_fps = described(
                    gr.Number(value=VIDEO_FPS, label="fps", visible=False),
                    f"frames analysed per second of video (default {VIDEO_FPS:g}; 0: every frame)",
                    VIDEO_FPS,
                )
                api_clip_result = described(gr.JSON(label="result", visible=False), VIDEO_RETURNS, json_object=True)
                video_button = gr.Button(visible=False)

                def predict_video(path, fps=VIDEO_FPS):
                    """Every face of a clip's sampled frames, followed over time."""
                    result = analyze_video(server, path, fps)
                    result.pop("outputs")
                    return result

                video_button.click(
                    predict_video,
                    [api_clip, api_fps],
                    [api_clip_result],
                    api_name="predict_video",
                    api_description="Every face of a clip's sampled frames, its emotion and its track (the same "
                    "face's number over time). Returns " + VIDEO_RETURNS,
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
            trigger(  # a model swapped in may read other emotions (8 for a FER+ model): the words and colours follow
                lambda: (
                    model_line(server),
                    model_details(server),
                    intro_text(server),
                    legend(server.pipeline.classes),
                ),
                None,
                [info, details, intro, colours],
                api_visibility="private",
                show_progress="hidden",
                concurrency_limit=None,
                concurrency_id="status",
            )
        status_json = described(gr.JSON(label="status", visible=False), STATUS_RETURNS, json_object=True)
        status_button = gr.Button(visible=False)

        def status() -> dict:
            """What serves: registered name, version, alias or stage, PublicTest accuracy, tracking URI."""
            return server.status()

        status_button.click(
            status,
            None,
            [status_json],
            api_name="status",
            api_description="What serves now: the registered model's name, version and how it was found, its "
            "PublicTest accuracy and where the registry is. Returns " + STATUS_RETURNS,
            concurrency_limit=None,
            concurrency_id="status",
            show_progress="hidden",
        )

    app.queue(default_concurrency_limit=concurrency or default_concurrency(), max_size=256)
    return app


def launch_options(server: ModelServer) -> dict:
    """Everything `Blocks.launch` needs besides host and port (Gradio 6: theme and css go here)."""
    return {
        # twice the reader's limit: files in between reach read_image and get its message
        "max_file_size": 2 * max(server.max_image_bytes, server.max_video_bytes),
        "allowed_paths": [str(EXAMPLES_DIR)],
        "theme": gr.themes.Soft(),
        "css": CSS,
        "footer_links": ["api", "gradio"],
    }


def launch(app: gr.Blocks, server: ModelServer, host: str, port: int, **kwargs):
    """Serve `app` on host:port; kwargs go to `Blocks.launch` (e.g. prevent_thread_lock=True)."""
    start_upload_sweeper()
    return app.launch(server_name=host, server_port=port, **{**launch_options(server), **kwargs})
