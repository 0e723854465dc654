"""Every face's emotions over time in a video clip: decode, sample, detect and classify, track, write.

    python -m fer predict clip.mp4 [--fps 5] [--json] [--csv faces.csv] [--annotate out/] [--smooth 0.5]

A clip is decoded with PyAV (FFmpeg: any container and codec FFmpeg reads), frame by frame, and sampled at
`fps` frames per second of video time (0: every frame); each sample goes through the photo pipeline
(`FacePipeline.analyze`). Nothing but the current frame is held, so memory does not grow with the clip's
length (the tracks' probabilities kept for the timeline figure are 7 or 8 numbers per face per sample).

Tracks: a face takes the id of the track whose last box is nearest (centre distance at most `TRACK_MAX_SHIFT`
of the box's width, sizes within a factor 1.5; greedy, nearest first), so a face keeps its id while it moves
about a face width between two samples; a track missed for more than `TRACK_MAX_MISSED_S` seconds ends,
and a face that comes back after that gets a new id. `smooth` > 0 averages each track's probabilities
exponentially over time with that time constant in seconds (off by default; the output says which).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp"}
DEFAULT_FPS = 5.0  # samples per second of video: emotions change over a second, not a frame
TRACK_MAX_SHIFT = 1.0  # a face continues a track when its centre moved at most this many box widths
TRACK_MAX_SCALE = 1.5  # ... and its width changed by at most this factor
TRACK_MAX_MISSED_S = 1.0  # a track not seen for longer than this ends


def csv_columns(classes: tuple[str, ...]) -> list[str]:
    """The CSV header for a model reading `classes` (FacePipeline.classes): a column per emotion it knows."""
    return ["video", "t", "frame", "track", "x1", "y1", "x2", "y2", "emotion", *classes, "smooth_s"]


class VideoError(ValueError):
    """The clip cannot be analysed; the message names the file and the problem, for the user."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class ClipInfo:
    name: str
    width: int
    height: int
    duration: float  # seconds; 0 when the container does not say
    fps: float  # the stream's average frame rate; 0 when unknown
    codec: str

    def samples(self, fps: float) -> int | None:
        """About how many frames sampling at `fps` (0: every frame) gives, for a progress bar; None if unknown."""
        rate = fps or self.fps
        return int(self.duration * rate) + 1 if self.duration and rate else None


def _where(path: str | Path, problem: str) -> VideoError:
    return VideoError(f"{Path(path).name}: {problem}")


def open_clip(path: str | Path, max_seconds: float = 0, max_bytes: int = 0):
    """(PyAV container, its video stream, ClipInfo); VideoError naming the problem otherwise."""
    import av

    p = Path(path)
    if not p.is_file():
        raise _where(p, "no such file")
    size = p.stat().st_size
    if size == 0:
        raise _where(p, "empty file")
    if max_bytes and size > max_bytes:
        raise _where(p, f"file too large ({size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB)")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.EOFError:
        raise _where(p, "no frame: the file ends before its first frame") from None
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as e:
        raise _where(p, f"truncated, corrupt or not a video (FFmpeg: {_reason(e)})") from None
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise _where(p, f"no video stream (the file holds {', '.join(kinds)})")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
        if stream.codec_context is None or not stream.codec_context.is_decoder:
            raise _where(p, f"unsupported video codec ({codec}): FFmpeg has no decoder for it here")
        stream.thread_type = "AUTO"  # FFmpeg's frame threads: decoding keeps up with the analysis
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        info = ClipInfo(p.name, stream.codec_context.width, stream.codec_context.height, duration, rate, codec)
        if max_seconds and duration > max_seconds:
            raise _where(p, f"clip too long ({duration:.0f} s; the limit is {max_seconds:.0f} s)")
    except BaseException:
        container.close()
        raise
    return container, stream, info


def probe(path: str | Path, max_seconds: float = 0, max_bytes: int = 0) -> ClipInfo:
    """What `open_clip` learns of a clip (size, length, rate, codec), the file closed again; VideoError as it."""
    container, _, info = open_clip(path, max_seconds, max_bytes)
    container.close()
    return info


def _reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.split(":")[-1].strip() if ":" in text else text


