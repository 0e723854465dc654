"""The README's two screenshots of the demo: a laptop's 1280×800 and a phone's 390×844, after one photo.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/screenshots.py [--photo PHOTO] [--out docs/screenshots]

The demo runs in this process on 127.0.0.1, over a private MLflow store in a temporary folder (the bundled
model becomes version 1 in production, as on a first start), and Debian's headless Chromium (/usr/bin/chromium,
driven by Playwright; no browser is downloaded) uploads the photo at each size: by default two of the page's
example photos side by side (the astronaut's and the cameraman's faces, public domain and CC0), so the list of
faces shows. Each screenshot is what the visitor sees without scrolling; it is saved with a 256-colour palette so
it stays around 100 KB.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SIZES = {"laptop": (1280, 800), "phone": (390, 844)}
STEP_TIMEOUT_MS = 120_000  # one step on a busy machine; a bound, not a speed claim


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path):
    """(app, server, url): the demo over a fresh store in `folder` (MLflow keeps artifacts under the cwd)."""
    from demo.app import build_app, launch
    from demo.serving import ModelServer
    from registry import Registry

    before = Path.cwd()
    os.chdir(folder)
    try:
        server = ModelServer(Registry(f"sqlite:///{folder / 'mlflow.db'}"), poll_seconds=0).start()
    finally:
        os.chdir(before)
    app = build_app(server)
    port = free_port()
    launch(app, server, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    return app, server, f"http://127.0.0.1:{port}/"


def two_faces(out: Path) -> Path:
    """The astronaut's and the cameraman's faces side by side, from demo/examples: 512×256."""
    from PIL import Image

    examples = ROOT / "demo" / "examples"
    pair = Image.new("RGB", (512, 256), "white")
    pair.paste(Image.open(examples / "astronaut.png").convert("RGB").crop((96, 0, 352, 256)), (0, 0))
    pair.paste(Image.open(examples / "camera.png").convert("RGB").crop((80, 0, 336, 256)), (256, 0))
    pair.save(out)
    return out


def small(image):
    """The screenshot in 256 colours: a third of the bytes. Pillow's fast octree keeps the legend's and the bars'
    colours (its median cut, the default, shifted fear to beige and disgust to blue)."""
    from PIL import Image

    return image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def shoot(browser, url: str, photo: Path, size: tuple[int, int], out: Path) -> None:
    from PIL import Image

    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    try:
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.goto(url)
        page.locator("#photo-file input[type=file]").set_input_files(str(photo))
        page.locator("#face-detail .face-headline").first.wait_for(state="visible")
        page.wait_for_timeout(500)  # the scroll into view, and the photo's decoding
        raw = out.with_suffix(".raw.png")
        page.screenshot(path=raw)
        small(Image.open(raw).convert("RGB")).save(out, optimize=True)
        raw.unlink()
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", type=Path, default=None, help="photo uploaded (default: two example faces)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for laptop.png, phone.png")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"error: {CHROMIUM} is absent: install Debian's chromium (bash scripts/system-deps.sh)")
    if args.photo is not None and not args.photo.is_file():
        raise SystemExit(f"error: no photo at {args.photo}")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fer-screenshots-") as tmp:
        os.environ["GRADIO_TEMP_DIR"] = str(Path(tmp) / "uploads")
        photo = args.photo.resolve() if args.photo else two_faces(Path(tmp) / "two-faces.png")
        app, server, url = serve(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    for name, size in SIZES.items():
                        shoot(browser, url, photo, size, args.out / f"{name}.png")
                        kb = (args.out / f"{name}.png").stat().st_size / 1000
                        print(f"{args.out / f'{name}.png'}: {size[0]}×{size[1]}, {kb:.0f} KB")
                finally:
                    browser.close()
        finally:
            app.close()
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
