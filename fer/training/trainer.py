"""Train a model on FER2013 and track the run in MLflow.

    python -m fer train                                   # the paper's recipe on ../shared/data/fer2013
    python -m fer train --resume                          # continue runs/paper after an interruption
    torchrun --nproc_per_node=2 -m fer train --out runs/ddp   # data parallel, same code path

Each epoch: shuffle, normalise (eq. 1), augment on the batch, step; then
validate, step the plateau schedule, keep the best weights and write a
checkpoint atomically. At the end the best weights get a temperature fitted
on the validation split (fer.evaluation.calibration), are evaluated on PublicTest and
logged to MLflow with the figures and the model.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer import LABELS
from fer.data.augment import augment
from fer.data.fer2013 import USAGES, Fer2013, load, train_val_index
from fer.data.preprocess import normalize, sharpness
from fer.evaluation.calibration import calibrate
from fer.evaluation.metrics import Metrics, evaluate_arrays
from fer.model import count_parameters, create_model, load_grown
from fer.training import dist
from fer.training.config import TrainConfig, split_in_words


class Plateau:
    """Multiply the learning rate by `factor` after `patience` epochs without improvement (Keras semantics)."""

    def __init__(self, factor: float, patience: int, mode: str = "min", min_delta: float = 1e-4):
        self.factor, self.patience, self.mode, self.min_delta = factor, patience, mode, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float) -> bool:
        """Record an epoch's value; True when the learning rate should drop now."""
        if self.improved(value):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.wait = d["best"], d["wait"]


class EarlyStopping(Plateau):
    """Stop after `patience` epochs without any improvement (Keras' `EarlyStopping`, min_delta 0); 0: never."""

    def __init__(self, patience: int, mode: str = "min"):
        super().__init__(factor=1.0, patience=patience, mode=mode, min_delta=0.0)

    def step(self, value: float) -> bool:
        if self.improved(value):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        return 0 < self.patience <= self.wait


def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """Half a cosine from `base` at epoch 0 towards 0 at `epochs` (one value per epoch)."""
    return base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def monitor_mode(name: str) -> str:
    return "min" if name.endswith("loss") else "max"


@dataclass
class RunState:
    """Everything a checkpoint holds besides the modules and RNGs."""

    epoch: int = -1  # last completed epoch (0-based)
    best_value: float | None = None  # best value of cfg.select so far
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)
    mlflow_run_id: str | None = None
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return dist.local_device()
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but no CUDA device is present")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX-512 BF16
    or AMX. Elsewhere (AVX2 CPUs) oneDNN emulates it, and bf16 autocast trains about 20× slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(
            getattr(torch.cpu, probe, lambda: False)()
            for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        )
    return False


def autocast_bf16(autocast: str, device: torch.device) -> tuple[bool, str | None]:
    """(train under bfloat16 autocast?, a line for the user or None) for --autocast off/bf16/auto on this device."""
    if autocast == "off":
        return False, None
    native = native_bf16(device)
    if autocast == "auto":
        how = "bfloat16 autocast" if native else "float32 (no native bfloat16 on this device: AVX-512 BF16 or AMX)"
        return native, f"precision: {how} (--autocast auto)"
    if not native:
        return True, (
            f"warning: --autocast bf16 on a {device.type.upper()} without native bfloat16 (AVX-512 BF16 or AMX): "
            "it is emulated and trains many times slower than float32; use --autocast auto or off"
        )
    return True, None


def strided_1x1_under_8(model: nn.Module, device: torch.device) -> tuple[str, int] | None:
    """(name, input channels) of a 1x1 convolution with stride > 1 over fewer than 8 channels, on a CPU without
    AVX-512; else None. oneDNN's AVX2 kernel for its weight gradient in channels-last memory crashes (torch
    2.14.1: a segfault or abort with one thread, a hang with two), so such a model must train contiguous there."""
    if device.type != "cpu" or torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return None
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1 and m.in_channels < 8:
            return name, m.in_channels
    return None


