"""What keeping freed memory in the process (fer/memory.py) does to training and evaluation, same process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/malloc.py [--steps 30]

First with glibc's defaults (the baseline), then after `keep_freed_memory()`: production-recipe training
steps (batch 64, bf16 autocast, channels-last, Adam) and evaluation (batch 32, flip test-time augmentation),
images per second, system CPU seconds and minor page faults of each, and the ratio of images per second.
The order is fixed because the thresholds cannot be put back to glibc's dynamic default. A benchmark, not a
test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer.evaluation.metrics import predict_logits  # noqa: E402
from fer.inference.memory import keep_freed_memory  # noqa: E402
from fer.model import create_model  # noqa: E402
from fer.training.config import recipe  # noqa: E402


def measure(work, n_images: int) -> dict:
    work()  # warm-up
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    work()
    seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"img/s": n_images / seconds, "sys s": r1.ru_stime - r0.ru_stime, "faults": r1.ru_minflt - r0.ru_minflt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    ap.add_argument("--faces", type=int, default=1024, help="faces per evaluation measurement")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = recipe("production")
    model = create_model(cfg.model).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(cfg.batch_size, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (cfg.batch_size,))
    faces = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)

    def train():
        model.train()
        for _ in range(args.steps):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def evaluate():
        predict_logits(model, faces)

    rows = {}
    for setting in ("glibc defaults", "keep_freed_memory"):
        if setting == "keep_freed_memory" and not keep_freed_memory():
            print("keep_freed_memory() does nothing here (not glibc)")
            break
        rows[f"train, {setting}"] = measure(train, args.steps * cfg.batch_size)
        rows[f"evaluate, {setting}"] = measure(evaluate, args.faces)
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'':<34}{'img/s':>9}{'sys s':>8}{'faults':>10}{'x baseline':>12}")
    for name, r in rows.items():
        base = rows[name.split(",")[0] + ", glibc defaults"]["img/s"]
        print(f"{name:<34}{r['img/s']:>9.0f}{r['sys s']:>8.2f}{r['faults']:>10d}{r['img/s'] / base:>12.2f}")


if __name__ == "__main__":
    main()
