"""Folders through `fer predict` and `fer.inference.batch.predict`: the walk, a row per face, resuming, batching.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_batch.py

Photos come from ../shared/data/realphotos-dev and ../shared/data/photos (skipped, with the reason, without them).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fer import LABELS
from fer.cli import main
from fer.inference import batch
from fer.inference.batch import list_inputs, photo_columns, sniff
from tests.conftest import PHOTOS, SHARED, fer_cli, need_shared

REAL_PHOTOS = SHARED / "data" / "realphotos-dev" / "images"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from fer.inference.weights import save_weights
    from fer.model import create_model

    return save_weights(create_model().eval(), tmp_path_factory.mktemp("weights") / "w.pt")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Six real photos (one in a subfolder, one without an extension, one named .dat), a corrupt .jpg, a short
    clip, and files that are neither photos nor clips (a text file, a hidden file)."""
    from tests.test_video import write_clip

    root = tmp_path_factory.mktemp("batch") / "photos"
    (root / "trip").mkdir(parents=True)
    photos = sorted(need_shared(REAL_PHOTOS).glob("*.jpg"))[:4]
    for p in photos[:3]:
        shutil.copy(p, root / p.name)
    shutil.copy(photos[3], root / "trip" / "no-extension")
    shutil.copy(need_shared(PHOTOS) / "astronaut.png", root / "trip" / "astronaut.dat")
    shutil.copy(PHOTOS / "coffee.png", root / "trip" / "coffee.png")  # no face in it
    (root / "trip" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 the first bytes of a JPEG, then nothing")
    write_clip(root / "trip" / "walk.mp4", seconds=1.0)
    (root / "notes.txt").write_text("not a photo")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_gives_a_row_per_face_its_errors_and_its_clip(folder, weights, tmp_path, monkeypatch):
    table, lines = tmp_path / "faces.csv", tmp_path / "faces.jsonl"
    proc = fer_cli(
        "predict", str(folder), "--model", str(weights), "--csv", str(table), "--jsonl", str(lines),
        "--progress", "false", "--json", "--fps", "5", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # the broken file, named on stdout's JSON
    results = json.loads(proc.stdout)
    names = [Path(r.get("image") or r["video"]).relative_to(folder).as_posix() for r in results]
    real = sorted(p.name for p in folder.glob("*.jpg"))
    assert names == [*real, "trip/astronaut.dat", "trip/broken.jpg", "trip/coffee.png", "trip/no-extension",
                     "trip/walk.mp4"]  # fmt: skip
    assert results[names.index("trip/broken.jpg")]["error"].startswith("broken.jpg: corrupt image")

    rows = read_csv(table)
    assert list(rows[0]) == photo_columns(LABELS, clips=True)
    per_photo = [max(1, len(r["faces"])) for r in results[:-1]]  # a row per face, or one for a photo without
    assert [r["file"] for r in rows if not r["t"]] == [r["image"] for r, n in zip(results, per_photo) for _ in range(n)]
    by_file = {}
    for r in rows:
        by_file.setdefault(Path(r["file"]).name, []).append(r)
    [broken], [coffee] = by_file["broken.jpg"], by_file["coffee.png"]
    assert broken["error"].startswith("broken.jpg: corrupt image") and broken["face"] == ""
    assert coffee["face"] == coffee["error"] == "" and coffee["file"] == str(folder / "trip" / "coffee.png")
    astronaut = by_file["astronaut.dat"][0]  # a PNG named .dat: read by its content
    assert astronaut["face"] == "1" and astronaut["emotion"] in LABELS and float(astronaut["score"]) > 0.9
    assert sum(float(astronaut[k]) for k in LABELS) == pytest.approx(1, abs=1e-3)
    clip = by_file["walk.mp4"]
    assert len(clip) == sum(len(f["faces"]) for f in results[-1]["frames"]) > 0
    assert {r["track"] for r in clip} == {"1"} and [float(r["t"]) for r in clip] == sorted(float(r["t"]) for r in clip)

    objects = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [o.get("image") or o["video"] for o in objects] == [r.get("image") or r["video"] for r in results]
    assert objects[:-1] == results[:-1] and objects[-1]["frames"] == results[-1]["frames"]

    # from Python: the same table as a DataFrame, in lanes (OMP_NUM_THREADS unset, as a user's shell has it), the
    # caller's thread count as it was
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a caller's count other than the lanes' one thread
    try:
        frame = batch.predict(folder, str(weights), fps=5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert list(frame.columns) == list(rows[0])
    assert len(frame) == len(rows)
    assert frame["file"].tolist() == [r["file"] for r in rows]
    faces = frame.dropna(subset=["face"])
    assert faces["face"].dtype == "Int64" and faces["happy"].dtype == "Float64"
    assert faces["emotion"].tolist() == [r["emotion"] for r in rows if r["face"]]
    np.testing.assert_allclose(faces[list(LABELS)].to_numpy(float), [[float(r[k]) for k in LABELS] for r in rows
                                                                     if r["face"]], atol=2e-5)  # fmt: skip
    assert frame["error"].notna().sum() == 1


@pytest.mark.parametrize(
    "head, kind",
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "photo"),
        (b"\x89PNG\r\n\x1a\n\x00", "photo"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "photo"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "photo"),  # HEIF: ISO media, a still's brand
        (b"\x00\x00\x00\x18ftypisom\x00\x00", "clip"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00", "clip"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "clip"),  # Matroska / WebM
        (b"RIFF\x10\x00\x00\x00AVI LIST", "clip"),
        (b"hello, these are words", None),
    ],
)
def test_photos_and_clips_are_told_by_their_first_bytes(tmp_path, head, kind):
    path = tmp_path / "file.bin"
    path.write_bytes(head + b"\x00" * 64)
    assert sniff(path) == kind


def test_an_empty_folder_or_a_pattern_matching_nothing_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("a")
    assert main(["predict", str(tmp_path / "empty")]) == 2
    empty = f"error: {tmp_path / 'empty'}: no photos or clips in this folder or below it"
    assert capsys.readouterr().err.strip() == empty
    with pytest.raises(batch.InputError, match=r"texts: no photos or clips in this folder or below it \(1 other"):
        list_inputs([tmp_path / "texts"])
    with pytest.raises(batch.InputError, match=r"\*\.jpg: no file matches this pattern"):
        list_inputs([str(tmp_path / "*.jpg")])
    missing = list_inputs([str(tmp_path / "gone.jpg")])  # a missing file is kept: its row says "no such file"
    assert missing.files == [(str(tmp_path / "gone.jpg"), "photo")]


def same_table(got: Path, expected: Path) -> None:
    """The same rows in the same order: files, faces, boxes and emotions equal, numbers to 1e-4 (a resumed run
    batches other photos together, which moves the last digits of a float)."""
    a, b = read_csv(got), read_csv(expected)
    assert list(a[0]) == list(b[0]) and len(a) == len(b)
    exact = ["file", "face", "x1", "y1", "x2", "y2", "whole_image", "error"]
    for x, y in zip(a, b):
        assert [x[k] for k in exact] == [y[k] for k in exact]
        assert [float(x[k] or 0) for k in ("score", *LABELS)] == pytest.approx(
            [float(y[k] or 0) for k in ("score", *LABELS)], abs=1e-4
        )


def photos_only(folder: Path, tmp_path: Path) -> Path:
    """The folder's photos, the broken one included, without the clip (a resume test needs no clip)."""
    copy = tmp_path / "photos"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.mp4"))
    return copy


def test_a_stopped_csv_run_resumes_without_a_row_twice_or_lost(folder, weights, tmp_path, capsys, monkeypatch):
    photos = photos_only(folder, tmp_path)
    full, args = tmp_path / "full.csv", ["--model", str(weights), "--progress", "false"]
    assert main(["predict", str(photos), "--csv", str(full), *args]) == 2  # (the broken file)
    expected = full.read_bytes()
    assert len({r["file"] for r in read_csv(full)}) == 7  # every photo has its rows, the broken one its error

    # stopped by Ctrl-C after the third file's rows were written
    stopped, written = tmp_path / "stopped.csv", []
    real_write = batch.Output.write_rows

    def interrupt_after_three(self, rows):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(rows)
        real_write(self, rows)

    monkeypatch.setattr(batch.Output, "write_rows", interrupt_after_three)
    assert main(["predict", str(photos), "--csv", str(stopped), *args]) == 130
    assert "with --resume continues the output" in capsys.readouterr().err
    monkeypatch.setattr(batch.Output, "write_rows", real_write)
    assert stopped.read_bytes().count(b"\n") == 1 + sum(map(len, written))  # the header and three files' rows
    assert main(["predict", str(photos), "--csv", str(stopped), "--resume", *args]) == 2
    same_table(stopped, full)

    # killed at any byte: in a row, on a row's end, in the header
    for cut in (len(expected) // 2, expected.index(b"\n", len(expected) // 3) + 1, 10):
        partial = tmp_path / f"cut-{cut}.csv"
        partial.write_bytes(expected[:cut])
        assert main(["predict", str(photos), "--csv", str(partial), "--resume", *args]) == 2
        same_table(partial, full)

    # without --resume nothing is overwritten; a table of other columns is not resumed
    assert main(["predict", str(photos), "--csv", str(full), *args]) == 2
    assert "already exists: --resume continues it" in capsys.readouterr().err and full.read_bytes() == expected
    other = tmp_path / "other.csv"
    other.write_text("video,t,frame\nwalk.mp4,0,0\n")
    assert main(["predict", str(photos), "--csv", str(other), "--resume", *args]) == 2
    assert "are not the ones this run writes" in capsys.readouterr().err


def test_a_jsonl_cut_in_a_line_resumes_to_one_line_per_file(folder, weights, tmp_path):
    photos = photos_only(folder, tmp_path)
    full, args = tmp_path / "full.jsonl", ["--model", str(weights), "--progress", "false"]
    main(["predict", str(photos), "--jsonl", str(full), *args])
    expected = full.read_bytes()
    partial = tmp_path / "partial.jsonl"
    partial.write_bytes(expected[: len(expected) * 2 // 3])
    assert main(["predict", str(photos), "--jsonl", str(partial), "--resume", *args]) == 2
    got, want = ([json.loads(line) for line in f.read_text().splitlines()] for f in (partial, full))
    assert [o["image"] for o in got] == [o["image"] for o in want]  # each file once, in order
    for a, b in zip(got, want):
        assert [f["box"] for f in a["faces"]] == [f["box"] for f in b["faces"]] and a["error"] == b["error"]
        for fa, fb in zip(a["faces"], b["faces"]):
            assert fa["probabilities"] == pytest.approx(fb["probabilities"], abs=1e-5)


def test_lanes_give_each_photo_its_faces_alone_in_order(weights):
    """Two lanes analysing photos at once give each photo what FacePipeline.analyze gives it alone, in order, and
    really run two photos at once (each lane's first photo waits for the other's at a barrier)."""
    import threading

    from fer.inference.faces import FacePipeline
    from fer.inference.images import read_image
    from fer.inference.weights import load_model

    paths = [str(p) for p in sorted(need_shared(REAL_PHOTOS).glob("*.jpg"))[:20]] + [str(PHOTOS / "astronaut.png")]
    pipeline = FacePipeline(load_model(str(weights))[0])
    alone = [pipeline.analyze(read_image(p)) for p in paths]
    both_started, first = threading.Barrier(2, timeout=60), threading.local()
    analyze = pipeline.analyze

    def meeting(image, **kwargs):
        if not getattr(first, "done", False):
            first.done = True
            both_started.wait()  # BrokenBarrierError (the test fails) unless a second lane comes within a minute
        return analyze(image, **kwargs)

    pipeline.analyze = meeting
    together = list(batch.analyze_photos(pipeline, paths, lanes=2))
    assert [r.path for r in together] == paths
    for one, many in zip(alone, together):
        assert many.error is None and len(many.analysis.faces) == len(one.faces)
        for a, b in zip(one.faces, many.analysis.faces):
            assert a.box == b.box and a.emotion == b.emotion
            assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


def test_the_progress_bar_shows_on_a_terminal_only(folder, weights):
    """tqdm on stderr while stderr is a terminal (files/s, faces so far); none when it is not, or with --progress
    false."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.conftest import ROOT

    photos = [str(p) for p in sorted(folder.glob("*.jpg"))]
    cmd = [sys.executable, "-m", "fer", "predict", *photos, "--model", str(weights), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen = {}
    for flag in ("true", "false"):
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 wide
        proc = subprocess.Popen([*cmd, "--progress", flag], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        out, _ = proc.communicate(timeout=300)
        os.close(leader)
        seen[flag] = b"".join(chunks).decode(errors="replace")
        assert proc.returncode == 0 and len(json.loads(out)) == len(photos)
    assert "fer predict" in seen["true"] and f"{len(photos)}/{len(photos)}" in seen["true"]
    assert "faces=" in seen["true"] and "file/s" in seen["true"]
    assert "fer predict" not in seen["false"]
