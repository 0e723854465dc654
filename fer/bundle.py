"""Ship a run's best weights inside the package, with a model card, as the `bundled` model.

    python -m fer bundle runs/paper --data ../shared/data/fer2013

The card carries what a user needs to trust the model: PublicTest accuracy,
per-class accuracy and confusion matrix, parameters, epochs run, recipe, the
training command and the SHA-256 of the data it was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fer import data
from fer.evaluate import evaluate_arrays
from fer.model import ModelConfig, count_parameters, create_model
from fer.tracking import save_weights
from fer.train import blur_for
from fer.weights import BUNDLED_DIR, ModelLoadError


def _from_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if "best_model" not in ck:
        raise ModelLoadError(f"{path}: not a training checkpoint of `fer train`")
    cfg = ck["config"]
    model = create_model(ModelConfig.from_dict(cfg["model"]))
    model.load_state_dict(ck["best_model"] or ck["model"])
    state = ck["state"]
    finished = state["stopped_early"] or state["epoch"] + 1 >= cfg["epochs"]
    info = {
        "recipe": cfg["recipe"],
        "epochs_run": state["epoch"] + 1,
        "epochs_planned": cfg["epochs"],
        "finished": bool(finished),
        "stopped_early": state["stopped_early"],
        "best_epoch": state["best_epoch"] + 1,
        "selection": f"best {cfg['select']} on "
        + ("PublicTest" if cfg["val"] == "public" else f"{cfg['val_fraction']:.0%} of Training (seed {cfg['seed']})"),
        "validation": {"accuracy": state["best_value"]} if cfg["select"] == "val_acc" else {},
        "command": f"python -m fer train --recipe {cfg['recipe']}",
        "config": cfg,
        "history": [{k: round(v, 5) for k, v in row.items()} for row in state["history"]],
    }
    return model.eval(), info


def bundle(run: str | Path, data_source: str | Path, to: str | Path | None = None) -> dict:
    run = Path(run)
    path = run / "last.pt" if run.is_dir() else run
    if not path.exists():
        raise ModelLoadError(f"{path}: no checkpoint to bundle")
    model, info = _from_checkpoint(path)
    ds = data.load(data_source, quiet=True)
    if info["config"].get("match_blur", True) and "input_blur" not in info["config"]["model"]:
        # a run from before the input blur existed: measure it now, as `fer train` does at its start
        cfg = model.cfg
        cfg.input_blur = blur_for(ds)
        state = model.state_dict()
        model = create_model(cfg).eval()
        model.load_state_dict(state)
    x, y = ds.split("PublicTest")
    m = evaluate_arrays(model, x, y, channels_last=False)
    unblurred = evaluate_arrays(model, x, y, channels_last=False, in_distribution=True)
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
        "input_blur": model.cfg.input_blur,
        "publictest_without_input_blur": {"accuracy": unblurred.accuracy},
        "data_sha256": ds.digest,
    }
    out = Path(to) if to else BUNDLED_DIR
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model, out / "model.pt", card)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
