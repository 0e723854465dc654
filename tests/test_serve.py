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


def test_mlflow_models_serve_answers_photos_and_follows_the_alias(tmp_path, mlflow_store):
    import torch

    from fer import REGISTERED_MODEL
    from fer.inference.mlflow_model import log_model
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
    faces = [json.loads(row["faces"]) for row in first]
    assert [len(f) for f in faces] == [1, 0, 0]
    assert first[0]["error"] == "" and first[1]["error"] == ""
    assert first[2]["error"].startswith("row 2: not an image")
    assert json.loads(again[0]["faces"]) == faces[0]
    assert set(faces[0][0]) == {"box", "score", "emotion", "probabilities", "whole_image"}

    # a second version moved into production by alias is what a newly started server serves
    import mlflow

    torch.manual_seed(1)
    with mlflow.start_run():
        version = log_model(create_model().eval(), registered_name=REGISTERED_MODEL, card={})["registered_version"]
    registry.promote(int(version))
    manager, url = serve(mlflow_store, tmp_path, "v2")
    with manager as proc:
        wait_until_up(proc, f"{url}/ping", tmp_path / "v2.log")
        second = json.loads(invoke(url, [astronaut])[0]["faces"])
    assert len(second) == 1 and second[0]["box"] == faces[0][0]["box"]  # the same detector
    assert second[0]["probabilities"] != faces[0][0]["probabilities"]  # another classifier: version 2
