"""Faces in a photo: find them (MTCNN), crop each as FER2013 frames a face, classify all in one batch, draw.

    python -m fer predict photo.jpg [--json] [--annotate out/]

The serving path of the product (the demo and `fer predict`):

1. detect: MTCNN (fer.detection.detector: facenet-pytorch's networks, batched) finds every face of at least `min_face`
   pixels of the image (default 40); an image that is already a face (a FER2013 file, a tight crop) is
   taken whole (`face_mode`);
2. crop: each box becomes the square FER2013 would have cut around that face (constants measured by
   benchmarks/face_framing.py, see docs/face_crop.md), taken from the original image, grey, 48×48;
3. classify: `fer.data.preprocess.normalize` (the one normalisation training uses) and one forward call for
   all faces of the image; softmax per face, over the served model's emotions (`FacePipeline.classes`: the
   first 7 or all 8 of `fer.EMOTIONS`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from fer import EMOTIONS
from fer.data.preprocess import normalize
from fer.detection.detector import MIN_FACE, PNET_WINDOW, PYRAMID_FACTOR, THRESHOLDS, FaceDetector, check_min_face
from fer.inference.images import original_size, to_rgb
from fer.inference.results import Analysis, Face

FACE_SIZE = 48  # the classifier's input side, FER2013's image side

# Where an MTCNN box sits in a FER2013 frame. benchmarks/face_framing.py runs facenet-pytorch's MTCNN
# (defaults) on 300 Training images upscaled 4× (48 -> 192 px, bicubic), each centred in a 384 px grey canvas
# so the whole face is inside the picture, as in a photo (on the bare 192 px frame MTCNN finds fewer faces and
# clips its boxes at the edges). Medians over the 276 faces found, as fractions of the frame side:
#   box width 0.810, box height 1.054 (FER2013 cuts through the forehead and the chin),
#   box centre - frame centre: x -0.006, y +0.012 (FER2013 centres its faces; MTCNN's box sits a little low).
# Measured on the original (sharp) Training pixels; an earlier copy of the split was blurred, and MTCNN found
# only 92 of those faces, with boxes 5% further left and 4% higher. The product's detector settings give the
# same geometry (0.805, 1.048, -0.008, +0.011 on 261 faces). docs/face_crop.md has means, quartiles and the
# bare-frame numbers. The serving crop inverts the medians: a square of side (w / 0.810 + h / 1.054) / 2
# around the box centre moved by +0.006 and -0.012 of that side; the rest is FER2013's own spread.
FER_BOX_WIDTH = 0.810  # median MTCNN box width / FER2013 frame side
FER_BOX_HEIGHT = 1.054  # median MTCNN box height / FER2013 frame side
FER_BOX_DX = -0.006  # median (box centre x - frame centre x) / frame side
FER_BOX_DY = 0.012  # median (box centre y - frame centre y) / frame side

FACE_MODES = ("auto", "detect", "whole")  # see FacePipeline.analyze
WHOLE_MAX_SIDE = 160  # in 'auto', an image with both sides up to this and no face found is read as one face,
TIGHT_CROP_FILL = 0.5  # and so is one whose single face found spans at least this part of its shorter side

# One colour per emotion, shared by the boxes, the video timeline (fer.plots.timeline) and the demo's legend:
# Okabe & Ito's palette (2008), whose colours readers with each common kind of colour blindness tell apart. Its
# black gives way to a grey for neutral, so a box stays visible on a dark photo.
_COLOURS = {
    "angry": (213, 94, 0),  # vermillion
    "disgust": (0, 158, 115),  # bluish green
    "fear": (204, 121, 167),  # reddish purple
    "happy": (230, 159, 0),  # orange
    "sad": (0, 114, 178),  # blue
    "surprise": (86, 180, 233),  # sky blue
    "neutral": (110, 110, 110),  # grey
    "contempt": (240, 228, 66),  # yellow
}


def text_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with `rgb` (WCAG's relative luminance): the tag text on a box's
    colour. Black wins on every colour of the palette but the blue and the grey."""
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return (0, 0, 0) if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else (255, 255, 255)


# When a reading is called unsure: the top probability under UNSURE_TOP, or the top two within UNSURE_GAP: where
# the top emotion is right about as often as a coin toss between two. Chosen on the FER+ model's validation split
# (`scripts/uncertainty.py --model bundled:ferplus --labels ferplus`, docs/ablation.md, FER+), and measured again
# on the production model of 2026-12-07 (5,398 faces with a crowd majority, 85.3% right): under a top of 0.45 it
# is right 51.5% of the time, within 10 points 50.6%. Together they flag 12.9% of the faces, right 51.8% of the
# time, against 90.2% for the others. The former 0.5 / 20 points (chosen on the FER2013 model) flags 19.7% there,
# right 55.7%. On the FER2013 bundle this rule flags 20.4% (42.0% right, 76.7% for the others).
UNSURE_TOP = 0.45
UNSURE_GAP = 0.1


