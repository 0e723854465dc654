"""Read the images users really send into RGB, or say in one line why not.

    python -c "from fer.inference.images import read_image; print(read_image('photo.jpg'))"

`read_image` takes a path or the bytes of an upload and returns an RGB image
with its EXIF orientation applied. Every mode Pillow decodes is brought to
RGB: transparency is composited on white, 16-bit and float images are
stretched to 8 bits (not clipped). Whatever is wrong with the input (empty,
not an image, truncated, too large, a decompression bomb) raises `ImageError`,
whose message names the file and the problem and is safe to show a user.

JPEGs (most uploads) are decoded by libjpeg-turbo through simplejpeg, in
strict mode, so entropy-coded data that ends before the last row is an error
even when an end-of-image marker was appended (libjpeg alone only warns and
fills the rest with grey), and with DCT scaling: a photo whose long side is
over `DECODE_MIN_SIDE` is decoded at 1/2, 1/4 or 1/8 of its size, as long as
it keeps at least that many pixels, so a 48-megapixel photo costs tens of MB,
not hundreds. `image.info["original_size"]` then holds the size of the file's
own pixels (after EXIF orientation), and `fer.inference.faces` reports boxes in them.
A JPEG whose header declares more pixels than its bytes can hold is refused
before any pixel is decoded.
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
# JPEGs are decoded at the smallest 1/1, 1/2, 1/4 or 1/8 scale whose long side keeps this many pixels: above
# the 1920 px of a full-HD frame, so a face keeps 5/6 or more of the pixels it had in an HD frame of the scene.
DECODE_MIN_SIDE = 2048
# Every 8×8 block of a Huffman-coded JPEG's luminance costs at least one bit (its DC code), so a file with
# fewer bits than blocks declares a size its data cannot hold: a header lie or a truncated file.
_MIN_BITS_PER_BLOCK = 1

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
    im = _open(data, name, max_pixels)
    if im.format == "JPEG":
        return _decode_jpeg(im, data, name)
    try:
        im.load()  # decode every pixel now, so a truncated or corrupt file fails here and not later
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_where(name, _too_many_pixels(max_pixels))) from None
    except Exception:  # noqa: BLE001 - decoders raise OSError, ValueError, SyntaxError... on bad data
        raise ImageError(_where(name, _TRUNCATED)) from None
    return _finish(im, name)


_TRUNCATED = "truncated or corrupt image (its pixels cannot be decoded)"
_ORIENTATION = 0x0112  # EXIF tag
_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the image a quarter


def _decode_jpeg(header: Image.Image, data: bytes, name: str) -> Image.Image:
    """Strict, DCT-scaled decoding of a JPEG whose header Pillow has read (size already checked)."""
    import simplejpeg

    w, h = header.size
    blocks = -(-w // 8) * -(-h // 8)
    if len(data) * 8 < blocks * _MIN_BITS_PER_BLOCK:
        raise ImageError(
            _where(
                name,
                f"truncated or corrupt image (its header declares {w}×{h} pixels, more than its "
                f"{len(data):,} bytes can hold)",
            )
        )
    n = jpeg_scale(w, h)
    grey = header.mode == "L"
    try:
        orientation = int(header.getexif().get(_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a malformed EXIF block should not cost the user the picture
        orientation = 1
    try:
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if grey else "RGB",
            min_width=-(-w // n),
            min_height=-(-h // n),
            strict=True,  # a libjpeg warning (data ends early, corrupt segment) is an error
        )
    except Exception:  # noqa: BLE001 - simplejpeg raises ValueError and others on bad data
        raise ImageError(_where(name, _TRUNCATED)) from None
    im = Image.fromarray(pixels[..., 0] if grey else pixels, "L" if grey else "RGB")
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        im.info["exif"] = _orientation_only(orientation)
        im = ImageOps.exif_transpose(im)
    original = (h, w) if orientation in _SWAPS_SIDES else (w, h)
    im = to_rgb(im)
    if im.size != original:
        im.info["original_size"] = original
    return im


def jpeg_scale(width: int, height: int) -> int:
    """The DCT scale a JPEG of this size is decoded at: 1, 2, 4 or 8 (the smallest size whose long side keeps
    DECODE_MIN_SIDE pixels)."""
    n = 1
    while n < 8 and max(width, height) / (2 * n) >= DECODE_MIN_SIDE:
        n *= 2
    return n


def _orientation_only(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    return exif.tobytes()


def original_size(image: Image.Image) -> tuple[int, int]:
    """The size of the file's own pixels (after EXIF orientation): larger than `image.size` for a JPEG that
    was decoded with DCT scaling."""
    return tuple(image.info.get("original_size", image.size))


def _finish(im: Image.Image, name: str) -> Image.Image:
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a malformed EXIF block should not cost the user the picture
        pass
    try:
        return to_rgb(im)
    except ImageError as e:
        raise ImageError(_where(name, str(e))) from None


_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _signature(data: bytes) -> str:
    """The photo format whose magic bytes `data` starts with ("" for none): tells a corrupt photo from a file that
    is not one."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), "")


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Pillow's lazy open: the header only, with the size checks."""
    # Truncated files must fail here rather than decode to a grey half: this relies on Pillow's default
    # ImageFile.LOAD_TRUNCATED_IMAGES = False, which this module never changes.
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_where(name, _too_many_pixels(max_pixels))) from None
    except UnidentifiedImageError:
        kind = _signature(data)
        if kind:  # the first bytes of a photo format, then something Pillow cannot parse
            problem = f"corrupt image (it starts as a {kind} does, but its header cannot be read)"
            raise ImageError(_where(name, problem)) from None
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
    return im


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
    if hi <= lo:  # no contrast to stretch, as in fer.data.preprocess.normalize
        return Image.new("L", im.size, 0)
    out = np.where(finite, (a - lo) * (255.0 / (hi - lo)), 0.0)
    return Image.fromarray(np.rint(out).astype(np.uint8))