def channels_last_choice(setting: str, model: nn.Module, device: torch.device) -> tuple[bool, str | None]:
    """(train in channels-last memory?, a line for the user or None) for --channels-last auto/on/off."""
    if setting not in ("auto", "on", "off"):
        raise SystemExit(f"error: unknown --channels-last {setting!r}; expected 'auto', 'on' or 'off'")
    if setting == "off":
        return False, None
    fault = strided_1x1_under_8(model, device)
    if fault is None:
        return True, None
    problem = (
        f"layer {fault[0]} is a strided 1x1 convolution over {fault[1]} channels, and on this CPU (no AVX-512) "
        "oneDNN crashes computing its gradient in channels-last memory"
    )
    if setting == "on":
        raise SystemExit(f"error: --channels-last on: {problem}; use --channels-last auto or off")
    return False, f"memory format: contiguous, not channels-last ({problem})"


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected 'adam' or 'sgd'")


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def saved_config(out: Path) -> dict | None:
    """The configuration saved in the checkpoint of the run folder `out`; None when there is no checkpoint."""
    path = out / "last.pt"
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True).get("config")
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise SystemExit(
            f"error: {path} is not a checkpoint of this program ({type(e).__name__}: {str(e)[:200]}); "
            "it was left as it is"
        ) from None


