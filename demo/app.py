"""The Gradio demo: photos, webcam snapshots and a live webcam stream, served from the Model Registry.

    python -m demo                                  # builds the ModelServer and launches this UI
    python -c "from demo.app import build_app; help(build_app)"

The UI is built by `build_app(server)` so tests can `launch(prevent_thread_lock=True)`
and drive it with `gradio_client.Client`. Endpoints for API users:

- `/predict`: one image file -> `{"image": name, "faces": [...], "error": null | message}`,
  the object `python -m fer predict IMAGE --json` prints for one image;
- `/status`: what serves (registered name, version, alias, PublicTest accuracy, tracking URI).

Uploads are taken as file paths and decoded here with `fer.images.read_image`, so a
corrupt, empty, truncated, oversized or decompression-bomb file gets a message
that says what is wrong with it instead of failing inside Gradio.

Nothing users send is kept: each upload is deleted `UPLOAD_GRACE_S` after it
has been analysed (or refused), and a sweeper keeps Gradio's upload folder
(`GRADIO_TEMP_DIR`) below `FER_UPLOAD_CEILING_MB` (default 500 MB) and free of
files older than `UPLOAD_MAX_AGE_S`, such as files sent to `/gradio_api/upload`
and never analysed. After each request the allocator gives freed memory back
to the system, so a burst of large photos does not leave the server large.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from gradio.utils import NamedString
from PIL import Image

from demo.serving import ModelServer
from fer import LABELS
from fer.detect import MIN_FACE, PNET_WINDOW
from fer.faces import FACE_MODES

log = logging.getLogger("demo")

EXAMPLES_DIR = Path(__file__).parent / "examples"
EXAMPLES = [EXAMPLES_DIR / "astronaut.png", EXAMPLES_DIR / "camera.png"]
COLUMNS = ["#", "emotion", "face score", *LABELS]

STATUS_EVERY_S = 3.0  # how often an open page refreshes the model panel
LIVE_STREAM_EVERY_S = 0.05  # the page offers a webcam frame every 50 ms; each is answered as soon as it can be
# a full detection every Nth frame (FER_LIVE_DETECT_EVERY, default 5; 1: every frame); between, the last
# frame's faces are followed (FacePipeline.analyze(near=...)), and a face entering the frame waits for the next one
LIVE_DETECT_EVERY = max(1, int(os.environ.get("FER_LIVE_DETECT_EVERY", "5") or 5))
LIVE_FPS_WINDOW = 20  # the frames/s on the page are measured over the last 20 answered frames
LIVE_TIME_LIMIT_S = 120  # a stream stops after two minutes; pressing record again restarts it
LIVE_MAX_SIDE = 640  # webcam frames are shrunk to this before detection
SHOWN_MAX_SIDE = 1280  # annotated photos are shrunk to this for the page
UPLOAD_GRACE_S = 30.0  # an analysed upload is deleted this long after its analysis (see discard_upload)
UPLOAD_MAX_AGE_S = 600  # files in the upload folder older than this are removed (uploads never analysed)
SWEEP_EVERY_S = 30  # how often the upload folder is swept
DEFAULT_UPLOAD_CEILING_MB = 500  # the upload folder is kept below this (FER_UPLOAD_CEILING_MB)
VIDEO_MAX_SECONDS = 120  # ... and clips longer than this
VIDEO_FPS = 5.0  # frames analysed per second of video, unless the page asks otherwise


def default_concurrency() -> int:
    """Requests analysed at once: one per core (torch also uses threads inside each), at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


# -- turning an upload into a result (no Gradio here, so tests and benchmarks can call them)


def display_name(path: str | os.PathLike | None) -> str:
    """The name the user gave the file: Gradio keeps it as the last part of its temporary path."""
    return Path(path).name if path else ""


def _clean(message: str, path: str | os.PathLike | None) -> str:
    """A message about the user's file, without the server-side folder it was stored in."""
    if path:
        p = Path(path)
        message = message.replace(str(p), p.name).replace(str(p.parent) + os.sep, "")
    return message


