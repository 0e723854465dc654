"""Training configuration: one dataclass per concern, and the named recipes.

The paper's recipe (Tables 2-3, with the plateau schedule of its reference
implementation) is the default and is called `paper`. Another recipe is
another name here, not a pile of flags in a README.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field

from fer import parse_bool
from fer.data import DEFAULT_DATA
from fer.data.augment import AugmentConfig
from fer.model import ModelConfig


@dataclass
class TrainConfig:
    recipe: str = "paper"  # name of the recipe these values started from
    data: str = DEFAULT_DATA  # FER2013 folder or Kaggle CSV
    out: str = ""  # run folder for checkpoints and figures; default runs/<recipe>
    val: str = "split"  # 'split': a stratified part of Training (the paper); 'public': PublicTest
    val_fraction: float = 0.2  # part of Training held out when val='split'
    seed: int = 0  # seeds the split, the initial weights, the shuffling and the augmentation
    split_seed: int = -1  # seeds the validation split instead (-1: the seed); members of one ensemble share it
    # what the network learns: 'fer2013' (each face's folder label, 7 emotions), 'ferplus' (the FER+ crowd's vote
    # distribution over 8 emotions), or 'mix' (mix_weight of the one-hot FER2013 label, the rest the votes)
    labels: str = "fer2013"
    votes: str = ""  # FER+ votes.csv for 'ferplus' and 'mix'; '': beside the data folder, or the shared copy
    mix_weight: float = 0.5  # 'mix': the share of the one-hot FER2013 label in each face's target
    # weights to start from: 'bundled', 'bundled:fer2013', a run folder or weights file ('' : random); the network's
    # shape comes from them, and a 7-emotion head grows an eighth output for the FER+ emotions
    init: str = ""
    init_member: int = -1  # with an ensemble as --init: start from this one of its networks (from 0); -1: all
    epochs: int = 150  # maximum epochs (Table 2)
    batch_size: int = 32  # global batch, shared among processes (Table 2)
    optimizer: str = "adam"  # 'adam' or 'sgd' (Nesterov momentum 0.9)
    lr: float = 1e-3  # initial learning rate (Keras' Adam default)
    weight_decay: float = 0.0  # L2 on every weight, as gradient coefficient
    stem_l2: float = 0.01  # Keras-style L2 penalty on the stem kernels (the reference's l2(0.01))
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    class_weights: str = "none"  # 'none', or 'sqrt': each class's loss weighted by 1/sqrt(its count), mean 1
    mixup: float = 0.0  # mixup: batches blended with a shuffled copy, weight drawn from Beta(a, a); 0 is off
    distill: str = ""  # teacher run folders, comma-separated: their ensemble's logits become soft labels; '' is off
    distill_weight: float = 0.7  # share of the loss spent matching the teacher (the rest: the true labels)
    distill_temperature: float = 4.0  # softmax temperature of student and teacher when matching them
    schedule: str = "plateau"  # 'plateau' (the paper: lr times plateau_factor on a stall) or 'cosine' (to 0 at epochs)
    monitor: str = "val_loss"  # quantity watched by the plateau schedule and early stopping
    patience: int = 50  # early stopping: epochs without improvement of `monitor` (Table 2); 0: off
    plateau_factor: float = 0.1  # learning rate multiplier on a plateau
    plateau_patience: int = 12  # epochs without improvement before the learning rate drops
    select: str = "val_acc"  # the kept weights are those with the best value of this
    train_limit: int = 0  # use only the first N training images (0: all), for smoke runs
    channels_last: str = "auto"  # 'auto' (on, unless a known oneDNN fault forbids), 'on', 'off': memory format
    device: str = "auto"  # 'auto' (CUDA when present), 'cpu', 'cuda'
    threads: int = 0  # torch CPU threads (0: torch's default)
    # 'off' (float32), 'bf16' (forward pass under bfloat16 autocast, weights kept in float32), or 'auto': bf16 where
    # the device computes it natively (AVX-512 BF16 or AMX CPUs, recent GPUs), float32 elsewhere
    autocast: str = "off"
    register: bool = True  # register the final model in the MLflow Model Registry
    progress: bool = True  # show a progress bar per epoch
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @property
    def teachers(self) -> list[str]:
        """The run folders (or checkpoints) named by --distill."""
        return [r.strip() for r in self.distill.split(",") if r.strip()]

    @property
    def validation_seed(self) -> int:
        return self.seed if self.split_seed < 0 else self.split_seed

    @property
    def validation_split(self) -> tuple[str, float, int]:
        """What decides which faces a run validates on: `fer.data.fer2013.train_val(ds, *cfg.validation_split)`.
        Runs that share it never trained on each other's validation faces."""
        return self.val, self.val_fraction, self.validation_seed

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d.pop("match_blur", None)  # runs from the blurred copy of FER2013 carried it
        model = ModelConfig.from_dict(d.pop("model", {}))
        augment = AugmentConfig(**d.pop("augment", {}))
        return cls(model=model, augment=augment, **d)

    def flat(self) -> dict[str, object]:
        """Every value by dotted name, for MLflow params."""
        out = {}
        for k, v in self.to_dict().items():
            if isinstance(v, dict):
                out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                out[k] = v
        return out