def _shard(perm: torch.Tensor, rank: int, world: int, batch: int) -> list[torch.Tensor]:
    """This rank's part of every global batch; the tail is dropped so ranks stay in step."""
    per_rank = batch // world
    n_batches = len(perm) // batch
    usable = perm[: n_batches * batch].view(n_batches, world, per_rank)
    return list(usable[:, rank])


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg
        self.rank, self.world = dist.init()
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.schedule not in ("plateau", "cosine"):
            raise SystemExit(f"error: unknown --schedule {cfg.schedule!r}; expected 'plateau' or 'cosine'")
        if cfg.autocast not in ("off", "bf16", "auto"):
            raise SystemExit(f"error: unknown --autocast {cfg.autocast!r}; expected 'off', 'bf16' or 'auto'")
        self.bf16, precision_note = autocast_bf16(cfg.autocast, self.device)
        self.precision = "bfloat16 autocast" if self.bf16 else "float32"
        if precision_note:
            self.log(precision_note)
        if cfg.class_weights not in ("none", "sqrt"):
            raise SystemExit(f"error: unknown --class-weights {cfg.class_weights!r}; expected 'none' or 'sqrt'")
        if cfg.mixup < 0:
            raise SystemExit(f"error: --mixup {cfg.mixup} is negative; give the Beta parameter, or 0 for off")
        if cfg.distill:
            if cfg.mixup:
                raise SystemExit("error: --distill and --mixup together are not supported; choose one")
            if not 0 <= cfg.distill_weight <= 1:
                raise SystemExit(f"error: --distill-weight {cfg.distill_weight} is outside [0, 1]")
            if cfg.distill_temperature <= 0:
                raise SystemExit(f"error: --distill-temperature {cfg.distill_temperature} must be positive")
        self.teacher_logits: torch.Tensor | None = None  # set by fit when distilling: one row per training face
        self.class_weight: torch.Tensor | None = None  # set by fit from the training labels
        if cfg.batch_size % self.world:
            raise SystemExit(f"error: --batch-size {cfg.batch_size} does not split evenly over {self.world} processes")
        self.out = Path(cfg.out or f"runs/{cfg.recipe}")
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.out / "last.pt"
        if self.ckpt_path.exists() and not resume:
            raise SystemExit(
                f"error: {self.ckpt_path} holds an earlier run; pass --resume to continue it or --out for a new folder"
            )
        if resume and not self.ckpt_path.exists():
            raise SystemExit(f"error: --resume given, but there is no checkpoint at {self.ckpt_path}")

        if cfg.labels not in TARGETS:
            raise SystemExit(f"error: unknown --labels {cfg.labels!r}; expected {', '.join(TARGETS)}")
        if cfg.labels != "fer2013" and cfg.distill:
            raise SystemExit("error: --distill learns from a teacher's FER2013 logits; use it with --labels fer2013")
        if not 0 <= cfg.mix_weight <= 1:
            raise SystemExit(f"error: --mix-weight {cfg.mix_weight} is outside [0, 1]")
        cfg.model.num_classes = TARGETS[cfg.labels]
        start = None
        if cfg.init and not resume:  # (a resumed run's shape and weights are in its checkpoint)
            if cfg.init == "bundled":  # recorded as the model it is now: 'bundled' may name another one later
                from fer.inference.weights import ModelLoadError, bundled_name

                try:
                    cfg.init = f"bundled:{bundled_name()}"
                except ModelLoadError as e:
                    raise SystemExit(f"error: --init: {e}") from None
            start = initial_model(cfg.init, cfg.init_member)
            for key in ("name", "in_channels", "input_size", "stem_channels", "widths", "input_pool", "members"):
                setattr(cfg.model, key, getattr(start.cfg, key))
            cfg.model.flip_tta, cfg.model.tta_shift = start.cfg.flip_tta, start.cfg.tta_shift

        torch.manual_seed(cfg.seed)  # initial weights; numpy draws use explicit seeded generators
        self.model = create_model(cfg.model).to(self.device)
        if start is not None:
            load_grown(self.model, start.state_dict(), start.cfg.num_classes)
            self.log(
                f"starting from {cfg.init}"
                + (f", its network {cfg.init_member}" if cfg.init_member >= 0 else "")
                + f" ({start.cfg.members} network(s), {start.cfg.num_classes} emotions"
                + (f", grown to {cfg.model.num_classes}" if cfg.model.num_classes > start.cfg.num_classes else "")
                + ")"
            )
        self.channels_last, layout_note = channels_last_choice(cfg.channels_last, self.model, self.device)
        if layout_note:
            self.log(layout_note)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ddp = (
            nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.world > 1
            else self.model
        )
        self.optimizer = build_optimizer(cfg, self.model)
        mode = monitor_mode(cfg.monitor)
        self.plateau = Plateau(cfg.plateau_factor, cfg.plateau_patience, mode)
        self.early = EarlyStopping(cfg.patience, mode)
        self.aug_gen = torch.Generator()  # reseeded per epoch and rank, so a resumed run draws the same
        self.state = RunState()
        self.best_state: dict | None = None
        if resume:
            self._load_checkpoint()

    # ------------------------------------------------------------ checkpoints

    def _checkpoint(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "plateau": self.plateau.state_dict(),
            "early": self.early.state_dict(),
            "state": self.state.__dict__,
            "best_model": self.best_state,
            "config": self.cfg.to_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
            },
        }

    def _load_checkpoint(self) -> None:
        ck = torch.load(self.ckpt_path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.plateau.load_state_dict(ck["plateau"])
        self.early.load_state_dict(ck["early"])
        self.state = RunState(**ck["state"])
        self.best_state = ck["best_model"]
        torch.set_rng_state(ck["rng"]["torch"])
        self.log(f"resumed from {self.ckpt_path} after epoch {self.state.epoch + 1}")

    # ------------------------------------------------------------ loop

    def log(self, msg: str) -> None:
        if dist.is_main():
            print(msg, file=sys.stderr, flush=True)

    def _to_batch(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_one_epoch(self, epoch: int, x_train: torch.Tensor, y_train: torch.Tensor) -> dict:
        cfg = self.cfg
        self.ddp.train()
        # every rank draws the same permutation, then takes its own slice of each batch
        perm = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        self.aug_gen.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + self.rank)
        batches = _shard(perm, self.rank, self.world, cfg.batch_size)
        mix_rng = np.random.default_rng(cfg.seed * 7919 + epoch * 31 + self.rank)
        stem = self.model.stem_weights() if cfg.stem_l2 and hasattr(self.model, "stem_weights") else []
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.float64)
        seen = 0
        bar = self._bar(len(batches), epoch)
        t0 = time.perf_counter()
        for i, idx in enumerate(batches):
            x = augment(x_train[idx], cfg.augment, self.aug_gen)
            y = y_train[idx].to(self.device, non_blocking=True)  # labels, or (B, C) target distributions
            soft = None if self.teacher_logits is None else self.teacher_logits[idx]
            lam, partner = 1.0, None
            if cfg.mixup > 0:
                lam = float(mix_rng.beta(cfg.mixup, cfg.mixup))
                partner = torch.as_tensor(mix_rng.permutation(len(idx)))
                x = lam * x + (1 - lam) * x[partner]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.ddp(self._to_batch(x)).float()
            loss = self._loss(logits, y)
            if soft is not None:
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * self._distill_loss(logits, soft)
            if partner is not None:
                loss = lam * loss + (1 - lam) * self._loss(logits, y[partner.to(y.device)])
            total = loss + cfg.stem_l2 * sum(w.pow(2).sum() for w in stem) if stem else loss
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            loss_sum += loss.detach().double().cpu() * len(idx)
            correct += (logits.detach().argmax(1) == (y if y.ndim == 1 else y.argmax(1))).sum().double().cpu()
            seen += len(idx)
            if bar is not None and (i % 20 == 0 or i == len(batches) - 1):
                rate = seen * self.world / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(
                    f"loss {loss_sum.item() / seen:.3f} acc {correct.item() / seen:.3f} {rate:.0f} img/s"
                )
                bar.update(i + 1 - bar.n)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        stats = dist.all_reduce_sum(torch.stack([loss_sum, correct, torch.tensor(float(seen), dtype=torch.float64)]))
        n = stats[2].item()
        return {
            "train_loss": stats[0].item() / n,
            "train_acc": stats[1].item() / n,
            "epoch_seconds": seconds,
            "images_per_second": n / seconds,
        }

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, weight=self.class_weight, label_smoothing=self.cfg.label_smoothing)

    def _distill_loss(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Hinton et al.'s soft-label loss: KL(teacher || student) at temperature T, times T² so its gradients
        keep their scale whatever T."""
        t = self.cfg.distill_temperature
        student, target = F.log_softmax(logits / t, dim=1), F.log_softmax(teacher / t, dim=1)
        return F.kl_div(student, target, log_target=True, reduction="batchmean") * t * t

    def _bar(self, total: int, epoch: int):
        if not (self.cfg.progress and dist.is_main()):
            return None
        from tqdm import tqdm

        return tqdm(
            total=total,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            unit="batch",
            file=sys.stderr,
            leave=False,
            mininterval=1.0,
        )

    def fit(self, x_train, y_train, x_val, y_val, on_epoch=None, teacher_logits=None) -> RunState:
        """Train from the last completed epoch to the end; `teacher_logits` (one row per training face) turn on
        distillation."""
        cfg = self.cfg
        if teacher_logits is not None:
            self.teacher_logits = torch.as_tensor(teacher_logits, dtype=torch.float32).to(self.device)
        x_train = normalize(x_train)  # (N, 1, 48, 48) float in [0, 1], once for the whole run
        y_train = torch.as_tensor(y_train)
        if cfg.class_weights == "sqrt":
            hard = y_train if y_train.ndim == 1 else y_train.argmax(1)
            self.class_weight = sqrt_inverse_weights(hard, cfg.model.num_classes).to(self.device)
        select_mode = monitor_mode(cfg.select)
        for epoch in range(self.state.epoch + 1, cfg.epochs):
            if cfg.schedule == "cosine":
                for g in self.optimizer.param_groups:
                    g["lr"] = cosine_lr(cfg.lr, epoch, cfg.epochs)
            row = self.train_one_epoch(epoch, x_train, y_train)
            val = evaluate_arrays(self.model, x_val, y_val, device=self.device, channels_last=self.channels_last)
            row.update(
                val_loss=val.loss, val_acc=val.accuracy, lr=self.optimizer.param_groups[0]["lr"], epoch=epoch + 1
            )
            value = row[cfg.select]
            if self.state.best_value is None or (
                value > self.state.best_value if select_mode == "max" else value < self.state.best_value
            ):
                self.state.best_value, self.state.best_epoch = value, epoch
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.plateau.step(row[cfg.monitor]) and cfg.schedule == "plateau":
                for g in self.optimizer.param_groups:
                    g["lr"] *= cfg.plateau_factor
            stop = self.early.step(row[cfg.monitor])
            self.state.epoch = epoch
            self.state.history.append(row)
            self.state.stopped_early = stop
            self.log(
                f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  lr {row['lr']:.1e}  "
                f"{row['epoch_seconds']:.1f}s {row['images_per_second']:.0f} img/s"
                + ("  *best" if self.state.best_epoch == epoch else "")
            )
            if on_epoch is not None and dist.is_main():
                on_epoch(row, epoch + 1)
            if dist.is_main():
                save_atomic(self._checkpoint(), self.ckpt_path)
            dist.barrier()
            if stop:
                self.log(f"early stop: {cfg.monitor} did not improve for {cfg.patience} epochs")
                break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.state


def sqrt_inverse_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """1/sqrt(count) per class, scaled so the training images' mean weight is 1 (a class absent from y gets 0)."""
    counts = torch.bincount(torch.as_tensor(y), minlength=n_classes).double()
    w = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))
    return (w / (w[y].mean())).float()


