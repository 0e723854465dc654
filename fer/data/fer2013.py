"""FER2013 in the two forms users hold it, decoded once into a uint8 cache.

    python -m fer data ../shared/data/fer2013        # decode, cache, print counts

Folder layout: `<root>/<split>/<emotion>/<Usage>_<id>.jpg` (one folder per
emotion; the file-name prefix keeps the original `Usage`). Kaggle CSV:
`emotion,pixels,Usage` (also with a leading space in the column names).

Bad data never vanishes silently: an unreadable image is skipped and named, a
colour or wrongly sized image is converted and counted; an unknown emotion
folder, an empty split or a malformed CSV row is an error naming the file, the
line and what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fer import LABELS

SIZE = 48
USAGES = ("Training", "PublicTest", "PrivateTest")
SPLIT_USAGE = {"train": "Training", "test": "PublicTest", "public": "PublicTest", "private": "PrivateTest"}
# folder names people use besides the canonical ones
LABEL_ALIASES = {"anger": "angry", "scared": "fear", "surprised": "surprise", "happiness": "happy", "sadness": "sad"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".gif", ".tif", ".tiff", ".webp"}
CACHE_VERSION = 2


class DataError(ValueError):
    """The data set itself is wrong in a way a user must fix; the message says where."""


@dataclass
class Fer2013:
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, index into LABELS
    usage: np.ndarray  # (N,) int8, index into USAGES
    source: str  # what it was read from
    keys: np.ndarray  # (N,) str: each face's path under a folder ('train/angry/Training_1.jpg') or CSV row ('row:0')
    digest: str  # sha256 of the source's content
    skipped: list[str] = field(default_factory=list)  # "file: reason", not in the arrays
    converted: list[str] = field(default_factory=list)  # "file: what was done", in the arrays

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, usage: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one Usage; an error if it has none."""
        if usage not in USAGES:
            raise DataError(f"unknown split {usage!r}; expected one of {', '.join(USAGES)}")
        mask = self.usage_mask(usage)
        return self.images[mask], self.labels[mask]

    def usage_mask(self, usage: str) -> np.ndarray:
        """(N,) bool: the faces of one Usage; an error if it has none."""
        if usage not in USAGES:
            raise DataError(f"unknown split {usage!r}; expected one of {', '.join(USAGES)}")
        mask = self.usage == USAGES.index(usage)
        if not mask.any():
            present = [u for i, u in enumerate(USAGES) if (self.usage == i).any()]
            raise DataError(f"{self.source} has no {usage} images (it has: {', '.join(present) or 'none'})")
        return mask

    def summary(self) -> str:
        parts = [f"{len(self)} images from {self.source}"]
        for i, u in enumerate(USAGES):
            n = int((self.usage == i).sum())
            if n:
                parts.append(f"{u} {n}")
        if self.converted:
            parts.append(f"{len(self.converted)} converted")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return ", ".join(parts)


def label_index(name: str) -> int | None:
    name = name.strip().lower()
    name = LABEL_ALIASES.get(name, name)
    return LABELS.index(name) if name in LABELS else None


