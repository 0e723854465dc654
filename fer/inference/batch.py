"""Folders of photos and clips in, a row per face out: the batch side of `fer predict` and its Python API.

    python -m fer predict photos/ --csv faces.csv [--resume] [--jsonl faces.jsonl]
    python -c "from fer.inference.batch import predict; print(predict('photos/'))"

- `list_inputs` walks folders (recursive, sorted, hidden files left out) and tells photos from clips by their
  first bytes (an image's or a container's signature), by the extension only where the bytes say neither; a
  file in a folder that is neither is skipped and counted, and a folder with no photo or clip is an error.
- `analyze_photos` decodes photos in a background thread pool while the networks run, and runs each chunk of
  decoded photos through `FacePipeline.analyze` in threads, one per photo, whose network calls are answered by
  one batched call per network and input size (`_Batcher`): the P-net levels of photos of one size, every
  R-net and O-net crop, every face to classify. Each photo goes through the same code as alone, so it gets the
  same faces; the networks see fewer, larger batches.
- `Output` writes a CSV or JSON Lines file as each file is done (flushed, so a stopped run keeps what it did);
  with `resume` it keeps what an earlier run wrote and says which files to skip. The CSV's last file is analysed
  again, since a stop may have cut its rows: no row is written twice, none is lost.
- `predict` is the one call from Python: a DataFrame with the CSV's columns, one row per face (py-feat's
  `detect_image` gives its Fex frame the same way).
"""

from __future__ import annotations

import copy
import csv
import glob
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from fer.inference.images import ImageError, read_image
from fer.inference.video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".heic"}
CHUNK = 16  # photos analysed together: their network calls are batched
CHUNK_PIXELS = 8_000_000  # ... and no more decoded pixels than this in a chunk (a 48 MP photo is a chunk alone)
DECODERS = 2  # threads decoding the next photos while the networks run
LANES = 1  # chunks analysed at once; 2 overlaps one chunk's Python work with the other's networks where cores are free
BATCH_PIXELS = 1 << 16  # a batched network call holds at most this many input pixels (larger ones run slower)

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


# -- analysis: decoding ahead, network calls batched across the photos of a chunk


@dataclass
class PhotoResult:
    path: str
    analysis: object | None  # fer.inference.faces.Analysis, None when the photo could not be read
    error: str | None
    image: Image.Image | None = None  # the decoded photo, where asked for (to annotate it)


class _Call:
    __slots__ = ("net", "x", "result", "error", "done")

    def __init__(self, net, x: torch.Tensor):
        self.net, self.x, self.result, self.error, self.done = net, x, None, None, False


