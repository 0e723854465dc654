"""Annotated frames per second of the demo's live stream, in a real browser fed by Chromium's fake camera.

    .venv/bin/python benchmarks/live_fps.py [--seconds 20] [--warmup 5]

Starts `python -m demo` twice (127.0.0.1, a free port, a temporary MLflow store): once with a full face
detection on every frame (FER_LIVE_DETECT_EVERY=1, the baseline) and once as shipped (a detection every 5th
frame, the faces followed between). Each time headless Debian Chromium opens the page, plays a 640×480 clip of
the astronaut photo drifting across the frame as its webcam (a YUV4MPEG2 file, --use-file-for-fake-video-capture),
presses Record on the Live tab, and counts the annotated frames that reach the page during --seconds after
--warmup (a MutationObserver on the live view's image). Prints frames/s for both, the ratio, and the figure the
page itself shows (#live-fps). A benchmark, not a test: nothing here asserts a rate.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.demo_process import running_demo  # noqa: E402

PHOTOS = ROOT.parent / "shared" / "data" / "photos"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
COUNT_FRAMES = """() => {
  window.__frames = 0;
  let last = null;
  const root = document.querySelector('#live-view');
  new MutationObserver(() => {
    const img = root.querySelector('img');
    if (img && img.src !== last) { last = img.src; window.__frames++; }
  }).observe(root, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


def write_clip(path: Path, frames: int = 50) -> Path:
    """640×480 YUV4MPEG2 (I420, BT.601 full range), 10 frames/s: a 240 px astronaut drifting left and right."""
    face = Image.open(PHOTOS / "astronaut.png").convert("RGB").resize((240, 240), Image.Resampling.BICUBIC)
    out = [b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n"]
    for i in range(frames):
        frame = Image.new("RGB", (640, 480), (90, 90, 90))
        frame.paste(face, (200 + round(120 * math.sin(2 * math.pi * i / frames)), 120))
        rgb = np.asarray(frame, dtype=np.float32)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
        v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
        half = [p.reshape(240, 2, 320, 2).mean(axis=(1, 3)) for p in (u, v)]
        out.append(b"FRAME\n" + b"".join(np.clip(p.round(), 0, 255).astype(np.uint8).tobytes() for p in (y, *half)))
    path.write_bytes(b"".join(out))
    return path


def measure(playwright, url: str, clip: Path, warmup: float, seconds: float) -> tuple[float, str]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={clip}"], headless=True
    )
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1100}, permissions=["camera"]).new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-camera").get_by_text("Click to Access Webcam").click()
        page.wait_for_function("(document.querySelector('#live-camera video') || {}).readyState >= 2")
        page.locator("#live-camera button:visible", has_text="Record").click()
        page.locator("#live-view img").wait_for(state="visible")
        time.sleep(warmup)
        page.evaluate(COUNT_FRAMES)
        t0 = time.perf_counter()
        time.sleep(seconds)
        frames = page.evaluate("window.__frames")
        elapsed = time.perf_counter() - t0
        shown = page.locator("#live-fps").inner_text().strip()
        page.locator("#live-camera button:visible", has_text="Stop").click()
        return frames / elapsed, shown
    finally:
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured stretch, after the warm-up")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of streaming before counting")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results = {}
    with tempfile.TemporaryDirectory(prefix="fer-live-") as tmp, sync_playwright() as pw:
        clip = write_clip(Path(tmp) / "astronaut-640x480.y4m")
        for name, every in (("full detection every frame", "1"), ("shipped: detect every 5th, follow between", "5")):
            work = Path(tmp) / f"demo-{every}"
            work.mkdir()
            env = {"FER_LIVE_DETECT_EVERY": every, "GRADIO_TEMP_DIR": str(work / "uploads")}
            with running_demo(work, env) as (_, url):
                results[name] = measure(pw, url, clip, args.warmup, args.seconds)
            print(f"{name:<45} {results[name][0]:5.1f} frames/s reached the page; page shows: {results[name][1]}")
    (base, _), (shipped, _) = results.values()
    print(f"ratio shipped / baseline: {shipped / base:.2f}× ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
