"""The MLflow pyfunc model of a registered version: photos in, the per-face result of `fer predict --json` out.

Logged with MLflow's *models from code* (`fer.inference.mlflow_model.log_photo_model` passes this file as
`python_model`), so nothing is pickled: this file, the `fer` package (`code_paths`), the classifier graph (an
MLflow pytorch model in the pt2 format, artifact `classifier`) and MTCNN's weights (artifact `mtcnn`) travel with
the model.

Input: a DataFrame whose `image` column holds each photo's bytes (base64 text over REST, where the signature's
`binary` type decodes it; raw bytes from Spark's `binaryFile` source or pandas). Output: one row per photo,
`faces` (a list of objects as `fer predict --json` gives them: `box` four integers, `score` a number or null,
`emotion`, `probabilities` one number per emotion of the model, `whole_image`) and `error` (empty, or a message
naming the row and the problem; empty rather than null, because `spark_udf` turns a null beside a message into the
text "None"). The signature (fer.inference.mlflow_model.photo_signature) types `faces` as an array of objects, so
`mlflow models serve` answers JSON objects and `spark_udf` gives an array of structs. A bad row gets its error; the
other rows still get their answer.

Versions logged before (`faces` as a JSON string) carry their own copy of this file and keep answering strings.
"""

import base64
import binascii
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

INPUT_COLUMN = "image"
OUTPUT_COLUMNS = ["faces", "error"]


class PhotoModel(PythonModel):
    def load_context(self, context) -> None:
        import torch

        from fer.inference.faces import FacePipeline
        from fer.inference.memory import keep_freed_memory
        from fer.inference.weights import ExportedModel

        keep_freed_memory()  # a serving worker: photos reuse the heap instead of faulting pages in again

        program = torch.export.load(str(Path(context.artifacts["classifier"]) / "data" / "model.pt2"))
        self.pipeline = FacePipeline(ExportedModel(program.module()), mtcnn_weights=context.artifacts["mtcnn"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # (hint: no MLflow warning)
        from fer.inference.images import ImageError, read_image

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        column = INPUT_COLUMN if INPUT_COLUMN in frame.columns else frame.columns[0]
        rows = []
        for i, value in enumerate(frame[column]):
            name = f"row {i}"
            try:
                image = read_image(_photo_bytes(value, name), name=name)
                faces = [f.to_dict() for f in self.pipeline.analyze(image).faces]
                rows.append({"faces": faces, "error": ""})
            except (ImageError, ValueError) as e:
                rows.append({"faces": [], "error": str(e)})
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS, dtype=object)


def _photo_bytes(value, name: str) -> bytes:
    """A row's photo as bytes: bytes as they are, text as base64 (what a JSON request carries)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name}: not an image: text that is not base64-encoded bytes") from None
    raise ValueError(f"{name}: not an image: a {type(value).__name__}, not bytes")


mlflow.models.set_model(PhotoModel())
