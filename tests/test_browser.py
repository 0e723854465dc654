"""The demo and the MLflow UI in a real browser: Debian's chromium, headless, driven by Playwright.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_browser.py

Uses /usr/bin/chromium (scripts/system-deps.sh installs it; `make test` runs that), never a browser
Playwright downloads. Everything listens on 127.0.0.1; screenshots of each step go to the test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import PHOTOS, ROOT, free_port, need_shared
from tests.test_demo import EXTRA, launched, start_server, store_templates, use_template

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
STEP_TIMEOUT_MS = 90_000  # one UI step on a busy 2-core machine; a bound, not a speed claim


CAMERA_PLAYING = "(document.querySelector('%s video') || {}).readyState >= 2"  # HAVE_CURRENT_DATA
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # no device, no prompt


@pytest.fixture(scope="module")
def playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (bash scripts/system-deps.sh, run by make test)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture(scope="module")
def demo_v1(tmp_path_factory, migrated_db):
    """The demo, in this process, over a private store holding version 1 (production); yields its URL."""
    d = tmp_path_factory.mktemp("browser-demo")
    shutil.copy(store_templates(tmp_path_factory, migrated_db)["v1"], d / "mlflow.db")
    with launched(start_server(f"sqlite:///{d / 'mlflow.db'}", d, poll_seconds=0)) as url:
        yield url


@pytest.fixture
def store_v2(mlflow_store, tmp_path_factory, migrated_db) -> str:
    return use_template("v2", mlflow_store, tmp_path_factory, migrated_db)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    yield page
    context.close()


def expect(locator):
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=STEP_TIMEOUT_MS)  # its own default is 5 s, short for a busy machine
    return pw_expect(locator)


@contextmanager
def spawned(cmd: list[str], log: Path, cwd: Path, env: dict):
    """Run cmd in a process group of its own; stop the whole group (servers fork workers) afterwards."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def wait_until_up(proc: subprocess.Popen, url: str, log: Path, within_s: float = 240) -> None:
    deadline = time.time() + within_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{url}: the server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                ) from None
            if time.time() > deadline:
                raise AssertionError(f"{url} did not answer in {within_s:.0f} s:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.5)


def faces_table_rows(page, wait: bool = True) -> list[list[str]]:
    """The rows of the faces table (in its accordion, opened here if it is closed); `wait`: for a first row."""
    if not page.locator("#faces-table").is_visible():
        page.locator("#table-box").get_by_text("Every face's percentages").click()
    rows = page.locator("#faces-table [role=row][data-index]")
    if wait:
        expect(rows.first).to_be_visible()
    return [[c.inner_text().strip() for c in rows.nth(i).locator("[role=gridcell]").all()] for i in range(rows.count())]


def two_faces():
    """The astronaut's and the cameraman's faces side by side: 256-px squares around each, 512×256 in all.

    Cropped, so both faces are large on the page.
    """
    from PIL import Image

    pair = Image.new("RGB", (512, 256), "white")
    pair.paste(Image.open(PHOTOS / "astronaut.png").convert("RGB").crop((96, 0, 352, 256)), (0, 0))
    pair.paste(Image.open(PHOTOS / "camera.png").convert("RGB").crop((80, 0, 336, 256)), (256, 0))
    return pair


VIEWPORTS = {"laptop": (1280, 800), "phone": (390, 844)}
# what a visitor must see after an upload, without scrolling: the photo, each face's reading, the chosen face's bars
RESULT_PARTS = ("#faces-found img", "#faces-list", "#face-detail .face-headline", "#face-detail .bars")
IN_VIEW = """(selectors) => selectors.every((q) => {
  const el = document.querySelector(q);
  if (!el || el.offsetParent === null) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 1 && r.right <= innerWidth + 1;
})"""


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_the_result_is_in_view_after_an_upload(browser, demo_v1, tmp_path, device):
    """At a laptop's and a phone's size the page itself brings the result into view (the test never scrolls)."""
    import re

    width, height = VIEWPORTS[device]
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        pair = tmp_path / "pair.png"
        need_shared(PHOTOS)
        two_faces().save(pair)
        page.goto(demo_v1)
        page.locator("#photo-file input[type=file]").set_input_files(str(pair))
        expect(page.locator("#photo-message")).to_contain_text("pair.png: 2 faces found")
        try:
            page.wait_for_function(IN_VIEW, arg=list(RESULT_PARTS), timeout=30_000)
        except Exception:  # noqa: BLE001 - the assertion below says which part is out of view
            pass
        page.screenshot(path=tmp_path / f"{device}.png")
        for part in RESULT_PARTS:
            box = page.locator(part).first.bounding_box()
            assert box is not None, f"{part} is not shown"
            assert box["y"] >= 0 and box["y"] + box["height"] <= height + 1, f"{part} out of view: {box} ({device})"
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, f"{part} out of view: {box} ({device})"
        readings = page.locator("#faces-list label").all_inner_texts()
        assert len(readings) == 2 and all(re.fullmatch(r"#\d \w+ \d+%.*", r.strip()) for r in readings), readings
        assert re.search(r"#1 \w+ \d+%", page.locator("#face-detail .face-headline").inner_text())
        shown = page.locator("#faces-found img").evaluate("img => img.getBoundingClientRect().width")
        assert shown <= 512 + 1  # never larger than the photo's own pixels
        page.locator("#faces-list label").nth(1).click()  # the other face: its own crop and bars
        expect(page.locator("#face-detail .face-headline")).to_contain_text("#2 ")
    finally:
        context.close()


def test_upload_a_photo_and_read_the_faces_table(page, demo_v1, tmp_path):
    from fer.inference.weights import bundled_card

    photo = need_shared(PHOTOS) / "astronaut.png"
    page.goto(demo_v1)
    expect(page.locator("#model-info")).to_contain_text("fer-emotion version 1")
    expect(page.locator("#legend")).to_contain_text("happy")  # one legend for the page

    page.locator("#photo-file input[type=file]").set_input_files(str(photo))
    expect(page.locator("#photo-message")).to_contain_text("astronaut.png: 1 face found")
    expect(page.locator("#face-detail .face-headline")).to_contain_text("#1 ")
    rows = faces_table_rows(page)
    page.screenshot(path=tmp_path / "photo.png", full_page=True)
    assert len(rows) >= 1, rows
    number, reading, *probabilities, found = rows[0]
    classes = bundled_card()["labels"]  # the production bundle's emotions: version 1 serves it
    assert number == "1" and reading.split()[0] in classes and len(probabilities) == len(classes), rows
    assert all(p.endswith("%") for p in probabilities) and found.endswith("% certainty"), rows  # one unit
    assert sum(float(p[:-1]) for p in probabilities) == pytest.approx(100, abs=4)  # each rounded to a whole percent
    expect(page.locator("#faces-found img")).to_be_visible()  # the annotated photo

    # a file that is not an image: a message on the page, not a traceback or a server path
    notes = tmp_path / "notes.txt"
    notes.write_text("these are not pixels\n")
    page.goto(demo_v1)
    page.locator("#photo-file input[type=file]").set_input_files(str(notes))
    message = page.locator("#photo-message")
    expect(message).to_contain_text("notes.txt: not an image")
    page.screenshot(path=tmp_path / "not-an-image.png", full_page=True)
    assert "/tmp" not in message.inner_text() and "Traceback" not in page.content()
    assert not page.locator("#face-detail").is_visible() and faces_table_rows(page, wait=False) == []

    # JPEGs that lie: cut short with an end marker appended, or a header claiming 48 megapixels
    from tests.conftest import cut_jpeg, lying_jpeg

    (tmp_path / "cut.jpg").write_bytes(cut_jpeg(photo))
    (tmp_path / "header-lie.jpg").write_bytes(lying_jpeg())
    for name in ("cut.jpg", "header-lie.jpg"):
        page.goto(demo_v1)
        page.locator("#photo-file input[type=file]").set_input_files(str(tmp_path / name))
        expect(page.locator("#photo-message")).to_contain_text(f"{name}: truncated or corrupt image")
        assert not page.locator("#face-detail").is_visible()
    page.screenshot(path=tmp_path / "lying-jpeg.png", full_page=True)


def test_options_rerun_the_photo_and_bad_values_are_refused_by_the_box(page, demo_v1, tmp_path):
    """Options apply to the photo already on the page at once; a value that cannot work is refused in the box's
    own line, the result left as it is, no error badge; a photo without a face says what to try."""
    page.goto(demo_v1)
    page.locator("#photo-file input[type=file]").set_input_files(str(need_shared(PHOTOS) / "astronaut.png"))
    message = page.locator("#photo-message")
    expect(message).to_contain_text("astronaut.png: 1 face found")
    page.locator("#face-options").get_by_text("Face options").click()
    box = page.locator("#min-face input")
    for value, says in (("5", "5 px is too small: give 12 px or more"), ("600", "larger than the photo (512×512 px)")):
        box.fill(value)
        box.press("Tab")
        expect(page.locator("#min-face")).to_contain_text(says)
        expect(message).to_contain_text("astronaut.png: 1 face found")  # the result stays
        assert page.locator("#results .error").count() == 0 and page.get_by_text("Error", exact=True).count() == 0
    page.screenshot(path=tmp_path / "refused.png")
    box.fill("40")
    box.press("Tab")
    expect(page.locator("#min-face")).not_to_contain_text("⚠️")
    page.locator("#face-mode").get_by_test_id("whole-radio-label").click()  # no new upload: the same photo again
    expect(message).to_contain_text("astronaut.png: the whole image read as one face")
    expect(page.locator("#face-detail")).to_contain_text("The whole photo was read as one face")

    # no face: what to try, no empty panel, and the button that reads the photo whole
    page.goto(demo_v1)
    page.locator("#photo-file input[type=file]").set_input_files(str(PHOTOS / "chelsea.png"))  # a cat
    expect(message).to_contain_text("chelsea.png: no face found")
    expect(message).to_contain_text("smallest face")
    assert not page.locator("#face-detail").is_visible() and not page.locator("#faces-list").is_visible()
    page.screenshot(path=tmp_path / "no-face.png")
    page.locator("#try-whole").click()
    expect(message).to_contain_text("chelsea.png: the whole image read as one face")
    expect(page.locator("#face-detail .bars")).to_be_visible()


def test_an_uncertain_face_says_so(page, demo_v1, tmp_path):
    """realphotos-dev's Jean_Chretien_0007.jpg reads neutral 30, surprise 29: the headline and the tag say unsure."""
    from tests.conftest import SHARED

    photo = need_shared(SHARED / "data" / "realphotos-dev" / "images") / "Jean_Chretien_0007.jpg"
    page.goto(demo_v1)
    page.locator("#photo-file input[type=file]").set_input_files(str(photo))
    headline = page.locator("#face-detail .face-headline")
    expect(headline).to_contain_text("unsure")
    assert " or " in headline.inner_text()  # the two emotions it cannot tell apart
    expect(page.locator("#face-detail")).to_contain_text("cannot tell these apart")
    page.screenshot(path=tmp_path / "unsure.png")


def test_video_tab_annotated_clip_timeline_and_csv(page, demo_v1, tmp_path):
    from tests.test_video import write_clip

    clip = write_clip(tmp_path / "walk.mp4")
    page.goto(demo_v1)
    page.get_by_role("tab", name="Video").click()
    expect(page.get_by_text("up to 100 MB and 2 minutes")).to_be_visible()  # the limits, on the page
    page.locator("#video-file input[type=file]").set_input_files(str(clip))
    expect(page.locator("#video-message")).to_contain_text("walk.mp4: 15 frames analysed (5 frames/s), 1 face track")
    expect(page.locator("#video-annotated video")).to_be_visible()  # the annotated clip, playable on the page
    expect(page.locator("#video-timeline img")).to_be_visible()
    link = page.locator("#video-csv a[href*='walk-faces.csv']")  # offered for download
    expect(link).to_be_visible()
    table = page.request.get(link.get_attribute("href")).text().splitlines()
    assert table[0].startswith("video,t,frame,track") and len(table) == 1 + 12  # a row per face per frame
    assert "smooth_s" not in table[0]  # the page does not smooth: no column empty on every row
    page.screenshot(path=tmp_path / "video.png", full_page=True)

    # a photo dropped on the Video tab is refused with a message, not read as a one-frame clip
    page.goto(demo_v1)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-file input[type=file]").set_input_files(str(need_shared(PHOTOS) / "astronaut.png"))
    expect(page.locator("#video-message")).to_contain_text("astronaut.png: this is a photo, not a video")
    assert not page.locator("#video-timeline img").is_visible()


def write_y4m(photo: Path, out: Path) -> Path:
    """One-frame YUV4MPEG2 video of `photo` (I420, BT.601 full range): what Chromium's fake camera plays, looped."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(photo).convert("RGB").resize((512, 512)), dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    half = [p.reshape(256, 2, 256, 2).mean(axis=(1, 3)) for p in (u, v)]
    planes = [np.clip(p.round(), 0, 255).astype(np.uint8).tobytes() for p in (y, *half)]
    out.write_bytes(b"YUV4MPEG2 W512 H512 F10:1 Ip A1:1 C420jpeg\nFRAME\n" + b"".join(planes))
    return out


def test_webcam_snapshot_and_live_stream(playwright, demo_v1, tmp_path):
    """Chromium's fake camera, playing the astronaut photo, feeds the snapshot and the live stream."""
    from fer import EMOTIONS

    video = write_y4m(need_shared(PHOTOS) / "astronaut.png", tmp_path / "astronaut.y4m")
    args = [*CHROMIUM_ARGS, *FAKE_CAMERA, f"--use-file-for-fake-video-capture={video}"]
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    try:
        page = b.new_context(viewport={"width": 1400, "height": 1100}, permissions=["camera"]).new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        page.goto(demo_v1)
        page.locator("#snapshot-box").get_by_text("Webcam snapshot").first.click()
        page.locator("#snapshot").get_by_text("Click to Access Webcam").click()
        page.wait_for_function(CAMERA_PLAYING % "#snapshot")  # a capture before the first frame is empty
        page.locator("#snapshot button[aria-label='capture photo']").click()
        expect(page.locator("#photo-message")).to_contain_text("1 face found")
        assert page.locator("#face-detail .face-headline").inner_text().split()[1] in EMOTIONS

        page.get_by_role("tab", name="Live").click()
        page.locator("#live-camera").get_by_text("Click to Access Webcam").click()
        page.wait_for_function(CAMERA_PLAYING % "#live-camera")
        page.locator("#live-camera button:visible", has_text="Record").click()
        expect(page.locator("#live-view img")).to_be_visible()  # frames come back, boxes drawn on them
        probs = page.locator("#live-probs")
        expect(probs).to_contain_text("%")  # the largest face's probabilities, beside the frames
        page.screenshot(path=tmp_path / "live.png")
        assert any(label in probs.inner_text() for label in EMOTIONS)
        expect(page.locator("#live-fps")).to_contain_text("frames/s annotated")  # the live rate, measured
        page.locator("#live-camera button:visible", has_text="Stop").click()
    finally:
        b.close()


def set_alias_in_mlflow_ui(page, ui_url: str, version: int, alias: str, shots: Path) -> None:
    """MLflow 3.17's model version page: "Aliases: Add" opens a dialog with a tags box and "Save aliases"."""
    page.goto(f"{ui_url}/#/models/fer-emotion/versions/{version}")
    expect(page.get_by_text("Aliases:")).to_be_visible()
    page.screenshot(path=shots / "mlflow-version-page.png")
    page.get_by_role("button", name="Add", exact=True).first.click()  # the first "Add" is the aliases' one
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"alias for model version {version}")
    box = dialog.get_by_role("combobox")
    box.fill(alias)
    box.press("Enter")
    expect(dialog).to_contain_text(f'"{alias}" alias is also being used on version')  # MLflow warns it moves
    page.screenshot(path=shots / "mlflow-alias-dialog.png")
    dialog.locator('[data-component-id="mlflow.edit-aliases-modal.save-button"]').click()
    expect(dialog).to_be_hidden()
    page.screenshot(path=shots / "mlflow-alias-saved.png")


