"""Facial emotion recognition: the paper's Mini-Xception on FER2013, tracked in MLflow."""

# Canonical order: the numeric labels of the paper's Table 1.
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The name under which every trained model is registered in the MLflow Model Registry.
REGISTERED_MODEL = "fer-emotion"

__version__ = "0.1.0"
