"""Read the images users really send into RGB, or say in one line why not.

    python -c "from fer.images import read_image; print(read_image('photo.jpg'))"

`read_image` takes a path or the bytes of an upload and returns an RGB image
with its EXIF orientation applied. Every mode Pillow decodes is brought to
RGB: transparency is composited on white, 16-bit and float images are
stretched to 8 bits (not clipped). Whatever is wrong with the input (empty,
not an image, truncated, too large, a decompression bomb) raises `ImageError`,
whose message names the file and the problem and is safe to show a user.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20_000_000  # a phone photo is 2-8 MB; anything far above is not a photo of faces
MAX_PIXELS = 50_000_000  # a 50-megapixel camera; checked from the header, before any pixel is decoded

# Pillow's DecompressionBombWarning is a global-state warning; `catch_warnings` is not thread-safe,
# so the (cheap, header-only) open() that emits it runs under a lock.
_OPEN_LOCK = threading.Lock()


class ImageError(ValueError):
    """The input is not an image this product can use; the message says why, for the user."""


def _where(name: str, problem: str) -> str:
    return f"{name}: {problem}" if name else problem


def read_image(
    source: str | Path | bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """An RGB image from a file path or the bytes of an upload.

    `name` is what error messages call the input (default: the file name, or nothing for bytes).
    A `max_pixels` above Pillow's own bomb limit (`Image.MAX_IMAGE_PIXELS`, ~89 megapixels) has no effect:
    Pillow's check refuses such images first, and that refusal is reported the same way.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or ""
        if len(data) > max_bytes:
            raise ImageError(_where(name, _too_many_bytes(len(data), max_bytes)))
    else:
        path = Path(source)
        name = name or path.name
        try:
            if path.is_dir():
                raise ImageError(_where(name, "is a folder, not an image file"))
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageError(_where(name, _too_many_bytes(size, max_bytes)))
            with path.open("rb") as f:
                data = f.read(max_bytes + 1)  # a file that grows while we read still cannot exceed the limit
        except FileNotFoundError:
            raise ImageError(_where(name, "no such file")) from None
        except PermissionError:
            raise ImageError(_where(name, "cannot be read (permission denied)")) from None
        except OSError as e:
            raise ImageError(_where(name, f"cannot be read ({e.strerror or e.__class__.__name__})")) from None
        if len(data) > max_bytes:
            raise ImageError(_where(name, _too_many_bytes(len(data), max_bytes)))
    if not data:
        raise ImageError(_where(name, "empty file (0 bytes)"))
    return _decode(data, name, max_pixels)


def _too_many_bytes(n: int, limit: int) -> str:
    return f"file too large ({n / 1e6:.1f} MB; the limit is {limit / 1e6:g} MB)"


def _too_many_pixels(limit: int, w: int | None = None, h: int | None = None) -> str:
    size = f"{w}×{h} pixels" if w is not None else "its declared size"
    return (
        f"image too large: {size} is more than the {limit / 1e6:g} megapixels this product decodes "
        "(a decompression bomb, or a photo to downscale first)"
    )


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    # Truncated files must fail here rather than decode to a grey half: this relies on Pillow's default
    # ImageFile.LOAD_TRUNCATED_IMAGES = False, which this module never changes.
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_where(name, _too_many_pixels(max_pixels))) from None
    except UnidentifiedImageError:
        raise ImageError(
            _where(name, "not an image, or in a format this product cannot read (send a JPEG, PNG, WebP, BMP or TIFF)")
        ) from None
    except Exception:  # noqa: BLE001 - header parsers raise SyntaxError, struct.error, OSError... on garbage
        raise ImageError(_where(name, "corrupt image (its header cannot be read)")) from None

    w, h = im.size
    if w * h > max_pixels:  # before load(): the header alone tells how much memory decoding would take
        raise ImageError(_where(name, _too_many_pixels(max_pixels, w, h)))
    if w < 1 or h < 1:
        raise ImageError(_where(name, f"corrupt image (it declares {w}×{h} pixels)"))
    try:
        im.load()  # decode every pixel now, so a truncated or corrupt file fails here and not later
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_where(name, _too_many_pixels(max_pixels))) from None
    except Exception:  # noqa: BLE001 - decoders raise OSError, ValueError, SyntaxError... on bad data
        raise ImageError(_where(name, "truncated or corrupt image (its pixels cannot be decoded)")) from None

    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a malformed EXIF block should not cost the user the picture
        pass
    try:
        return to_rgb(im)
    except ImageError as e:
        raise ImageError(_where(name, str(e))) from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: alpha composited on white, 16-bit/32-bit/float stretched to 8 bits."""
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _stretch_to_8bit(im).convert("RGB")
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        if mode == "La":  # premultiplied; Pillow converts it only through LA
            im = im.convert("LA")
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return im
    try:
        return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX
    except ValueError:
        raise ImageError(f"unsupported colour mode {mode}") from None


def _stretch_to_8bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey levels -> L, min..max mapped to 0..255.

    Clipping (what `convert("L")` does to values above 255) turns most 16-bit photos white. A fixed /257
    would keep a 16-bit photo's exposure but reduce a 12-bit sensor image in a 16-bit file to 16 grey
    levels; stretching the range actually used serves both, and the classifier stretches each face anyway.
    """
    a = np.asarray(im.convert("I") if im.mode.startswith("I;16") and im.mode != "I;16" else im)
    a = a.astype(np.float32)
    finite = np.isfinite(a)
    if not finite.any():
        return Image.new("L", im.size, 0)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    if hi <= lo:  # no contrast to stretch, as in fer.preprocess.normalize
        return Image.new("L", im.size, 0)
    out = np.where(finite, (a - lo) * (255.0 / (hi - lo)), 0.0)
    return Image.fromarray(np.rint(out).astype(np.uint8))
