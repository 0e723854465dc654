"""Shared fixtures: tiny generated FER2013 data in both forms, MLflow stores (sqlite, a real server), shared data."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer import LABELS

# Under `pytest -n 2` (make test) each worker takes one core: one torch / OpenMP thread in it and in the
# processes it starts, so two workers do not fight over the two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FER2013 = SHARED / "data" / "fer2013"
PHOTOS = SHARED / "data" / "photos"


def need_shared(path: Path = FER2013) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared data set beside the repository")
    return path


def synthetic_faces(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """48×48 uint8 images whose class is learnable: a bright square at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(len(LABELS)):
        for _ in range(n_per_class):
            img = rng.integers(0, 90, (48, 48)).astype(np.uint8)
            r, col = 6 + (c // 3) * 14, 6 + (c % 3) * 14
            img[r : r + 10, col : col + 10] = rng.integers(180, 256)
            images.append(img)
            labels.append(c)
    return np.stack(images), np.asarray(labels)


def write_folder(root: Path, n_train: int = 12, n_test: int = 4, seed: int = 0) -> Path:
    """A FER2013 folder: train/<emotion>/Training_<id>.jpg and test/<emotion>/PublicTest_<id>.jpg."""
    for split, usage, n, s in (("train", "Training", n_train, seed), ("test", "PublicTest", n_test, seed + 1)):
        x, y = synthetic_faces(n, s)
        for i, (img, label) in enumerate(zip(x, y)):
            d = root / split / LABELS[label]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{usage}_{i:05d}.png")  # lossless, so both readers agree
    return root


def write_csv(path: Path, n_train: int = 12, n_test: int = 4, leading_space: bool = False, seed: int = 0) -> Path:
    sep = ", " if leading_space else ","
    lines = [sep.join(["emotion", "pixels", "Usage"])]
    for usage, n, s in (("Training", n_train, seed), ("PublicTest", n_test, seed + 1)):
        x, y = synthetic_faces(n, s)
        for img, label in zip(x, y):
            lines.append(f"{label},{' '.join(map(str, img.ravel()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_upload_folder(tmp_path_factory):
    """Gradio's upload folder for every demo this session launches, so tests can see what it keeps."""
    folder = tmp_path_factory.mktemp("gradio-uploads")
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = before


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fer-cache"))


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An MLflow sqlite store migrated once; tests copy it (a fresh migration costs seconds)."""
    d = tmp_path_factory.mktemp("mlflow-template")
    db = d / "mlflow.db"
    code = "import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db'); mlflow.search_experiments()"
    subprocess.run([sys.executable, "-c", code], cwd=d, check=True, capture_output=True)
    return db


@pytest.fixture
def mlflow_store(tmp_path, migrated_db, monkeypatch) -> str:
    """A private sqlite tracking store, set as MLFLOW_TRACKING_URI for this process and its children."""
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    uri = f"sqlite:///{db}"
    yield from tracking_at(uri, monkeypatch)


def tracking_at(uri: str, monkeypatch):
    """Point this process and its children at the tracking store `uri` until the test ends (a generator body
    for fixtures: `yield from tracking_at(uri, monkeypatch)`)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.end_run()
    mlflow.set_tracking_uri(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path, migrated_db) -> str:
    """A real `mlflow server` on 127.0.0.1 over a private sqlite store, artifacts proxied; yields its URL."""
    shutil.copy(migrated_db, tmp_path / "server.db")
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--workers",
        "1",
    ]
    # MLflow 3's job runner (GenAI jobs, which nothing here uses) is a second process that triples start-up time
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "server.log").read_text()[-3000:]) from None
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not come up in 90 s")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("tiny") / "fer2013", n_train=40, n_test=8)


def fer_in_process(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m fer ARGS` run by this process (fer.cli.main), its output captured: what fer_cli gives, without
    the seconds a new interpreter spends importing torch and MLflow. For commands whose test needs no process of
    their own (no kill, no signal, no environment of their own); torch's thread count is put back afterwards."""
    import contextlib
    import io

    import torch

    from fer.cli import main

    out, err, threads, before = io.StringIO(), io.StringIO(), torch.get_num_threads(), os.getcwd()
    try:
        os.chdir(cwd or ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse and the commands' own refusals
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
    finally:
        os.chdir(before)
        torch.set_num_threads(threads)
    proc = subprocess.CompletedProcess(["fer", *map(str, args)], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"fer {' '.join(map(str, args))} exited {code}\n{proc.stderr[-4000:]}")
    return proc


def fer_cli(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True, timeout: int = 300):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "fer", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"fer {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def write_votes(folder: Path, path: Path | None = None) -> Path:
    """A FER+ votes.csv for every file of a FER2013 folder (`write_folder`), beside it as ferplus/votes.csv: 7
    of 10 votes for the file's own emotion, 2 for neutral (or happy), 1 'unknown'. Each split's first three files
    are special: FER+ dropped the first (empty votes), the second is 'not a face', the third a 5-5 tie; and the
    fourth face of each split is voted contempt."""
    from fer.data.votes import FERPLUS_NAMES, HEADER

    column = {name: i for i, name in enumerate(FERPLUS_NAMES.values())}  # product emotion -> FER+ column
    path = path or folder.parent / "ferplus" / "votes.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [",".join(HEADER)]
    for offset, split in enumerate(("train", "test")):
        files = sorted(p for p in (folder / split).rglob("*") if p.is_file())
        for i, f in enumerate(files):
            label, name = f.parent.name, f.relative_to(folder).as_posix()
            votes = [0] * 10
            if i == 0:
                rows.append(",".join([name, label, "", *[""] * 10]))
                continue
            if i == 1:
                votes[9], votes[column[label]] = 6, 4
            elif i == 2:
                votes[column[label]], votes[column["sad" if label != "sad" else "fear"]] = 5, 5
            elif i == 3:
                votes[column["contempt"]], votes[column["neutral"]] = 6, 4
            else:
                other = "neutral" if label != "neutral" else "happy"
                votes[column[label]], votes[column[other]], votes[8] = 7, 2, 1
            rows.append(",".join([name, label, f"{offset * 100000 + i:07d}", *map(str, votes)]))
    path.write_text("\n".join(rows) + "\n")
    return path


# -- hostile JPEGs, built in the tests (nothing committed)


def lying_jpeg(width: int = 8000, height: int = 6000) -> bytes:
    """A 16×16 JPEG whose SOF0 header claims width×height: a few hundred bytes that say 48 megapixels."""
    import io
    import struct

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 130, 140)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)  # marker, length (2), precision (1), then height, width
    return bytes(data)


def cut_jpeg(photo: Path, keep: float = 0.3) -> bytes:
    """`photo` as a JPEG cut after `keep` of its bytes, with an end-of-image marker appended: libjpeg only warns
    about such a file and fills the missing rows with grey."""
    import io

    buf = io.BytesIO()
    Image.open(photo).convert("RGB").save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return data[: int(len(data) * keep)] + b"\xff\xd9"
