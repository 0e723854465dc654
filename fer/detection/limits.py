"""The sizes a detection can look for, without torch: `fer predict` checks its arguments before it loads anything."""

from __future__ import annotations

PNET_WINDOW = 12  # P-net's receptive field: a face of min_face pixels is looked for at scale 12/min_face
MIN_FACE = 40  # default smallest face, in the image's own pixels (FER2013 faces are 48 px)


def check_min_face(min_face: int, width: int | None = None, height: int | None = None) -> None:
    """ValueError naming the problem when min_face cannot be looked for (in an image of this size)."""
    if min_face < PNET_WINDOW:
        raise ValueError(
            f"the smallest face size {min_face} px is below MTCNN's {PNET_WINDOW} px window; give {PNET_WINDOW} or more"
        )
    if width is not None and height is not None and min_face > min(width, height):
        raise ValueError(
            f"the smallest face size {min_face} px is larger than the image ({width}×{height} px): "
            "no face that size fits in it"
        )