def load_upload(server: ModelServer, path: str | os.PathLike | None) -> Image.Image:
    """Decode an uploaded file with the product's one image reader; ImageError says what is wrong."""
    from fer.images import ImageError, read_image

    if not path:
        raise ImageError("no image was given: upload a photo (JPEG, PNG, WebP, ...)")
    if not Path(path).is_file():
        raise ImageError("the upload did not arrive; please upload the photo again")
    try:
        return read_image(
            path, max_bytes=server.max_image_bytes, max_pixels=server.max_image_pixels, name=display_name(path)
        )
    except ImageError as e:
        raise ImageError(_clean(str(e), path)) from None


def analyze_upload(server: ModelServer, path, **options):
    """(image, Analysis, error message or None) for one uploaded file; never raises for bad input. The file is
    deleted afterwards, analysed or refused, when it lies in the upload folder. options: min_face, face_mode."""
    from fer.images import ImageError

    try:
        image = load_upload(server, path)
        return image, server.analyze(image, **options), None
    except ImageError as e:
        return None, None, str(e)
    except ValueError as e:  # a smallest face size that does not fit this photo, an unknown face mode
        return None, None, f"{display_name(path)}: {e}"
    except Exception:  # noqa: BLE001 - a bug must not show a traceback to the user; the log has it
        log.exception("analysis of %s failed", display_name(path))
        return None, None, "this image could not be analysed because of an error on the server; it has been logged"
    finally:
        discard_upload(path)
        release_memory()


# -- keeping nothing: uploads, the upload folder, memory


class PhotoFile(gr.File):
    """`gr.File(type="filepath")` without the empty temporary file Gradio 6 creates in the upload folder for
    every request (`File._process_single_file` opens a NamedTemporaryFile it never uses or removes)."""

    def get_block_name(self) -> str:
        return "file"  # the same front-end component

    def _process_single_file(self, f):
        if self.type == "filepath" and not self.file_types:
            return NamedString(f.path)
        return super()._process_single_file(f)


