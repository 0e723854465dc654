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

import copy
import json
import os
from pathlib import Path

from fer import plots
from fer.data import fer2013 as data
from fer.evaluation.calibration import calibrate
from fer.evaluation.metrics import evaluate_arrays, ms_per_face
from fer.inference.weights import BUNDLED_DIR, BUNDLED_NAMES, PRODUCTION_FILE, save_weights, serve
from fer.model import count_parameters
from fer.training.config import TrainConfig
from fer.training.mlflow_runs import calibration_summary
from fer.training.runs import load_runs, training_commands
from fer.training.trainer import training_faces


def bundle(
    runs: str | Path | list[str | Path],
    data_source: str | Path,
    to: str | Path | None = None,
    tta: str = "model",
    name: str = "",
    production: bool = False,
) -> dict:
    """Bundle a run's best weights, or several runs' as one ensemble (their logits averaged in one graph; the
    runs must share the network's shape and the validation split), as fer/bundled/<name>: `name` defaults to
    what the runs learned from ('fer2013', or 'ferplus' for the crowd's votes). `production` makes it the model
    `bundled` means. `tta` other than 'model' changes the inference-time augmentation first (choose it on the
    validation part of Training: `fer evaluate --split val --tta ...`)."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if production and to:
        raise ValueError("--production names a model of the package's bundled/ folder; drop --to")
    model, info = load_runs(runs)
    if tta != "model":
        model.set_tta(tta)
        info["config"]["model"].update(flip_tta=model.cfg.flip_tta, tta_shift=model.cfg.tta_shift)
        if len(runs) == 1:
            info["command"] = training_commands(info["config"])
    ds = data.load(data_source, quiet=True)
    cfg = info["config"]
    train_cfg = TrainConfig.from_dict(cfg)
    train_cfg.data = str(data_source)  # FER+ votes are looked for beside the data given here
    faces = training_faces(train_cfg, ds)  # the run's own validation split and targets, as `fer train` has them
    if faces.x_test is None:
        raise data.DataError(f"{data_source} has no PublicTest faces to report the bundled model's accuracy on")
    calibration = calibrate(model, faces.x_val, faces.y_val, faces.x_test, faces.y_test, fit_to=faces.val_votes)
    if len(runs) > 1:
        val = evaluate_arrays(model, faces.x_val, faces.y_val, channels_last=False, votes=faces.val_votes)
        info["validation"] = {"accuracy": val.accuracy}
    m = evaluate_arrays(model, faces.x_test, faces.y_test, channels_last=False, votes=faces.test_votes)
    name = name or ("fer2013" if train_cfg.labels == "fer2013" else "ferplus")
    if name not in BUNDLED_NAMES:
        raise ValueError(f"--name {name!r}: a bundled model is one of {', '.join(BUNDLED_NAMES)}")
    out = Path(to) if to else BUNDLED_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    cfg["model"]["temperature"] = model.cfg.temperature
    plots.reliability_diagram(calibration).savefig(out / "reliability.png", dpi=80, bbox_inches="tight")
    publictest = {
        "accuracy": m.accuracy,
        "n": m.n,
        "per_class": m.per_class,
        "confusion_matrix": m.confusion.tolist(),
        "labels": list(m.classes),
        "against": "FER2013 labels" if faces.test_votes is None else "the FER+ crowd's majority",
        "ece": m.ece,
    }
    if faces.test_votes is not None:
        publictest["mean_kl"] = m.kl
    served = serve(copy.deepcopy(model))  # the fastest path on this CPU, as FacePipeline serves it
    card = {
        "name": model.cfg.name,
        "bundle": name,
        "labels": list(model.cfg.classes),
        "targets": train_cfg.labels,
        "params": count_parameters(model),
        **info,
        "publictest": publictest,
        "calibration": calibration_summary(calibration),
        "data_sha256": ds.digest,
        "ms_per_face": round(ms_per_face(served), 2),
        "ms_per_face_measured_on": f"{os.cpu_count()} CPU cores, 1 torch thread, batch of one, as served "
        f"(fer.inference.weights.serve: {served.served_path})",
    }
    if faces.test_fer2013 is not None:  # a FER+ model on FER2013's own labels: its top one of their seven
        x2, y2 = faces.test_fer2013
        m2 = evaluate_arrays(model, x2, y2, channels_last=False, n_labels=len(data.LABELS))
        card["publictest_fer2013"] = {"accuracy": m2.accuracy, "n": m2.n, "per_class": m2.per_class}
    save_weights(model, out / "model.pt", card)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    if production:
        PRODUCTION_FILE.write_text(name + "\n")
    return card
