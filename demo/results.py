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
from fer.inference.detect import MIN_FACE

log = logging.getLogger("demo")

SHOWN_MAX_SIDE = 1280  # annotated photos are shrunk to this for the page
VIDEO_MAX_SECONDS = 120  # clips longer than this are refused
VIDEO_FPS = 5.0  # frames analysed per second of video, unless the page asks otherwise


def columns(classes) -> list[str]:
    """The faces table's header for a model reading `classes`."""
    return ["#", "emotion", "face score", *classes]


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


def predict(server: ModelServer, path, min_face=MIN_FACE, face_mode: str = "auto") -> dict:
    """The `/predict` result for one file: the per-image object of `fer predict --json`."""
    _, analysis, error = analyze_upload(server, path, **_options(min_face, face_mode))
    faces = [f.to_dict() for f in analysis.faces] if analysis is not None else []
    return {"image": display_name(path), "faces": faces, "error": error}


def _options(min_face, face_mode) -> dict:
    """The page's face controls as FacePipeline.analyze options (an emptied number box means the default)."""
    return {"min_face": MIN_FACE if min_face in (None, "") else int(min_face), "face_mode": face_mode or "auto"}


def face_rows(analysis) -> pd.DataFrame:
    classes = list(analysis.faces[0].probabilities) if analysis.faces else list(EMOTIONS[:7])
    rows = [
        [
            i,
            f.emotion,
            "whole image" if f.whole_image else round(float(f.score), 3),
            *(round(float(f.probabilities.get(k, 0.0)), 3) for k in classes),
        ]
        for i, f in enumerate(analysis.faces, 1)
    ]
    return pd.DataFrame(rows, columns=columns(classes))


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