TARGETS = {"fer2013": len(LABELS), "ferplus": 8, "mix": 8}  # --labels, and the emotions the network learns


def initial_model(spec: str, member: int = -1):
    """The network `--init` names, to fine-tune: 'bundled' (or 'bundled:NAME'), a run folder or a weights file;
    `member` >= 0 picks one network of an ensemble."""
    from fer.inference.weights import ModelLoadError, load_model, load_weights
    from fer.model import MiniXception, unstack
    from fer.training.runs import run_checkpoint

    try:
        model, _ = load_weights(run_checkpoint(spec)) if Path(spec).is_dir() else load_model(spec)
    except ModelLoadError as e:
        raise SystemExit(f"error: --init: {e}") from None
    if not isinstance(model, MiniXception):
        raise SystemExit(f"error: --init {spec}: an exported model has no trainable weights; give a weights file")
    if member >= 0:
        if member >= model.cfg.members:
            raise SystemExit(
                f"error: --init-member {member}: {spec} holds {model.cfg.members} network(s), numbered from 0"
            )
        model = unstack(model)[member]
    return model


@dataclass
class Faces:
    """The faces of a run and what each is taught and scored against."""

    x_train: np.ndarray
    y_train: np.ndarray  # (N,) FER2013 labels, or (N, 8) target distributions (--labels ferplus or mix)
    x_val: np.ndarray
    y_val: np.ndarray  # (N,) labels the run is selected on: FER2013's, or the crowd's majority
    x_test: np.ndarray | None  # PublicTest, where the data has it
    y_test: np.ndarray | None
    val_votes: np.ndarray | None = None  # (N, 8) the crowd's vote distributions of the validation faces (FER+)
    test_votes: np.ndarray | None = None
    test_fer2013: tuple[np.ndarray, np.ndarray] | None = None  # PublicTest with FER2013's labels, for a FER+ run
    note: str = ""  # how many faces the votes left out, for the log