def decode_gray48(data: bytes, name: str, converted: list[str]) -> np.ndarray:
    """Image bytes -> (48, 48) uint8; raises ValueError when unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            notes = []
            if im.mode not in ("L", "I;16", "I", "F"):
                notes.append(f"{im.mode} to grayscale")
            im = im.convert("L")
            if im.size != (SIZE, SIZE):
                notes.append(f"resized from {im.size[0]}x{im.size[1]}")
                im = im.resize((SIZE, SIZE), Image.BILINEAR)
            if notes:
                converted.append(f"{name}: {', '.join(notes)}")
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"not a readable image ({e.__class__.__name__})") from e


# ---------------------------------------------------------------- readers


def _folder_entries(root: Path) -> list[tuple[Path, int, int]]:
    """(path, label, usage) for every image under root, in a stable order."""
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    # a root that is itself one split (emotion folders directly inside) is accepted too
    if split_dirs and all(label_index(d.name) is not None for d in split_dirs):
        split_dirs = [root]
    entries = []
    for split_dir in split_dirs:
        for emo_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            label = label_index(emo_dir.name)
            if label is None:
                raise DataError(
                    f"{emo_dir}: unknown emotion folder {emo_dir.name!r}; expected one of {', '.join(LABELS)}"
                )
            files = sorted(p for p in emo_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            for p in files:
                prefix = p.name.split("_", 1)[0]
                if prefix in USAGES:
                    usage = USAGES.index(prefix)
                elif split_dir.name.lower() in SPLIT_USAGE:
                    usage = USAGES.index(SPLIT_USAGE[split_dir.name.lower()])
                else:
                    raise DataError(
                        f"{p}: cannot tell its split; expected a file name starting with one of "
                        f"{', '.join(USAGES)} or a split folder named {', '.join(SPLIT_USAGE)}"
                    )
                entries.append((p, label, usage))
    if not entries:
        raise DataError(f"{root}: no images found; expected <split>/<emotion>/<Usage>_<id>.jpg")
    return entries


def read_folder(root: str | Path, cache_dir: str | Path | None = None, quiet: bool = False) -> Fer2013:
    root = Path(root)
    entries = _folder_entries(root)
    blobs, h = [], hashlib.sha256(f"fer-folder-v{CACHE_VERSION}".encode())
    for p, label, usage in entries:
        data = p.read_bytes()
        blobs.append(data)
        h.update(f"{p.relative_to(root)}\0{label}\0{usage}\0{len(data)}\0".encode())
        h.update(data)
    digest = h.hexdigest()
    cached = _load_cache(cache_dir, digest, str(root))
    if cached is not None:
        return cached
    images, labels, usages, keys, skipped, converted = [], [], [], [], [], []
    for (p, label, usage), data in _progress(list(zip(entries, blobs)), f"decoding {root}", quiet):
        name = p.relative_to(root).as_posix()
        try:
            images.append(decode_gray48(data, name, converted))
        except ValueError as e:
            skipped.append(f"{name}: {e}")
            continue
        labels.append(label)
        usages.append(usage)
        keys.append(name)
    ds = _build(images, labels, usages, keys, str(root), digest, skipped, converted)
    _save_cache(cache_dir, ds)
    return ds


def read_csv(path: str | Path, cache_dir: str | Path | None = None, quiet: bool = False) -> Fer2013:
    path = Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(f"fer-csv-v{CACHE_VERSION}".encode() + data).hexdigest()
    cached = _load_cache(cache_dir, digest, str(path))
    if cached is not None:
        return cached
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a header 'emotion,pixels,Usage'")
    cols = [c.strip().lower() for c in header]
    need = ("emotion", "pixels", "usage")
    if any(c not in cols for c in need):
        raise DataError(f"{path}:1: header {','.join(header)!r}; expected the columns emotion,pixels,Usage")
    ie, ip, iu = (cols.index(c) for c in need)
    usage_lower = {u.lower(): i for i, u in enumerate(USAGES)}
    images, labels, usages, keys = [], [], [], []
    row_index = -1  # the data row's number, from 0: what FER+ names a face of fer2013.csv by
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        row_index += 1
        where = f"{path}:{lineno}"
        if len(row) != len(cols):
            raise DataError(f"{where}: {len(row)} fields; expected {len(cols)} ({','.join(header)})")
        try:
            label = int(row[ie])
        except ValueError:
            raise DataError(f"{where}: emotion {row[ie]!r}; expected an integer 0-6") from None
        if not 0 <= label < len(LABELS):
            raise DataError(f"{where}: emotion {label}; expected an integer 0-6")
        usage = usage_lower.get(row[iu].strip().lower())
        if usage is None:
            raise DataError(f"{where}: Usage {row[iu]!r}; expected one of {', '.join(USAGES)}")
        try:
            pixels = np.array(row[ip].split(), dtype=np.int64)
        except ValueError:
            raise DataError(f"{where}: pixels are not all integers; expected {SIZE * SIZE} values 0-255") from None
        if pixels.size != SIZE * SIZE or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
            raise DataError(f"{where}: {pixels.size} pixel values; expected {SIZE * SIZE} values 0-255")
        images.append(pixels.astype(np.uint8).reshape(SIZE, SIZE))
        labels.append(label)
        usages.append(usage)
        keys.append(f"row:{row_index}")
    ds = _build(images, labels, usages, keys, str(path), digest, [], [])
    _save_cache(cache_dir, ds)
    return ds


def load(source: str | Path, cache_dir: str | Path | None = None, quiet: bool = False) -> Fer2013:
    """A FER2013 folder or CSV; reports converted and skipped files on stderr."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder; expected a FER2013 folder or CSV")
    ds = read_folder(source, cache_dir, quiet) if source.is_dir() else read_csv(source, cache_dir, quiet)
    if not quiet:
        for kind, items in (("converted", ds.converted), ("skipped", ds.skipped)):
            if items:
                shown = "; ".join(items[:5]) + (f"; ... {len(items) - 5} more" if len(items) > 5 else "")
                print(f"data: {len(items)} {kind}: {shown}", file=sys.stderr)
    return ds