def unsure_mask(probabilities: np.ndarray) -> np.ndarray:
    """(N,) bool for (N, C) probabilities: the readings the product calls unsure (UNSURE_TOP, UNSURE_GAP)."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1), axis=1)
    if p.shape[1] < 2:
        return np.zeros(len(p), bool)
    return (p[:, -1] < UNSURE_TOP) | (p[:, -1] - p[:, -2] < UNSURE_GAP)


def reading(probabilities: dict[str, float]) -> tuple[str, bool]:
    """A face's reading in words and whether it is unsure: "happy 92%", or "sad 30% or fear 29%, unsure"."""
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
    if not ranked:
        return "", False
    (first, p1), *rest = ranked
    unsure = bool(rest) and bool(unsure_mask(np.array([[v for _, v in ranked]]))[0])
    if unsure:
        second, p2 = rest[0]
        return f"{first} {p1:.0%} or {second} {p2:.0%}, unsure", True
    return f"{first} {p1:.0%}", False


def crop_box(box) -> tuple[float, float, float]:
    """MTCNN box [x1, y1, x2, y2] -> (left, top, side) of the square FER2013 would have framed."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    side = (w / FER_BOX_WIDTH + h / FER_BOX_HEIGHT) / 2
    cx = (x1 + x2) / 2 - FER_BOX_DX * side
    cy = (y1 + y2) / 2 - FER_BOX_DY * side
    return cx - side / 2, cy - side / 2, side


def crop_faces(image: Image.Image, boxes) -> np.ndarray:
    """(N, 48, 48) uint8 grey faces, each framed as FER2013 frames a face around its MTCNN box.

    The square is clipped to the image; where it reaches past an edge, the edge pixels are repeated so the
    face keeps FER2013's position and aspect instead of being stretched (repeated pixels add no grey level
    outside the face's own range, so the per-image min-max normalisation is not skewed).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    if not len(boxes):
        return out
    W, H = image.size
    for i, box in enumerate(boxes):
        left, top, side = crop_box(box)
        s = max(1, round(side))
        x0, y0 = round(left), round(top)
        x1, y1 = x0 + s, y0 + s
        ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
        if ix1 <= ix0 or iy1 <= iy0:  # the square misses the image entirely: nothing to show
            continue
        region = image.crop((ix0, iy0, ix1, iy1))
        grey = np.asarray(region if region.mode == "L" else to_rgb(region).convert("L"))
        if (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1):
            grey = np.pad(grey, ((iy0 - y0, y1 - iy1), (ix0 - x0, x1 - ix1)), mode="edge")
        face = Image.fromarray(grey).resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BICUBIC, reducing_gap=3.0)
        out[i] = np.asarray(face)
    return out


def whole_face(image: Image.Image) -> np.ndarray:
    """(1, 48, 48) uint8: the whole image as one grey face (a 48×48 FER2013 file keeps its exact pixels)."""
    grey = image if image.mode == "L" else to_rgb(image).convert("L")
    if grey.size != (FACE_SIZE, FACE_SIZE):
        grey = grey.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.array(grey)[None]