def training_faces(cfg: TrainConfig, ds: Fer2013) -> Faces:
    """Training, validation and PublicTest faces with the targets `cfg.labels` asks for. With the FER+ votes,
    faces FER+ dropped or whose top vote is 'unknown' / 'not a face' are not trained on, and the validation and
    PublicTest faces counted are those with a strict crowd majority."""
    tr, va = train_val_index(ds, *cfg.validation_split)
    test = np.flatnonzero(ds.usage == USAGES.index("PublicTest"))
    if cfg.labels == "fer2013":
        return Faces(
            ds.images[tr],
            ds.labels[tr],
            ds.images[va],
            ds.labels[va],
            ds.images[test] if len(test) else None,
            ds.labels[test] if len(test) else None,
        )
    from fer.data.votes import default_votes, read_votes

    path = cfg.votes or default_votes(cfg.data)
    if not path:
        raise SystemExit(
            f"error: --labels {cfg.labels} learns from the FER+ crowd votes, and none were found beside {cfg.data}; "
            "give --votes PATH/votes.csv"
        )
    votes = read_votes(path, list(ds.keys))
    used, dist, majority = votes.used, votes.distribution(), votes.majority()
    kept_tr = tr[used[tr]]
    y = dist[kept_tr]
    if cfg.labels == "mix":
        one_hot = np.eye(dist.shape[1], dtype=np.float32)[ds.labels[kept_tr]]
        y = cfg.mix_weight * one_hot + (1 - cfg.mix_weight) * y
    kept_va, kept_te = va[majority[va] >= 0], test[majority[test] >= 0]
    dropped = votes.dropped
    note = (
        f"FER+ votes ({path}): training on {len(kept_tr)} of {len(tr)} faces ({int(dropped[tr].sum())} dropped by "
        f"FER+, {int((~used[tr] & ~dropped[tr]).sum())} 'unknown' or 'not a face'); validating on the "
        f"{len(kept_va)} of {len(va)} with a crowd majority; PublicTest {len(kept_te)} of {len(test)}"
    )
    return Faces(
        ds.images[kept_tr],
        y,
        ds.images[kept_va],
        majority[kept_va],
        ds.images[kept_te] if len(test) else None,
        majority[kept_te] if len(test) else None,
        val_votes=dist[kept_va],
        test_votes=dist[kept_te] if len(test) else None,
        test_fer2013=(ds.images[test], ds.labels[test]) if len(test) else None,
        note=note,
    )