def split_in_words(split: tuple[str, float, int]) -> str:
    """A `TrainConfig.validation_split` as messages name it."""
    val, fraction, seed = split
    return f"val {val!r}, fraction {fraction}, split seed {seed}"


def validation_split(card: dict) -> tuple[str, float, int] | None:
    """The validation split a model was selected on, as `fer.data.fer2013.train_val(ds, *split)` draws it, from the
    card `fer.inference.weights.load_model` gave: its training config, or the parameters of the MLflow run that
    logged it. None where neither says."""
    keys = {"val": str, "val_fraction": float, "seed": int, "split_seed": int}
    given = card.get("config")
    if not isinstance(given, dict) and card.get("run_id"):
        import mlflow

        try:
            given = mlflow.tracking.MlflowClient().get_run(card["run_id"]).data.params
        except Exception:  # noqa: BLE001 - a run since deleted, or another tracking store
            given = None
    if not isinstance(given, dict) or "seed" not in given:
        return None
    return TrainConfig.from_dict({k: kind(given[k]) for k, kind in keys.items() if k in given}).validation_split


def production() -> TrainConfig:
    """The served model: the paper's network twice as wide, Adam on a cosine schedule over 80 epochs in
    batches of 64 under bfloat16 autocast where the CPU has native bfloat16 (1.4-2.1× the images per second of
    float32 on AVX-512 BF16; emulated on AVX2, it would be 20× slower, so float32 there), flip test-time
    augmentation (docs/ablation.md). No early stopping: the schedule is planned to its end, and val_loss
    turns up tens of epochs before accuracy stops climbing (it cut a 150-epoch run at epoch 96)."""
    return TrainConfig(
        epochs=80,
        batch_size=64,
        schedule="cosine",
        patience=0,
        autocast="auto",
        model=ModelConfig(stem_channels=16, widths=(32, 64, 128, 256), flip_tta=True),
    )


def ferplus() -> TrainConfig:
    """A network of the production FER+ model: the production recipe's network trained from scratch on the FER+
    crowd votes (eight emotions), Adam at 1e-3 on a cosine schedule over 80 epochs, on the FER2013 bundle's
    validation split (seed 0). The production model stacks two of them, seeds 46 and 47 (`fer bundle`):
    85.27% on validation against the crowd's majority, where the FER2013 ensemble fine-tuned on the votes for 24
    epochs gave 85.20% (docs/ablation.md, FER+)."""
    cfg = production()
    cfg.labels, cfg.split_seed, cfg.seed = "ferplus", 0, 46
    return cfg


RECIPES: dict[str, typing.Callable[[], TrainConfig]] = {
    "paper": TrainConfig,
    "production": production,
    "ferplus": ferplus,
}


def recipe(name: str) -> TrainConfig:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}")
    cfg = RECIPES[name]()
    cfg.recipe = name
    return cfg


# config values no `fer train` flag sets: the temperature is fitted on the validation split at the end of every run,
# the emotions follow --labels, and an ensemble's networks come from --init or `fer bundle RUN RUN`
_NOT_FLAGS = ("recipe", "model.temperature", "model.num_classes", "model.members")


