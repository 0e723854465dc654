import numpy as np
import pytest
from PIL import Image

from fer import LABELS
from fer.data.fer2013 import DataError, load, read_csv, read_folder, stratified_split, train_val
from tests.conftest import synthetic_faces, write_csv, write_folder


def test_folder_and_csv_readers_agree(tmp_path):
    folder = read_folder(write_folder(tmp_path / "f"), cache_dir=tmp_path / "c")
    csv = read_csv(write_csv(tmp_path / "fer2013.csv"), cache_dir=tmp_path / "c")
    for usage in ("Training", "PublicTest"):
        xf, yf = folder.split(usage)
        xc, yc = csv.split(usage)
        # folder order is by emotion then file; csv order is by row: compare as sorted sets per class
        for c in range(len(LABELS)):
            a = xf[yf == c].reshape(-1, 48 * 48)
            b = xc[yc == c].reshape(-1, 48 * 48)
            assert sorted(map(bytes, a)) == sorted(map(bytes, b))
    assert folder.images.dtype == np.uint8 and folder.images.shape[1:] == (48, 48)
    assert len(folder.split("Training")[0]) == 12 * 7


def test_csv_with_leading_space_columns(tmp_path):
    ds = read_csv(write_csv(tmp_path / "x.csv", leading_space=True), cache_dir=tmp_path)
    assert len(ds) == (12 + 4) * 7
    assert set(np.unique(ds.labels)) == set(range(7))


def test_labels_follow_table_1(tmp_path):
    root = tmp_path / "f"
    x, _ = synthetic_faces(1)
    for name, idx in (
        ("angry", 0),
        ("disgust", 1),
        ("fear", 2),
        ("happy", 3),
        ("sad", 4),
        ("surprise", 5),
        ("neutral", 6),
    ):
        d = root / "train" / name
        d.mkdir(parents=True)
        Image.fromarray(x[0]).save(d / "Training_1.png")
        assert LABELS[idx] == name
    ds = read_folder(root, cache_dir=tmp_path / "c")
    assert sorted(ds.labels.tolist()) == list(range(7))


def test_bad_images_are_converted_or_reported(tmp_path, capsys):
    root = write_folder(tmp_path / "f", n_train=2, n_test=1)
    happy = root / "train" / "happy"
    (happy / "Training_broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(happy / "Training_colour.png")
    Image.new("L", (96, 80), 128).save(happy / "Training_big.png")
    ds = load(root, cache_dir=tmp_path / "c")
    err = capsys.readouterr().err
    assert len(ds.skipped) == 1 and "Training_broken.jpg" in ds.skipped[0]
    assert "1 skipped" in err and "Training_broken.jpg" in err
    converted = " ".join(ds.converted)
    assert "Training_colour.png" in converted and "grayscale" in converted
    assert "Training_big.png" in converted and "96x80" in converted
    assert len(ds.split("Training")[0]) == 2 * 7 + 2  # both converted images are kept


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: (r / "train" / "bored").mkdir(parents=True), "unknown emotion folder 'bored'"),
        (lambda r: None, "no images found"),
    ],
)
def test_folder_errors_name_the_problem(tmp_path, make, message):
    root = tmp_path / "f"
    root.mkdir()
    make(root)
    with pytest.raises(DataError, match=message):
        read_folder(root, cache_dir=tmp_path / "c")


def test_empty_split_is_an_error(tmp_path):
    root = tmp_path / "f"
    x, _ = synthetic_faces(1)
    (root / "train" / "happy").mkdir(parents=True)
    Image.fromarray(x[0]).save(root / "train" / "happy" / "Training_1.png")
    ds = read_folder(root, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="no PublicTest images"):
        ds.split("PublicTest")


PIXELS = " ".join(["7"] * 2304)


@pytest.mark.parametrize(
    "row, message",
    [
        (f"3,{PIXELS}", "2 fields; expected 3"),
        (f"9,{PIXELS},Training", "emotion 9; expected an integer 0-6"),
        (f"happy,{PIXELS},Training", "emotion 'happy'"),
        ("3,1 2 3,Training", "3 pixel values; expected 2304"),
        (f"3,{PIXELS} 300,Training", "2305 pixel values"),
        ("3,1 x 3,Training", "not all integers"),
        (f"3,{PIXELS},Validation", "Usage 'Validation'"),
    ],
)
def test_malformed_csv_rows_name_file_and_line(tmp_path, row, message):
    p = tmp_path / "bad.csv"
    p.write_text(f"emotion,pixels,Usage\n0,{PIXELS},Training\n{row}\n")
    with pytest.raises(DataError, match=message) as e:
        read_csv(p, cache_dir=tmp_path)
    assert f"{p}:3" in str(e.value)


def test_csv_bad_header(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("label,image\n0,1 2\n")
    with pytest.raises(DataError, match=r"bad.csv:1: .*expected the columns emotion,pixels,Usage"):
        read_csv(p, cache_dir=tmp_path)


def test_cache_is_keyed_by_content(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "f", n_train=2, n_test=1)
    first = read_folder(root, cache_dir=tmp_path / "c")
    import fer.data.fer2013

    def no_decode(*a, **k):
        raise AssertionError("decoded again despite an unchanged source")

    monkeypatch.setattr(fer.data.fer2013, "decode_gray48", no_decode)
    again = read_folder(root, cache_dir=tmp_path / "c")
    assert again.digest == first.digest and np.array_equal(again.images, first.images)
    # a changed file changes the key and is decoded anew
    monkeypatch.undo()
    Image.new("L", (48, 48), 3).save(root / "train" / "happy" / "Training_00000.png")
    changed = read_folder(root, cache_dir=tmp_path / "c")
    assert changed.digest != first.digest


def test_stratified_split_is_seeded_and_proportional():
    labels = np.repeat(np.arange(7), [400, 40, 410, 720, 480, 310, 500])
    keep, held = stratified_split(labels, 0.2, seed=3)
    keep2, held2 = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(held, held2) and np.array_equal(keep, keep2)
    assert not set(keep) & set(held) and len(keep) + len(held) == len(labels)
    for c, n in enumerate([400, 40, 410, 720, 480, 310, 500]):
        assert (labels[held] == c).sum() == round(0.2 * n)
    _, other = stratified_split(labels, 0.2, seed=4)
    assert not np.array_equal(held, other)


def test_train_val_public_uses_publictest(tmp_path):
    ds = read_folder(write_folder(tmp_path / "f", n_train=5, n_test=2), cache_dir=tmp_path / "c")
    (xt, _), (xv, yv) = train_val(ds, "public")
    assert len(xt) == 35 and len(xv) == 14
    (xt, _), (xv, _) = train_val(ds, "split", 0.2, 0)
    assert len(xt) + len(xv) == 35 and len(xv) == 7
