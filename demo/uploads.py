"""Keeping nothing users send: uploads deleted after their analysis, the upload folder swept, memory given back.

    python -c "from demo.uploads import sweep_uploads; help(sweep_uploads)"

Each upload is deleted `UPLOAD_GRACE_S` after it has been analysed (or refused), and a sweeper keeps Gradio's
upload folder (`GRADIO_TEMP_DIR`) below `FER_UPLOAD_CEILING_MB` (default 500 MB) and free of files older than
`UPLOAD_MAX_AGE_S`, such as files sent to `/gradio_api/upload` and never analysed. After each request the
allocator gives freed memory back to the system, so a burst of large photos does not leave the server large.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from pathlib import Path

import gradio as gr
from gradio.utils import NamedString

log = logging.getLogger("demo")

EXAMPLES_DIR = Path(__file__).parent / "examples"
EXAMPLES = {  # the page's example photos and their captions (demo/examples/LICENSES.md); their copies are never swept
    EXAMPLES_DIR / "astronaut.png": "astronaut",
    EXAMPLES_DIR / "grace_hopper.jpg": "Grace Hopper",
    EXAMPLES_DIR / "camera.png": "cameraman",
}
EXAMPLE_CLIPS = [EXAMPLES_DIR / "walk.mp4"]  # the /predict_video API's example: astronaut.png moving across
UPLOAD_GRACE_S = 30.0  # an analysed upload is deleted this long after its analysis (see discard_upload)
UPLOAD_MAX_AGE_S = 600  # files in the upload folder older than this are removed (uploads never analysed)
SWEEP_EVERY_S = 30  # how often the upload folder is swept
DEFAULT_UPLOAD_CEILING_MB = 500  # the upload folder is kept below this (FER_UPLOAD_CEILING_MB)


class PhotoFile(gr.File):
    """`gr.File(type="filepath")` without the empty temporary file Gradio 6 creates in the upload folder for
    every request (`File._process_single_file` opens a NamedTemporaryFile it never uses or removes)."""

    is_template = True  # the page config and the "Use via API" view call it a File, as it is to the front end

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
        return any(
            path.name == ex.name and path.stat().st_size == ex.stat().st_size
            for ex in [*EXAMPLES, *EXAMPLE_CLIPS]
            if ex.exists()
        )
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
