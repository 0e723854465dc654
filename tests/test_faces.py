"""The face pipeline of the demo and `fer predict`: reading what users send, detecting, cropping, classifying.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_faces.py

Needs ../shared/data/photos for the tests on real photos (skipped, with the reason, without it).
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

import fer.data.preprocess
import fer.inference.faces
from fer import LABELS
from fer.inference.faces import (
    FER_BOX_DX,
    FER_BOX_DY,
    FER_BOX_HEIGHT,
    FER_BOX_WIDTH,
    FacePipeline,
    annotate,
    crop_box,
    crop_faces,
)
from fer.inference.images import ImageError, read_image
from fer.model import create_model
from tests.conftest import PHOTOS, fer_cli, need_shared


class CountingModel(torch.nn.Module):
    """The classifier, counting its forward calls and the batch sizes it saw."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.inner(x)


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    torch.manual_seed(0)
    return FacePipeline(create_model().eval())


def photo(name: str) -> Image.Image:
    return read_image(need_shared(PHOTOS) / name)


def group_frame() -> Image.Image:
    """1280×720, four faces: head-and-shoulders tiles of astronaut and camera and their mirror images."""
    a = photo("astronaut.png").crop((96, 0, 352, 256)).resize((300, 300), Image.Resampling.BICUBIC)
    c = photo("camera.png").crop((120, 60, 330, 270)).resize((300, 300), Image.Resampling.BICUBIC)
    frame = Image.new("RGB", (1280, 720), (90, 90, 90))
    for i, tile in enumerate((a, c, ImageOps.mirror(a), ImageOps.mirror(c))):
        frame.paste(tile, (20 + i * 315, 210))
    return frame


def check_face(face, width: int, height: int) -> None:
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert list(face.probabilities) == list(LABELS)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.emotion == max(face.probabilities, key=face.probabilities.get)
    assert 0 < face.score <= 1 and face.whole_image is False


# --- the pipeline on real photos ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n_faces", [("astronaut.png", 1), ("camera.png", 1), ("chelsea.png", 0), ("coffee.png", 0)]
)
def test_reference_photos(pipeline, name, n_faces):
    image = photo(name)
    analysis = pipeline.analyze(image)
    assert len(analysis.faces) == analysis.total_found == n_faces
    assert (analysis.width, analysis.height) == image.size and not analysis.capped
    for face in analysis.faces:
        check_face(face, *image.size)
    if n_faces == 0:
        assert analysis.message == "no face found"
    d = analysis.to_dict()
    assert set(d) == {"faces", "width", "height", "capped", "total_found", "message"}
    for f in d["faces"]:
        assert set(f) == {"box", "score", "emotion", "probabilities", "whole_image"}
    json.dumps(d)  # plain types only


def test_group_frame_one_batch_left_to_right(pipeline):
    counting = CountingModel(pipeline.model)
    pipeline.set_model(counting)
    try:
        analysis = pipeline.analyze(group_frame())
    finally:
        pipeline.set_model(counting.inner)
    assert len(analysis.faces) >= 3
    assert counting.batches == [len(analysis.faces)]  # every face of the image in ONE forward call
    assert [f.box[0] for f in analysis.faces] == sorted(f.box[0] for f in analysis.faces)
    for face in analysis.faces:
        check_face(face, 1280, 720)
    assert analysis.message == f"{len(analysis.faces)} faces found"


def test_no_face_no_forward_call(pipeline):
    counting = CountingModel(pipeline.model)
    pipeline.set_model(counting)
    try:
        assert pipeline.analyze(photo("coffee.png")).faces == []
    finally:
        pipeline.set_model(counting.inner)
    assert counting.batches == []


