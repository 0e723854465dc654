"""Resident memory of a real demo process through bursts of hostile uploads, and what the upload folder keeps.

    .venv/bin/python benchmarks/hostile_uploads.py [--clients 32] [--requests 5] [--rounds 2]

Starts `python -m demo` (127.0.0.1, a free port, a temporary MLflow store and upload folder), then for each
case sends `--rounds` bursts of `--clients` gradio_client clients × `--requests` /predict calls, sampling the
server's resident memory (VmRSS) every 20 ms. Cases, all built here:

  photo         the astronaut photo as a JPEG (the baseline: what a user sends)
  header-lie    a 16×16 JPEG whose header claims 8000×6000 pixels (a few hundred bytes)
  cut           the photo as a JPEG cut at 30% with an end-of-image marker appended
  48mp          a real 8000×6000 JPEG with one face (fewer clients: it is megabytes per request)

Prints, per case: resident MB before, peak during, after (2 s after the last burst), the peak over the
baseline's, the answers (faces found / errors) and, at the end, the files left in the upload folder once
the analysed uploads' deletion is due.
A benchmark, not a test: nothing here asserts a size.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.demo_process import running_demo  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=32, help="concurrent clients per burst (default: 32)")
    p.add_argument("--requests", type=int, default=5, help="/predict calls per client per burst (default: 5)")
    p.add_argument("--rounds", type=int, default=2, help="bursts per case (default: 2)")
    p.add_argument("--photo", default=str(ROOT / "demo" / "examples" / "astronaut.png"), help="the face photo")
    return p


def cases(photo: Path, work: Path) -> dict[str, Path]:
    from PIL import Image

    from tests.conftest import cut_jpeg, lying_jpeg

    out = {}
    buf = io.BytesIO()
    Image.open(photo).convert("RGB").save(buf, format="JPEG", quality=90)
    out["photo"] = buf.getvalue()
    out["header-lie"] = lying_jpeg()
    out["cut"] = cut_jpeg(photo)
    big = Image.new("RGB", (8000, 6000), (128, 128, 128))
    big.paste(Image.open(photo).convert("RGB").resize((3000, 3000)), (2500, 1500))
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=85)
    out["48mp"] = buf.getvalue()
    paths = {}
    for name, data in out.items():
        paths[name] = work / f"{name}.jpg"
        paths[name].write_bytes(data)
    return paths


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)


def burst(url: str, path: Path, clients: int, requests: int) -> tuple[int, int, int]:
    """(answers with faces, answers with an error, failed calls)."""
    from gradio_client import Client, handle_file

    counts = [0, 0, 0]
    lock = threading.Lock()

    def worker() -> None:
        c = Client(url, verbose=False)
        for _ in range(requests):
            try:
                out = c.predict(handle_file(str(path)), api_name="/predict")
                i = 1 if out["error"] else 0
            except Exception:  # noqa: BLE001 - counted, not raised
                i = 2
            with lock:
                counts[i] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=1800)  # bounded
    return tuple(counts)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fer-hostile-"))
    uploads = work / "uploads"
    uploads.mkdir()
    paths = cases(Path(args.photo), work)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "GRADIO_TEMP_DIR": str(uploads)}
    try:
        with running_demo(work, env) as (demo, url):
            measure(demo, url, paths, uploads, args)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


def measure(demo, url: str, paths: dict[str, Path], uploads: Path, args) -> None:
    burst(url, paths["photo"], 1, 2)  # warm-up: models loaded, first request served
    time.sleep(1)
    idle = rss_mb(demo.pid)
    print(f"demo pid {demo.pid}, idle resident {idle:.0f} MB; {os.cpu_count()} cores\n")
    print(
        f"{'case':<11}{'bytes':>11}{'calls':>7}{'faces':>7}{'errors':>8}{'failed':>8}"
        f"{'before MB':>11}{'peak MB':>9}{'after MB':>10}{'peak-before':>13}"
    )
    for name, path in paths.items():
        clients = max(1, args.clients // 4) if name == "48mp" else args.clients
        before = rss_mb(demo.pid)
        sampler = Sampler(demo.pid)
        sampler.start()
        totals = [0, 0, 0]
        for _ in range(args.rounds):
            for i, n in enumerate(burst(url, path, clients, args.requests)):
                totals[i] += n
        time.sleep(2)
        sampler.stop.set()
        sampler.join()
        after = rss_mb(demo.pid)
        print(
            f"{name:<11}{path.stat().st_size:>11,}{sum(totals):>7}{totals[0]:>7}{totals[1]:>8}{totals[2]:>8}"
            f"{before:>11.0f}{sampler.peak:>9.0f}{after:>10.0f}{sampler.peak - before:>13.0f}",
            flush=True,
        )
    from demo.uploads import UPLOAD_GRACE_S

    time.sleep(UPLOAD_GRACE_S + 3)  # analysed uploads are deleted this long after their analysis
    left = [p for p in uploads.rglob("*") if p.is_file()]
    examples = {"astronaut.png", "camera.png"}  # Gradio's cached copies of the page's examples
    print(
        f"\nupload folder after the run: {len(left)} files, {sum(p.stat().st_size for p in left):,} bytes "
        f"({sum(p.name in examples for p in left)} of them the page's examples)"
    )
    print(f"resident after everything: {rss_mb(demo.pid):.0f} MB (idle was {idle:.0f} MB)")


if __name__ == "__main__":
    sys.exit(main())