def test_alias_moved_in_mlflow_ui_reaches_the_demo_page(page, store_v2, tmp_path):
    """Two real processes: `python -m registry ui` and `python -m demo` (poll 1 s), both on the same store."""
    from registry import Registry

    assert Registry(store_v2).resolve().version == 1
    ui_port, demo_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MLFLOW_TRACKING_URI": store_v2,
        "FER_POLL_SECONDS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",
    }
    ui_cmd = [sys.executable, "-m", "registry", "ui", "--port", str(ui_port)]
    demo_cmd = [sys.executable, "-m", "demo", "--host", "127.0.0.1", "--port", str(demo_port)]
    ui_url, demo_url = f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{demo_port}"
    ui_log, demo_log = tmp_path / "mlflow-ui.log", tmp_path / "demo.log"
    with spawned(ui_cmd, ui_log, tmp_path, env) as ui, spawned(demo_cmd, demo_log, tmp_path, env) as demo:
        wait_until_up(ui, ui_url, ui_log)  # both start at once: each spends most of its start importing
        wait_until_up(demo, demo_url, demo_log)
        page.goto(demo_url)
        info = page.locator("#model-info")
        expect(info).to_contain_text("fer-emotion version 1:")
        page.locator("#model-details").get_by_text("Model details").click()  # the registry's words, collapsed
        expect(page.locator("#model-details-text")).to_contain_text("(alias production)")
        page.screenshot(path=tmp_path / "demo-before.png")

        mlflow_page = page.context.new_page()
        set_alias_in_mlflow_ui(mlflow_page, ui_url, version=EXTRA, alias="production", shots=tmp_path)
        assert Registry(store_v2).resolve().version == EXTRA

        page.bring_to_front()  # the open demo page refreshes its model panel by itself
        expect(info).to_contain_text(f"fer-emotion version {EXTRA}:")
        expect(info).to_contain_text("about 5 times in 10 (50% of FER2013's")  # its accuracy, in plain words
        page.screenshot(path=tmp_path / "demo-after.png")
