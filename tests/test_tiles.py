"""P-net in tiles: a 48-megapixel photo is searched in bounded memory and gives the faces of the whole-level run.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_tiles.py

The photo is built here from ../shared/data/realphotos-dev (skipped, with the reason, without it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fer.detection.detector import FaceDetector
from tests.conftest import SHARED, need_shared

REAL_PHOTOS = SHARED / "data" / "realphotos-dev" / "images"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as a serving worker runs: two threads on small networks beside other jobs cost 3× here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def big_photo() -> Image.Image:
    """A 48-megapixel photo as the detector sees it (a 8000×6000 JPEG is decoded at half size: 4000×3000), a
    gradient with grain and six faces of 250-700 px, one across a tile border and one at the right edge."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    grey = 90 + 50 * x / 4000 + 30 * y / 3000 + rng.normal(0, 4, (3000, 4000))
    photo = Image.fromarray(np.clip(np.stack([grey, grey * 0.9, grey * 0.8], 2), 0, 255).astype(np.uint8))
    sources = sorted(need_shared(REAL_PHOTOS).glob("*.jpg"))[:60:10]
    places = [(300, 300, 250), (1100, 150, 400), (2300, 700, 700), (400, 1700, 500), (1650, 2000, 300)]
    places.append((3500, 1200, 500))  # past the right edge
    for src, (left, top, side) in zip(sources, places):
        photo.paste(Image.open(src).convert("RGB").resize((side, side), Image.Resampling.BICUBIC), (left, top))
    return photo


def test_a_48_megapixel_photo_in_tiles_finds_the_faces_of_the_whole_levels():
    detector = FaceDetector()
    photo = big_photo()
    min_face = 20  # the default 40 px of the file's own pixels, at half size
    biggest = []
    pnet = detector.pnet
    detector.pnet = lambda x: biggest.append(max(x.shape[-2:])) or pnet(x)

    detector.tile = None
    whole, whole_scores = detector.detect(photo, min_face)
    assert max(biggest) > 2000  # the first level (2400×1800) in one piece
    biggest.clear()
    detector.tile = FaceDetector.tile
    tiled, tiled_scores = detector.detect(photo, min_face)
    assert max(biggest) <= detector.tile  # never a larger piece of a level than a tile

    assert len(whole) >= 5  # the faces pasted (one may be framed too tightly to count)
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled, whole, atol=0.05)  # the same boxes, to float rounding of the offsets
    np.testing.assert_allclose(tiled_scores, whole_scores, atol=1e-5)


@pytest.mark.parametrize("size", [(301, 217), (1031, 777), (780, 1290)])
def test_tiles_give_every_cell_of_the_whole_level(size):
    """Odd and even sizes: the last tile of a row ends on P-net's partial pooling window, as the level does."""
    torch.manual_seed(0)
    detector = FaceDetector(thresholds=(0.3, 0.7, 0.8))  # a low first threshold: many cells to compare
    level = Image.fromarray(np.random.default_rng(1).integers(0, 256, (*size[::-1], 3), dtype=np.uint8))
    detector.tile = None
    whole = detector._pnet(level)
    detector.tile = 64
    tiled = detector._pnet(level)
    assert len(whole[0]) > 20
    assert torch.equal(tiled[0], whole[0])  # the same cells, in the same order
    for a, b in zip(tiled[1:], whole[1:]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
