"""Ship a run's best weights inside the package, with a model card, as the `bundled` model.

    python -m fer bundle runs/paper --data ../shared/data/fer2013

The card carries what a user needs to trust the model: PublicTest accuracy,
per-class accuracy and confusion matrix, the temperature fitted on the run's
validation split with the expected calibration error before and after,
parameters, epochs run, recipe, the training command, the training time, the
milliseconds to classify one face on the machine that bundled it and the
SHA-256 of the data it was trained on. The reliability diagram is written
beside the card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fer import plots
from fer.data import fer2013 as data
from fer.evaluation.calibration import calibrate
from fer.evaluation.metrics import evaluate_arrays, ms_per_face
from fer.inference.weights import BUNDLED_DIR, for_inference, save_weights
from fer.model import count_parameters
from fer.training.config import TrainConfig
from fer.training.mlflow_runs import calibration_summary
from fer.training.runs import load_runs, training_commands


def bundle(
    runs: str | Path | list[str | Path], data_source: str | Path, to: str | Path | None = None, tta: str = "model"
) -> dict:
    """Bundle a run's best weights, or several runs' as one ensemble (their logits averaged in one graph; the
    runs must share the network's shape and the validation split). `tta` other than 'model' changes the
    inference-time augmentation first (choose it on the validation part of Training:
    `fer evaluate --split val --tta ...`)."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    model, info = load_runs(runs)
    if tta != "model":
        model.set_tta(tta)
        info["config"]["model"].update(flip_tta=model.cfg.flip_tta, tta_shift=model.cfg.tta_shift)
        if len(runs) == 1:
            info["command"] = training_commands(info["config"])
    ds = data.load(data_source, quiet=True)
    cfg = info["config"]
    _, (x_val, y_val) = data.train_val(ds, *TrainConfig.from_dict(cfg).validation_split)
    x, y = ds.split("PublicTest")
    calibration = calibrate(model, x_val, y_val, x, y)  # the run's own validation split, as `fer train` does
    if len(runs) > 1:
        info["validation"] = {"accuracy": evaluate_arrays(model, x_val, y_val, channels_last=False).accuracy}
    m = evaluate_arrays(model, x, y, channels_last=False)
    out = Path(to) if to else BUNDLED_DIR
    out.mkdir(parents=True, exist_ok=True)
    cfg["model"]["temperature"] = model.cfg.temperature
    plots.reliability_diagram(calibration).savefig(out / "reliability.png", dpi=80, bbox_inches="tight")
    card = {
        "name": model.cfg.name,
        "params": count_parameters(model),
        **info,
        "publictest": {
            "accuracy": m.accuracy,
            "n": m.n,
            "per_class": m.per_class,
            "confusion_matrix": m.confusion.tolist(),
            "labels": list(m.to_dict()["labels"]),
        },
        "calibration": calibration_summary(calibration),
        "data_sha256": ds.digest,
        "ms_per_face": round(ms_per_face(for_inference(model)), 2),
        "ms_per_face_measured_on": f"{os.cpu_count()} CPU cores, 1 torch thread, batch of one, as served "
        "(fer.inference.weights.for_inference)",
    }
    save_weights(model, out / "model.pt", card)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
