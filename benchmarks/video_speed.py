"""Real-time factor of `fer predict` on video clips, beside MTCNN's defaults and the classifier frame by frame.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/video_speed.py [--seconds 20] [--fps 5]

Clips are made here with PyAV (H.264) from the shared photos: at 640×480 one face (astronaut.png, 300 px)
moving across the frame, at 1280×720 four of them. The product: `fer.inference.video.analyze_clip` (decode, sample at
--fps, detect every face of 40 px and up, classify, track), as `fer predict clip.mp4 --fps 5` runs it. The
baseline, same clip, same samples: each sampled frame through `MTCNN(keep_all=True).detect` on the full frame,
then every face cropped as the product crops it and classified by the same model, one face at a time.
Real-time factor = seconds of video analysed per second of wall time (above 1: faster than real time). Also
prints the process's resident memory before and after a clip ten times longer, to show it does not grow with length.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer.inference.faces import FacePipeline, crop_faces  # noqa: E402
from fer.inference.video import analyze_clip, sampled_frames  # noqa: E402
from fer.inference.weights import load_model  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def write_clip(path: Path, size: tuple[int, int], faces: int, seconds: float, fps: int = 25) -> Path:
    import av

    face = Image.open(PHOTOS / "astronaut.png").convert("RGB").resize((300, 300))
    n = int(seconds * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(n):
            frame = Image.new("RGB", size, (90, 90, 90))
            for k in range(faces):
                x = (k * 310 + int(3 * i)) % max(1, size[0] - 300)
                frame.paste(face, (x, 40 + (k % 2) * 320 if size[1] > 700 else 90))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length")
    ap.add_argument("--fps", type=float, default=5.0, help="sampled frames per second of video")
    args = ap.parse_args()
    from facenet_pytorch import MTCNN

    torch.set_num_threads(1)
    model = load_model("bundled")[0]
    pipeline = FacePipeline(model)
    mtcnn = MTCNN(keep_all=True)

    def baseline(path: Path) -> int:
        n = 0
        for _, _, image in sampled_frames(path, args.fps):
            boxes, _ = mtcnn.detect(image)
            for box in [] if boxes is None else boxes:
                pipeline.classify(crop_faces(image, [box]))
                n += 1
        return n

    def product(path: Path) -> int:
        return sum(len(r["faces"]) for r in analyze_clip(pipeline, path, fps=args.fps))

    print(f"{args.seconds:g} s clips, {args.fps:g} sampled frames/s, 1 thread, torch {torch.__version__}")
    print(f"{'clip':<22}{'product x RT':>14}{'baseline x RT':>15}{'ratio':>8}   faces (product, baseline)")
    with tempfile.TemporaryDirectory(prefix="fer-video-") as tmp:
        for size, faces in (((640, 480), 1), ((1280, 720), 4)):
            clip = write_clip(Path(tmp) / f"{size[0]}x{size[1]}.mp4", size, faces, args.seconds)
            found, rt = {}, {}
            for name, fn in (("product", product), ("baseline", baseline)):
                t = time.perf_counter()
                found[name] = fn(clip)
                rt[name] = args.seconds / (time.perf_counter() - t)
            print(
                f"{f'{size[0]}x{size[1]}, {faces} face(s)':<22}{rt['product']:>13.2f}×{rt['baseline']:>14.2f}×"
                f"{rt['product'] / rt['baseline']:>7.1f}×   {found['product']}, {found['baseline']}"
            )
        before = rss_mb()
        long_clip = write_clip(Path(tmp) / "long.mp4", (640, 480), 1, args.seconds * 10)
        t = time.perf_counter()
        n = sum(1 for _ in analyze_clip(pipeline, long_clip, fps=args.fps))
        after = rss_mb()
        print(
            f"\n{args.seconds * 10:g} s clip at 640x480: {n} samples in {time.perf_counter() - t:.0f} s; resident "
            f"memory {before:.0f} MB before it, {after:.0f} MB after it"
        )


if __name__ == "__main__":
    main()