class FacePipeline:
    """Detect, crop and classify every face of an image; the classifier can be swapped while serving."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        max_faces: int = 20,
        min_face: int = MIN_FACE,
        face_mode: str = "auto",
        thresholds: tuple[float, float, float] = THRESHOLDS,
        factor: float = PYRAMID_FACTOR,
        device: str | torch.device = "cpu",
        mtcnn_weights: str | None = None,
    ):
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        check_min_face(min_face)
        check_face_mode(face_mode)
        self.max_faces = max_faces
        self.min_face = min_face
        self.face_mode = face_mode
        self.device = torch.device(device)
        # built once: three nets traced and frozen (weights: a folder, default facenet-pytorch's wheel)
        self.detector = FaceDetector(thresholds, factor, self.device, weights=mtcnn_weights)
        self._served: tuple[torch.nn.Module, torch.nn.Module] | None = None
        self.set_model(model)

    @property
    def model(self) -> torch.nn.Module:
        return self._served[0]

    @property
    def classes(self) -> tuple[str, ...]:
        """The emotions the served model reads, in the order of its outputs: its config says how many, and a
        graph without one (an exported model) is asked once, by its answer's width."""
        served = self._served
        if served[2] is None:
            with torch.no_grad():
                n = served[1](torch.zeros(1, 1, FACE_SIZE, FACE_SIZE, device=self.device)).shape[1]
            if self._served is served:  # unless set_model() swapped the model meanwhile
                self._served = (served[0], served[1], _classes(n))
            return _classes(n)
        return served[2]

    def set_model(self, model: torch.nn.Module) -> None:
        """Serve `model` from the next call on; a call already running finishes with the model it started with.
        It runs as fer.inference.weights.serve serves it (the fastest of ONNX Runtime, a frozen TorchScript graph
        and the model itself on this CPU, all with the same outputs)."""
        from fer.inference.weights import serve

        model = model.to(self.device).eval()
        n = getattr(getattr(model, "cfg", None), "num_classes", None)  # 7 (FER2013) or 8 (FER+): its own emotions
        # one reference assignment: atomic, so readers see the old triple or the new one
        self._served = (model, serve(model), _classes(n) if n else None)

    def detect(self, image: Image.Image, min_face: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) float boxes in the image's pixels and (N,) face probabilities, for faces of at least
        `min_face` pixels of the image's file (a JPEG decoded at a reduced scale is looked at in proportion)."""
        image = to_rgb(image)
        min_face = self.min_face if min_face is None else min_face
        W0, _ = original_size(image)
        scaled = max(PNET_WINDOW, round(min_face * image.width / W0))
        return self.detector.detect(image, scaled)

    @torch.no_grad()
    def classify(self, faces: np.ndarray, model: torch.nn.Module | None = None) -> np.ndarray:
        """(N, 48, 48) uint8 faces -> (N, C) probabilities over the model's emotions, in one forward call."""
        model = model if model is not None else self._served[1]
        if not len(faces):  # (no call: the model's width, where its config tells it without one)
            return np.zeros((0, len(self._served[2] or ())), np.float32)
        x = normalize(faces).to(self.device)
        return torch.softmax(model(x).float(), dim=1).cpu().numpy()

    def analyze(
        self, image: Image.Image, *, min_face: int | None = None, face_mode: str | None = None, near=None
    ) -> Analysis:
        """Every face's emotions. `face_mode`: 'detect' (MTCNN's faces only), 'whole' (the image is one face),
        'auto' (MTCNN's faces; an image with both sides at most 160 px is one face when no face is found in it
        or when its one face fills at least half of it: a FER2013 file or a tight crop).
        `near`: boxes found in the previous frame of a stream, in this image's pixels; the faces are then looked
        for around them only (FaceDetector.refine: a fraction of a detection's cost), new faces are not.
        ValueError, naming the problem, when `min_face` cannot be looked for in this image."""
        _, model, _ = self._served  # read once: a set_model() during this call does not mix two models
        min_face = self.min_face if min_face is None else min_face
        face_mode = self.face_mode if face_mode is None else face_mode
        check_face_mode(face_mode)
        W0, H0 = original_size(image)  # the file's own pixels, where a JPEG was decoded at a reduced scale
        image = to_rgb(image)
        W, H = image.size
        # a small image with something in it: a flat one (one grey level) is no face, whatever its size
        small = max(W0, H0) <= WHOLE_MAX_SIDE and len(set(image.convert("L").getextrema())) > 1
        if face_mode == "whole" or (face_mode == "auto" and small and min_face > min(W0, H0)):
            return self._whole(image, model, W0, H0)
        check_min_face(min_face, W0, H0)
        if near is not None:
            raw, scores = self.detector.refine(image, near)
        else:
            raw, scores = self.detect(image, min_face)
        if face_mode == "auto" and small and _tight_crop(raw, W, H):
            return self._whole(image, model, W0, H0)
        # Reported boxes are clipped to the image (MTCNN's may run past an edge); the crop uses the unclipped
        # geometry MTCNN saw, since that is what the FER2013 framing was measured against.
        boxes = raw.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, W)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, H)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        raw, boxes, scores = raw[keep], boxes[keep], scores[keep]
        total = len(boxes)
        if total > self.max_faces:
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            keep = np.argsort(-area, kind="stable")[: self.max_faces]
            raw, boxes, scores = raw[keep], boxes[keep], scores[keep]
        order = np.lexsort((boxes[:, 1], boxes[:, 0]))  # numbered left to right, then top to bottom
        raw, boxes, scores = raw[order], boxes[order], scores[order]
        proba = self.classify(crop_faces(image, raw), model)
        classes = _classes(proba.shape[1]) if len(proba) else ()
        faces = []
        boxes = boxes * np.array([W0 / W, H0 / H, W0 / W, H0 / H], dtype=np.float32)
        for box, score, p in zip(boxes, scores, proba):
            faces.append(
                Face(
                    box=[int(round(v)) for v in box],
                    score=float(score),
                    emotion=classes[int(p.argmax())],
                    probabilities={lab: float(v) for lab, v in zip(classes, p)},
                )
            )
        capped = total > self.max_faces
        if not faces:
            message = "no face found"
        elif capped:
            message = f"showing the {self.max_faces} largest of {total} faces"
        else:
            message = f"{total} face found" if total == 1 else f"{total} faces found"
        return Analysis(faces=faces, width=W0, height=H0, capped=capped, total_found=total, message=message)

    def _whole(self, image: Image.Image, model, W0: int, H0: int) -> Analysis:
        p = self.classify(whole_face(image), model)[0]
        classes = _classes(len(p))
        face = Face(
            box=[0, 0, W0, H0],
            score=None,
            emotion=classes[int(p.argmax())],
            probabilities={lab: float(v) for lab, v in zip(classes, p)},
            whole_image=True,
        )
        return Analysis([face], W0, H0, capped=False, total_found=1, message="the whole image read as one face")


