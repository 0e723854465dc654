"""Images per second of the full training step against the compute alone, same model, same run.

    .venv/bin/python benchmarks/train_throughput.py [--data ../shared/data/fer2013] [--steps 150]

Full step: batch from the uint8 cache -> normalise -> batched augmentation ->
forward -> backward -> optimiser step, exactly as `fer train` does it.
Compute alone: forward + backward + step on one fixed, pre-normalised batch.
The ratio full/compute is what the input pipeline costs (target >= 0.95).
Uses random images when the data set is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.data.augment import AugmentConfig  # noqa: E402
from fer.data.preprocess import normalize  # noqa: E402
from fer.model import create_model  # noqa: E402
from fer.training.config import TrainConfig  # noqa: E402
from fer.training.trainer import Trainer  # noqa: E402


def images(data: str) -> tuple[np.ndarray, np.ndarray]:
    if Path(data).exists():
        from fer.data.fer2013 import load

        return load(data, quiet=True).split("Training")
    print(f"{data} not found: timing on random images", file=sys.stderr)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8192, 48, 48), dtype=np.uint8), rng.integers(0, 7, 8192)


def compute_alone(steps: int, batch: int, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = create_model()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 48, 48)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def full_step(x_u8, y, steps: int, batch: int, channels_last: str) -> float:
    import tempfile

    cfg = TrainConfig(
        out=tempfile.mkdtemp(prefix="fer-bench-"),
        channels_last=channels_last,
        progress=False,
        batch_size=batch,
        register=False,
    )
    trainer = Trainer(cfg)
    n = min(len(y), (steps + 10) * batch)
    x = normalize(x_u8[:n])
    y = torch.as_tensor(y[:n])
    cfg.augment = AugmentConfig()
    # time the real epoch loop on exactly `steps` batches after a 10-batch warm-up
    trainer.train_one_epoch(0, x[: 10 * batch], y[: 10 * batch])
    stats = trainer.train_one_epoch(1, x[: steps * batch], y[: steps * batch])
    return stats["images_per_second"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--steps", type=int, default=150, help="timed optimiser steps per measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    x, y = images(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, {args.steps} steps")
    for cl, label in ((True, "channels-last"), (False, "contiguous")):
        compute = compute_alone(args.steps, args.batch_size, cl)
        full = full_step(x, y, args.steps, args.batch_size, "on" if cl else "off")
        print(
            f"{label:>14}: compute alone {compute:7.0f} img/s | full training step {full:7.0f} img/s | "
            f"ratio {full / compute:.3f}"
        )


if __name__ == "__main__":
    main()