def sampled_frames(
    path: str | Path, fps: float = DEFAULT_FPS, max_seconds: float = 0, max_bytes: int = 0
) -> Iterator[tuple[int, float, Image.Image]]:
    """(frame index, time in seconds, RGB image) of each sampled frame, decoded one at a time. VideoError for a
    clip that cannot be opened, has no frame, or breaks off (after the frames before the break were given)."""
    import av

    if fps < 0:
        raise ValueError(f"fps must be 0 (every frame) or more, got {fps}")
    container, stream, info = open_clip(path, max_seconds, max_bytes)
    step = 1.0 / fps if fps else 0.0
    next_t, index, given, t = 0.0, -1, 0, 0.0
    try:
        for frame in container.decode(stream):
            index += 1
            t = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else index / 25
            if max_seconds and t > max_seconds:
                raise _where(path, f"clip too long (over {max_seconds:.0f} s)")
            if step and t + 1e-6 < next_t:
                continue
            if step:
                next_t = (math.floor(t / step + 1e-6) + 1) * step
            given += 1
            yield index, t, frame.to_image()
    except (av.error.InvalidDataError, av.error.FFmpegError) as e:
        raise _where(path, f"truncated or corrupt video after {index + 1} frames ({_reason(e)})") from None
    finally:
        container.close()
    if given == 0:
        raise _where(path, "the video stream holds no frame")
    frame_s = 1 / info.fps if info.fps else 0.04
    if info.duration and t < info.duration - max(0.5, 3 * frame_s):  # FFmpeg stops quietly where the data ends
        raise _where(
            path, f"truncated or corrupt video: its frames end at {t:.1f} s of the {info.duration:.1f} s it declares"
        )


class Tracker:
    """Track ids from box positions between consecutive samples."""

    def __init__(self, max_shift: float = TRACK_MAX_SHIFT, max_missed_s: float = TRACK_MAX_MISSED_S):
        self.max_shift, self.max_missed_s = max_shift, max_missed_s
        self.tracks: dict[int, tuple[np.ndarray, float]] = {}  # id -> (last box, last time seen)
        self.next_id = 1

    def update(self, t: float, boxes) -> list[int]:
        self.tracks = {k: v for k, v in self.tracks.items() if t - v[1] <= self.max_missed_s}
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = [0] * len(boxes)
        if self.tracks and len(boxes):
            keys = list(self.tracks)
            cost = _shift(boxes, np.stack([self.tracks[k][0] for k in keys]))
            for i, j in sorted(np.argwhere(cost <= self.max_shift).tolist(), key=lambda ij: cost[ij[0], ij[1]]):
                if not ids[i] and keys[j] not in ids:
                    ids[i] = keys[j]
        for i, box in enumerate(boxes):
            if not ids[i]:
                ids[i], self.next_id = self.next_id, self.next_id + 1
            self.tracks[ids[i]] = (box, t)
        return ids


def _shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Centre distance in widths of the larger box, between every box of a and of b; inf where the widths differ
    by more than TRACK_MAX_SCALE."""
    ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
    wa, wb = (a[:, 2] - a[:, 0]).clip(min=1), (b[:, 2] - b[:, 0]).clip(min=1)
    width = np.maximum(wa[:, None], wb[None, :])
    d = np.linalg.norm(ca[:, None] - cb[None], axis=2) / width
    return np.where(width / np.minimum(wa[:, None], wb[None, :]) <= TRACK_MAX_SCALE, d, np.inf)


@dataclass
class Smoother:
    """Exponential average of each track's probabilities with time constant `seconds` (0: off)."""

    seconds: float = 0.0
    state: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)

    def __call__(self, track: int, t: float, p: np.ndarray) -> np.ndarray:
        if self.seconds <= 0:
            return p
        if track in self.state:
            prev, t0 = self.state[track]
            a = math.exp(-max(t - t0, 0.0) / self.seconds)
            p = a * prev + (1 - a) * p
        self.state[track] = (p, t)
        return p


def analyze_clip(
    pipeline,
    path: str | Path,
    *,
    fps: float = DEFAULT_FPS,
    smooth: float = 0.0,
    max_seconds: float = 0,
    max_bytes: int = 0,
    analyze_options: dict | None = None,
    on_frame: Callable[[dict, Image.Image, object], None] | None = None,
) -> Iterator[dict]:
    """One dict per sampled frame: {t, frame, faces: [face dict + track]}. `on_frame(result, image, analysis)`
    sees each frame (to annotate it). VideoError as `sampled_frames` raises it."""
    if smooth < 0:
        raise ValueError(f"--smooth must be 0 (off) or a number of seconds, got {smooth}")
    tracker, smoother = Tracker(), Smoother(smooth)
    options = {"face_mode": "detect", **(analyze_options or {})}  # a video frame is a scene, never one face
    for index, t, image in sampled_frames(path, fps, max_seconds, max_bytes):
        analysis = pipeline.analyze(image, **options)
        ids = tracker.update(t, [f.box for f in analysis.faces])
        faces = []
        for face, track in zip(analysis.faces, ids):
            classes = list(face.probabilities)
            p = smoother(track, t, np.array(list(face.probabilities.values())))
            d = face.to_dict()
            d["probabilities"] = {k: float(v) for k, v in zip(classes, p)}
            d["emotion"] = classes[int(np.argmax(p))]
            d["track"] = track
            faces.append(d)
        result = {"t": round(t, 4), "frame": index, "faces": faces}
        if on_frame is not None:
            on_frame(result, image, analysis)
        yield result


