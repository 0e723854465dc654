"""What the page and the API answer for an upload: a photo's faces, a clip's frames, the table and messages.

    python -c "from demo.results import predict; help(predict)"

No Gradio layout here, so tests and benchmarks can call these directly. Uploads are taken as file paths and
decoded with `fer.inference.images.read_image`, so a corrupt, empty, truncated, oversized or decompression-bomb
file gets a message that says what is wrong with it instead of failing inside Gradio.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
from PIL import Image

from demo.serving import ModelServer
from demo.uploads import discard_upload, release_memory, upload_folder
from fer import EMOTIONS
from fer.detection.detector import MIN_FACE

log = logging.getLogger("demo")

SHOWN_MAX_SIDE = 1280  # annotated photos are shrunk to this for the page
VIDEO_MAX_SECONDS = 120  # clips longer than this are refused
VIDEO_FPS = 5.0  # frames analysed per second of video, unless the page asks otherwise


def columns(classes) -> list[str]:
    """The faces table's header for a model reading `classes`: the reading, each emotion's percentage, and how
    sure the detector is that it is a face (last, so it is not read as one more emotion)."""
    return ["#", "emotion", *classes, "face found with"]


COLUMNS = columns(EMOTIONS[:7])  # before a model answers: FER2013's seven


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
    from fer.inference.images import ImageError, read_image

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
    from fer.inference.images import ImageError

    try:
        image = load_upload(server, path)
    except ImageError as e:
        discard_upload(path)
        release_memory()
        return None, None, str(e)
    try:
        return (image, *analyze_image(server, image, display_name(path), **options))
    finally:
        discard_upload(path)
        release_memory()


def analyze_image(server: ModelServer, image: Image.Image, name: str, **options):
    """(Analysis, error message or None) for an image already read, e.g. the photo on the page analysed again
    with other face options; never raises for bad options."""
    try:
        return server.analyze(image, **options), None
    except ValueError as e:  # a smallest face size that does not fit this photo, an unknown face mode
        return None, f"{name}: {e}"
    except Exception:  # noqa: BLE001 - a bug must not show a traceback to the user; the log has it
        log.exception("analysis of %s failed", name)
        return None, "this image could not be analysed because of an error on the server; it has been logged"


KEPT_MAX_SIDE = 2048  # the photo on the page is kept this large (in the session's memory) for re-runs


def kept_copy(image: Image.Image) -> Image.Image:
    """The copy of a photo a page session keeps to analyse it again when an option changes: at most 2048 px
    (what a large JPEG is decoded to anyway), still measured in the file's own pixels (`original_size`)."""
    from fer.inference.images import original_size

    size = original_size(image)
    kept = _shrink(image, KEPT_MAX_SIDE)
    kept.info["original_size"] = size
    return kept


def api_face(face, n: int) -> dict:
    """One face as the API gives it: `fer predict --json`'s fields, plus its number `n` as the page shows it
    ("#n") and `unsure` (the product's rule, fer.inference.faces.reading); probabilities and the face score
    rounded to 4 digits."""
    from fer.inference.faces import reading

    d = face.to_dict()
    d["probabilities"] = {k: round(float(v), 4) for k, v in d["probabilities"].items()}
    if d["score"] is not None:
        d["score"] = round(float(d["score"]), 4)
    d["n"] = n
    d["unsure"] = reading(face.probabilities)[1]
    return d


def api_faces(analysis) -> list[dict]:
    return [api_face(f, i) for i, f in enumerate(analysis.faces, 1)] if analysis is not None else []


def predict(server: ModelServer, path, min_face=MIN_FACE, face_mode: str = "auto") -> dict:
    """The `/predict` result for one file: the per-image object of `fer predict --json`."""
    _, analysis, error = analyze_upload(server, path, **_options(min_face, face_mode))
    return {"image": display_name(path), "faces": api_faces(analysis), "error": error}


def _options(min_face, face_mode) -> dict:
    """The page's face controls as FacePipeline.analyze options (an emptied number box means the default)."""
    return {"min_face": MIN_FACE if min_face in (None, "") else int(min_face), "face_mode": face_mode or "auto"}


