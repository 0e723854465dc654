"""Video clips through `fer predict`: sampling, face tracks, CSV, annotated MP4, timeline, bad clips.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_video.py

The clips are made here with PyAV from ../shared/data/photos (skipped, with the reason, without it).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer import LABELS
from fer.model import create_model
from tests.conftest import PHOTOS, fer_cli, need_shared

FPS = 10  # the test clip's frame rate
SECONDS = 3.0
FACE_GONE_AFTER = 2.4  # the face leaves the picture for the clip's last 0.6 s


def write_clip(path: Path, seconds: float = SECONDS, fps: int = FPS, gone_after: float = FACE_GONE_AFTER) -> Path:
    """640×480 H.264: astronaut.png (300 px, its face about 50 px wide) moving right 8 px a frame, then gone."""
    import av

    face = Image.open(need_shared(PHOTOS) / "astronaut.png").convert("RGB").resize((300, 300))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = Image.new("RGB", (640, 480), (90, 90, 90))
            if i / fps < gone_after:
                frame.paste(face, (20 + 8 * i, 90))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("video") / "walk.mp4")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    from fer.inference.weights import save_weights

    return save_weights(create_model().eval(), tmp_path_factory.mktemp("weights") / "w.pt")


def predict(*args, check=True):
    return fer_cli("predict", *map(str, args), "--progress", "false", check=check)


def test_one_track_while_the_face_moves_csv_mp4_and_timeline(clip, weights, tmp_path):
    table, out = tmp_path / "faces.csv", tmp_path / "annotated"
    proc = predict(clip, "--model", weights, "--json", "--csv", table, "--annotate", out)
    [video] = json.loads(proc.stdout)
    assert video["video"] == str(clip) and video["error"] is None and video["sampled_fps"] == 5
    frames = video["frames"]
    assert [f["t"] for f in frames] == pytest.approx([i / 5 for i in range(15)])  # 5 samples a second of 3 s
    with_face = [f for f in frames if f["t"] < FACE_GONE_AFTER]
    assert all(len(f["faces"]) == 1 for f in with_face)
    assert {f["faces"][0]["track"] for f in with_face} == {1}  # the same id while it moves 160 px
    assert [f["faces"][0]["box"][0] for f in with_face] == sorted(f["faces"][0]["box"][0] for f in with_face)
    assert all(f["faces"] == [] for f in frames if f["t"] > FACE_GONE_AFTER + 0.1)
    face = with_face[0]["faces"][0]
    assert list(face["probabilities"]) == list(LABELS) and face["whole_image"] is False

    rows = list(csv.DictReader(table.open()))
    assert len(rows) == sum(len(f["faces"]) for f in frames)  # one row per face per sampled frame
    assert list(rows[0]) == ["video", "t", "frame", "track", "x1", "y1", "x2", "y2", "emotion", *LABELS, "smooth_s"]
    for row in rows:
        assert sum(float(row[k]) for k in LABELS) == pytest.approx(1.0, abs=1e-3)
        assert row["emotion"] == max(LABELS, key=lambda k: float(row[k])) and row["smooth_s"] == ""

    import av

    with av.open(video["annotated"]) as annotated:
        assert sum(1 for _ in annotated.decode(video=0)) == len(frames)  # one annotated frame per sample
    assert Image.open(video["timeline"]).size[0] > 500


@pytest.mark.parametrize("fps, samples", [("2", 6), ("0", int(SECONDS * FPS))])
def test_fps_sets_the_number_of_samples(clip, weights, fps, samples):
    [video] = json.loads(predict(clip, "--model", weights, "--json", "--fps", fps).stdout)
    assert len(video["frames"]) == samples
    assert video["sampled_fps"] == (float(fps) or None)


def test_smoothing_is_stated_and_keeps_probabilities(clip, weights, tmp_path):
    table = tmp_path / "smooth.csv"
    [video] = json.loads(predict(clip, "--model", weights, "--json", "--smooth", "1", "--csv", table).stdout)
    assert video["smooth_s"] == 1
    for f in video["frames"]:
        for face in f["faces"]:
            assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert {row["smooth_s"] for row in csv.DictReader(table.open())} == {"1.0"}


def test_smoother_averages_over_time():
    from fer.inference.video import Smoother

    s = Smoother(seconds=1.0)
    first, second = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert s(1, 0.0, first).tolist() == [1.0, 0.0]
    mixed = s(1, 1.0, second)  # one time constant later: e^-1 of the old value is left
    assert mixed == pytest.approx([np.exp(-1), 1 - np.exp(-1)])
    assert Smoother(0)(1, 0.0, second) is second  # off: untouched


def test_tracker_ids_new_faces_and_ends_missed_tracks():
    from fer.inference.video import Tracker

    tr = Tracker(max_missed_s=1.0)
    assert tr.update(0.0, [[0, 0, 50, 60], [300, 0, 350, 60]]) == [1, 2]
    assert tr.update(0.2, [[305, 5, 355, 65], [20, 0, 70, 60]]) == [2, 1]  # each follows its face
    assert tr.update(0.4, [[40, 0, 90, 60]]) == [1]
    assert tr.update(1.6, [[310, 5, 360, 65]]) == [3]  # face 2 was missed for 1.4 s: its track ended
    assert tr.update(1.8, [[600, 300, 700, 420]]) == [4]  # far from every track: a new face


def bad_clips(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    import av

    audio = root / "speech.mp4"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    empty = root / "empty.mkv"
    out = av.open(str(empty), "w")
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    out.start_encoding()
    out.close()
    cut_mp4 = root / "cut.mp4"
    cut_mp4.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    streamable = write_clip(root / "walk.mkv")  # Matroska puts its header first: cut, it still opens
    cut_mkv = root / "cut.mkv"
    cut_mkv.write_bytes(streamable.read_bytes()[: streamable.stat().st_size * 9 // 10])  # after the keyframe
    unknown = root / "unknown.mkv"  # the codec id of the Matroska track replaced by one FFmpeg does not know
    unknown.write_bytes(streamable.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_FOOBAR/ISO/XY"))
    noise = root / "noise.mov"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 30_000, dtype=np.uint8).tobytes())
    zero = root / "zero.webm"
    zero.write_bytes(b"")
    return {
        "audio only": (audio, "speech.mp4: no video stream (the file holds audio)"),
        "zero frames": (empty, "empty.mkv: no frame: the file ends before its first frame"),
        "cut mp4": (cut_mp4, "cut.mp4: truncated, corrupt or not a video (FFmpeg: "),
        "cut mkv": (cut_mkv, "cut.mkv: truncated or corrupt video: its frames end at "),
        "unsupported codec": (unknown, "unknown.mkv: unsupported video codec (unknown): FFmpeg has no decoder"),
        "noise": (noise, "noise.mov: truncated, corrupt or not a video (FFmpeg: "),
        "empty file": (zero, "zero.webm: empty file"),
    }


def test_bad_clips_get_their_message_and_the_run_goes_on(clip, weights, tmp_path):
    cases = bad_clips(tmp_path, clip)
    paths = [path for path, _ in cases.values()]
    proc = predict(*paths, clip, "--model", weights, "--json", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    results = json.loads(proc.stdout)
    for (name, (_, message)), result in zip(cases.items(), results):
        assert result["error"] is not None and result["error"].startswith(message), (name, result["error"])
        assert str(tmp_path) not in result["error"]
    assert results[-1]["error"] is None and len(results[-1]["frames"]) == 15  # the good clip after them
    text = predict(*paths, "--model", weights, check=False)  # the table output names them on stderr too
    assert text.returncode == 2 and text.stderr.count("error: ") == len(cases)


def test_limits_are_named(clip):
    from fer.inference.video import VideoError, open_clip, sampled_frames

    with pytest.raises(VideoError, match=r"^walk.mp4: clip too long \(3 s; the limit is 2 s\)$"):
        open_clip(clip, max_seconds=2)
    with pytest.raises(VideoError, match=r"^walk.mp4: file too large \(0 MB; the limit is 0 MB\)$"):
        list(sampled_frames(clip, max_bytes=1000))
    assert os.path.getsize(clip) > 1000
