import numpy as np
import pytest
import torch

from fer.data.augment import AugmentConfig, augment
from fer.data.preprocess import normalize


def test_normalize_stretches_each_image_to_unit_range():
    x = np.stack([np.full((48, 48), 100, np.uint8), np.arange(48 * 48).reshape(48, 48) % 200 + 20]).astype(np.uint8)
    y = normalize(x)
    assert y.shape == (2, 1, 48, 48) and y.dtype == torch.float32
    assert torch.all(y[0] == 0)  # a flat image has no contrast to stretch
    assert y[1].min() == 0 and y[1].max() == 1


def test_normalize_is_invariant_to_exposure():
    rng = np.random.default_rng(0)
    x = rng.integers(10, 120, (3, 48, 48)).astype(np.float32)
    assert torch.allclose(normalize(x), normalize(x * 2 + 7), atol=1e-5)


def test_normalize_rejects_colour():
    with pytest.raises(ValueError, match="grey images"):
        normalize(torch.zeros(2, 3, 48, 48))


def batch(n=16):
    return torch.rand(n, 1, 48, 48, generator=torch.Generator().manual_seed(1))


def test_augment_keeps_shape_and_range():
    x = batch()
    y = augment(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)


def test_augment_is_seeded():
    x = batch()
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(5))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(5))
    c = augment(x, AugmentConfig(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_is_identity_at_zero_strength():
    x = batch()
    zero = AugmentConfig(rotation=0, shift=0, zoom=0, hflip=0, brightness=0)
    assert torch.allclose(augment(x, zero, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_flip_alone_mirrors():
    x = batch(4)
    flip = AugmentConfig(rotation=0, shift=0, zoom=0, hflip=1.0, brightness=0)
    assert torch.allclose(augment(x, flip, torch.Generator()), x.flip(3), atol=1e-5)


def test_erasing_replaces_one_rectangle_per_face():
    x = torch.full((64, 1, 48, 48), 0.5)
    only_erase = AugmentConfig(rotation=0, shift=0, zoom=0, hflip=0, brightness=0, erase=1.0)
    y = augment(x, only_erase, torch.Generator().manual_seed(0))
    changed = (y != 0.5)[:, 0]
    for face in changed:
        rows, cols = face.any(1).nonzero().flatten(), face.any(0).nonzero().flatten()
        box = face[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.float().mean() > 0.99  # one filled rectangle (noise hits 0.5 exactly almost never)
        assert 0.02 * 48 * 48 * 0.8 <= box.numel() <= 0.33 * 48 * 48 * 1.2
    assert y.min() >= 0 and y.max() <= 1
    never = augment(x, AugmentConfig(rotation=0, shift=0, zoom=0, hflip=0, brightness=0, erase=0.0), torch.Generator())
    assert torch.equal(never, x)


def test_erasing_off_leaves_the_random_stream_alone():
    """Runs trained before `erase` existed draw the same numbers, so they resume with the same augmentation."""
    x = batch()
    g = torch.Generator().manual_seed(3)
    augment(x, AugmentConfig(), g)
    seven = torch.Generator().manual_seed(3)
    for _ in range(7):  # angle, tx, ty, zx, zy, flip, brightness: one number per face each
        torch.rand(len(x), generator=seven)
    assert torch.equal(g.get_state(), seven.get_state())


def test_shift_moves_content():
    x = torch.zeros(1, 1, 48, 48)
    x[..., 20:28, 20:28] = 1
    g = torch.Generator().manual_seed(0)
    y = augment(x, AugmentConfig(rotation=0, shift=0.1, zoom=0, hflip=0, brightness=0), g)
    moved = (y[0, 0] > 0.5).nonzero().float().mean(0) - (x[0, 0] > 0.5).nonzero().float().mean(0)
    assert moved.abs().max() > 0.5 and moved.abs().max() <= 4.8 + 1  # at most 10% of 48 px


def blurred(images, radius: float):
    from PIL import Image, ImageFilter

    return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius))) for im in images])


def test_sharpness_falls_with_blur():
    from fer.data.preprocess import sharpness
    from tests.conftest import synthetic_faces

    x, _ = synthetic_faces(5, seed=3)
    assert sharpness(blurred(x, 2.0)) < sharpness(blurred(x, 1.0)) < sharpness(x)
    assert sharpness(np.full((3, 48, 48), 9, np.uint8)) == 0.0


@pytest.mark.parametrize("radius", [1.5, 3.0])
def test_sharpness_guard_names_a_blurred_training_split(radius):
    from fer.training.trainer import sharpness_warning
    from tests.conftest import synthetic_faces

    train, _ = synthetic_faces(10, seed=2)
    test, _ = synthetic_faces(4, seed=3)
    warning = sharpness_warning(blurred(train, radius), test, "PublicTest")
    assert warning and "much softer" in warning and "PublicTest" in warning
    assert sharpness_warning(train, test, "PublicTest") is None  # matched copies: nothing to say
    assert "much sharper" in sharpness_warning(train, blurred(test, radius), "PublicTest")
