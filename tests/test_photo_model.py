"""The pyfunc photo model (fer/photo_model.py): logged from code, loaded with pickles refused, photos in.

OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_photo_model.py
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from tests.conftest import PHOTOS, ROOT, need_shared

LOAD_AND_PREDICT = """
import base64, json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
photos = [open(p, "rb").read() for p in sys.argv[3:5]]
rows = pd.DataFrame({"image": [photos[0], photos[1], b"these are words", base64.b64encode(photos[0]).decode()]})
out = model.predict(rows)
print(json.dumps(out.to_dict(orient="records")))
"""


def test_photo_model_logged_from_code_answers_photos_with_pickles_refused(tmp_path, mlflow_store):
    import mlflow

    from fer.inference.mlflow_model import log_photo_model, model_classes
    from fer.inference.weights import load_mlflow, load_model

    model, _ = load_model("bundled")
    with mlflow.start_run():
        info = log_photo_model(model)
    mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(tmp_path / "m"))
    flavors = (tmp_path / "m" / "MLmodel").read_text()
    assert "python_function" in flavors and "photo_model.py" in flavors and "python_model.pkl" not in flavors
    assert not list((tmp_path / "m").rglob("*.pkl"))  # logged from code: nothing pickled

    photos = need_shared(PHOTOS)
    env = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_PREDICT,
            mlflow_store,
            info.model_uri,
            photos / "astronaut.png",
            photos / "coffee.png",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.splitlines()[-1])
    faces = [r["faces"] for r in rows]  # objects, not JSON text to parse again
    assert [len(f) for f in faces] == [1, 0, 0, 1] and faces[3] == faces[0]  # base64 text reads as its bytes
    assert rows[0]["error"] == "" and rows[1]["error"] == ""
    assert rows[2]["error"].startswith("row 2: not an image")
    face = faces[0][0]
    assert set(face) == {"box", "score", "emotion", "probabilities", "whole_image"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"]) and face["score"] > 0.9
    assert list(face["probabilities"]) == list(model_classes(model)) and face["emotion"] in face["probabilities"]

    # the signature types the faces: an array of objects whose probabilities name the model's emotions
    signature = mlflow.models.get_model_info(info.model_uri).signature.to_dict()
    outputs = json.loads(signature["outputs"])
    assert [o["name"] for o in outputs] == ["faces", "error"] and outputs[0]["type"] == "array"
    probabilities = outputs[0]["items"]["properties"]["probabilities"]["properties"]
    assert sorted(probabilities) == sorted(model_classes(model))  # (MLflow keeps an object's fields sorted)

    # the demo's loader finds the classifier graph inside the photo model
    classifier, _ = load_mlflow(info.model_uri)
    import torch

    assert classifier(torch.zeros(2, 1, 48, 48)).shape == (2, len(model_classes(model)))


def test_rows_that_are_not_bytes_get_an_error():
    from fer.inference.photo_model import _photo_bytes

    assert _photo_bytes(base64.b64encode(b"abc").decode(), "row 0") == b"abc"
    with pytest.raises(ValueError, match="row 1: not an image: text that is not base64"):
        _photo_bytes("not base64!", "row 1")
    with pytest.raises(ValueError, match="row 2: not an image: a int, not bytes"):
        _photo_bytes(7, "row 2")