def _build(images, labels, usages, keys, source, digest, skipped, converted) -> Fer2013:
    if not images:
        raise DataError(f"{source}: no readable images ({len(skipped)} skipped)")
    return Fer2013(
        images=np.stack(images).astype(np.uint8),
        labels=np.asarray(labels, dtype=np.int64),
        usage=np.asarray(usages, dtype=np.int8),
        source=source,
        keys=np.asarray(keys, dtype=str),
        digest=digest,
        skipped=skipped,
        converted=converted,
    )


# ---------------------------------------------------------------- splits


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): `fraction` of each class held out, chosen by `seed`."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n = int(round(fraction * len(idx)))
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def train_val_index(ds: Fer2013, val: str = "split", fraction: float = 0.2, seed: int = 0):
    """(train, val) indices into `ds`: 20% of Training held out, stratified by label (the paper's), or PublicTest."""
    training = np.flatnonzero(ds.usage_mask("Training"))
    if val == "public":
        return training, np.flatnonzero(ds.usage_mask("PublicTest"))
    if val != "split":
        raise DataError(f"unknown validation {val!r}; expected 'split' (of Training) or 'public'")
    keep, held = stratified_split(ds.labels[training], fraction, seed)
    return training[keep], training[held]


def train_val(ds: Fer2013, val: str = "split", fraction: float = 0.2, seed: int = 0):
    """(x_train, y_train), (x_val, y_val): 20% of Training, stratified (the paper's), or PublicTest."""
    tr, va = train_val_index(ds, val, fraction, seed)
    return (ds.images[tr], ds.labels[tr]), (ds.images[va], ds.labels[va])


# ---------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer")


def _cache_path(cache_dir, digest: str) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"fer2013-{digest[:24]}.npz"


def _load_cache(cache_dir, digest: str, source: str) -> Fer2013 | None:
    p = _cache_path(cache_dir, digest)
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            return Fer2013(
                images=z["images"],
                labels=z["labels"],
                usage=z["usage"],
                source=source,
                keys=z["keys"],
                digest=digest,
                skipped=[str(s) for s in z["skipped"]],
                converted=[str(s) for s in z["converted"]],
            )
    except (OSError, KeyError, ValueError):
        return None  # a damaged cache is rebuilt from the source


def _save_cache(cache_dir, ds: Fer2013) -> None:
    p = _cache_path(cache_dir, ds.digest)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            images=ds.images,
            labels=ds.labels,
            usage=ds.usage,
            keys=ds.keys,
            skipped=np.asarray(ds.skipped, dtype=str),
            converted=np.asarray(ds.converted, dtype=str),
        )
        os.replace(tmp, p)
    except OSError as e:  # a read-only home still trains, only slower next time
        print(f"data: could not write cache {p}: {e}", file=sys.stderr)


def _progress(items, desc: str, quiet: bool):
    if quiet or len(items) < 2000:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", file=sys.stderr, mininterval=1.0)
