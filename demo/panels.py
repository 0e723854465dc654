"""The HTML pieces of the demo's page: the annotated photo, one face's crop beside its bars, the colour legend.

    python -c "from demo.panels import legend; print(legend(('happy', 'sad')))"

Built here rather than from Gradio components so that a photo is never shown larger than its own pixels, the
bars take the boxes' colours, and a phone's narrow screen gets the whole result in one view. Nothing here
reads a file or the network: images arrive as PIL images and leave as data URIs.
"""

from __future__ import annotations

import base64
import html
import io

from PIL import Image

from fer.inference.faces import _COLOURS, reading

CROP_SIDE = 96  # the chosen face's crop beside its bars, in CSS pixels (drawn at twice that for sharp screens)
FERPLUS_LINE = (
    "The percentages estimate how people would split: 70% happy means about 7 in 10 people would call this face happy."
)
FER2013_LINE = "The percentages are how sure the model is: of the faces it reads 70% happy, about 7 in 10 are."


def data_uri(image: Image.Image, quality: int = 88) -> str:
    """A JPEG data URI (photos: a fraction of a PNG's bytes; the tags stay sharp at this quality)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def colour_css(emotion: str) -> str:
    r, g, b = _COLOURS.get(emotion, (110, 110, 110))
    return f"rgb({r},{g},{b})"


def photo_html(annotated: Image.Image, own_width: int, alt: str) -> str:
    """The annotated photo, never wider than the photo's own pixels (annotate may have enlarged a small one so
    its tags stay sharp) nor than the screen."""
    return (
        f'<img id="faces-found-img" src="{data_uri(annotated)}" alt="{html.escape(alt)}" '
        f'style="max-width:min(100%, {int(own_width)}px)">'
    )


def crop(image: Image.Image, box, width: int, height: int) -> Image.Image:
    """The face's box, with a little margin, from the analysed image (`box` in the file's pixels, the image may
    have been decoded smaller), as a square of twice CROP_SIDE."""
    sx, sy = image.width / max(1, width), image.height / max(1, height)
    x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    side = max(x2 - x1, y2 - y1) * 1.15
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    square = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return image.convert("RGB").crop(tuple(round(v) for v in square)).resize((2 * CROP_SIDE, 2 * CROP_SIDE))


def face_panel(face: dict, ferplus: bool) -> str:
    """One face: its crop, its reading as a headline ("#1 happy 92%", or "#1 sad 30% or fear 29%, unsure" with a
    line saying what that means), and one bar per emotion, largest first, in the boxes' colours."""
    words, unsure = reading(face["probabilities"])
    head = f'<div class="face-headline">#{face["n"]} {html.escape(words)}</div>'
    if unsure:
        head += '<div class="face-unsure">The model cannot tell these apart well for this face.</div>'
    if face.get("whole_image"):
        head += '<div class="face-note">The whole photo was read as one face.</div>'
    elif face.get("score") is not None:
        head += f'<div class="face-note">Face found with {face["score"]:.0%} certainty.</div>'
    rows = []
    for emotion, p in sorted(face["probabilities"].items(), key=lambda kv: -kv[1]):
        rows.append(
            f'<div class="bar-row"><span class="bar-name">{html.escape(emotion)}</span>'
            f'<span class="bar-track"><span class="bar" style="width:{100 * p:.1f}%;background:{colour_css(emotion)}">'
            f'</span></span><span class="bar-pct">{p:.0%}</span></div>'
        )
    crop_img = (
        f'<img class="face-crop" src="{face["crop"]}" alt="face #{face["n"]}" width="{CROP_SIDE}" height="{CROP_SIDE}">'
        if face.get("crop")
        else ""
    )
    note = f'<div class="face-note">{FERPLUS_LINE if ferplus else FER2013_LINE}</div>'
    return (
        f'<div class="face-panel"><div class="face-top">{crop_img}<div>{head}</div></div>'
        f'<div class="bars" aria-label="probabilities of face #{face["n"]}">{"".join(rows)}</div>{note}</div>'
    )


def legend(classes) -> str:
    """One line: each emotion's colour, as on the boxes, the bars and the video's chart."""
    items = "".join(
        f'<span class="legend-item"><span class="legend-swatch" style="background:{colour_css(c)}"></span>'
        f"{html.escape(c)}</span>"
        for c in classes
    )
    return f'<div class="legend" aria-label="colours of the emotions">{items}</div>'


# The page's own rules: compact bars, a photo that fits the screen's height, a result column that stacks on a phone.
CSS = """
#intro h1 { font-size: 1.6em; margin: 0 0 4px; }
#intro p, #model-info p { margin: 0; }
#model-info { font-size: 0.9em; }
#examples-licences { font-size: 0.8em; }
#min-face.refused .info-text { color: #b3261e; font-weight: 600; }
#min-face.refused input { border-color: #b3261e; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 0.9em; padding-top: 10px; }
.legend-item { display: inline-flex; align-items: center; gap: 4px; }
.legend-swatch { width: 14px; height: 14px; border-radius: 3px; display: inline-block; }
#faces-found img { display: block; margin: 0 auto; height: auto; max-height: calc(100vh - 330px);
  object-fit: contain; }
.face-panel { font-size: 0.95em; }
.face-top { display: flex; gap: 10px; align-items: flex-start; margin-bottom: 6px; }
.face-crop { width: 96px; height: 96px; border-radius: 6px; flex: none; }
.face-headline { font-size: 1.25em; font-weight: 600; line-height: 1.25; }
.face-unsure { color: #8a4b00; margin-top: 2px; }
.face-note { color: var(--body-text-color-subdued); font-size: 0.9em; margin-top: 4px; }
.bar-row { display: grid; grid-template-columns: 5.2em 1fr 3em; align-items: center; gap: 6px; height: 20px; }
.bar-track { background: var(--background-fill-secondary); border-radius: 3px; height: 12px; overflow: hidden; }
.bar { display: block; height: 100%; }
.bar-pct { text-align: right; font-variant-numeric: tabular-nums; }
#photo-message p { margin: 0; }
@media (max-width: 640px) {
  #faces-found img { max-height: 44vh; }
  .face-crop { width: 72px; height: 72px; }
  .face-headline { font-size: 1.1em; }
  .bar-row { height: 18px; }
}
"""