def csv_rows(result: dict, smooth: float) -> list[list]:
    rows = []
    for f in result["faces"]:
        p = f["probabilities"]
        rows.append(
            [result["t"], result["frame"], f["track"], *f["box"], f["emotion"], *(round(v, 5) for v in p.values())]
            + [smooth or ""]
        )
    return rows


class ClipWriter:
    """The outputs of one clip that are written as it is analysed: CSV rows, the annotated MP4, the timeline."""

    def __init__(self, name: str, csv_writer, annotate_dir: Path | None, fps: float, smooth: float):
        """csv_writer: a `csv.writer` shared by the clips of one run (rows start with the clip's name), or None;
        fps: the rate the annotated clip plays at (the sampling rate, or the clip's own for every frame)."""
        self.name, self.smooth, self.fps = name, smooth, fps
        self.csv = csv_writer
        self.mp4_path = self.timeline_path = None
        if annotate_dir is not None:
            stem = Path(name).stem  # a clip's outputs are named after it
            self.mp4_path = annotate_dir / f"{stem}-annotated.mp4"
            self.timeline_path = annotate_dir / f"{stem}-timeline.png"
        self._out = self._stream = None
        self.history: dict[int, list[tuple[float, list[float]]]] = {}
        self.classes: list[str] = []  # the emotions of the probabilities in `history`
        self.frames_written = 0

    def add(self, result: dict, image: Image.Image, analysis) -> None:
        if self.csv is not None:
            for row in csv_rows(result, self.smooth):
                self.csv.writerow([self.name, *row])  # the clip as given, then csv_columns(...)[1:]
        for f in result["faces"]:
            self.history.setdefault(f["track"], []).append((result["t"], list(f["probabilities"].values())))
            self.classes = list(f["probabilities"])
        if self.mp4_path is not None:
            self._write_frame(result, image, analysis)

    def outputs(self) -> dict[str, str]:
        """The files written so far: "annotated" (the MP4) and "timeline" (the PNG, once closed)."""
        written = {}
        if self.mp4_path is not None and self.frames_written:
            written["annotated"] = str(self.mp4_path)
        if self.timeline_path is not None and self.history:
            written["timeline"] = str(self.timeline_path)
        return written

    def _write_frame(self, result: dict, image: Image.Image, analysis) -> None:
        import av

        shown = _annotated(image, analysis, result)
        if self._out is None:
            self._out = av.open(str(self.mp4_path), "w")
            rate = Fraction(self.fps).limit_denominator(1000) if self.fps else Fraction(25)
            self._stream = self._out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=rate)
            self._stream.width, self._stream.height = shown.width - shown.width % 2, shown.height - shown.height % 2
            self._stream.pix_fmt = "yuv420p"
            self._size = (self._stream.width, self._stream.height)
        if shown.size != self._size:
            shown = shown.resize(self._size)
        frame = av.VideoFrame.from_image(shown)
        frame.pts = self.frames_written  # in 1/rate: one sample after the other, at the sampling rate
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._out is not None:
            for packet in self._stream.encode():
                self._out.mux(packet)
            self._out.close()
            self._out = None
        if self.timeline_path is not None and self.history:
            from fer.plots import timeline

            fig = timeline(self.history, f"{self.name}: emotions per face over time", self.smooth, classes=self.classes)
            fig.savefig(self.timeline_path, dpi=100, bbox_inches="tight")
            import matplotlib.pyplot as plt

            plt.close(fig)


def _annotated(image: Image.Image, analysis, result: dict) -> Image.Image:
    """The frame with each face boxed and labelled by its track and (smoothed) emotion: "#3 happy 92%"."""
    import dataclasses

    from fer.inference.faces import annotate

    faces = [
        dataclasses.replace(face, emotion=r["emotion"], probabilities=r["probabilities"])
        for face, r in zip(analysis.faces, result["faces"])
    ]
    shown = dataclasses.replace(analysis, faces=faces)
    return annotate(image, shown, numbers=[f["track"] for f in result["faces"]])
