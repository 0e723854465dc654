"""Run folders of `fer train` read back: a run's best weights with its card's training part, several runs' stacked
into one ensemble, and the commands that trained them.

    python -c "from fer.training.runs import load_runs; print(load_runs(['runs/a', 'runs/b'])[1]['command'])"

`fer bundle` ships what this reads; `fer train --distill` learns from it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fer.inference.weights import ModelLoadError
from fer.model import ModelConfig, create_model, stack
from fer.training.config import TrainConfig, command_for, split_in_words


def training_commands(config: dict, _chain: frozenset[str] = frozenset()) -> str:
    """The `fer train` command of this config, after those of its --distill teachers (and of theirs): the lines
    that train the model from nothing, each once. A teacher whose checkpoint is not on this machine is named in a
    comment."""
    lines = []
    for run in TrainConfig.from_dict(config).teachers:
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