def face_rows(analysis, classes=None) -> pd.DataFrame:
    """One row per face, every figure in percent: "#", the reading ("sad 30% or fear 29%, unsure"), each emotion,
    and the detector's certainty that it is a face ("whole image" for a photo read as one)."""
    from fer.inference.faces import reading

    classes = list(analysis.faces[0].probabilities) if analysis.faces else list(classes or EMOTIONS[:7])
    rows = [
        [
            i,
            reading(f.probabilities)[0],
            *(f"{f.probabilities.get(k, 0.0):.0%}" for k in classes),
            "whole image" if f.whole_image else f"{float(f.score):.0%} certainty",
        ]
        for i, f in enumerate(analysis.faces, 1)
    ]
    return pd.DataFrame(rows, columns=columns(classes))


def face_entries(image: Image.Image, analysis) -> list[dict]:
    """What the page keeps of each face to show it when chosen: the API's fields and its crop as a data URI."""
    from demo.panels import crop, data_uri

    entries = []
    for d, face in zip(api_faces(analysis), analysis.faces):
        d["crop"] = data_uri(crop(image, face.box, analysis.width, analysis.height))
        entries.append(d)
    return entries


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

    from fer.inference.video import ClipWriter, VideoError, analyze_clip, csv_columns, probe

    name = display_name(path)
    fps = VIDEO_FPS if fps in (None, "") else float(fps)
    result = {"video": name, "sampled_fps": fps or None, "frames": [], "error": None}
    result["outputs"] = {"annotated": None, "timeline": None, "csv": None}
    if not path or not Path(path).is_file():
        result["error"] = "no clip was given: upload a video (MP4, MOV, WebM, MKV, ...)"
        return result
    if is_photo(path):
        discard_upload(path)
        result["error"] = f"{name}: this is a photo, not a video; drop it on the Photo tab (or send it to /predict)"
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
            rows = _Unsmoothed(csv.writer(f))
            rows.writerow(csv_columns(server.pipeline.classes))
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
                    for face in frame["faces"]:
                        face["probabilities"] = {k: round(v, 4) for k, v in face["probabilities"].items()}
                        face["score"] = round(face["score"], 4) if face["score"] is not None else None
                    result["frames"].append(frame)
                    if progress is not None:  # the clip's length is an estimate: the bar never runs past its end
                        progress((i, max(total, i + 1)) if total else i, desc="frames analysed", unit="frames")
                if progress is not None:
                    progress((len(result["frames"]),) * 2, desc="frames analysed", unit="frames")
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


class _Unsmoothed:
    """The page's clips are not smoothed: their CSV leaves out `csv_columns`' last column, smooth_s, which
    would be empty on every row."""

    def __init__(self, writer):
        self.writer = writer

    def writerow(self, row):
        self.writer.writerow(row[:-1])


def is_photo(path) -> bool:
    """A file Pillow reads as a still image (a JPEG or PNG dropped on the Video tab), not a clip FFmpeg would read
    as one frame."""
    from fer.inference.video import is_video

    if is_video(path):
        return False
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) == 1
    except Exception:  # noqa: BLE001 - anything Pillow cannot open is left to the video reader's messages
        return False


def video_message(result: dict) -> str:
    frames = result["frames"]
    tracks = {f["track"] for frame in frames for f in frame["faces"]}
    rate = f"{result['sampled_fps']:g} frames/s" if result["sampled_fps"] else "every frame"
    text = f"**{result['video'] or 'clip'}**: {len(frames)} frames analysed ({rate}), {len(tracks)} face track(s)"
    if result["error"]:
        text = (text + "; then " if frames else "") + f"⚠️ {result['error']}"
    return text


NO_FACE_HINT = (
    "Try a smaller **smallest face** under *Face options*, or **read the whole photo as one face** "
    "(the button below, or *Faces: whole* under *Face options*)."
)


def summary_message(analysis, name: str) -> str:
    """The one line about a photo: "no face found" (with what to try), "2 faces found", "showing the 20 largest..."."""
    text = f"**{name or 'photo'}**: {analysis.message}"
    return f"{text}. {NO_FACE_HINT}" if not analysis.faces else text
