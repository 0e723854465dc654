"""Milliseconds to classify one face (batch of one) for a model, against the paper's network, same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classify_speed.py [--model bundled|PATH|models:/...] [--threads 1]
        [--tta none]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classify_speed.py --model bundled:ferplus --model bundled:fer2013 \
        --threads 1                                # two models in one run: their costs compare on the same CPU

Classification only: the 48×48 face is given, so detection and cropping are not counted
(benchmarks/pipeline_speed.py counts those). The model runs as it serves: in inference, with any test-time
augmentation it does. It is timed on every path fer.inference.weights.serve chooses among (the eager model, a
frozen TorchScript graph, ONNX Runtime), as the torch.export program that MLflow stores, and as served (the path
`serve` chose on this CPU, what FacePipeline runs). The CPU's name is printed with the figures.
Baseline: the paper's Mini-Xception (56,951 parameters, random weights, no TTA), eager.
Rounds alternate between the models so that load from other processes hits all alike; each figure is the
median over --rounds rounds of --calls calls. Budget from issue 4: <= 5 ms per face on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.inference.weights import cpu_model, load_model, serve  # noqa: E402
from fer.model import count_parameters, create_model  # noqa: E402


def exported(model: torch.nn.Module) -> torch.nn.Module:
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(model, (torch.rand(2, 1, 48, 48),), dynamic_shapes={"x": {0: batch}}).module()


@torch.no_grad()
def time_calls(model, calls: int) -> float:
    x = torch.rand(1, 1, 48, 48)
    t0 = time.perf_counter()
    for _ in range(calls):
        model(x)
    return (time.perf_counter() - t0) / calls * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", help="a model to time (default: the bundled one); repeatable")
    ap.add_argument("--tta", default="model", help="test-time augmentation: model (as shipped), none, flip, ...")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=15, help="rounds; the median is reported")
    ap.add_argument("--calls", type=int, default=40, help="calls per round")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {"paper network (baseline), eager": create_model().eval()}
    loaded = {}
    for spec in args.model or ["bundled"]:
        model, _ = load_model(spec)
        if args.tta != "model":
            model.set_tta(args.tta)
        loaded[spec] = model = model.eval()
        served = serve(model)
        models.update(
            {
                f"{spec}, eager": model,
                f"{spec}, torch.export": exported(model),
                f"{spec}, TorchScript": serve(model, "torchscript"),
                f"{spec}, ONNX Runtime": serve(model, "onnxruntime"),
                f"{spec}, as served ({served.served_path})": served,
            }
        )
    for m in models.values():
        time_calls(m, 20)  # warm-up
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            times[name].append(time_calls(m, args.calls))
    ms = {name: float(np.median(t)) for name, t in times.items()}
    base = ms["paper network (baseline), eager"]
    runs = f"median of {args.rounds}×{args.calls}"
    print(f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch of one, {runs}")
    for spec, model in loaded.items():
        print(f"{spec}: {count_parameters(model):,} parameters, config {model.cfg.to_dict()}")
    print(f"{'model':48s} {'ms/face':>8s} {'ratio to baseline':>18s}")
    for name, v in ms.items():
        print(f"{name:48s} {v:8.2f} {v / base:18.2f}")


if __name__ == "__main__":
    main()
