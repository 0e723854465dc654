"""The photo model as MLflow stores it: logged from code (nothing pickled), registered with its card as tags.

    python -m registry bootstrap      # logs the bundled model this way and puts it in production

`log_photo_model` logs fer/inference/photo_model.py (photos in, faces out) with the classifier in the pt2
(torch.export) format and MTCNN's weights as its artifacts and the `fer` package as its code; `log_model` also
registers it and tags the version from the model card. Training (fer/training/mlflow_runs.py) and the registry
both log models through here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
import numpy as np
import torch

INPUT_EXAMPLE = np.zeros((2, 1, 48, 48), dtype=np.float32)  # batch > 1 so torch.export keeps the batch dynamic
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the `fer` package, the photo model's code


def pip_requirements() -> list[str]:
    import importlib.metadata as md

    return [f"torch=={md.version('torch')}", f"numpy=={md.version('numpy')}"]


def log_model(model: torch.nn.Module, registered_name: str | None, card: dict) -> dict:
    """Log `model` as the photo model of fer/photo_model.py (a pyfunc from code whose artifact is the classifier
    in the `pt2` format: nothing pickled) and register it. `mlflow models serve` and `spark_udf` serve it
    as photos in, faces out; the demo loads the classifier graph inside it."""
    info = log_photo_model(model, name="model")
    result = {"model_uri": info.model_uri, "run_id": mlflow.active_run().info.run_id}
    if registered_name:
        mv = mlflow.register_model(info.model_uri, registered_name)
        client = mlflow.tracking.MlflowClient()
        for k, v in version_tags(card).items():
            client.set_model_version_tag(registered_name, mv.version, k, v)
        result.update(registered_name=registered_name, registered_version=mv.version)
    return result


PHOTO_MODEL_CODE = Path(__file__).with_name("photo_model.py")  # the pyfunc, logged as code


def photo_requirements() -> list[str]:
    """What the photo model imports: the product's dependencies at the versions installed here."""
    import importlib.metadata as md

    names = (
        "torch",
        "torchvision",
        "facenet-pytorch",
        "numpy",
        "pillow",
        "simplejpeg",
        "pandas",
        "mlflow",
        "onnxruntime",
        "onnx",
    )
    return [f"{n}=={md.version(n)}" for n in names]


def model_classes(model: torch.nn.Module) -> tuple[str, ...]:
    """The emotions a classifier reads, told by its outputs (7: FER2013's, 8: FER+'s), as FacePipeline tells them."""
    from fer import EMOTIONS

    with torch.no_grad():
        return EMOTIONS[: model(torch.zeros(1, 1, 48, 48)).shape[1]]


def photo_signature(classes: tuple[str, ...]):
    """Photos in (bytes; base64 over REST), per photo `faces` out as an array of objects whose `probabilities`
    has one field per emotion of the model, and `error`: what `mlflow models serve` answers as JSON objects and
    `spark_udf` gives as an array of structs."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import Array, Object, Property

    face = Object(
        [
            Property("box", Array("long")),  # [x1, y1, x2, y2] in the photo's pixels
            Property("score", "double", required=False),  # the detector's; null for a whole image read as one face
            Property("emotion", "string"),
            Property("probabilities", Object([Property(c, "double") for c in classes])),
            Property("whole_image", "boolean"),
        ]
    )
    return ModelSignature(
        inputs=Schema([ColSpec("binary", "image")]),
        outputs=Schema([ColSpec(Array(face), "faces"), ColSpec("string", "error")]),
    )


def log_photo_model(model: torch.nn.Module, name: str = "model", python_model: Path = PHOTO_MODEL_CODE, signature=None):
    """Log, in the active run, the pyfunc model of fer/photo_model.py (photos in, faces out) from code: the
    classifier as an MLflow pytorch model in the pt2 format and MTCNN's weights are its artifacts, the `fer`
    package its code. `python_model` and `signature` (default: photo_signature of the model's emotions) are for
    a test that logs a version as older code did. Returns MLflow's ModelInfo."""
    import shutil
    import tempfile

    from fer.detection.detector import mtcnn_weights

    model = model.cpu().eval().to(memory_format=torch.contiguous_format)
    signature = signature or photo_signature(model_classes(model))
    with tempfile.TemporaryDirectory(prefix="fer-photo-model-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = Path(tmp) / "classifier"
        mlflow.pytorch.save_model(
            model, str(classifier), input_example=INPUT_EXAMPLE, pip_requirements=pip_requirements()
        )
        mtcnn = Path(tmp) / "mtcnn"
        mtcnn.mkdir()
        for net in ("pnet", "rnet", "onet"):
            shutil.copy(mtcnn_weights() / f"{net}.pt", mtcnn / f"{net}.pt")
        code = Path(tmp) / "code" / "fer"  # the package without its bundled weights (the classifier is an artifact)
        shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("bundled", "__pycache__"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(python_model),
            artifacts={"classifier": str(classifier), "mtcnn": str(mtcnn)},
            code_paths=[str(code)],
            signature=signature,
            pip_requirements=photo_requirements(),
        )


CARD_ARTIFACT = "weights/card.json"  # where `fer train` logs a run's model card, beside its weights


def version_tags(card: dict) -> dict[str, str]:
    tags = {"recipe": card.get("recipe", ""), "params": str(card.get("params", ""))}
    if card.get("labels"):  # the emotions the model reads, in the order of its outputs
        tags["classes"] = ",".join(card["labels"])
    if card.get("targets"):
        tags["targets"] = card["targets"]  # what it learned from: fer2013, ferplus or mix
    test = card.get("publictest") or {}
    if test:
        tags["publictest_accuracy"] = f"{test['accuracy']:.4f}"
        tags["publictest_against"] = test.get("against", "FER2013 labels")
        if "n" in test:
            tags["publictest_faces"] = str(test["n"])
        for k, v in test.get("per_class", {}).items():
            tags[f"publictest_acc_{k}"] = f"{v:.4f}"
    calibration = card.get("calibration") or {}
    if "temperature" in calibration:
        tags["temperature"] = f"{calibration['temperature']:.4f}"
    if "test_ece_after" in calibration:
        tags["publictest_ece"] = f"{calibration['test_ece_after']:.4f}"
        tags["publictest_ece_before_temperature"] = f"{calibration['test_ece_before']:.4f}"
    if card.get("validation"):
        tags["val_accuracy"] = f"{card['validation']['accuracy']:.4f}"
    return tags


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()
