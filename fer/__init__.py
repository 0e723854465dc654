"""Facial emotion recognition: the paper's Mini-Xception on FER2013, tracked in MLflow."""

# Canonical order: the numeric labels of the paper's Table 1.
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The product's emotions: FER2013's seven, then the eighth that the FER+ crowd votes add. A model's classes are
# the first `num_classes` of these (a FER2013 model has seven, a FER+ model all eight).
EMOTIONS = (*LABELS, "contempt")

# The name under which every trained model is registered in the MLflow Model Registry.
REGISTERED_MODEL = "fer-emotion"

__version__ = "0.1.0"


def parse_bool(s: str) -> bool:
    """A true/false flag's value on the command line (true, yes, on, 1 / false, no, off, 0)."""
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {s!r}")
