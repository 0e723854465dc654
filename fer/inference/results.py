"""What an analysis gives back: each face found (Face), a photo's whole answer (Analysis), a file's answer or error
(PhotoResult, from analyze_file), without torch, so a process that only collects answers (a folder's run beside
its helper processes) need not import it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from fer.inference.images import ImageError, read_image


@dataclass
class Face:
    box: list[int]  # [x1, y1, x2, y2] in the original image's pixels, inside the image
    score: float | None  # MTCNN's face probability; None for a whole image taken as one face
    emotion: str  # the most probable label
    probabilities: dict[str, float]  # every emotion of the served model, in fer.EMOTIONS order; sums to 1
    whole_image: bool = False  # no face was detected: the whole image was read as one face (face_mode)

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "score": self.score,
            "emotion": self.emotion,
            "probabilities": self.probabilities,
            "whole_image": self.whole_image,
        }


@dataclass
class Analysis:
    faces: list[Face]  # left to right
    width: int  # of the analysed image, in its file's own pixels (a JPEG may have been decoded smaller)
    height: int
    capped: bool  # more faces were found than max_faces; only the largest are kept
    total_found: int  # faces found before the cap
    message: str  # one line for the user: "no face found", "1 face found", "showing the 20 largest of 27 faces"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["faces"] = [f.to_dict() for f in self.faces]
        return d


@dataclass
class PhotoResult:
    path: str
    analysis: Analysis | None  # None when the photo could not be read
    error: str | None
    image: Image.Image | None = None  # the decoded photo, where asked for (to annotate it)


def analyze_file(pipeline, path: str, keep_image: bool = False) -> PhotoResult:
    """One photo decoded and analysed by `pipeline` (fer.inference.faces.FacePipeline), as `fer predict photo.jpg`
    does it; what went wrong in its error."""
    try:
        image = read_image(path)
    except ImageError as e:
        return PhotoResult(path, None, str(e))
    try:
        analysis = pipeline.analyze(image)
    except ValueError as e:  # a smallest face this photo cannot hold, named for the user
        return PhotoResult(path, None, f"{Path(path).name}: {e}")
    return PhotoResult(path, analysis, None, image if keep_image else None)