def command_for(config: dict) -> str:
    """The `fer train` command that gives this config: the recipe, then a flag for each value it changed."""
    cfg = TrainConfig.from_dict(config)
    base, mine = recipe(cfg.recipe).flat(), cfg.flat()
    flags = [f"--recipe {cfg.recipe}"]
    for name, value in mine.items():
        if name in _NOT_FLAGS or base.get(name) == value:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        flags.append(f"--{name.replace('_', '-')} {value}")
    return "python -m fer train " + " ".join(flags)


# ------------------------------------------------------------ flags from the dataclasses

_NESTED = {"model": ModelConfig, "augment": AugmentConfig}


def _fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in _NESTED and not prefix:
            yield from _fields(_NESTED[f.name], prefix=f"{f.name}.")
        elif f.name not in ("recipe",) and prefix + f.name != "model.members":  # ensembles: `fer bundle RUN RUN`
            yield prefix + f.name, hints[f.name], f


def add_config_flags(parser) -> None:
    """One flag per config field (`--batch-size`, `--augment.rotation`, ...), default 'from the recipe' (an absent
    flag leaves no attribute, so the help shows the paper recipe's value, not argparse's None)."""
    import argparse

    for name, typ, f in _fields(TrainConfig):
        flag = "--" + name.replace("_", "-")
        help_text = _field_comment(f).replace("%", "%%")  # argparse formats help with %: "20%" must print as is
        kw = {"dest": name, "help": help_text, "default": argparse.SUPPRESS}
        if typ is bool:
            parser.add_argument(flag, type=parse_bool, metavar="{true,false}", **kw)
        elif typing.get_origin(typ) is tuple:
            parser.add_argument(flag, type=_parse_int_tuple, metavar="N,N,...", **kw)
        else:
            parser.add_argument(flag, type=typ, **kw)


def apply_flags(cfg: TrainConfig, args) -> TrainConfig:
    for name, _, _ in _fields(TrainConfig):
        value = getattr(args, name, None)
        if value is None:
            continue
        target, attr = cfg, name
        if "." in name:
            head, attr = name.split(".", 1)
            target = getattr(cfg, head)
        setattr(target, attr, value)
    return cfg


# what a resumed run keeps from its checkpoint whatever the flags: its network and the faces it validates on
_KEPT_ON_RESUME = (
    "seed",
    "split_seed",
    "val",
    "val_fraction",
    "train_limit",
    "labels",
    "mix_weight",
    "init",
    "init_member",
)


def resumed(saved: dict, args) -> tuple[TrainConfig, list[str]]:
    """The configuration of a run continued with --resume: the one saved in its checkpoint, with the flags given
    now on top (more --epochs, other --threads, a moved --data folder). A flag that would change the network or
    the validation faces stops with a message. Returns the configuration and its changes ('name: old -> new')."""
    old = TrainConfig.from_dict(saved).flat()
    cfg = apply_flags(TrainConfig.from_dict(saved), args)
    new = cfg.flat()
    changed = [k for k in new if new[k] != old.get(k) and k != "out"]  # (the folder is where it was found)
    kept = [k for k in changed if k.startswith("model.") or k in _KEPT_ON_RESUME]
    if kept:
        flags = ", ".join(f"--{k.replace('_', '-')} {_show(new[k])} (the run has {_show(old.get(k))})" for k in kept)
        raise SystemExit(
            f"error: --resume continues a run with the network and validation faces it started with; {flags} "
            "would change them. Drop the flag, or start a new run with another --out"
        )
    return cfg, [f"{k}: {_show(old.get(k))} -> {_show(new[k])}" for k in changed]


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def _parse_int_tuple(s: str) -> tuple[int, ...]:
    return tuple(int(p) for p in s.split(",") if p.strip())


def _field_comment(f) -> str:
    import inspect

    src = inspect.getsource(TrainConfig) + inspect.getsource(ModelConfig) + inspect.getsource(AugmentConfig)
    for line in src.splitlines():
        stripped = line.strip()
        if stripped.startswith(f"{f.name}:") and "#" in stripped:
            return stripped.split("#", 1)[1].strip() + f" (paper recipe: {_default(f)})"
    return f"paper recipe: {_default(f)}"


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()