def run(cfg: TrainConfig, resume: bool = False) -> dict:
    """The whole training command: data, model, loop, final evaluation and MLflow logging."""
    from fer.training import mlflow_runs as tracking

    if not cfg.progress:  # nor MLflow's bars while it logs the model: a log file gets one line per epoch
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    dist.init()
    ds = load(cfg.data, quiet=not dist.is_main())
    faces = training_faces(cfg, ds)
    x_tr, y_tr, x_val, y_val, x_test, y_test = (
        faces.x_train,
        faces.y_train,
        faces.x_val,
        faces.y_val,
        faces.x_test,
        faces.y_test,
    )
    trainer = Trainer(cfg, resume=resume)
    try:
        if faces.note:
            trainer.log(faces.note)
        if cfg.train_limit:  # a seeded random subset, so every class stays represented
            keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(y_tr))[: cfg.train_limit])
            x_tr, y_tr = x_tr[keep], y_tr[keep]
        if dist.is_main():
            warning = sharpness_warning(x_tr, x_test if x_test is not None else x_val, "PublicTest")
            if warning:
                print(warning, file=sys.stderr, flush=True)
        n_params = count_parameters(trainer.model)
        trainer.log(
            f"{cfg.model.name}: {n_params:,} parameters | {ds.summary()} | train {len(y_tr)}, val {len(y_val)} "
            f"({'PublicTest' if cfg.val == 'public' else f'{cfg.val_fraction:.0%} of Training'}) | "
            f"{trainer.world} process(es) on {trainer.device}"
        )
        tracker = tracking.RunTracker(cfg, trainer.state.mlflow_run_id) if dist.is_main() else None
        if tracker is not None:
            trainer.state.mlflow_run_id = tracker.run_id
            tracker.log_start(
                n_params=n_params,
                data_digest=ds.digest,
                n_train=len(y_tr),
                n_val=len(y_val),
                precision=trainer.precision,
            )
        soft = kept_teacher_logits(cfg, trainer.out, x_tr, y_tr, trainer.log) if cfg.distill else None
        state = trainer.fit(
            x_tr, y_tr, x_val, y_val, on_epoch=tracker.log_epoch if tracker else None, teacher_logits=soft
        )
        result = {
            "epochs_run": state.epoch + 1,
            "best_epoch": state.best_epoch + 1,
            "params": n_params,
            "stopped_early": state.stopped_early,
        }
        if dist.is_main():
            trainer.model.cpu()
            calibration = calibrate(trainer.model, x_val, y_val, x_test, y_test, fit_to=faces.val_votes)
            trainer.log(_calibration_line(calibration))
            val = evaluate_arrays(trainer.model, x_val, y_val, votes=faces.val_votes)
            result["val"] = val.to_dict()
            test: Metrics | None = None
            if x_test is not None:
                test = evaluate_arrays(trainer.model, x_test, y_test, votes=faces.test_votes)
                result["test"] = test.to_dict()
            if faces.test_fer2013 is not None:
                x2, y2 = faces.test_fer2013
                result["test_fer2013"] = evaluate_arrays(trainer.model, x2, y2, n_labels=len(LABELS)).to_dict()
            result["calibration"] = tracking.calibration_summary(calibration)
            result.update(
                tracker.log_final(trainer.model, state, val, test, trainer.out, ds.digest, calibration=calibration)
            )
            trainer.log(_final_line(result))
        dist.barrier()
        return result
    finally:
        dist.cleanup()


def teacher_logits(cfg: TrainConfig, x_train, y_train, log=print) -> torch.Tensor:
    """The teacher's logits (the runs in --distill, stacked into one ensemble, with their test-time
    augmentation) for every training face. The teacher must have been selected on the student's validation
    split, or the student would learn from a teacher that saw its validation faces."""
    from fer.evaluation.metrics import predict_logits
    from fer.inference.weights import ModelLoadError
    from fer.training.runs import load_runs

    runs = cfg.teachers
    try:
        teacher, info = load_runs(runs)
    except ModelLoadError as e:
        raise SystemExit(f"error: --distill: {e}") from None
    tcfg = TrainConfig.from_dict(info["config"])
    mine, theirs = cfg.validation_split, tcfg.validation_split
    if mine != theirs:
        raise SystemExit(
            f"error: --distill: the teacher was selected on another validation split ({split_in_words(theirs)}) "
            f"than this run ({split_in_words(mine)}); it may have trained on this run's validation faces. "
            f"Pass --split-seed {theirs[2]}."
        )
    t0 = time.perf_counter()
    logits = predict_logits(teacher.to(memory_format=torch.channels_last), x_train)
    acc = (logits.argmax(1) == torch.as_tensor(np.asarray(y_train))).float().mean().item()
    log(
        f"distilling from {', '.join(runs)} ({teacher.cfg.members} network(s)): teacher accuracy on the training "
        f"faces {acc:.4f}, {time.perf_counter() - t0:.0f}s"
    )
    return logits


