"""Folders of photos and clips in, a row per face out: the batch side of `fer predict` and its Python API.

    python -m fer predict photos/ --csv faces.csv [--resume] [--jsonl faces.jsonl]
    python -c "from fer.inference.batch import predict; print(predict('photos/'))"

- `list_inputs` walks folders (recursive, sorted, hidden files left out) and tells photos from clips by their
  first bytes (an image's or a container's signature), by the extension only where the bytes say neither; a
  file in a folder that is neither is skipped and counted, and a folder with no photo or clip is an error.
- `analyze_photos` runs photos in lanes: threads that each decode a photo and analyse it alone, as
  `FacePipeline.analyze` does for one photo (so each gets the same faces), while the other lanes do the next
  ones; results come back in order. Batching the networks' calls across the photos of a chunk was tried and
  lost: 51-55 photos/s against 105 for two lanes of one photo each (realphotos-dev, a 2-core AMD EPYC, one
  torch thread each, benchmarks/batch_speed.py), as the classifier costs as much per face in a batch (ONNX
  Runtime) and the photos' threads waited on each other at every call. A folder of HELPER_MIN_PHOTOS or more
  runs in helper processes instead (`open_run`, fer/inference/helpers.py), one per core: two processes read
  more photos than two lanes, which take turns at the interpreter's lock for each photo's Python.
- `Output` writes a CSV or JSON Lines file as each file is done (flushed, so a stopped run keeps what it did);
  with `resume` it keeps what an earlier run wrote and says which files to skip. The CSV's last file is analysed
  again, since a stop may have cut its rows: no row is written twice, none is lost.
- `predict` is the one call from Python: a DataFrame with the CSV's columns, one row per face (py-feat's
  `detect_image` gives its Fex frame the same way).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from fer import usable_cores
from fer.inference.images import read_image
from fer.inference.results import PhotoResult, analyze_file
from fer.inference.video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".heic"}
LANES = 1  # photos analysed at once, one per thread (`fer predict` runs two: lanes_and_threads)
AHEAD = 2  # photos started per lane before the oldest is handed back (one lane's slow photo holds up the order)
LARGE_PIXELS = 4_000_000  # a photo decoding to more pixels is decoded and analysed alone, by the calling thread

# The first bytes of the formats this product reads. ISO media (MP4, MOV, 3GP) shares its box header with HEIF
# and AVIF stills, told apart by the brand.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_VIDEO_MAGIC = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV", b"\x30\x26\xb2\x75\x8e\x66")
_STILL_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


class InputError(ValueError):
    """The inputs cannot be listed (an empty folder, a pattern that matches nothing); the message says which."""


class OutputError(ValueError):
    """The output file cannot be written or resumed; the message says why and what to do."""


def sniff(path: str | Path) -> str | None:
    """'photo' or 'clip' from a file's first bytes; None where they say neither (or it cannot be read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return None
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "photo"
    if head[4:8] == b"ftyp":
        return "photo" if head[8:12] in _STILL_BRANDS else "clip"
    if head.startswith(_VIDEO_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return "clip"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG transport stream packets
        return "clip"
    return None


def kind_of(path: str | Path) -> str:
    """A file named on the command line: what its bytes say, else its extension (an unknown one: a photo, so a
    file that is neither gets the photo reader's message)."""
    return sniff(path) or ("clip" if Path(path).suffix.lower() in VIDEO_SUFFIXES else "photo")


@dataclass
class Listing:
    files: list[tuple[str, str]]  # (path, 'photo' or 'clip'), in the order given, each folder sorted
    skipped: int = 0  # files in folders that are neither photos nor clips

    @property
    def photos(self) -> int:
        return sum(kind == "photo" for _, kind in self.files)

    @property
    def clips(self) -> int:
        return len(self.files) - self.photos


def _walk(folder: Path) -> tuple[list[tuple[str, str]], int]:
    found, skipped = [], 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            suffix = Path(name).suffix.lower()
            kind = sniff(path) or (
                "clip" if suffix in VIDEO_SUFFIXES else "photo" if suffix in IMAGE_SUFFIXES else None
            )
            if kind is None:
                skipped += 1
            else:
                found.append((path, kind))
    return found, skipped


def list_inputs(inputs: Iterable[str | Path]) -> Listing:
    """Every photo and clip named: files as they are, folders walked, glob patterns (`**` too) expanded. A file
    that does not exist is kept: it gets its "no such file" in the output like any unreadable one."""
    listing = Listing([])
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found, skipped = _walk(path)
            if not found:
                others = f" ({skipped} other file{'s' if skipped != 1 else ''})" if skipped else ""
                raise InputError(f"{text}: no photos or clips in this folder or below it{others}")
            listing.files += found
            listing.skipped += skipped
        elif not path.exists() and glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{text}: no file matches this pattern")
            for match in matches:
                if Path(match).is_dir():
                    found, skipped = _walk(Path(match))
                    listing.files += found
                    listing.skipped += skipped
                else:
                    listing.files.append((match, kind_of(match)))
        else:
            listing.files.append((text, kind_of(text)))
    return listing


# -- analysis: lanes in this process, or helper processes


def lanes_and_threads(photos: int) -> tuple[int, int]:
    """(lanes, torch threads) for a run of `photos` in this process: one lane of the machine's threads for a photo
    or two; else two lanes sharing the cores (one thread each on two cores). MTCNN's and the classifier's small
    convolutions gain little from threads within one call, and lose much when another job holds a core: 668 photos
    took 29 s with two threads in one call against 12 s with one, on 2 cores beside two trainings. Three lanes on
    two cores read no more photos than two (106-126 against 115-127 photos/s on realphotos-dev, idle)."""
    cores = usable_cores()
    if photos <= 2 or cores < 2:
        import torch

        return 1, torch.get_num_threads()
    lanes = 2
    return lanes, max(1, cores // lanes)


def take_lanes(photos: int) -> int:
    """The lanes for a run of `photos`, with torch's thread count set for them (lanes_and_threads); one lane on the
    count the user set with OMP_NUM_THREADS. Call it before the model loads (its ONNX Runtime session takes the
    count then), and give the caller's count back when the run ends."""
    import torch

    if "OMP_NUM_THREADS" in os.environ:  # a thread count the user set is theirs
        return LANES
    lanes, threads = lanes_and_threads(photos)
    torch.set_num_threads(threads)
    return lanes


class Run:
    """A run of photos (open_run). `pipeline` is the model loaded in this process, loaded when first asked for
    where helper processes analyse the photos (a clip, an annotated copy, or a helper that ended needs it);
    `close` ends the helpers and gives torch's thread count back."""

    def __init__(self, load, lanes: int, helpers=None, threads_before: int | None = None, pipeline=None):
        self._load, self._pipeline, self._lock = load, pipeline, threading.Lock()
        self.lanes = lanes  # photos analysed at once in this process
        self.helpers = helpers  # fer.inference.helpers.Helpers, or None
        self.threads_before = threads_before  # torch's thread count before the run (None: left alone)

    @property
    def pipeline(self):
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._load()
            return self._pipeline

    @property
    def classes(self) -> tuple[str, ...]:
        """The model's emotions: a helper's answer where this process has not loaded the model."""
        if self._pipeline is None and self.helpers is not None and self.helpers.wait_ready():
            return self.helpers.classes
        return self.pipeline.classes

    def close(self) -> None:
        if self.helpers is not None:
            self.helpers.close()
        if self.threads_before is not None:
            import torch

            torch.set_num_threads(self.threads_before)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(photos: int, model: str, *, min_face: int, face_mode: str, pipeline=None) -> Run:
    """A run of `photos` with `model` (a `--model` spec) or a `pipeline` already built. Many photos and no pipeline:
    helper processes (fer.inference.helpers) load the model and analyse the photos, and this process imports
    neither torch nor the model until something needs them. Otherwise: torch's threads set for the lanes
    (take_lanes) and the model loaded here. Close the run when it ends."""
    from fer.inference import helpers as helper_processes

    def load():
        from fer.inference.faces import FacePipeline
        from fer.inference.weights import load_model

        return FacePipeline(load_model(model)[0], min_face=min_face, face_mode=face_mode)

    count = helper_processes.helpers_for(photos) if pipeline is None else 0
    if count:
        model = helper_processes.pin_model(model)  # an alias moved meanwhile must not give two models in one run
        lanes, threads = lanes_and_threads(photos)  # where this process analyses photos the helpers could not

        def load_here():  # for a clip, an annotated copy, or photos the helpers could not take
            import torch

            run.threads_before = torch.get_num_threads()
            torch.set_num_threads(threads)
            pipeline = load()
            if run.helpers.failure and not run.helpers.alive:
                warnings.warn(
                    f"the helper processes could not load the model ({run.helpers.failure}); this process "
                    "analyses the photos instead",
                    stacklevel=2,
                )
            return pipeline

        run = Run(load_here, lanes)
        settings = {"min_face": min_face, "face_mode": face_mode}
        run.helpers = helper_processes.Helpers(
            count,
            model,
            settings,
            lambda path: analyze_file(run.pipeline, path, False),
            helper_processes.threads_each(count),
        )
        return run
    import torch

    run = Run(load, LANES, threads_before=torch.get_num_threads(), pipeline=pipeline)
    try:
        run.lanes = take_lanes(photos)  # before the model loads: its ONNX Runtime session takes the thread count
        run.pipeline  # noqa: B018 - loaded now, so a model that cannot load stops the run before it starts
    except BaseException:
        run.close()
        raise
    return run


def expected_pixels(path: str) -> int:
    """The pixels read_image will decode for a photo, from its header (a large JPEG is decoded at 1/2 to 1/8 of its
    size: fer.inference.images.jpeg_scale); 0 where the header cannot be read (read_image will say why)."""
    from fer.inference.images import jpeg_scale

    try:
        with Image.open(path) as im:
            w, h = im.size
            n = jpeg_scale(w, h) if im.format == "JPEG" else 1
    except Exception:  # noqa: BLE001 - any unreadable file: its decoding reports the problem
        return 0
    return -(-w // n) * -(-h // n)


def analyze_photos(
    pipeline, paths: Iterable[str], *, keep_images: bool = False, lanes: int = LANES, helpers=None
) -> Iterator[PhotoResult]:
    """Each photo's PhotoResult, in order. `pipeline`: a FacePipeline, or a callable giving one when first needed.

    With `helpers` (fer.inference.helpers.Helpers) alive, they analyse every photo, AHEAD each, from the moment
    each is ready (a photo of theirs is decoded again here where `keep_images`). Otherwise `lanes` threads each
    decode and analyse one photo at a time (decoding and the networks release the GIL, so the lanes fill as many
    cores), and at most AHEAD photos per lane are started before the oldest is handed back.

    Memory stays bounded whatever the photos' size: a lane holds one decoded photo, and a photo of over
    LARGE_PIXELS decoded (a 48-megapixel JPEG decodes to 12) waits for the lanes to empty and is decoded and
    analysed alone by the calling thread: glibc gives each thread its own heap, and the process keeps freed
    memory (fer.inference.memory), so a large photo met by two threads in turn would cost twice. A helper
    analyses one photo at a time in its own process, so it takes large photos as they come."""
    get = pipeline if callable(pipeline) else lambda: pipeline
    following = deque(paths)
    lanes = max(1, lanes)
    pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="fer-lane")
    running: deque[Future] = deque()
    in_lanes: set[Future] = set()
    try:
        while following or running:
            while following:
                if helpers is not None and helpers.alive:
                    future = helpers.submit(following[0])
                    if future is None:  # every ready helper has its share, or none is ready yet
                        if running:
                            break
                        helpers.wait_ready()  # then one takes it, or none is left and the lanes do
                        continue
                elif expected_pixels(following[0]) > LARGE_PIXELS:
                    if not running:
                        future = Future()
                        future.set_result(analyze_file(get(), following[0], keep_images))
                        following.popleft()
                        running.append(future)
                    break
                elif len(in_lanes) >= AHEAD * lanes:
                    break
                else:
                    future = pool.submit(analyze_file, get(), following[0], keep_images)
                    in_lanes.add(future)
                following.popleft()
                running.append(future)
            future = running.popleft()
            in_lanes.discard(future)
            result = future.result()
            if keep_images and result.analysis is not None and result.image is None:  # a helper's photo
                result.image = read_image(result.path)
            yield result
            result = None  # this photo goes before a large one is decoded
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a run stopped early: the photos not started are not


# -- rows


def photo_columns(classes: Iterable[str], clips: bool = False) -> list[str]:
    """The face table's header for a model reading `classes`; a run with clips adds where in the clip each row is."""
    where = ["t", "frame", "track"] if clips else []
    return [
        "file",
        *where,
        "face",
        "x1",
        "y1",
        "x2",
        "y2",
        "score",
        "whole_image",
        "emotion",
        *classes,
        *(["smooth_s"] if clips else []),
        "error",
    ]


def _clean(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")  # one row is one line: what resuming reads back


def face_row(columns: list[str], file: str, index: int, face: dict, **where) -> dict:
    """One face as a row of `columns` (a face dict of `Face.to_dict()`, or a clip frame's face)."""
    row = {"file": _clean(file), "face": index, "emotion": face["emotion"], "whole_image": bool(face["whole_image"])}
    row.update(zip(("x1", "y1", "x2", "y2"), face["box"]))
    row["score"] = None if face["score"] is None else round(float(face["score"]), 5)
    row.update({k: round(float(v), 5) for k, v in face["probabilities"].items()})
    row.update(where)
    return row


def photo_rows(columns: list[str], result: PhotoResult) -> list[dict]:
    """A photo's rows: one per face; one with empty face fields for a photo with no face, or with its error."""
    if result.analysis is None or not result.analysis.faces:
        return [{"file": _clean(result.path), "error": _clean(result.error or "")}]
    return [face_row(columns, result.path, i, f.to_dict()) for i, f in enumerate(result.analysis.faces, 1)]


def clip_rows(columns: list[str], file: str, frame: dict, smooth: float) -> list[dict]:
    """A sampled frame's rows in the face table (fer.inference.video.analyze_clip's frame dict)."""
    where = {"t": frame["t"], "frame": frame["frame"], "smooth_s": smooth or None}
    return [face_row(columns, file, i, f, track=f["track"], **where) for i, f in enumerate(frame["faces"], 1)]


def file_key(path: str) -> str:
    """How outputs name a file when resuming: its absolute path."""
    return os.path.normcase(os.path.abspath(path))


def read_back(path: Path, jsonl: bool, columns: list[str] | None = None) -> tuple[set[str], int]:
    """What an earlier run of fer predict wrote in `path` (a CSV, or JSON Lines where `jsonl`): the files it covers
    (file_key) and the byte length to keep; a CSV's last file is left out (a stop may have cut its rows), and its
    header must be `columns` where given."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, ends, pos = lines[:-1], [], 0  # the last piece has no newline: cut by the stop, or empty
    for line in complete:
        pos += len(line) + 1
        ends.append(pos)
    if jsonl:
        keys = []
        for n, line in enumerate(complete, 1):
            try:
                obj = json.loads(line)
                keys.append(obj.get("image") or obj["video"])
            except (ValueError, KeyError, AttributeError, TypeError):
                raise OutputError(
                    f"{path}: line {n} is not a file's JSON object of fer predict; give another --jsonl path"
                ) from None
        return {file_key(k) for k in keys}, ends[-1] if ends else 0
    if not complete:
        return set(), 0
    header = next(csv.reader([complete[0].decode("utf-8", "replace")]))
    if columns is not None and header != columns:
        raise OutputError(
            f"{path}: its columns ({', '.join(header) or 'none'}) are not the ones this run writes "
            f"({', '.join(columns)}): it was written for another model or other inputs; give another "
            "--csv path"
        )
    keys = [next(csv.reader([line.decode("utf-8", "replace")]), [""])[0] for line in complete[1:]]
    cut = len(keys)
    while cut and keys[cut - 1] == keys[-1]:
        cut -= 1
    return {file_key(k) for k in keys[:cut]}, ends[cut]  # the header and the rows before the last file's


def photos_left(listing: Listing, csv_path: str | None, jsonl_path: str | None) -> int:
    """The listing's photos that a --resume run will analyse: those not yet in every output given (as Output
    will find them; an output it cannot read counts as empty here, and Output reports it)."""
    done = None
    for path, jsonl in ((csv_path, False), (jsonl_path, True)):
        if not path:
            continue
        try:
            files = read_back(Path(path), jsonl)[0] if Path(path).is_file() else set()
        except (OutputError, OSError):
            files = set()
        done = files if done is None else done & files
    return sum(kind == "photo" and file_key(p) not in (done or ()) for p, kind in listing.files)


class Output:
    """A CSV (`columns`) or JSON Lines (`columns` None) output, written as each file is done.

    Without `resume` an existing non-empty file is refused (nothing is overwritten); with it, the rows already
    there are kept, `done` holds the files they cover (as absolute paths), and the CSV's last file is taken
    out to be analysed again (a stop may have cut its rows)."""

    def __init__(self, path: str | Path, columns: list[str] | None, resume: bool):
        self.path, self.columns = Path(path), columns
        self.done: set[str] = set()
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a folder; give a file path for the output")
        existing = self.path.exists() and self.path.stat().st_size > 0
        if existing and not resume:
            raise OutputError(
                f"{self.path} already exists: --resume continues it; delete it or give another path to start over "
                "(nothing was written)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if existing:
            keep = self._recover()
            with open(self.path, "r+b") as f:
                f.truncate(keep)
            existing = keep > 0  # a header cut by the stop is written again
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv = csv.DictWriter(self._file, columns, restval="", extrasaction="ignore") if columns else None
        if self._csv is not None and not existing:
            self._csv.writeheader()
            self._file.flush()

    def _recover(self) -> int:
        """Read back what an earlier run wrote: `done`, and the byte length to keep."""
        self.done, keep = read_back(self.path, self.columns is None, self.columns)
        return keep

    def write_rows(self, rows: list[dict]) -> None:
        self._csv.writerows(rows)
        self._file.flush()

    def write_object(self, obj: dict) -> None:
        self._file.write(json.dumps(obj) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# -- the one call from Python


def _frame(rows: list[dict], columns: list[str], classes: Iterable[str]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    types = dict.fromkeys(("face", "x1", "y1", "x2", "y2", "frame", "track"), "Int64")
    types.update(dict.fromkeys(("score", "t", "smooth_s", *classes), "Float64"))
    types.update({"whole_image": "boolean", "emotion": "string", "file": "string", "error": "string"})
    frame = frame.astype({k: v for k, v in types.items() if k in frame.columns})
    frame["error"] = frame["error"].replace("", pd.NA)
    return frame


def predict(
    inputs,
    model: str = "bundled",
    *,
    min_face: int | None = None,
    face_mode: str = "auto",
    fps: float = 5.0,
    smooth: float = 0.0,
    pipeline=None,
    progress: bool = False,
):
    """Every face in the photos and clips named (a folder, a file, a glob pattern, or a list of them), as a pandas
    DataFrame with `fer predict --csv`'s columns: `file`, `face` (1, 2... left to right), `x1 y1 x2 y2` (in the
    file's pixels), `score` (the detector's; empty for a whole image read as one face), `whole_image`, `emotion`,
    one column per emotion of the model, `error`; with clips also `t`, `frame`, `track` and `smooth_s`. A photo
    with no face is one row with empty face fields; a file that cannot be read is one row with its `error`.

    model: as `fer predict --model` (bundled, bundled:ferplus, a weights file, models:/NAME@ALIAS); or give a
    `pipeline` (fer.inference.faces.FacePipeline) built once for many calls. progress: a bar on stderr.
    Photos run as with `fer predict`: from HELPER_MIN_PHOTOS (200) on, in helper processes (one per core; this
    process loads the model only for a clip), else in two lanes of one torch thread on two cores; one lane where
    OMP_NUM_THREADS is set. The process's thread count is as before when it returns."""
    from fer.detection.limits import MIN_FACE

    listing = list_inputs([inputs] if isinstance(inputs, (str, Path)) else inputs)
    run = open_run(listing.photos, model, min_face=min_face or MIN_FACE, face_mode=face_mode, pipeline=pipeline)
    with run:
        classes = run.classes
        columns = photo_columns(classes, clips=listing.clips > 0)
        rows: list[dict] = []
        items = iter_files(listing, lambda: run.pipeline, lanes=run.lanes, helpers=run.helpers)
        if progress:
            import sys

            from tqdm import tqdm

            items = tqdm(items, total=len(listing.files), unit="file", file=sys.stderr)
        for item in items:
            if isinstance(item, PhotoResult):
                rows += photo_rows(columns, item)
            else:
                rows += clip_table(run.pipeline, columns, item, fps=fps, smooth=smooth)
    return _frame(rows, columns, classes)


@dataclass
class ClipItem:
    path: str  # a clip of the listing: analysed by the caller (frames stream out as they are read)


def iter_files(
    listing: Listing,
    pipeline,
    *,
    skip: set[str] = frozenset(),
    keep_images: bool = False,
    lanes: int = LANES,
    helpers=None,
) -> Iterator[PhotoResult | ClipItem]:
    """The listing's files in order, those whose absolute path is in `skip` left out: each photo's PhotoResult
    (analysed in batches), each clip as a ClipItem for the caller to analyse."""
    todo = [(p, k) for p, k in listing.files if file_key(p) not in skip]
    start = 0
    while start < len(todo):
        end = start
        while end < len(todo) and todo[end][1] == todo[start][1]:
            end += 1
        if todo[start][1] == "photo":
            paths = [p for p, _ in todo[start:end]]
            yield from analyze_photos(pipeline, paths, keep_images=keep_images, lanes=lanes, helpers=helpers)
        else:
            for path, _ in todo[start:end]:
                yield ClipItem(path)
        start = end


def clip_table(pipeline, columns: list[str], item: ClipItem, *, fps: float, smooth: float) -> list[dict]:
    """A clip's rows: one per face per sampled frame, then one with the error if the clip broke off."""
    from fer.inference.video import VideoError, analyze_clip

    rows = []
    try:
        for frame in analyze_clip(pipeline, item.path, fps=fps, smooth=smooth):
            rows += clip_rows(columns, item.path, frame, smooth)
    except (VideoError, ValueError) as e:
        rows.append({"file": _clean(item.path), "error": _clean(str(e))})
    return rows
