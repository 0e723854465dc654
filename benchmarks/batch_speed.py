"""Photos per second of `fer predict`'s batch path against one photo at a time, on a folder of real photos.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batch_speed.py [--folder ../shared/data/realphotos-dev/images]
        [--rounds 2] [--limit 0]

Every path decodes each photo (fer.inference.images.read_image) and finds and classifies its faces:
- one at a time, as before: `FacePipeline.analyze` photo after photo, the classifier as a frozen TorchScript graph
  (what `fer predict a.jpg b.jpg ...` served before the served path was chosen per CPU): the baseline;
- one at a time, served path: the same loop, the classifier on the path `serve` chose on this CPU;
- batch path: fer.inference.batch.analyze_photos (decoding in a thread pool, each chunk's network calls batched
  across its photos), with one lane and with two (two chunks analysed at once).
Start-up (imports, loading the model) is not counted. Rounds alternate between the paths so that other load on
the CPU hits them alike; each figure is the best round. The faces found must be the same on every path.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.inference.batch import analyze_photos, list_inputs  # noqa: E402
from fer.inference.faces import FacePipeline  # noqa: E402
from fer.inference.images import ImageError, read_image  # noqa: E402
from fer.inference.weights import cpu_model, load_model, serve  # noqa: E402


def one_at_a_time(pipeline: FacePipeline, paths: list[str]) -> list:
    out = []
    for p in paths:
        try:
            out.append([f.box for f in pipeline.analyze(read_image(p)).faces])
        except ImageError:
            out.append(None)
    return out


def batched(pipeline: FacePipeline, paths: list[str], lanes: int) -> list:
    return [
        [f.box for f in r.analysis.faces] if r.analysis else None for r in analyze_photos(pipeline, paths, lanes=lanes)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", default=str(ROOT.parent / "shared" / "data" / "realphotos-dev" / "images"))
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="the first N photos only (0: all)")
    args = ap.parse_args()
    paths = [p for p, kind in list_inputs([args.folder]).files if kind == "photo"]
    paths = paths[: args.limit] if args.limit else paths
    model, _ = load_model(args.model)
    before = FacePipeline(model)
    before._served = (before._served[0], serve(model, "torchscript"), before._served[2])  # the classifier as before
    now = FacePipeline(model)
    paths_run = {
        "one at a time, as before (TorchScript)": lambda: one_at_a_time(before, paths),
        f"one at a time, served path ({now._served[1].served_path})": lambda: one_at_a_time(now, paths),
        "batch path, 1 lane": lambda: batched(now, paths, 1),
        "batch path, 2 lanes": lambda: batched(now, paths, 2),
    }
    batched(now, paths[:16], 1)  # warm-up: TorchScript specialises on its first calls, ONNX Runtime allocates
    one_at_a_time(now, paths[:8])
    one_at_a_time(before, paths[:8])
    best, faces = {name: float("inf") for name in paths_run}, {}
    for _ in range(args.rounds):
        for name, run in paths_run.items():
            t0 = time.perf_counter()
            faces[name] = run()
            best[name] = min(best[name], time.perf_counter() - t0)
    load = os.getloadavg()[0]
    print(f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s)")
    print(f"{len(paths)} photos of {args.folder}, best of {args.rounds} rounds; load average {load:.1f} at the end")
    base = len(paths) / best["one at a time, as before (TorchScript)"]
    print(f"{'path':48s} {'photos/s':>9s} {'× baseline':>11s}")
    for name, seconds in best.items():
        rate = len(paths) / seconds
        print(f"{name:48s} {rate:9.1f} {rate / base:11.2f}")
    reference = faces["one at a time, as before (TorchScript)"]
    same = all(f == reference for f in faces.values())
    print("the same faces on every path" if same else "DIFFERENT faces between the paths")


if __name__ == "__main__":
    main()