def upload_folder() -> Path:
    """Where Gradio stores uploads (GRADIO_TEMP_DIR, default <temp>/gradio)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _is_example(path: Path) -> bool:
    """Gradio's cached copy of one of the page's examples (same name and size): kept, or the example breaks."""
    try:
        return any(path.name == ex.name and path.stat().st_size == ex.stat().st_size for ex in EXAMPLES if ex.exists())
    except OSError:
        return False


def discard_upload(path: str | os.PathLike | None) -> bool:
    """Schedule an analysed (or refused) upload for deletion `UPLOAD_GRACE_S` seconds from now, if it lies in
    the upload folder; True if scheduled.

    Not at once: Gradio stores uploads by content, so two users sending the same photo share one file, and the
    second request may still be waiting in the queue when the first is done. The file is deleted then only if
    it was not uploaded again meanwhile (a new upload replaces the file, and its own analysis schedules it)."""
    if not path:
        return False
    try:
        p = Path(path).resolve()
        if upload_folder() not in p.parents or not p.is_file() or _is_example(p):
            return False
        stamp = p.stat().st_mtime_ns
    except OSError:  # already gone, or not ours to delete
        return False
    with _pending_lock:
        _pending[p] = (stamp, time.monotonic() + UPLOAD_GRACE_S)
    return True


_pending_lock = threading.Lock()
_pending: dict[Path, tuple[int, float]] = {}  # upload -> (its mtime when analysed, when to delete it)


def delete_due_uploads(now: float | None = None) -> int:
    """Delete the scheduled uploads whose time has come (and their folders, once empty); returns how many."""
    now = time.monotonic() if now is None else now
    with _pending_lock:
        due = [(p, stamp) for p, (stamp, when) in _pending.items() if when <= now]
        for p, _ in due:
            del _pending[p]
    deleted = 0
    for p, stamp in due:
        try:
            if p.stat().st_mtime_ns != stamp:
                continue  # uploaded again since: that request's analysis schedules it
            p.unlink()
            deleted += 1
            if p.parent != upload_folder() and not any(p.parent.iterdir()):
                p.parent.rmdir()
        except OSError:
            continue
    return deleted


def upload_ceiling_bytes() -> int:
    raw = os.environ.get("FER_UPLOAD_CEILING_MB", "")
    try:
        return int(float(raw) * 1_000_000) if raw.strip() else DEFAULT_UPLOAD_CEILING_MB * 1_000_000
    except ValueError:
        log.warning("FER_UPLOAD_CEILING_MB=%r is not a number; using %s", raw, DEFAULT_UPLOAD_CEILING_MB)
        return DEFAULT_UPLOAD_CEILING_MB * 1_000_000


def sweep_uploads(folder: Path, max_age_s: float, ceiling_bytes: int, now: float | None = None) -> dict:
    """Remove files older than `max_age_s`, then the oldest until the folder holds at most `ceiling_bytes`
    (the examples' cached copies excepted); empty folders go too. Returns counts for the log."""
    now = time.time() if now is None else now
    files = []
    for p in folder.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink() and not _is_example(p):
                st = p.stat()
                files.append((st.st_mtime, st.st_size, p))
        except OSError:
            continue
    files.sort()  # oldest first
    total = sum(size for _, size, _ in files)
    removed = freed = 0
    for mtime, size, p in files:
        if now - mtime <= max_age_s and total <= ceiling_bytes:
            break
        try:
            p.unlink()
        except OSError:
            continue
        removed, freed, total = removed + 1, freed + size, total - size
    for d in sorted((d for d in folder.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        try:
            d.rmdir()  # only empty ones
        except OSError:
            pass
    return {"removed": removed, "freed_bytes": freed, "kept_bytes": total}


_sweeper_lock = threading.Lock()
_sweeper: threading.Thread | None = None


def start_upload_sweeper(every_s: float = SWEEP_EVERY_S) -> None:
    """One daemon thread per process: deletes analysed uploads when due (each second) and sweeps the upload
    folder every `every_s` seconds (see sweep_uploads)."""
    global _sweeper

    def run() -> None:
        last_sweep = time.monotonic()
        while True:
            time.sleep(1.0)
            try:
                delete_due_uploads()
                if time.monotonic() - last_sweep >= every_s:
                    last_sweep = time.monotonic()
                    folder = upload_folder()
                    if folder.is_dir():
                        result = sweep_uploads(folder, UPLOAD_MAX_AGE_S, upload_ceiling_bytes())
                        if result["removed"]:
                            log.info("upload folder swept: %s", result)
            except Exception:  # noqa: BLE001 - the sweeper must outlive any one failure
                log.exception("upload sweep failed")

    with _sweeper_lock:
        if _sweeper is None:
            _sweeper = threading.Thread(target=run, name="upload-sweeper", daemon=True)
            _sweeper.start()


def release_memory() -> None:
    """Give the allocator's free memory back to the system (glibc keeps freed arenas otherwise: a burst of large
    photos would leave the process at its peak size)."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6")
    return _LIBC


def predict(server: ModelServer, path, min_face=MIN_FACE, face_mode: str = "auto") -> dict:
    """The `/predict` result for one file: the per-image object of `fer predict --json`."""
    _, analysis, error = analyze_upload(server, path, **_options(min_face, face_mode))
    faces = [f.to_dict() for f in analysis.faces] if analysis is not None else []
    return {"image": display_name(path), "faces": faces, "error": error}


def _options(min_face, face_mode) -> dict:
    """The page's face controls as FacePipeline.analyze options (an emptied number box means the default)."""
    return {"min_face": MIN_FACE if min_face in (None, "") else int(min_face), "face_mode": face_mode or "auto"}


def face_rows(analysis) -> pd.DataFrame:
    rows = [
        [
            i,
            f.emotion,
            "whole image" if f.whole_image else round(float(f.score), 3),
            *(round(float(f.probabilities.get(k, 0.0)), 3) for k in LABELS),
        ]
        for i, f in enumerate(analysis.faces, 1)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _shrink(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side))
    return image


def analyze_video(server: ModelServer, path, fps=VIDEO_FPS, progress=None) -> dict:
    """The Video tab and `/predict_video` for one uploaded clip: {video, sampled_fps, frames, error, outputs}:
    `outputs` holds the annotated MP4, the timeline PNG and the CSV once frames were analysed (in a fresh folder
    of the upload folder, swept with it). Never raises for bad input; the upload is deleted like a photo's."""
    import csv
    import uuid

    from fer.video import CSV_COLUMNS, ClipWriter, VideoError, analyze_clip, probe

    name = display_name(path)
    fps = VIDEO_FPS if fps in (None, "") else float(fps)
    result = {"video": name, "sampled_fps": fps or None, "frames": [], "error": None}
    result["outputs"] = {"annotated": None, "timeline": None, "csv": None}
    if not path or not Path(path).is_file():
        result["error"] = "no clip was given: upload a video (MP4, MOV, WebM, MKV, ...)"
        return result
    out = upload_folder() / f"video-{uuid.uuid4().hex}"
    out.mkdir(parents=True)
    stem = Path(name).stem or "clip"
    table = out / f"{stem}-faces.csv"
    writer = None
    try:
        info = probe(path, VIDEO_MAX_SECONDS, server.max_video_bytes)
        total = info.samples(fps)
        with open(table, "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(CSV_COLUMNS)
            writer = ClipWriter(name, rows, out, fps or info.fps, 0.0)
            try:
                frames = analyze_clip(
                    server,
                    path,
                    fps=fps,
                    max_seconds=VIDEO_MAX_SECONDS,
                    max_bytes=server.max_video_bytes,
                    on_frame=writer.add,
                )
                for i, frame in enumerate(frames, 1):
                    result["frames"].append(frame)
                    if progress is not None:
                        progress((i, total) if total else i, desc="frames analysed", unit="frames")
            finally:
                writer.close()
    except (VideoError, ValueError) as e:
        result["error"] = _clean(str(e), path)
    except Exception:  # noqa: BLE001 - a bug must not show a traceback to the user; the log has it
        log.exception("analysis of clip %s failed", name)
        result["error"] = "this clip could not be analysed because of an error on the server; it has been logged"
    finally:
        discard_upload(path)
        release_memory()
    if result["frames"]:  # frames were analysed: the writer was made, and the CSV holds them
        result["outputs"] = {**result["outputs"], **writer.outputs(), "csv": str(table)}
    return result


def video_message(result: dict) -> str:
    frames = result["frames"]
    tracks = {f["track"] for frame in frames for f in frame["faces"]}
    rate = f"{result['sampled_fps']:g} frames/s" if result["sampled_fps"] else "every frame"
    text = f"**{result['video'] or 'clip'}**: {len(frames)} frames analysed ({rate}), {len(tracks)} face track(s)"
    if result["error"]:
        text = (text + "; then " if frames else "") + f"⚠️ {result['error']}"
    return text


def summary_message(analysis, name: str) -> str:
    return f"**{name or 'photo'}**: {analysis.message}"  # "no face found", "2 faces found", "showing the 20 largest..."


# -- the UI


def build_app(
    server: ModelServer, *, concurrency: int | None = None, status_every: float = STATUS_EVERY_S
) -> gr.Blocks:
    """The demo's Blocks around a started `ModelServer`; call `launch(app, server, ...)` to serve it."""
    from fer.faces import annotate

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
            + ", ".join(LABELS)
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
                        probabilities = gr.Label(num_top_classes=len(LABELS), label="Probabilities of face #1")
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
                    live_probs = gr.Label(num_top_classes=len(LABELS), label="Largest face", elem_id="live-probs")
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
