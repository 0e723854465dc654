"""Training images per second of the candidate networks in float32 and under CPU bfloat16 autocast, same run.

    .venv/bin/python benchmarks/train_precision.py [--threads 1] [--steps 25] [--compile]

One forward + backward + Adam step on a fixed random batch (channels-last, as `fer train` runs it), for the
paper's Mini-Xception, the production network (twice as wide) at 48×48 and at 24×24 (input pooled), and
networks three and four times as wide; batch 32 and 128. Prints img/s for each and the bf16/fp32 ratio: the budget that
decides a recipe's epochs. `--compile` adds the production network under `torch.compile` (inductor), bf16,
batch 64, against the same network eager, rounds alternating; the compile time is printed. A benchmark, not a
test.
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
from fer.training.trainer import native_bf16  # noqa: E402

WIDE = {"stem_channels": 16, "widths": (32, 64, 128, 256)}
CANDIDATES = {
    "paper": ModelConfig(),
    "production (2x wide)": ModelConfig(**WIDE),
    "2x wide, 24x24": ModelConfig(**WIDE, input_pool=2),
    "3x wide": ModelConfig(stem_channels=24, widths=(48, 96, 192, 384)),
    "4x wide": ModelConfig(stem_channels=32, widths=(64, 128, 256, 512)),
}


def training_step(cfg: ModelConfig, batch: int, bf16: bool, compiled: bool = False):
    torch.manual_seed(0)
    model = create_model(cfg).to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x).float()
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step, batch: int, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def images_per_second(cfg: ModelConfig, batch: int, bf16: bool, steps: int) -> float:
    step = training_step(cfg, batch, bf16)
    for _ in range(5):
        step()
    return timed(step, batch, steps)


def compile_against_eager(steps: int, batch: int = 64, rounds: int = 5) -> None:
    cfg = CANDIDATES["production (2x wide)"]
    eager = training_step(cfg, batch, bf16=True)
    t0 = time.perf_counter()
    compiled = training_step(cfg, batch, bf16=True, compiled=True)
    compiled()  # the first call compiles forward and backward
    print(f"torch.compile of the production network, bf16, batch {batch}: {time.perf_counter() - t0:.0f} s to compile")
    for step in (eager, compiled):
        for _ in range(3):
            step()
    times = {eager: [], compiled: []}
    for _ in range(rounds):  # alternating, so that load from other processes hits both alike
        for step in times:
            times[step].append(timed(step, batch, steps))
    e, c = (sorted(t)[rounds // 2] for t in times.values())  # medians
    print(f"eager {e:.0f} img/s, compiled {c:.0f} img/s, compiled / eager {c / e:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as one training per core)")
    p.add_argument("--steps", type=int, default=25, help="timed steps per measurement (default: 25)")
    p.add_argument("--compile", action="store_true", help="also time the production network under torch.compile")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    native = native_bf16(torch.device("cpu"))
    print(
        f"this CPU computes bfloat16 {'natively' if native else 'by emulation (no AVX-512 BF16 or AMX)'}: "
        f"`fer train --autocast auto` takes {'bf16' if native else 'float32'}"
    )
    if args.compile:
        compile_against_eager(args.steps)
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