TEACHER_LOGITS = "teacher_logits.pt"  # in the run folder: the teacher's logits, so `--resume` need not compute them


def kept_teacher_logits(cfg: TrainConfig, out: Path, x_train, y_train, log=print) -> torch.Tensor:
    """`teacher_logits`, kept in the run folder `out`: a resumed run reads them back (computing them takes minutes
    for an ensemble of wide networks). They are computed anew when the training faces or a teacher's checkpoint
    (its path, size or modification time) differ from those they were computed from."""
    from fer.inference.weights import ModelLoadError
    from fer.training.runs import run_checkpoint

    try:
        ckpts = [run_checkpoint(r) for r in cfg.teachers]
    except ModelLoadError:  # nothing to key on: teacher_logits stops with the message
        ckpts = None
    key = ckpts and {
        "faces": hashlib.sha256(np.ascontiguousarray(x_train).tobytes()).hexdigest(),
        "teachers": [[str(c.resolve()), c.stat().st_size, c.stat().st_mtime_ns] for c in ckpts],
    }
    path = out / TEACHER_LOGITS
    try:
        kept = torch.load(path, weights_only=True) if key and path.exists() else None
    except Exception:  # noqa: BLE001 - a damaged file is computed again
        kept = None
    if isinstance(kept, dict) and kept.get("key") == key and len(kept.get("logits", ())) == len(y_train):
        log(f"the teacher's logits read back from {path} (same training faces and teacher checkpoints)")
        return kept["logits"]
    log(f"computing the teacher's logits for {len(y_train):,} training faces (kept in {path} for --resume) ...")
    logits = teacher_logits(cfg, x_train, y_train, log)
    if dist.is_main():
        save_atomic({"key": key, "logits": logits}, path)
    return logits


def sharpness_warning(x_train, x_eval, eval_name: str, ratio: float = 2.0) -> str | None:
    """A warning naming both figures when the training faces are much softer or sharper than the faces the
    model is evaluated on (a damaged copy of FER2013 makes a model that fails on real faces); None if alike."""
    train, other = sharpness(x_train), sharpness(x_eval)
    if min(train, other) > 0 and max(train / other, other / train) < ratio:
        return None
    if train < other:
        how = "much softer (blurred?)"
    elif train > other:
        how = "much sharper"
    else:
        return None
    return (
        f"warning: the training faces are {how} than the {eval_name} faces the model is evaluated on: "
        f"sharpness (median Laplacian spread) {train:.1f} vs {other:.1f} grey levels. A model learns the "
        "sharpness of its training images; check your copy of the data (`python -m fer data SOURCE`)."
    )


def _calibration_line(c: dict) -> str:
    s = f"calibration: temperature {c['temperature']:.3f} fitted on validation"
    if "test_ece_before" in c:
        s += f"; PublicTest ECE {c['test_ece_before']:.4f} -> {c['test_ece_after']:.4f} ({c['bins']} bins)"
    return s


def _final_line(r: dict) -> str:
    s = f"done: {r['epochs_run']} epochs, best epoch {r['best_epoch']}, val acc {r['val']['accuracy']:.4f}"
    if "test" in r:
        s += f", PublicTest acc {r['test']['accuracy']:.4f}"
        if "mean_kl" in r["test"]:
            s += f" (crowd majority; mean KL to the votes {r['test']['mean_kl']:.4f})"
    if "test_fer2013" in r:
        s += f", FER2013 PublicTest acc {r['test_fer2013']['accuracy']:.4f}"
    if r.get("model_uri"):
        s += f" | model {r['model_uri']}"
    if r.get("registered_version"):
        s += f" | registered {r['registered_name']} v{r['registered_version']}"
    return s
