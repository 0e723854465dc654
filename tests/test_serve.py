"""The registered model served the MLflow way: a real `mlflow models serve` process answering photos over REST.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_serve.py

Needs ../shared/data/photos (skipped, with the reason, without it).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PHOTOS, ROOT, free_port, need_shared
from tests.test_browser import spawned, wait_until_up

pytestmark = pytest.mark.slow


def invoke(url: str, rows: list[bytes]) -> list[dict]:
    """POST the photos as MLflow's dataframe_split JSON (base64 for the binary column); the predictions."""
    data = [[base64.b64encode(r).decode()] for r in rows]
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": data}}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["predictions"]


def serve(store: str, tmp_path: Path, name: str):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",  # the served model must load without unpickling
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its uvicorn
    }
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/fer-emotion@production",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    return spawned(cmd, tmp_path / f"{name}.log", tmp_path, env), f"http://127.0.0.1:{port}"


V1_PHOTO_MODEL = Path(__file__).with_name("photo_model_v1.py")  # the pyfunc as the first versions were logged


def test_mlflow_models_serve_answers_photos_and_follows_the_alias(tmp_path, mlflow_store):
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from fer import REGISTERED_MODEL
    from fer.inference.mlflow_model import log_photo_model
    from fer.inference.weights import bundled_card
    from fer.model import create_model
    from registry import Registry

    registry = Registry(mlflow_store)
    registry.bootstrap()  # version 1: the bundled model, in production
    photos = need_shared(PHOTOS)
    astronaut, coffee = (photos / "astronaut.png").read_bytes(), (photos / "coffee.png").read_bytes()

    manager, url = serve(mlflow_store, tmp_path, "v1")
    with manager as proc:
        wait_until_up(proc, f"{url}/ping", tmp_path / "v1.log")
        first = invoke(url, [astronaut, coffee, b"these are words, not pixels"])
        again = invoke(url, [astronaut])  # the bad row did not take the server down
    faces = [row["faces"] for row in first]  # JSON objects in the answer: nothing to parse twice
    assert [len(f) for f in faces] == [1, 0, 0]
    assert first[0]["error"] == "" and first[1]["error"] == ""
    assert first[2]["error"].startswith("row 2: not an image")
    assert again[0]["faces"] == faces[0]
    face = faces[0][0]
    assert set(face) == {"box", "score", "emotion", "probabilities", "whole_image"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])  # numbers, not text
    assert isinstance(face["score"], float) and face["whole_image"] is False
    assert list(face["probabilities"]) == bundled_card()["labels"]  # the production model's, in its order
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)

    # a second version, logged as the first versions of the product logged theirs (faces as JSON text), moved
    # into production by alias: a newly started server serves it, with its own code and its own answers
    import mlflow

    torch.manual_seed(1)
    text_signature = ModelSignature(
        inputs=Schema([ColSpec("binary", "image")]),
        outputs=Schema([ColSpec("string", "faces"), ColSpec("string", "error")]),
    )
    with mlflow.start_run():
        info = log_photo_model(create_model().eval(), python_model=V1_PHOTO_MODEL, signature=text_signature)
    version = mlflow.register_model(info.model_uri, REGISTERED_MODEL).version
    registry.promote(int(version))
    manager, url = serve(mlflow_store, tmp_path, "v2")
    with manager as proc:
        wait_until_up(proc, f"{url}/ping", tmp_path / "v2.log")
        [old] = invoke(url, [astronaut])
    assert isinstance(old["faces"], str) and old["error"] == ""
    second = json.loads(old["faces"])
    assert len(second) == 1 and second[0]["box"] == face["box"]  # the same detector
    assert second[0]["probabilities"] != face["probabilities"]  # another classifier: version 2
