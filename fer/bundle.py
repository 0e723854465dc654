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

import torch

from fer import data, plots
from fer.calibration import calibrate
from fer.config import TrainConfig, command_for, split_in_words
from fer.evaluate import evaluate_arrays, ms_per_face
from fer.model import ModelConfig, count_parameters, create_model, stack
from fer.tracking import calibration_summary, save_weights
from fer.weights import BUNDLED_DIR, ModelLoadError, for_inference


def training_commands(config: dict, _chain: frozenset[str] = frozenset()) -> str:
    """The `fer train` command of this config, after those of its --distill teachers (and of theirs): the lines
    that train the model from nothing, each once. A teacher whose checkpoint is not on this machine is named in a
    comment."""
    from fer.train import teacher_runs

    lines = []
    for run in teacher_runs(TrainConfig.from_dict(config)):
        try:
            ckpt = str(run_checkpoint(run).resolve())
        except ModelLoadError:
            lines.append(f"# the teacher {run}: its checkpoint is not on this machine, so its command is not known")
            continue
        if ckpt not in _chain:  # a run named as its own teacher's teacher would never end
            teacher = torch.load(ckpt, map_location="cpu", weights_only=True)["config"]
            lines += training_commands(teacher, _chain | {ckpt}).splitlines()
    return "\n".join(dict.fromkeys([*lines, command_for(config)]))


def _from_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if "best_model" not in ck:
        raise ModelLoadError(f"{path}: not a training checkpoint of `fer train`")
    train_cfg = TrainConfig.from_dict(ck["config"])
    cfg = train_cfg.to_dict()  # as it reads today: no keys of retired options
    model = create_model(train_cfg.model)
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
        + (
            "PublicTest"
            if cfg["val"] == "public"
            else f"{cfg['val_fraction']:.0%} of Training (split seed {train_cfg.validation_seed})"
        ),
        "validation": {"accuracy": state["best_value"]} if cfg["select"] == "val_acc" else {},
        "command": training_commands(cfg),
        "config": cfg,
        "training_seconds": round(sum(row["epoch_seconds"] for row in state["history"]), 1),
        "history": [{k: round(v, 5) for k, v in row.items()} for row in state["history"]],
    }
    return model.eval(), info


def run_checkpoint(run: str | Path) -> Path:
    """The checkpoint a run folder's networks are read from (its last.pt), or the file given."""
    run = Path(run)
    path = run / "last.pt" if run.is_dir() else run
    if not path.exists():
        raise ModelLoadError(f"{path}: no checkpoint to bundle")
    return path


def ensemble(members: list[tuple[torch.nn.Module, dict]], runs: list[str | Path]) -> tuple[torch.nn.Module, dict]:
    """One graph averaging the members' logits, and its card's training part (each member's figures kept)."""
    cfgs = [info["config"] for _, info in members]

    def shape(c: dict) -> dict:
        return {k: v for k, v in ModelConfig.from_dict(c["model"]).to_dict().items() if k != "temperature"}

    def split(c: dict) -> tuple:
        return TrainConfig.from_dict(c).validation_split

    for run, c in zip(runs[1:], cfgs[1:]):
        if shape(c) != shape(cfgs[0]):
            diff = sorted(k for k in shape(c) if shape(c)[k] != shape(cfgs[0])[k])
            raise ModelLoadError(
                f"{run}: its network differs from {runs[0]}'s ({', '.join(diff)}); "
                "the members of an ensemble share one shape"
            )
        if split(c) != split(cfgs[0]):
            raise ModelLoadError(
                f"{run}: selected on another validation split ({split_in_words(split(c))}) than {runs[0]} "
                f"({split_in_words(split(cfgs[0]))}), so no split is unseen by all members; train every member "
                "with the same --split-seed"
            )
    model = stack([member for member, _ in members])
    infos = [info for _, info in members]
    config = {**cfgs[0], "model": model.cfg.to_dict()}
    info = {
        "recipe": cfgs[0]["recipe"],
        "epochs_run": "+".join(str(i["epochs_run"]) for i in infos),
        "epochs_planned": "+".join(str(i["epochs_planned"]) for i in infos),
        "finished": all(i["finished"] for i in infos),
        "stopped_early": any(i["stopped_early"] for i in infos),
        "best_epoch": "+".join(str(i["best_epoch"]) for i in infos),
        "selection": f"each member: {infos[0]['selection']}; the ensemble: the mean of the members' logits",
        "command": "\n".join([*(i["command"] for i in infos), "python -m fer bundle " + " ".join(map(str, runs))]),
        "config": config,
        "training_seconds": round(sum(i["training_seconds"] for i in infos), 1),
        "members": [
            {
                "run": str(run),
                "seed": i["config"]["seed"],
                "epochs_run": i["epochs_run"],
                "best_epoch": i["best_epoch"],
                "validation": i["validation"],
                "training_seconds": i["training_seconds"],
                "command": i["command"],
            }
            for run, i in zip(runs, infos)
        ],
    }
    return model.eval(), info


def load_runs(runs: str | Path | list[str | Path]) -> tuple[torch.nn.Module, dict]:
    """A run's best weights, or several runs' stacked into one ensemble (they must share the network's shape
    and the validation split), in eval mode, with the training part of a model card."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    members = [_from_checkpoint(run_checkpoint(r)) for r in runs]
    return members[0] if len(members) == 1 else ensemble(members, runs)


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
        "(fer.weights.for_inference)",
    }
    save_weights(model, out / "model.pt", card)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
