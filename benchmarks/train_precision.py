"""Training images per second of the candidate networks in float32 and under CPU bfloat16 autocast, same run.

    .venv/bin/python benchmarks/train_precision.py [--threads 1] [--steps 25]

One forward + backward + Adam step on a fixed random batch (channels-last, as `fer train` runs it), for the
paper's Mini-Xception, the production network (twice as wide) at 48×48 and at 24×24 (input pooled), and a
network four times as wide; batch 32 and 128. Prints img/s for each and the bf16/fp32 ratio: the budget that
decides a recipe's epochs. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.model import ModelConfig, count_parameters, create_model  # noqa: E402

WIDE = {"stem_channels": 16, "widths": (32, 64, 128, 256)}
CANDIDATES = {
    "paper": ModelConfig(),
    "production (2x wide)": ModelConfig(**WIDE),
    "2x wide, 24x24": ModelConfig(**WIDE, input_pool=2),
    "4x wide": ModelConfig(stem_channels=32, widths=(64, 128, 256, 512)),
}


def images_per_second(cfg: ModelConfig, batch: int, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model(cfg).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x).float()
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as one training per core)")
    p.add_argument("--steps", type=int, default=25, help="timed steps per measurement (default: 25)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{'network':<22}{'params':>10}{'batch':>7}{'fp32 img/s':>12}{'bf16 img/s':>12}{'bf16/fp32':>11}")
    for name, cfg in CANDIDATES.items():
        n = count_parameters(create_model(cfg))
        for batch in (32, 128):
            fp32 = images_per_second(cfg, batch, False, args.steps)
            bf16 = images_per_second(cfg, batch, True, args.steps)
            print(f"{name:<22}{n:>10,}{batch:>7}{fp32:>12.0f}{bf16:>12.0f}{bf16 / fp32:>11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
