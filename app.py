"""Hugging Face Spaces entry point (`app_file` in README.md's front matter): the demo on 0.0.0.0:7860.

    python app.py

The same app as `python -m demo`: the production model of the MLflow Model Registry at
MLFLOW_TRACKING_URI (else a local `sqlite:///mlflow.db`, bootstrapped with the bundled model).
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT still override the address, as Spaces may set them.
"""

import os
import sys

# Before anything imports MLflow: no model is ever unpickled by this process.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"

from demo.__main__ import main  # noqa: E402

if __name__ == "__main__":
    host = os.environ.get("GRADIO_SERVER_NAME") or "0.0.0.0"
    port = os.environ.get("GRADIO_SERVER_PORT") or "7860"
    sys.exit(main(["--host", host, "--port", port]))
