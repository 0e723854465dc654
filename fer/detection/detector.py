"""MTCNN face detection, batched: facenet-pytorch's three networks and weights, driven without its Python loops.

facenet-pytorch's `MTCNN.detect` resizes the whole image with an area filter for every pyramid level, and
crops and resizes each candidate box for the R- and O-nets one at a time in Python. Here:

- the smallest face is a size in the image's own pixels (`min_face`), so the pyramid starts at
  12/min_face of the image whatever its size (P-net's window is 12 px);
- the pyramid levels are made by Pillow's box filter, each from the one before, on uint8 pixels;
- the candidates of each stage are cut and resized to 24×24 (R-net) or 48×48 (O-net) in one
  `torchvision.ops.roi_align` call (adaptive sampling averages each output pixel's area, as the area
  filter does; outside the image is black, as in the original MTCNN's padding);
- the three nets run channels-last, as frozen TorchScript graphs (P-net's mid-sized levels through oneDNN).

`refine` runs the O-net alone around boxes already known (the live stream's previous frame): two small
batched calls instead of a detection, and the box follows the face as it moves (up to about a third of its
width between two frames).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fer.detection.limits import MIN_FACE, PNET_WINDOW, check_min_face  # noqa: F401 (imported from here too)
from fer.detection.mtcnn import mtcnn_weights, nms, roi_align  # noqa: F401 (mtcnn_weights: imported from here too)
from fer.inference.images import to_rgb

# MTCNN's defaults are (0.6, 0.7, 0.7) and 0.709. A stricter first stage passes fewer windows to the second, a
# stricter last stage rejects more non-faces, a coarser pyramid runs fewer scales; benchmarks/detect_recall.py
# measures the recall this keeps against the defaults.
THRESHOLDS = (0.7, 0.7, 0.8)  # P-, R-, O-net face probability thresholds
PYRAMID_FACTOR = 0.6  # scale step of the image pyramid
REFINE_STEP = 0.2  # `refine` also looks in squares moved by this part of a known face's side, 8 ways
# A face that fills the photo (a passport-style crop, its chin and hair cut by the edges) is missed by the O-net,
# which sees black past the edges. When no face is found, faces of at least FULL_FRAME_FILL of the shorter side
# are looked for once more with FULL_FRAME_MARGIN of that side of repeated edge pixels around the image, shrunk
# so those faces span about 96 px: a few tiny pyramid levels. On realphotos-dev this took the photos where no
# face was found from 16 of 668 to 1 (benchmarks/real_photos.py; 2 when shrunk to 48 px), margins of 0.15 and
# 0.25, and grey or mirrored margins, found fewer. A photo without a face costs 1.2-2× its detection (the cat,
# the coffee and a grey frame: +3 to +18 ms on 14-19 ms, one thread, two trainings running on the machine;
# benchmarks/full_frame.py), one with a face nothing.
FULL_FRAME_MARGIN = 0.1
FULL_FRAME_FILL = 0.3

_EMPTY = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


def _frozen(net: torch.nn.Module, example: torch.Tensor, optimize: bool = False) -> torch.nn.Module:
    """`net` traced and frozen, channels-last; `optimize`: also torch.jit.optimize_for_inference (oneDNN's
    layouts: a fixed cost of about 0.25 ms a call, repaid on mid-sized inputs only)."""
    net = net.eval().to(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, and still the fastest here
        traced = torch.jit.freeze(
            torch.jit.trace(net, example.contiguous(memory_format=torch.channels_last), check_trace=False)
        )
        return torch.jit.optimize_for_inference(traced) if optimize else traced


class _BySize:
    """P-net as two graphs, each called on the inputs it runs fastest: the oneDNN-optimised one on levels of
    MID pixels, the plain frozen one on smaller and larger ones. One thread of an AMD EPYC, ms a call (plain /
    optimised): 13 px 0.07 / 0.31, 46 px 0.30 / 0.34, 76 px 0.79 / 0.49, 110 px 0.94 / 0.79, 160 px 1.94 / 3.00,
    256 px (a tile) 5.05 / 8.00. Their outputs differ by under 1e-6."""

    MID = (48 * 48, 120 * 120)  # (over, up to) input pixels

    def __init__(self, plain, optimised):
        self.plain, self.optimised = plain, optimised

    def __call__(self, x: torch.Tensor):
        lo, hi = self.MID
        return (self.optimised if lo < x.shape[-2] * x.shape[-1] <= hi else self.plain)(x)


class FaceDetector:
    """Every face of at least `min_face` pixels in an image: (N, 4) boxes [x1, y1, x2, y2] and (N,) scores."""

    # P-net runs pyramid levels with a side over this many pixels in tiles of about this side (see _pnet), so
    # memory stays bounded whatever the photo's size; None runs every level whole (same faces)
    tile: int | None = 256
    # the R- and O-net crops are cut from regions of the photo of at most about this many pixels (as float: 12 MB)
    crop_region: int | None = 1 << 20

    def __init__(
        self,
        thresholds: tuple[float, float, float] = THRESHOLDS,
        factor: float = PYRAMID_FACTOR,
        device: str | torch.device = "cpu",
        weights: str | Path | None = None,
    ):
        """weights: a folder with pnet.pt, rnet.pt and onet.pt (state dicts, read with weights_only=True);
        default: the ones in facenet-pytorch's wheel."""
        from fer.detection.mtcnn import ONet, PNet, RNet  # facenet-pytorch's, without importing torchvision

        if not 0 < factor < 1:
            raise ValueError(f"the pyramid factor must lie between 0 and 1, got {factor}")
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = factor
        self.device = torch.device(device)
        nets = {"pnet": PNet, "rnet": RNet, "onet": ONet}
        folder = Path(weights) if weights is not None else mtcnn_weights()
        loaded = {}
        for name, cls in nets.items():
            net = cls()
            net.load_state_dict(torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True))
            loaded[name] = net.to(self.device)
        level = torch.zeros(1, 3, 40, 40, device=self.device)
        self.pnet = _BySize(_frozen(loaded["pnet"], level), _frozen(loaded["pnet"], level, optimize=True))
        self.rnet = _frozen(loaded["rnet"], torch.zeros(2, 3, 24, 24, device=self.device))
        self.onet = _frozen(loaded["onet"], torch.zeros(2, 3, 48, 48, device=self.device))

    # ------------------------------------------------------------ stages

    def _tensor(self, image: Image.Image) -> torch.Tensor:
        """(1, 3, H, W) float32, channels-last (the layout the uint8 pixels already have), scaled for the nets."""
        x = torch.from_numpy(np.array(image)).to(self.device).permute(2, 0, 1).unsqueeze(0)
        return (x.float() - 127.5) * 0.0078125

    def _pyramid(self, image: Image.Image, min_face: int) -> list[tuple[float, Image.Image]]:
        W, H = image.size
        levels, previous = [], image
        for scale in pyramid_scales(W, H, min_face, self.factor):
            size = (int(W * scale + 1), int(H * scale + 1))  # facenet-pytorch's level sizes
            level = previous if size == previous.size else previous.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
            levels.append((scale, level))
            previous = level  # scale <= 1 (min_face >= 12): every level is smaller than the one before
        return levels

    def _pnet(self, level: Image.Image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """P-net over one pyramid level: its cells whose face probability reaches the first threshold, row by row,
        as (K, 2) [y, x], (K,) probabilities and (K, 4) box offsets.

        A level with a side over `tile` pixels runs in tiles: P-net has no padding and one 2×2 pooling, so output
        cells [c0, c1) read exactly the input pixels [2·c0, 2·(c1 - 1) + 12), and a tile cut there (at an even
        offset, so the pooling grid and its partial last window fall as in the whole level) gives those cells as
        the whole level does. Only each tile's cells above the threshold are kept: P-net's activations over a
        2400×1800 level (a 48-megapixel photo at the default smallest face) took 400 MB."""
        W, H = level.size
        threshold = self.thresholds[0]
        if not self.tile or (W <= self.tile and H <= self.tile):
            return _cells(*self.pnet(self._tensor(level)), 0, 0, threshold)
        ow, oh = -(-(W - 2) // 2) - 4, -(-(H - 2) // 2) - 4  # conv 3, pool 2 (ceil), conv 3, conv 3
        step = (self.tile - PNET_WINDOW + 2) // 2  # output cells per tile: a tile of `tile` input pixels
        found = []
        for y0 in range(0, oh, step):
            for x0 in range(0, ow, step):
                y1, x1 = min(y0 + step, oh), min(x0 + step, ow)
                box = (2 * x0, 2 * y0, min(W, 2 * (x1 - 1) + PNET_WINDOW), min(H, 2 * (y1 - 1) + PNET_WINDOW))
                reg, prob = self.pnet(self._tensor(level.crop(box)))
                found.append(_cells(reg[..., : y1 - y0, : x1 - x0], prob[..., : y1 - y0, : x1 - x0], y0, x0, threshold))
        yx, score, offsets = (torch.cat(parts) for parts in zip(*found))
        order = torch.argsort(yx[:, 0] * ow + yx[:, 1])  # row by row, as the whole level gives them
        return yx[order], score[order], offsets[order]

    def _proposals(self, image: Image.Image, min_face: int) -> torch.Tensor:
        """P-net over the pyramid: (N, 5) squares [x1, y1, x2, y2, score] in image pixels."""
        found = []
        for scale, level in self._pyramid(image, min_face):
            yx, score, offsets = self._pnet(level)
            if not len(yx):
                continue
            q1 = yx.flip(1).float()  # [x, y]
            q1, q2 = ((2 * q1 + 1) / scale).floor(), ((2 * q1 + PNET_WINDOW) / scale).floor()
            boxes = torch.cat([q1, q2], 1)
            keep = nms(boxes, score, 0.5)
            found.append(torch.cat([boxes[keep], score[keep, None], offsets[keep]], 1))  # offsets: relative corrections
        if not found:
            return torch.zeros(0, 5)
        b = torch.cat(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        boxes = b[:, :4] + b[:, 5:9] * torch.stack([w, h, w, h], 1)
        return torch.cat([_square(boxes), b[:, 4:5]], 1)

    def _crops(self, image: Image.Image, boxes: torch.Tensor, side: int, base: float) -> torch.Tensor:
        """(N, 3, side, side): each box cut from the image and resized, in one `roi_align` call per source.

        The sources are the image at `base` scale and copies reduced 4× at a time; each box is cut from the
        smallest copy where it still spans `side` pixels, so every output pixel averages at most about 4×4
        samples whatever the face's size (`roi_align` with adaptive sampling is an area filter then).
        """
        out = torch.zeros(len(boxes), 3, side, side)
        size = (boxes[:, 2] - boxes[:, 0]).clamp(min=1)
        level = torch.floor(torch.log(size * base / side).clamp(min=0) / math.log(4)).long()
        # the base copy by the nearest integer box-filter reduction (a fraction of a resize's cost): a face of
        # min_face keeps at least 5/6 of the pixels the net reads (0.5 of the image for 0.6, the 40 px default)
        factor = max(1, round(1 / base))
        source = image.reduce(factor) if factor > 1 else image
        scale = source.width / image.width
        for k in range(int(level.max()) + 1):
            if k:
                source = source.reduce(4) if min(source.size) >= 8 else source
                scale = source.width / image.width
            # only the part of the source the boxes cover becomes a float tensor, and boxes spread over a large
            # photo are cut in groups of nearby ones (their bounding region over a 48-megapixel photo took 140 MB)
            for picked in _nearby(boxes, torch.nonzero(level == k).flatten(), scale, self.crop_region):
                rois = boxes[picked, :4] * scale
                x0, y0 = (int(max(0, math.floor(v))) for v in rois[:, :2].min(0).values.tolist())
                x1 = int(min(source.width, math.ceil(rois[:, 2].max().item()) + 1))
                y1 = int(min(source.height, math.ceil(rois[:, 3].max().item()) + 1))
                if x1 <= x0 or y1 <= y0:
                    continue  # every box lies outside the image: black crops
                region = source.crop((x0, y0, x1, y1))
                x = torch.from_numpy(np.array(region)).permute(2, 0, 1).unsqueeze(0).contiguous().float()
                rois = torch.cat([torch.zeros(len(picked), 1), rois - torch.tensor([x0, y0, x0, y0])], 1)
                out[picked] = roi_align(x, rois, (side, side), spatial_scale=1.0, sampling_ratio=0, aligned=True)
        return (out - 127.5) * 0.0078125

    def _run(self, image: Image.Image, boxes: torch.Tensor, net, side: int, base: float):
        """Crop every box to side×side and run `net` once: each box regressed, and its face probability."""
        out = net(self._crops(image, boxes, side, base).contiguous(memory_format=torch.channels_last))
        reg, prob = out[0], out[-1][:, 1]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        return boxes[:, :4] + reg * torch.stack([w, h, w, h], 1), prob

    def _stage(self, image: Image.Image, boxes: torch.Tensor, net, side: int, threshold: float, base: float):
        """`_run`, keeping the boxes whose face probability is above threshold."""
        boxes, prob = self._run(image, boxes, net, side, base)
        keep = prob > threshold
        return boxes[keep], prob[keep]

    # ------------------------------------------------------------ public

    @torch.no_grad()
    def detect(self, image: Image.Image, min_face: int = MIN_FACE) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) float32 boxes in the image's pixels and (N,) face probabilities, most probable first."""
        image = to_rgb(image)
        check_min_face(min_face)
        if min_face > min(image.size):
            return _EMPTY
        boxes, prob = self._detect(image, min_face)
        if len(boxes):
            return boxes, prob
        # the second look needs no more pixels than twice the O-net's 48 on the smallest face it looks for
        shrink = min(1.0, 2 * 48 / (FULL_FRAME_FILL * min(image.size)))
        size = (max(1, round(image.width * shrink)), max(1, round(image.height * shrink)))
        small = image.resize(size, Image.Resampling.BOX) if shrink < 1 else image
        margin = round(FULL_FRAME_MARGIN * min(small.size))
        if not margin:
            return _EMPTY
        padded = Image.fromarray(np.pad(np.asarray(small), ((margin, margin), (margin, margin), (0, 0)), mode="edge"))
        smallest = max(PNET_WINDOW, round(min_face * shrink), round(FULL_FRAME_FILL * min(small.size)))
        boxes, prob = self._detect(padded, smallest)
        return ((boxes - margin) / np.float32(shrink), prob) if len(boxes) else _EMPTY

    def _detect(self, image: Image.Image, min_face: int) -> tuple[np.ndarray, np.ndarray]:
        proposals = self._proposals(image, min_face)
        if not len(proposals):
            return _EMPTY
        # the copies the crops are cut from need no more pixels than a face of min_face shows the net
        boxes, prob = self._stage(image, proposals, self.rnet, 24, self.thresholds[1], min(1.0, 24 / min_face))
        if not len(boxes):
            return _EMPTY
        boxes = boxes[nms(boxes, prob, 0.7)]
        return self._output(image, _square(boxes), min(1.0, 48 / min_face))

    @torch.no_grad()
    def refine(self, image: Image.Image, boxes) -> tuple[np.ndarray, np.ndarray]:
        """Where the known faces are now, from the O-net alone: for each box, its square and the squares moved by
        REFINE_STEP of its side in the 8 directions, in one batch; the most face-like of the nine, regressed,
        then framed again as a detection frames it. A face no square sees as one is dropped (it left)."""
        image = to_rgb(image)
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        if not len(boxes):
            return _EMPTY
        squares = _square(boxes)
        side = squares[:, 2] - squares[:, 0]
        steps = torch.tensor([(dx, dy, dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=torch.float32)
        candidates = (squares[:, None, :] + steps[None] * REFINE_STEP * side[:, None, None]).reshape(-1, 4)
        found, prob = self._run(image, candidates, self.onet, 48, 1.0)
        best = prob.view(len(boxes), 9).argmax(1) + torch.arange(len(boxes)) * 9
        found = found[best][prob[best] > self.thresholds[2]]
        return self._output(image, _square(found), 1.0) if len(found) else _EMPTY

    @torch.no_grad()
    def landmarks(self, image: Image.Image, boxes) -> np.ndarray:
        """(N, 5, 2) float32: MTCNN's five points (left eye, right eye, nose, mouth's left and right corners, as
        seen in the image) of each face box, in the image's pixels, from the O-net on the box's square."""
        image = to_rgb(image)
        squares = _square(torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
        if not len(squares):
            return np.zeros((0, 5, 2), np.float32)
        points = self.onet(self._crops(image, squares, 48, 1.0).contiguous(memory_format=torch.channels_last))[1]
        w, h = squares[:, 2] - squares[:, 0], squares[:, 3] - squares[:, 1]
        x = squares[:, :1] + points[:, :5] * w[:, None]
        y = squares[:, 1:2] + points[:, 5:] * h[:, None]
        return torch.stack([x, y], 2).numpy().astype(np.float32)

    def _output(self, image: Image.Image, squares: torch.Tensor, base: float) -> tuple[np.ndarray, np.ndarray]:
        boxes, prob = self._stage(image, squares, self.onet, 48, self.thresholds[2], base)
        if not len(boxes):
            return _EMPTY
        keep = _nms_min(boxes, prob, 0.7)
        return boxes[keep].numpy().astype(np.float32), prob[keep].numpy().astype(np.float32)


def _cells(reg: torch.Tensor, prob: torch.Tensor, y0: int, x0: int, threshold: float):
    """P-net's output maps (1, 4, h, w) and (1, 2, h, w) whose first cell is [y0, x0] -> the cells at or above
    threshold, row by row: (K, 2) [y, x], (K,) probabilities, (K, 4) box offsets."""
    ys, xs = torch.nonzero(prob[0, 1] >= threshold, as_tuple=True)
    return torch.stack([ys + y0, xs + x0], 1), prob[0, 1, ys, xs], reg[0][:, ys, xs].T


def _nearby(boxes: torch.Tensor, picked: torch.Tensor, scale: float, limit: int | None) -> list[torch.Tensor]:
    """`picked` (indices of `boxes`) in groups, left to right, each spanning at most about `limit` pixels of a
    source at `scale` (a box larger than that is a group of its own); one group where `limit` is None."""
    if not len(picked) or not limit:
        return [picked] if len(picked) else []
    rois = boxes[picked, :4] * scale
    if float((rois[:, 2:].max(0).values - rois[:, :2].min(0).values).clamp(min=0).prod()) <= limit:
        return [picked]  # all of them in one region: one group (a photo's usual case), without the loop
    order = torch.argsort(rois[:, 0], stable=True).tolist()
    groups, group, lo, hi = [], [], None, None
    for i in order:
        r = rois[i]
        nlo = r[:2] if lo is None else torch.minimum(lo, r[:2])
        nhi = r[2:] if hi is None else torch.maximum(hi, r[2:])
        if group and float((nhi - nlo).clamp(min=0).prod()) > limit:
            groups.append(picked[group])
            group, nlo, nhi = [], r[:2], r[2:]
        group.append(i)
        lo, hi = nlo, nhi
    groups.append(picked[group])
    return groups


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """The square of each box's longer side around its centre (MTCNN's `rerec`)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1, y1 = boxes[:, 0] + (w - side) / 2, boxes[:, 1] + (h - side) / 2
    return torch.stack([x1, y1, x1 + side, y1 + side], 1)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """MTCNN's last suppression: a box goes when its overlap over the smaller area exceeds threshold."""
    order = torch.argsort(scores, descending=True)
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    keep: list[int] = []
    for i in order.tolist():
        if keep:
            k = torch.tensor(keep)
            iw = (torch.minimum(boxes[k, 2], boxes[i, 2]) - torch.maximum(boxes[k, 0], boxes[i, 0])).clamp(min=0)
            ih = (torch.minimum(boxes[k, 3], boxes[i, 3]) - torch.maximum(boxes[k, 1], boxes[i, 1])).clamp(min=0)
            overlap = iw * ih / torch.minimum(area[k], area[i]).clamp(min=1e-6)
            if bool((overlap > threshold).any()):
                continue
        keep.append(i)
    return torch.tensor(keep, dtype=torch.long)


def pyramid_scales(width: int, height: int, min_face: int, factor: float = PYRAMID_FACTOR) -> list[float]:
    """The scales P-net runs at for an image of this size (what the detection costs grows with their area). The
    last one shrinks the shorter side to P-net's window, so a face as large as the image is looked for whatever
    step the levels before it left (one factor step can leave the last level up to 1/factor times too large)."""
    scales, scale = [], PNET_WINDOW / min_face
    while min(width, height) * scale >= PNET_WINDOW:
        scales.append(scale)
        scale *= factor
    whole = PNET_WINDOW / min(width, height)
    if scales and scales[-1] > whole * 1.05:
        scales.append(whole)
    return scales
