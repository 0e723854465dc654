"""Photos per second of `fer predict` on a folder of real photos against one photo at a time, as before.

    .venv/bin/python benchmarks/batch_speed.py [--folder ../shared/data/realphotos-dev/images] [--rounds 2]
        [--limit 0]

Every path decodes each photo (fer.inference.images.read_image) and finds and classifies its faces:
- one at a time, as before: `FacePipeline.analyze` photo after photo on torch's default threads (one per core),
  the classifier as a frozen TorchScript graph and MTCNN's networks each as one oneDNN-optimised graph: what
  `fer predict a.jpg b.jpg ...` ran before folders were read in lanes (the baseline);
- one at a time, served path: the same loop, the classifier on the path `serve` chooses on this CPU;
- lanes: fer.inference.batch.analyze_photos with the lanes and threads `fer predict` takes for a few photos
  (fer.inference.batch.lanes_and_threads: two lanes of one thread each on two cores), and with one lane;
- helpers: the processes `fer predict` starts for a folder of HELPER_MIN_PHOTOS photos or more
  (fer.inference.helpers: one per core, one thread each), this process only handing out paths.
Start-up (imports, loading the model, the helpers' start) is not counted. Rounds alternate between the paths so
that other load on the CPU hits them alike; each figure is the best round. The faces found must be the same on
every path. Run it with OMP_NUM_THREADS unset: the paths set their own thread counts.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.inference.batch import analyze_photos, lanes_and_threads, list_inputs  # noqa: E402
from fer.inference.faces import FacePipeline  # noqa: E402
from fer.inference.helpers import HELPER_MIN_PHOTOS, Helpers, helpers_for, threads_each  # noqa: E402
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


def as_before(pipeline: FacePipeline) -> FacePipeline:
    """The pipeline as `fer predict` ran it before: the classifier as a frozen TorchScript graph, and MTCNN's
    three networks each as one graph optimised for inference (oneDNN) whatever their input's size."""
    from fer.detection.detector import _frozen
    from fer.detection.mtcnn import ONet, PNet, RNet, mtcnn_weights

    pipeline._served = (pipeline._served[0], serve(pipeline._served[0], "torchscript"), pipeline._served[2])
    detector = pipeline.detector = copy.copy(pipeline.detector)
    for name, cls, example in (("pnet", PNet, (1, 40)), ("rnet", RNet, (2, 24)), ("onet", ONet, (2, 48))):
        net = cls()
        net.load_state_dict(torch.load(mtcnn_weights() / f"{name}.pt", map_location="cpu", weights_only=True))
        batch, side = example
        setattr(detector, name, _frozen(net, torch.zeros(batch, 3, side, side), optimize=True))
    return pipeline


def lanes(pipeline: FacePipeline, paths: list[str], n: int) -> list:
    return [[f.box for f in r.analysis.faces] if r.analysis else None for r in analyze_photos(pipeline, paths, lanes=n)]


def helped(helpers, paths: list[str]) -> list:
    results = analyze_photos(lambda: None, paths, helpers=helpers)
    return [[f.box for f in r.analysis.faces] if r.analysis else None for r in results]


def threads(n: int, run):
    """`run` on n torch threads (ONNX Runtime's count is its session's, set when its pipeline was made)."""

    def on_threads():
        torch.set_num_threads(n)
        return run()

    return on_threads


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
    default = torch.get_num_threads()
    n_lanes, lane_threads = lanes_and_threads(len(paths))
    before = as_before(FacePipeline(model))
    now = FacePipeline(model)
    torch.set_num_threads(lane_threads)
    in_lanes = FacePipeline(model)  # its ONNX Runtime session on the lanes' thread count
    count = max(1, helpers_for(max(len(paths), HELPER_MIN_PHOTOS)))
    helpers = Helpers(count, args.model, {}, fallback=None, threads=threads_each(count))
    baseline = f"one at a time, as before ({default} threads)"
    paths_run = {
        baseline: threads(default, lambda: one_at_a_time(before, paths)),
        f"one at a time, served path ({now._served[1].served_path})": threads(
            default, lambda: one_at_a_time(now, paths)
        ),
        f"fer predict, a few photos: {n_lanes} lanes of {lane_threads} thread(s)": threads(
            lane_threads, lambda: lanes(in_lanes, paths, n_lanes)
        ),
        f"1 lane of {lane_threads} thread(s)": threads(lane_threads, lambda: lanes(in_lanes, paths, 1)),
        f"fer predict on a folder: {count} helper processes": lambda: helped(helpers, paths),
    }
    if not helpers.wait_ready():
        raise SystemExit("the helper processes did not start")
    # warm-up: TorchScript specialises on its first calls, ONNX Runtime allocates
    threads(default, lambda: (one_at_a_time(before, paths[:8]), one_at_a_time(now, paths[:8])))()
    threads(lane_threads, lambda: lanes(in_lanes, paths[:16], n_lanes))()
    helped(helpers, paths[: 16 * count])
    best, faces = {name: float("inf") for name in paths_run}, {}
    for _ in range(args.rounds):
        for name, run in paths_run.items():
            t0 = time.perf_counter()
            faces[name] = run()
            best[name] = min(best[name], time.perf_counter() - t0)
    load = os.getloadavg()[0]
    print(f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{len(paths)} photos of {args.folder}, best of {args.rounds} rounds; load average {load:.1f} at the end")
    base = len(paths) / best[baseline]
    print(f"{'path':48s} {'photos/s':>9s} {'× baseline':>11s}")
    for name, seconds in best.items():
        rate = len(paths) / seconds
        print(f"{name:48s} {rate:9.1f} {rate / base:11.2f}")
    helpers.close()
    reference = faces[baseline]
    same = all(f == reference for f in faces.values())
    print("the same faces on every path" if same else "DIFFERENT faces between the paths")


if __name__ == "__main__":
    main()