class _Batcher:
    """Answers the network calls of several threads, each running FacePipeline.analyze on one photo, with one
    call per network and input shape: a call waits until every thread still running has made one, then the
    waiting calls run together (in pieces of at most BATCH_PIXELS input pixels) and each gets its rows back."""

    def __init__(self, threads: int, batch_pixels: int = BATCH_PIXELS):
        self._cond = threading.Condition()
        self._running = threads
        self._waiting: list[_Call] = []
        self.batch_pixels = batch_pixels
        self.calls = 0  # batched calls made: what the batching saved is visible to a test

    def wrap(self, net) -> Callable[[torch.Tensor], object]:
        return lambda x: self._call(net, x)

    def _call(self, net, x: torch.Tensor):
        call = _Call(net, x)
        with self._cond:
            self._waiting.append(call)
            if len(self._waiting) >= self._running:
                self._run()
            while not call.done:
                self._cond.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def finished(self) -> None:
        with self._cond:
            self._running -= 1
            if self._waiting and len(self._waiting) >= self._running:
                self._run()

    def _run(self) -> None:
        """Every running thread is waiting (the lock is held): run their calls, grouped."""
        calls, self._waiting = self._waiting, []
        groups: dict[tuple, list[_Call]] = {}
        for c in calls:
            groups.setdefault((id(c.net), tuple(c.x.shape[1:]), c.x.dtype), []).append(c)
        with torch.no_grad():  # the thread running them may be one that has finished its photo
            for group in groups.values():
                try:
                    self._run_group(group)
                except Exception as e:  # noqa: BLE001 - each photo's thread raises it as its own
                    for c in group:
                        c.error = e
                for c in group:
                    c.done = True
        self._cond.notify_all()

    def _run_group(self, group: list[_Call]) -> None:
        per_row = max(1, group[0].x[0].numel() // max(1, group[0].x.shape[1]))
        limit = max(1, self.batch_pixels // per_row)  # rows a call may hold
        start = 0
        while start < len(group):
            piece, rows = [group[start]], len(group[start].x)
            while start + len(piece) < len(group) and rows + len(group[start + len(piece)].x) <= limit:
                rows += len(group[start + len(piece)].x)
                piece.append(group[start + len(piece)])
            start += len(piece)
            if len(piece) == 1:
                piece[0].result = piece[0].net(piece[0].x)
                self.calls += 1
                continue
            x = torch.cat([c.x for c in piece])
            if piece[0].x.dim() == 4 and piece[0].x.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)
            out = piece[0].net(x)
            self.calls += 1
            sizes = [len(c.x) for c in piece]
            parts = [t.split(sizes) for t in out] if isinstance(out, (tuple, list)) else [out.split(sizes)]
            for i, c in enumerate(piece):
                c.result = tuple(p[i] for p in parts) if isinstance(out, (tuple, list)) else parts[0][i]


def _batched(pipeline, batcher: _Batcher):
    """A copy of the pipeline whose networks (P-, R-, O-net and the served classifier) answer through `batcher`."""
    detector = copy.copy(pipeline.detector)
    detector.pnet, detector.rnet, detector.onet = map(batcher.wrap, (detector.pnet, detector.rnet, detector.onet))
    clone = copy.copy(pipeline)
    clone.detector = detector
    model, served, classes = pipeline._served  # read once: a set_model() meanwhile does not mix two models
    clone._served = (model, batcher.wrap(served), classes)
    return clone


def lanes_and_threads(photos: int) -> tuple[int, int]:
    """(lanes, torch threads) for a run of `photos`: one lane of the machine's threads for a photo or two; else
    up to two lanes of one thread each on two cores (more on more cores). MTCNN's and the classifier's small
    convolutions gain little from threads within one call, and lose much when another job holds a core: 668
    photos took 29 s with two threads in one call against 12 s with one, on 2 cores beside two trainings."""
    cores = os.cpu_count() or 1
    if photos <= 2 or cores < 2:
        return 1, torch.get_num_threads()
    lanes = 2
    return lanes, max(1, cores // lanes)


def analyze_chunk(pipeline, images: list[Image.Image], names: list[str]) -> list[tuple[object | None, str | None]]:
    """(analysis, None) or (None, message) for each image, as `pipeline.analyze` gives them one at a time, the
    networks' calls batched across the images."""
    if len(images) <= 1:
        return [_analyze_one(pipeline, image, name) for image, name in zip(images, names)]
    batcher = _Batcher(len(images))
    clone = _batched(pipeline, batcher)
    out: list = [None] * len(images)

    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            out[i] = _analyze_one(clone, images[i], names[i])
        except BaseException as e:  # noqa: BLE001 - raised again below, in the caller's thread
            failures.append(e)
        finally:
            batcher.finished()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return out


def _analyze_one(pipeline, image: Image.Image, name: str):
    try:
        return pipeline.analyze(image), None
    except ValueError as e:  # a smallest face this photo cannot hold, named for the user
        return None, f"{name}: {e}"


def _decode(path: str) -> tuple[Image.Image | None, str | None]:
    try:
        return read_image(path), None
    except ImageError as e:
        return None, str(e)


def _answer(pipeline, batch: list[tuple[str, Image.Image | None, str | None]]) -> dict[int, tuple]:
    readable = [i for i, (_, image, _) in enumerate(batch) if image is not None]
    names = [Path(batch[i][0]).name for i in readable]
    return dict(zip(readable, analyze_chunk(pipeline, [batch[i][1] for i in readable], names)))


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


def _now(function, *args) -> Future:
    """`function(*args)` run in this thread, as a finished Future."""
    done = Future()
    done.set_result(function(*args))
    return done


def _pixels(image: Image.Image | None) -> int:
    return image.width * image.height if image is not None else 0


def analyze_photos(
    pipeline,
    paths: Iterable[str],
    *,
    keep_images: bool = False,
    chunk: int = CHUNK,
    decoders: int = DECODERS,
    lanes: int = LANES,
) -> Iterator[PhotoResult]:
    """Each photo's PhotoResult, in order. Photos are decoded `decoders` at a time in the background; a chunk is
    up to `chunk` photos and CHUNK_PIXELS decoded pixels, analysed together, and `lanes` chunks are analysed at
    once (one's Python work runs while the other's networks do).

    Memory stays bounded whatever the photos' size: decoding runs ahead only while the photos decoded and not yet
    analysed hold under CHUNK_PIXELS (told from their headers), and a photo of over CHUNK_PIXELS / 2 pixels
    decoded (a 48-megapixel JPEG decodes to 12) is decoded and analysed alone, as a single photo would be."""
    paths = list(paths)
    lanes = max(1, lanes)
    with (
        ThreadPoolExecutor(max_workers=max(1, decoders), thread_name_prefix="fer-decode") as decoding,
        ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="fer-lane") as analysing,
    ):
        pending: deque = deque()  # (path, decoding future, pixels expected), in order
        running: deque = deque()  # (chunk, analysing future, alone), in order
        following = deque(paths)

        def top_up() -> None:
            """Decode ahead while the photos waiting hold under CHUNK_PIXELS; a large photo only when nothing
            else is decoded or analysed, so that two are never in memory at once."""
            while following and len(pending) < chunk:
                size = expected_pixels(following[0])
                if pending and sum(p for _, _, p in pending) + size > CHUNK_PIXELS:
                    return
                if size > CHUNK_PIXELS // 2 and (pending or running):
                    return
                path = following.popleft()
                # a large photo is decoded (and analysed) by this thread: glibc gives each thread its own heap, and
                # the process keeps freed memory (fer.inference.memory), so a large photo met by two threads in
                # turn would cost twice
                pending.append(
                    (path, _now(_decode, path) if size > CHUNK_PIXELS // 2 else decoding.submit(_decode, path), size)
                )

        def next_chunk() -> tuple[list, bool]:
            batch, pixels, largest = [], 0, 0
            while pending and len(batch) < chunk and pixels < CHUNK_PIXELS:
                path, future, _ = pending.popleft()
                image, error = future.result()
                batch.append((path, image, error))
                pixels += _pixels(image)
                largest = max(largest, _pixels(image))
                top_up()
            return batch, largest > CHUNK_PIXELS // 2

        top_up()
        formed = None  # a chunk waiting for the lanes to empty: it is analysed alone
        while True:
            while len(running) < lanes and (formed is not None or pending):
                if running and running[-1][2]:
                    break  # a chunk analysed alone: nothing beside it
                batch, alone = formed if formed is not None else next_chunk()
                if alone and running:
                    formed = (batch, alone)
                    break
                formed = None
                answer = _now(_answer, pipeline, batch) if alone else analysing.submit(_answer, pipeline, batch)
                running.append((batch, answer, alone))
            if not running:
                return
            batch, future, _ = running.popleft()
            found = future.result()
            top_up()
            for i, (path, image, error) in enumerate(batch):
                analysis, problem = found.get(i, (None, error))
                yield PhotoResult(path, analysis, problem, image if keep_images and analysis is not None else None)
            batch = future = found = image = None  # this chunk's photos go before the next ones are decoded


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
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, ends, pos = lines[:-1], [], 0  # the last piece has no newline: cut by the stop, or empty
        for line in complete:
            pos += len(line) + 1
            ends.append(pos)
        if self.columns is None:
            keys = []
            for n, line in enumerate(complete, 1):
                try:
                    obj = json.loads(line)
                    keys.append(obj.get("image") or obj["video"])
                except (ValueError, KeyError, AttributeError, TypeError):
                    raise OutputError(
                        f"{self.path}: line {n} is not a file's JSON object of fer predict; give another --jsonl path"
                    ) from None
            self.done = {file_key(k) for k in keys}
            return ends[-1] if ends else 0
        if not complete:
            return 0
        header = next(csv.reader([complete[0].decode("utf-8", "replace")]))
        if header != self.columns:
            raise OutputError(
                f"{self.path}: its columns ({', '.join(header) or 'none'}) are not the ones this run writes "
                f"({', '.join(self.columns)}): it was written for another model or other inputs; give another "
                "--csv path"
            )
        keys = [next(csv.reader([line.decode("utf-8", "replace")]), [""])[0] for line in complete[1:]]
        cut = len(keys)
        while cut and keys[cut - 1] == keys[-1]:
            cut -= 1
        self.done = {file_key(k) for k in keys[:cut]}
        return ends[cut]  # the header and the rows before the last file's

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
    `pipeline` (fer.inference.faces.FacePipeline) built once for many calls. progress: a bar on stderr."""
    from fer.inference.faces import FacePipeline

    if pipeline is None:
        from fer.detection.detector import MIN_FACE
        from fer.inference.weights import load_model

        net, _ = load_model(model)
        pipeline = FacePipeline(net, min_face=min_face or MIN_FACE, face_mode=face_mode)
    listing = list_inputs([inputs] if isinstance(inputs, (str, Path)) else inputs)
    columns = photo_columns(pipeline.classes, clips=listing.clips > 0)
    rows: list[dict] = []
    items = iter_files(listing, pipeline)
    if progress:
        import sys

        from tqdm import tqdm

        items = tqdm(items, total=len(listing.files), unit="file", file=sys.stderr)
    for item in items:
        if isinstance(item, PhotoResult):
            rows += photo_rows(columns, item)
        else:
            rows += clip_table(pipeline, columns, item, fps=fps, smooth=smooth)
    return _frame(rows, columns, pipeline.classes)


@dataclass
class ClipItem:
    path: str  # a clip of the listing: analysed by the caller (frames stream out as they are read)


def iter_files(
    listing: Listing, pipeline, *, skip: set[str] = frozenset(), keep_images: bool = False, lanes: int = LANES
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
            yield from analyze_photos(pipeline, [p for p, _ in todo[start:end]], keep_images=keep_images, lanes=lanes)
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