def _classes(n: int) -> tuple[str, ...]:
    """The emotions of a model with n outputs: the first n of fer.EMOTIONS."""
    if not 1 <= n <= len(EMOTIONS):
        raise ValueError(f"the model gives {n} outputs per face; this product reads up to {len(EMOTIONS)} emotions")
    return EMOTIONS[:n]


def _tight_crop(boxes: np.ndarray, width: int, height: int) -> bool:
    """True for a small image that is already a face: no face found in it (MTCNN needs a margin around a face),
    or one face spanning at least half its shorter side (MTCNN finds 3 in 4 FER2013 files, at 0.5-1.2 of the
    side; FER2013's own frame is what the classifier learned, so the whole image reads better than a re-crop)."""
    if not len(boxes):
        return True
    return len(boxes) == 1 and float(boxes[0, 2] - boxes[0, 0]) >= TIGHT_CROP_FILL * min(width, height)


def check_face_mode(mode: str) -> None:
    if mode not in FACE_MODES:
        raise ValueError(f"unknown face mode {mode!r}; expected one of {', '.join(FACE_MODES)}")


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's embedded font: no file, no download


MIN_ANNOTATED_SIDE = 480  # smaller images are enlarged first, so the labels stay legible
# The tag's text height is the image's long side over this: about 13 px on a phone's 300 px wide photo, however
# large the file (the page shrinks the picture to the screen, and the tags with it).
TAG_DIVISOR = 22


def tag(number: int, emotion: str, probabilities: dict[str, float]) -> str:
    """A box's tag: "#1 happy 92%", and ", unsure" where the reading is (see `reading`)."""
    _, unsure = reading(probabilities)
    return f"#{number} {emotion} {probabilities.get(emotion, 0.0):.0%}" + (", unsure" if unsure else "")


def annotate(image: Image.Image, analysis: Analysis, numbers: list[int] | None = None) -> Image.Image:
    """A copy with each face boxed and tagged "#1 happy 92%" (", unsure" added where the reading is); numbers
    follow `analysis.faces` (or are `numbers`, such as a video's track ids).

    Line width and font grow with the image. An image whose long side is under 480 px is enlarged by a whole
    factor first (the boxes with it): a label drawn on a 48 px face photo could not be read otherwise.
    """
    im = to_rgb(image).copy()
    k = max(1, math.ceil(MIN_ANNOTATED_SIDE / max(im.size)))
    if k > 1:
        im = im.resize((im.width * k, im.height * k), Image.Resampling.BICUBIC)
    sx, sy = im.width / max(1, analysis.width), im.height / max(1, analysis.height)
    W, H = im.size
    size = max(14, round(max(W, H) / TAG_DIVISOR))
    line = max(2, round(size / 8))
    font = _font(size)
    draw = ImageDraw.Draw(im)
    numbers = numbers if numbers is not None else range(1, len(analysis.faces) + 1)
    for i, face in zip(numbers, analysis.faces):
        colour = _COLOURS.get(face.emotion, (110, 110, 110))
        x1, y1, x2, y2 = face.box
        x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line)
        text = tag(i, face.emotion, face.probabilities)
        tl, tt, tr, tb = draw.textbbox((0, 0), text, font=font)
        tw, th = tr - tl, tb - tt
        pad = max(2, size // 6)
        lw, lh = tw + 2 * pad, th + 2 * pad
        lx = min(max(0.0, x1), max(0.0, W - lw))
        ly = y1 - lh if y1 - lh >= 0 else min(y1 + line, max(0.0, H - lh))  # above the box, else just inside it
        draw.rectangle([lx, ly, lx + lw, ly + lh], fill=colour)
        draw.text((lx + pad - tl, ly + pad - tt), text, fill=text_colour(colour), font=font)
    return im