def test_max_faces_keeps_the_largest():
    frame = group_frame()
    capped = FacePipeline(create_model().eval(), max_faces=2).analyze(frame)
    assert capped.capped and capped.total_found >= 3 and len(capped.faces) == 2
    assert capped.message == f"showing the 2 largest of {capped.total_found} faces"
    everything = FacePipeline(create_model().eval(), max_faces=20).analyze(frame)
    areas = sorted(((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in everything.faces), reverse=True)
    assert sorted(((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in capped.faces), reverse=True) == areas[:2]


def test_set_model_serves_the_new_model(pipeline):
    old = pipeline.model
    new = CountingModel(create_model().eval())
    pipeline.set_model(new)
    try:
        assert pipeline.model is new
        pipeline.analyze(photo("astronaut.png"))
        assert new.batches == [1]
    finally:
        pipeline.set_model(old)


def test_a_scaled_jpeg_is_searched_for_faces_of_min_face_in_its_own_pixels(pipeline, tmp_path):
    big = Image.new("RGB", (6000, 4000), (120, 120, 120))
    big.paste(photo("astronaut.png").resize((3000, 3000), Image.Resampling.BILINEAR), (1500, 500))
    path = tmp_path / "big.jpg"
    big.save(path, quality=80)
    image = read_image(path)
    assert image.size == (3000, 2000) and image.info["original_size"] == (6000, 4000)  # DCT-scaled by 1/2
    seen = []
    detect = pipeline.detector.detect

    def spy(img, min_face):
        seen.append((img.size, min_face))
        return detect(img, min_face)

    pipeline.detector.detect = spy
    try:
        analysis = pipeline.analyze(image, min_face=400)
    finally:
        del pipeline.detector.detect
    assert seen == [((3000, 2000), 200)]  # 400 px of the file are 200 px of the decoded image
    assert len(analysis.faces) == 1 and (analysis.width, analysis.height) == (6000, 4000)
    x1, y1, x2, y2 = analysis.faces[0].box  # back in the original's pixels: astronaut's face is ~500 px wide there
    assert 1500 < x1 < x2 < 4500 and 400 < x2 - x1 < 700


def test_tiny_and_thin_images(pipeline):
    analysis = pipeline.analyze(Image.new("RGB", (20, 20), (200, 180, 160)), face_mode="detect", min_face=12)
    assert analysis.faces == [] and analysis.message == "no face found"
    flat = Image.new("RGB", (20, 20), (200, 180, 160))  # one grey level: not read whole, and too small to search
    with pytest.raises(ValueError, match=r"smallest face size 40 px is larger than the image \(20×20 px\)"):
        pipeline.analyze(flat)
    rng = np.random.default_rng(0)
    for size in ((20, 20), (1, 2)):
        blank = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        whole = pipeline.analyze(blank)  # auto: small, nothing detected: read as one face
        assert [f.whole_image for f in whole.faces] == [True] and whole.faces[0].box == [0, 0, *size]
    with pytest.raises(ValueError, match=r"smallest face size 40 px is larger than the image \(4000×3 px\)"):
        pipeline.analyze(Image.new("RGB", (4000, 3), (200, 180, 160)))


# --- every face of 40 px and up ----------------------------------------------------------------------------


def tiled(size: tuple[int, int], n: int, side: int) -> Image.Image:
    """n copies of astronaut.png, each side×side, in rows on a grey canvas (the face is ~40% of the tile)."""
    frame = Image.new("RGB", size, (90, 90, 90))
    tile = photo("astronaut.png").resize((side, side), Image.Resampling.BICUBIC)
    cols = (size[0] - 10) // (side + 10)
    for i in range(n):
        frame.paste(tile, (10 + (i % cols) * (side + 10), 10 + (i // cols) * (side + 10)))
    return frame


@pytest.mark.parametrize("size, n, side", [((1280, 720), 4, 360), ((1920, 1080), 10, 300)])
def test_hd_frames_every_face_found_by_fer_predict(tmp_path, size, n, side):
    from fer.inference.weights import save_weights

    weights = save_weights(create_model().eval(), tmp_path / "w.pt")
    frame = tmp_path / "frame.png"
    tiled(size, n, side).save(frame)
    proc = fer_cli("predict", str(frame), "--model", str(weights), "--json")
    faces = json.loads(proc.stdout)[0]["faces"]
    assert len(faces) == n
    widths = [f["box"][2] - f["box"][0] for f in faces]
    assert min(widths) >= 40 and not any(f["whole_image"] for f in faces)


def test_following_known_faces_gives_a_detections_boxes(pipeline):
    from torchvision.ops import box_iou

    frame = tiled((1280, 720), 4, 300)
    detected = pipeline.analyze(frame)
    boxes = [f.box for f in detected.faces]
    followed = pipeline.analyze(frame, near=boxes)  # a still scene: the same faces, the same places
    assert len(followed.faces) == len(detected.faces) == 4
    iou = box_iou(torch.tensor(boxes, dtype=torch.float), torch.tensor([f.box for f in followed.faces]).float())
    assert iou.diagonal().min() > 0.85
    # the scene moves by 20 px: the followed boxes move with the faces
    moved = Image.new("RGB", frame.size, (90, 90, 90))
    moved.paste(frame, (20, 10))
    after = pipeline.analyze(moved, near=boxes)
    assert len(after.faces) == 4
    shift = np.array([f.box for f in after.faces]) - np.array(boxes)
    assert np.abs(np.median(shift[:, [0, 2]]) - 20) < 6 and np.abs(np.median(shift[:, [1, 3]]) - 10) < 6
    # a face that left is dropped, not invented
    assert pipeline.analyze(Image.new("RGB", frame.size, (90, 90, 90)), near=boxes).faces == []


def test_min_face_is_in_image_pixels_at_every_size(pipeline):
    # faces about 60 px wide (tiles of 150 px) in a 640×480 and a 1920×1080 frame: found in both at 40,
    # in neither when the smallest face asked for is larger than they are
    for size in ((640, 480), (1920, 1080)):
        frame = tiled(size, 3, 150)
        assert len(pipeline.analyze(frame).faces) == 3
        assert pipeline.analyze(frame, min_face=120).faces == []


def test_min_face_below_the_window_or_above_the_image_is_refused(tmp_path):
    from fer.inference.weights import save_weights

    weights = save_weights(create_model().eval(), tmp_path / "w.pt")
    good = need_shared(PHOTOS) / "astronaut.png"
    low = fer_cli("predict", str(good), "--model", str(weights), "--min-face", "8", check=False)
    assert low.returncode == 2 and "--min-face: the smallest face size 8 px is below MTCNN's 12 px window" in low.stderr
    high = fer_cli("predict", str(good), str(good), "--model", str(weights), "--min-face", "600", "--json", check=False)
    assert high.returncode == 2
    errors = [r["error"] for r in json.loads(high.stdout)]
    assert (
        errors
        == [
            "astronaut.png: the smallest face size 600 px is larger than the image (512×512 px): "
            "no face that size fits in it"
        ]
        * 2
    )
    with pytest.raises(ValueError, match="below MTCNN's 12 px window"):
        FacePipeline(create_model().eval(), min_face=11)


def test_fer2013_file_is_one_whole_face_in_auto_and_detected_in_detect(tmp_path):
    from fer.inference.weights import save_weights
    from tests.conftest import FER2013

    model = create_model().eval()
    weights = save_weights(model, tmp_path / "w.pt")
    test_dir = need_shared(FER2013) / "test"
    path = sorted(sorted(test_dir.iterdir())[0].iterdir())[0]
    auto = json.loads(fer_cli("predict", str(path), "--model", str(weights), "--json").stdout)[0]["faces"]
    assert len(auto) == 1 and auto[0]["whole_image"] and auto[0]["box"] == [0, 0, 48, 48] and auto[0]["score"] is None
    detect = fer_cli("predict", str(path), "--model", str(weights), "--json", "--face-mode", "detect")
    assert not any(f["whole_image"] for f in json.loads(detect.stdout)[0]["faces"])  # MTCNN's boxes, if any
    # the same probabilities as evaluation's path gives the file: FER2013's pixels, normalised, one forward
    pixels = np.asarray(Image.open(path).convert("L"))[None]
    with torch.no_grad():
        expected = torch.softmax(model(fer.data.preprocess.normalize(pixels)), 1)[0].numpy()
    assert [auto[0]["probabilities"][k] for k in LABELS] == pytest.approx(expected.tolist(), abs=1e-5)


# --- the crop: FER2013's framing ---------------------------------------------------------------------------


def test_crop_inverts_the_measured_framing():
    # A box placed in a 192 px frame where the measured medians put MTCNN's box: the crop is that frame.
    left, top, side = 100.0, 50.0, 192.0
    w, h = FER_BOX_WIDTH * side, FER_BOX_HEIGHT * side
    cx, cy = left + side / 2 + FER_BOX_DX * side, top + side / 2 + FER_BOX_DY * side
    got = crop_box([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    assert got == pytest.approx((left, top, side), abs=1e-6)


def test_crop_faces_shapes_and_edges():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    boxes = [[10, 10, 60, 70], [-30, -20, 40, 60], [130, 90, 190, 150]]  # inside, past the top-left, past bottom-right
    crops = crop_faces(image, boxes)
    assert crops.shape == (3, 48, 48) and crops.dtype == np.uint8
    assert crops.std(axis=(1, 2)).min() > 0  # each crop holds image content, not padding alone
    assert crop_faces(image, []).shape == (0, 48, 48)
    assert fer.inference.faces.normalize is fer.data.preprocess.normalize  # the one normalisation training uses


def test_annotate_small_and_large(pipeline):
    image = photo("astronaut.png")
    analysis = pipeline.analyze(image)
    out = annotate(image, analysis)
    assert out.size == image.size and out.mode == "RGB"
    assert np.abs(np.asarray(out, int) - np.asarray(image, int)).sum() > 0
    small = image.resize((48, 48))
    scaled = pipeline.analyze(small)
    assert annotate(small, scaled).size == (480, 480)  # enlarged so the label can be read


# --- reading what users send -------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def palette_with_transparency() -> Image.Image:
    im = Image.new("P", (30, 20), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 15, 20))
    im.info["transparency"] = 0
    return im


def gradient16() -> Image.Image:
    return Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1)))


ODD_INPUTS = {
    "L": lambda: encode(Image.new("L", (30, 20), 77), "PNG"),
    "1": lambda: encode(Image.new("1", (30, 20), 1), "PNG"),
    "LA": lambda: encode(Image.new("LA", (30, 20), (50, 0)), "PNG"),
    "RGBA": lambda: encode(Image.new("RGBA", (30, 20), (255, 0, 0, 0)), "PNG"),
    "P": lambda: encode(Image.new("RGB", (30, 20), (10, 200, 30)).convert("P"), "GIF"),
    "P+transparency": lambda: encode(palette_with_transparency(), "PNG"),
    "I;16": lambda: encode(gradient16(), "PNG"),
    "I": lambda: encode(Image.fromarray(np.arange(600, dtype=np.int32).reshape(20, 30) * 1000), "TIFF"),
    "F": lambda: encode(Image.fromarray(np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30)), "TIFF"),
    "CMYK": lambda: encode(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"),
    "tiny": lambda: encode(Image.new("RGB", (20, 20), (1, 2, 3)), "PNG"),
}


@pytest.mark.parametrize("kind", list(ODD_INPUTS))
def test_every_mode_becomes_rgb(kind):
    data = ODD_INPUTS[kind]()
    im = read_image(data)
    assert im.mode == "RGB"
    assert im.size == Image.open(io.BytesIO(data)).size
    px = np.asarray(im, int)
    if kind in ("RGBA", "LA"):
        assert (px == 255).all()  # fully transparent: the white it is composited on
    if kind == "P+transparency":
        assert tuple(px[0, 0]) == (255, 0, 0) and tuple(px[0, -1]) == (255, 255, 255)
    if kind == "CMYK":
        assert tuple(px[0, 0]) == pytest.approx((255, 0, 0), abs=8)
    if kind in ("I;16", "I", "F"):
        grey = px[..., 0]
        assert grey.min() == 0 and grey.max() == 255  # stretched, not clipped to white
        assert 100 < np.median(grey) < 155


def test_sixteen_bit_is_scaled_not_clipped():
    row = np.asarray(read_image(encode(gradient16(), "PNG")), int)[0, :, 0]
    assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 50  # a ramp, not a wall of 255


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (60, 40), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 30, 40))  # left half red, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = read_image(encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (40, 60)
    top, bottom = np.asarray(out, int)[5, 20], np.asarray(out, int)[-5, 20]
    assert top[0] > 200 and top[2] < 60  # the stored left half is on top once displayed
    assert bottom[2] > 200 and bottom[0] < 60


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width×height pixels (its pixel data is a few bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def noisy_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    return encode(Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)), "JPEG", quality=90)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.txt", b"these are words, not pixels\n" * 20, "not an image"),
        ("half.jpg", noisy_jpeg()[: len(noisy_jpeg()) // 2], "truncated or corrupt"),
        ("bomb.png", png_declaring(30000, 30000), "decompression bomb"),
        ("big.png", png_declaring(8000, 8000), "8000×8000 pixels"),
        # a photo format's first bytes, then noise: corrupt whichever way the noise falls, never "not an image"
        *[(f"noise{i}.jpg", b"\xff\xd8\xff\xe0" + np.random.default_rng(i).bytes(2000), "corrupt") for i in range(8)],
        ("noise.png", b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(2000), "corrupt image (it starts as a PNG"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageError) as e:
        read_image(path)
    text = str(e.value)
    assert message in text and text.startswith(f"{name}: ")
    assert str(tmp_path) not in text and "Traceback" not in text
    assert len(data) < 50_000  # the bombs are rejected from their header: nothing was decoded


def test_limits_and_missing_files(tmp_path):
    with pytest.raises(ImageError, match="file too large"):
        read_image(noisy_jpeg(), max_bytes=1000)
    with pytest.raises(ImageError, match="too large: 200×200 pixels"):
        read_image(noisy_jpeg(), max_pixels=10_000)
    with pytest.raises(ImageError, match="^missing.png: no such file$"):
        read_image(tmp_path / "missing.png")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # what makes truncated files fail instead of turning grey


# --- the command line --------------------------------------------------------------------------------------


def test_predict_json_good_and_bad(tmp_path):
    from fer.inference.weights import save_weights

    weights = save_weights(create_model().eval(), tmp_path / "w.pt")
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    good = need_shared(PHOTOS) / "astronaut.png"
    out_dir = tmp_path / "annotated"
    proc = fer_cli(
        "predict", str(good), str(bad), "--model", str(weights), "--json", "--annotate", str(out_dir), check=False
    )
    assert proc.returncode == 2, proc.stderr
    results = json.loads(proc.stdout)  # stdout is the one JSON array, nothing else
    assert [r["image"] for r in results] == [str(good), str(bad)]
    assert results[0]["error"] is None and len(results[0]["faces"]) == 1
    face = results[0]["faces"][0]
    assert set(face) == {"box", "score", "emotion", "probabilities", "whole_image"} and list(
        face["probabilities"]
    ) == list(LABELS)
    assert results[1]["faces"] == [] and "not an image" in results[1]["error"]
    assert Image.open(out_dir / "astronaut.png").size == (512, 512)
    assert "Traceback" not in proc.stderr


# -- hostile JPEGs


def test_lying_jpegs_are_named_in_predict_json(tmp_path):
    from fer.inference.weights import save_weights
    from tests.conftest import cut_jpeg, lying_jpeg

    weights = save_weights(create_model().eval(), tmp_path / "w.pt")
    header_lie = tmp_path / "header-lie.jpg"
    header_lie.write_bytes(lying_jpeg())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(cut_jpeg(need_shared(PHOTOS) / "astronaut.png"))
    good = PHOTOS / "astronaut.png"
    proc = fer_cli("predict", str(header_lie), str(cut), str(good), "--model", str(weights), "--json", check=False)
    assert proc.returncode == 2, proc.stderr
    results = json.loads(proc.stdout)
    assert results[0]["error"] == (
        "header-lie.jpg: truncated or corrupt image (its header declares 8000×6000 pixels, more than its "
        f"{header_lie.stat().st_size:,} bytes can hold)"
    )
    assert results[1]["error"] == "cut.jpg: truncated or corrupt image (its pixels cannot be decoded)"
    assert results[2]["error"] is None and len(results[2]["faces"]) == 1  # and the next file is still read


def test_a_48_megapixel_jpeg_is_decoded_small_and_read_in_its_own_pixels(pipeline, tmp_path):
    from fer.inference.images import DECODE_MIN_SIDE, original_size, read_image

    face = Image.open(need_shared(PHOTOS) / "astronaut.png").convert("RGB").resize((3000, 3000))
    big = Image.new("RGB", (8000, 6000), (128, 128, 128))
    big.paste(face, (4000, 1500))
    path = tmp_path / "big.jpg"
    big.save(path, quality=85)
    del big, face
    image = read_image(path)
    assert original_size(image) == (8000, 6000)
    assert image.size == (4000, 3000) and max(image.size) >= DECODE_MIN_SIDE  # DCT-scaled by 1/2, not more
    analysis = pipeline.analyze(image, min_face=200)  # a 3000 px face; the small-face search is tested above
    assert (analysis.width, analysis.height) == (8000, 6000) and len(analysis.faces) == 1
    x1, y1, x2, y2 = analysis.faces[0].box  # in the file's pixels: the face pasted at (4000, 1500), 3000 px
    assert 4000 <= x1 < (x1 + x2) / 2 < x2 <= 7000 and 1500 <= y1 < (y1 + y2) / 2 < y2 <= 4500


def test_exif_orientation_holds_for_scaled_jpegs(tmp_path):
    from fer.inference.images import original_size, read_image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated a quarter turn
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (3000, 1500), (90, 90, 90)).save(path, exif=exif.tobytes())
    image = read_image(path)
    assert original_size(image) == (1500, 3000) and image.size == (1500, 3000)  # half of 3000 < 2048: whole
    big = tmp_path / "rotated-big.jpg"
    Image.new("RGB", (8800, 4400), (90, 90, 90)).save(big, exif=exif.tobytes())
    image = read_image(big)
    assert original_size(image) == (4400, 8800) and image.size == (1100, 2200)  # a quarter: 2200 >= 2048
